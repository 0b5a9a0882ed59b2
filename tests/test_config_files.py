"""Configs as files: --config (YAML or a run's config.json) with flags overriding it, --print-config,
mistyped keys, and --dry-run refusing what it can check without training."""
import json
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from gandistill.cli import app
from gandistill.cli.fit import fit_config_from
from gandistill.engine.config import FitConfig, config_dict
from gandistill.gan.config import GanConfig, gan_config
from gandistill.io.config_file import config_yaml, read_config_file
from gandistill.io.errors import ConfigError

runner = CliRunner()


def _fit_flags(**given):
    from gandistill.cli.fit import FIT_FLAGS

    return {**{k: None for k in FIT_FLAGS}, **given}


def test_print_config_is_complete_commented_yaml_that_reads_back_to_the_defaults(tmp_path):
    res = runner.invoke(app, ["fit", "--print-config"])
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(res.output)
    assert set(data) == {f for f in config_dict(FitConfig())}
    assert FitConfig(**read_config_file(_write(tmp_path / "c.yaml", res.output), FitConfig)) == FitConfig()
    assert "# global batch (synthetic + real)" in res.output          # field docs as comments
    assert "steps: null  # total steps" in res.output


def _write(path, text):
    path.write_text(text)
    return path


def test_flags_override_the_file_and_the_file_overrides_the_defaults(tmp_path):
    f = _write(tmp_path / "run.yaml", "batch: 32\nsteps: 7\nmethod: vicreg-real\nloggers: [tensorboard]\n")
    cfg = fit_config_from(str(f), _fit_flags(steps=9))
    assert (cfg.batch, cfg.steps, cfg.method, cfg.loggers) == (32, 9, "vicreg-real", ("tensorboard",))
    assert cfg.seed == FitConfig().seed


def test_a_runs_config_json_reproduces_its_config_exactly(tmp_path):
    original = FitConfig(method="squeeze", batch=24, steps=11, sim=2.5, teacher_kwargs={"mode": "single"},
                         eval="knn", resume="auto", loggers=("tensorboard",), cifar_stem=True, epochs=1.5)
    record = {"config": config_dict(original), "resolved": {"lr": 0.1}, "versions": {}}
    path = _write(tmp_path / "config.json", json.dumps(record))
    again = fit_config_from(str(path), _fit_flags())
    assert again == original and config_dict(again) == config_dict(original)


def test_unknown_and_mistyped_keys_name_the_key_and_the_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'bacth'.*closest: batch"):
        read_config_file(_write(tmp_path / "a.yaml", "bacth: 32\n"), FitConfig)
    with pytest.raises(ConfigError, match=r"batch = 'many' is not of type int"):
        read_config_file(_write(tmp_path / "b.yaml", "batch: many\n"), FitConfig)
    with pytest.raises(ConfigError, match="mapping"):
        read_config_file(_write(tmp_path / "c.yaml", "- 1\n- 2\n"), FitConfig)
    with pytest.raises(ConfigError, match="YAML"):
        read_config_file(_write(tmp_path / "d.yaml", "a: [\n"), FitConfig)


def _main(argv, monkeypatch, capsys):
    from gandistill.cli import main

    monkeypatch.setattr(sys, "argv", ["gandistill", *argv])
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    return e.value.code, out.out + out.err


@pytest.mark.parametrize("argv,needle", [
    (["--student", "resnt18"], "resnet18"),
    (["--teacher-ckpt", "/nonexistent.pkl"], "/nonexistent.pkl"),
    (["--teacher", "sg2-generatr"], "sg2-generator"),
    (["--bank", "/no/bank"], "/no/bank"),
])
def test_dry_run_refuses_what_it_can_check(argv, needle, monkeypatch, capsys):
    code, out = _main(["fit", "--dry-run", *argv], monkeypatch, capsys)
    assert code == 2 and needle in out
    assert len(out.strip().splitlines()) == 1, out


def test_dry_run_says_it_checked(monkeypatch, capsys):
    res = runner.invoke(app, ["fit", "--dry-run", "--steps", "3"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert "nothing trained" in data["dry_run"] and data["config"]["steps"] == 3


def test_gan_train_config_file_preset_and_print(tmp_path):
    cfg = gan_config("tiny", kimg=1.0, batch=4)
    path = _write(tmp_path / "config.json", json.dumps(cfg.to_dict()))       # a GAN run's own config.json
    res = runner.invoke(app, ["gan", "train", "--config", str(path), "--print-config"])
    assert res.exit_code == 0, res.output
    assert GanConfig.from_dict(yaml.safe_load(res.output)) == cfg
    res = runner.invoke(app, ["gan", "train", "--config", str(path), "--batch", "8", "--dry-run"])
    assert res.exit_code == 0 and '"batch": 8' in res.output and '"kimg": 1.0' in res.output
    yaml_text = config_yaml(GanConfig, cfg.to_dict())
    assert "# lazy R1 every N D steps" in yaml_text


def test_compare_print_config_and_file(tmp_path):
    path = _write(tmp_path / "c.yaml", "table: 2\nbudget: 0.5\n")
    res = runner.invoke(app, ["compare", "--config", str(path), "--budget", "0.25", "--print-config"])
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(res.output)
    assert data["table"] == 2 and data["budget"] == 0.25 and data["preset"] == "digits"


def test_rerunning_from_a_real_runs_config_json_gives_the_same_config(tmp_path):
    from gandistill.engine import fit

    original = FitConfig(method="sns", student="test_resnet", img_size=16, batch=8, steps=1, dim=32,
                         proj_hidden=16, squeeze_hidden=16, out=str(tmp_path / "run"), eval="none", device="cpu",
                         progress=False, seed=5, sim=20.0, cifar_stem=True)
    fit(original, log=lambda s: None)
    again = fit_config_from(str(tmp_path / "run" / "config.json"), _fit_flags())
    assert again == original
    varied = fit_config_from(str(tmp_path / "run" / "config.json"), _fit_flags(seed=6, out=str(tmp_path / "b")))
    assert (varied.seed, varied.out, varied.batch) == (6, str(tmp_path / "b"), 8)
