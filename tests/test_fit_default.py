"""`gandistill fit` end to end through the CLI: the default run at a reduced budget, `eval`, and a
non-default teacher checkpoint / student / dataset root."""
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gandistill.cli import app
from gandistill.gan import bundled_teacher_path

runner = CliRunner()
FIXTURE_PKL = Path(__file__).parent / "fixtures" / "sg2-tiny-uncond.pkl"
needs_bundled = pytest.mark.skipif(not (bundled_teacher_path() / "gandistill_sg2.json").exists(),
                                   reason="bundled digits teacher not built yet")


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit") / "default"
    # the default run (bundled teacher, digits, sns, default student), only the budget reduced
    res = runner.invoke(app, ["fit", "--steps", "2", "--batch", "16", "--eval-epochs", "5",
                              "--eval-max-train", "200", "--eval-max-test", "100", "--out", str(out)])
    return res, out


@needs_bundled
def test_default_run_prints_top1_vs_random_and_checkpoint(default_run):
    res, out = default_run
    assert res.exit_code == 0, res.output
    assert "linear top-1" in res.output and "random init" in res.output
    assert f"checkpoint: {out / 'checkpoint.json'}" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["eval"]["top1"] <= 100 and 0 <= summary["eval_random"]["top1"] <= 100
    assert summary["eval"]["num_train"] == 200 and summary["steps"] == 2
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["method"] == "sns" and cfg["config"]["dataset"] == "digits"
    assert cfg["teacher"]["ckpt"] == str(bundled_teacher_path())
    assert cfg["resolved"]["teacher"] == "sg2-generator" and cfg["resolved"]["img_size"] == 32
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["student"] == "resnet10t" and meta["student_kwargs"]["cifar_stem"] is False
    assert (out / "init" / "checkpoint.json").exists()          # the random-init baseline is the run's own init


@needs_bundled
def test_eval_command_on_the_run(default_run):
    res, out = default_run
    assert res.exit_code == 0, res.output
    ev = runner.invoke(app, ["eval", str(out), "--protocol", "knn", "--max-train", "200", "--max-test", "100", "--json"])
    assert ev.exit_code == 0, ev.output
    data = json.loads(ev.output)
    assert data["protocol"] == "knn" and data["student"] == "resnet10t" and 0 <= data["knn"]["top1"] <= 100


def test_eval_command_errors_clearly(tmp_path):
    ev = runner.invoke(app, ["eval", str(tmp_path / "missing")])
    assert ev.exit_code != 0


@pytest.mark.skipif(not FIXTURE_PKL.exists(), reason="NVlabs fixture missing")
def test_any_teacher_checkpoint_student_and_dataset_root(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "data" / cls / f"{i}.png")
    res = runner.invoke(app, ["fit", "--teacher", "sg2-generator", "--teacher-ckpt", str(FIXTURE_PKL),
                              "--student", "resnet18", "--dataset", "imagefolder", "--data-root", str(tmp_path / "data"),
                              "--img-size", "32", "--batch", "8", "--steps", "1", "--eval", "none",
                              "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["teacher"]["ckpt"] == str(FIXTURE_PKL) and cfg["teacher"]["target_dims"] == [32, 32, 32, 16]
    meta = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert meta["student"] == "resnet18" and meta["student_kwargs"]["cifar_stem"] is True


def test_unknown_method_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["fit", "--method", "snss", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0
    assert "sns" in str(res.exception) or "sns" in res.output
