"""The SSL twin (issue 14.1): the pairing of methods, the paired differences, and a tiny run with its twin
(trained once, resumed from its checkpoint, reused when finished); conditional teachers caught before step 1."""
import json
import os

import pytest
import torch

from conftest import tiny_G

from gandistill.engine import FitConfig, fit, resolved_config
from gandistill.engine.twin import twin_config, twin_method
from gandistill.evaluation.suite import ProbeConfig, ProbeRow, ProbeTable, paired_difference, render_probe_table
from gandistill.methods import TWINS, get_method, list_methods
from gandistill.teachers.conditioning import checkpoint_c_dim


def toy_cfg(out, **kw):
    base = dict(method="sns", student="test_resnet", img_size=16, batch=8, steps=3, dim=64, proj_hidden=32,
                squeeze_hidden=32, out=str(out), log_every=1, teacher_kwargs={"G": tiny_G()},
                eval="fewshot,knn", eval_max_train=200, eval_max_test=100, eval_random=False,
                eval_raw_pixels=True, ssl_twin=True, progress=False)
    base.update(kw)
    return FitConfig(**base)


def test_every_teacher_method_names_an_ssl_twin_and_ssl_methods_none():
    builtin = ("sns", "squeeze", "vanilla", "vanilla-noaug", "squeeze-novarcov", "squeeze-var", "vicreg-real",
               "vicreg-syn", "vicreg-mixed", "simsiam-real", "simsiam-syn", "simsiam-mixed", "encoder",
               "encoder-mixed", "d-direct")
    assert set(builtin) <= set(list_methods())       # other tests may register methods of their own
    for name in builtin:
        spec = get_method(name)
        if spec.objective in ("distill", "encoder"):
            twin = get_method(spec.twin)               # exists
            assert twin.objective == "vicreg" and twin.teacher in (None, "sg2-generator")
            # the twin sees the same kind of images: real-only for sns, synthetic for synthetic-only methods
            assert (twin.alpha == 0.0) == (name == "sns")
        else:
            assert spec.twin is None, name
    assert get_method("sns").twin == "vicreg-real" and TWINS["encoder-mixed"] == "vicreg-mixed"


def test_twin_default_on_only_for_the_embedded_run(tmp_path):
    assert twin_method(FitConfig()) == "vicreg-real"
    assert twin_method(FitConfig(teacher_ckpt="x.pkl")) is None
    assert twin_method(FitConfig(eval="none")) is None
    assert twin_method(FitConfig(ssl_twin=False)) is None
    assert twin_method(FitConfig(teacher_ckpt="x.pkl", ssl_twin=True)) == "vicreg-real"
    with pytest.raises(ValueError, match="no SSL twin"):
        twin_method(FitConfig(method="vicreg-real", ssl_twin=True))
    assert twin_method(FitConfig(method="vicreg-real")) is None
    c = twin_config(FitConfig(alpha=0.25, sim=5.0, steps=7, batch=32, seed=3, augment="ssl-cifar"), tmp_path)
    assert (c.method, c.alpha, c.sim, c.teacher_ckpt, c.eval, c.ssl_twin) == ("vicreg-real", None, None, None, "none", False)
    assert (c.steps, c.batch, c.seed, c.augment, c.out) == (7, 32, 3, "ssl-cifar", str(tmp_path / "twin"))
    assert resolved_config(FitConfig())["ssl_twin"] == "vicreg-real"


def _row(name, draws1, knn):
    return ProbeRow(name=name, results={
        "fewshot": {"shots": {1: {"mean": sum(draws1) / len(draws1), "std": 0.0, "top1": draws1}},
                    "skipped": {}, "notes": []},
        "knn": {"top1": knn, "k": 20}})


def test_paired_difference_is_the_per_draw_difference():
    a, b = [50.0, 60.0, 55.0], [40.0, 52.0, 49.0]
    table = ProbeTable(rows=[_row("d", a, 90.0), _row("t", b, 91.5)], config=ProbeConfig(probes=("fewshot", "knn")))
    diff = paired_difference(table, "d", "t")
    d = [10.0, 8.0, 6.0]                                     # per draw
    mean = sum(d) / 3
    std = (sum((x - mean) ** 2 for x in d) / 2) ** 0.5        # sample std
    assert diff["probes"]["fewshot:1"]["per_draw"] == d
    assert diff["probes"]["fewshot:1"]["mean"] == pytest.approx(mean)
    assert diff["probes"]["fewshot:1"]["std"] == pytest.approx(std)      # 2.0, smaller than either row's spread
    assert diff["probes"]["knn"] == {"mean": pytest.approx(-1.5), "std": None}
    table.difference = diff
    assert ProbeTable.from_dict(table.to_dict()).difference["probes"]["knn"]["mean"] == pytest.approx(-1.5)
    from rich.console import Console

    con = Console(width=160, record=True)
    con.print(render_probe_table(table))
    text = con.export_text()
    assert "+8.0 ± 2.0" in text and "-1.5" in text


def _lines(log):
    out = []
    return out, (lambda s: out.append(s))


def test_fit_with_twin_trains_probes_resumes_and_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("GANDISTILL_TWIN_PARALLEL", "0")
    out = tmp_path / "run"
    logs, say = _lines(None)
    res = fit(toy_cfg(out), log=say)
    twin = out / "twin"
    assert (twin / "checkpoint.json").exists() and (twin / "summary.json").exists()
    assert json.loads((twin / "checkpoint.json").read_text())["method"] == "vicreg-real"
    assert json.loads((twin / "checkpoint.json").read_text())["step"] == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["twin"]["method"] == "vicreg-real" and summary["twin"]["run_dir"] == str(twin)
    names = [r["name"] for r in summary["probes"]["rows"]]
    assert names[:2] == ["distilled", "SSL twin (vicreg-real)"] and "raw pixels" in names
    rows = {r["name"]: r for r in summary["probes"]["rows"]}
    c = summary["twin"]["contribution"]["probes"]
    for k in ("1", "10"):
        want = [x - y for x, y in zip(rows["distilled"]["fewshot"]["shots"][k]["top1"],
                                      rows["SSL twin (vicreg-real)"]["fewshot"]["shots"][k]["top1"])]
        assert c[f"fewshot:{k}"]["per_draw"] == pytest.approx(want)
    assert c["knn"]["mean"] == pytest.approx(rows["distilled"]["knn"]["top1"] - rows["SSL twin (vicreg-real)"]["knn"]["top1"])
    assert res.twin["eval"]["knn"]["top1"] == rows["SSL twin (vicreg-real)"]["knn"]["top1"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["ssl_twin"] == {"method": "vicreg-real", "run_dir": str(twin)}

    # an interrupted twin (checkpoint, no summary) resumes from its checkpoint; a finished one is reused
    (twin / "summary.json").unlink()
    logs2, say2 = _lines(None)
    res2 = fit(toy_cfg(out, resume=True), log=say2)
    assert any("SSL twin (vicreg-real): resuming" in s for s in logs2), logs2
    assert any("resumed" in s and "twin" in s for s in logs2), logs2
    assert res2.twin["eval"]["knn"]["top1"] == res.twin["eval"]["knn"]["top1"]      # same weights, same probe
    mtime = (twin / "checkpoint.json").stat().st_mtime_ns
    logs3, say3 = _lines(None)
    fit(toy_cfg(out, resume=True), log=say3)
    assert any("finished earlier" in s and "reused" in s for s in logs3)
    assert (twin / "checkpoint.json").stat().st_mtime_ns == mtime                # not trained again


def test_twin_trains_beside_the_run_in_a_second_process(tmp_path, monkeypatch):
    monkeypatch.setenv("GANDISTILL_TWIN_PARALLEL", "1")
    out = tmp_path / "par"
    logs, say = _lines(None)
    res = fit(toy_cfg(out, eval="knn", steps=2), log=say)
    assert any("beside the run in a second process" in s for s in logs)
    assert json.loads((out / "twin" / "checkpoint.json").read_text())["step"] == 2
    assert "knn" in res.twin["contribution"]["probes"]
    assert torch.get_num_threads() == 1                    # the thread split is undone


COND = os.path.join(os.path.dirname(__file__), "..", "gandistill", "assets", "digits-sg2-cond")


def test_conditional_teacher_is_caught_before_step_one(tmp_path, monkeypatch):
    assert checkpoint_c_dim(COND) == 10 and checkpoint_c_dim(None) == 0
    dry = resolved_config(FitConfig(teacher_ckpt=COND))
    assert dry["conditional_teacher"]["c_dim"] == 10 and "class-conditional" in dry["conditional_teacher"]["message"]
    assert resolved_config(FitConfig())["conditional_teacher"] is None
    monkeypatch.chdir(tmp_path)
    logs, say = _lines(None)
    res = fit(FitConfig(teacher_ckpt=COND, student="test_resnet", batch=8, steps=1, dim=64, proj_hidden=32,
                        squeeze_hidden=32, eval="none", log_every=1, progress=False), log=say)
    assert res.run_dir.name.endswith("-cond")
    first_step = next(i for i, s in enumerate(logs) if s.startswith("step"))
    warn = [i for i, s in enumerate(logs) if s.startswith("warning:") and "c_dim=10" in s]
    assert warn and warn[0] < first_step
    cfg = json.loads((res.run_dir / "config.json").read_text())
    assert cfg["conditional_teacher"]["c_dim"] == 10 and cfg["teacher_conditional"] is True


def test_cli_dry_run_warns_about_a_conditional_teacher():
    from typer.testing import CliRunner

    from gandistill.cli import app

    r = CliRunner().invoke(app, ["fit", "--dry-run", "--teacher-ckpt", COND])
    assert r.exit_code == 0, r.output
    first = r.output.splitlines()[0]
    assert first.startswith("warning:") and "c_dim=10" in first and "sg2-generator" in first


def test_a_failing_twin_leaves_the_distilled_result(tmp_path, monkeypatch):
    import gandistill.engine.twin as tw

    monkeypatch.setenv("GANDISTILL_TWIN_PARALLEL", "0")

    def broken(self, train_here, say):
        raise RuntimeError("twin exploded")

    monkeypatch.setattr(tw.TwinRun, "join", broken)
    logs = []
    res = fit(toy_cfg(tmp_path / "run", eval="knn", steps=2), log=logs.append)
    assert res.eval["knn"]["top1"] is not None and "twin exploded" in res.twin["error"]
    assert any(s.startswith("warning: the SSL twin failed") for s in logs)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [r["name"] for r in summary["probes"]["rows"]] == ["distilled", "raw pixels"]


def test_conditional_check_leaves_missing_or_unreadable_checkpoints_to_the_loader(tmp_path):
    assert checkpoint_c_dim(tmp_path / "missing.pkl") is None
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    assert checkpoint_c_dim(tmp_path / "junk.pkl") is None
    (tmp_path / "folder").mkdir()
    assert checkpoint_c_dim(tmp_path / "folder") is None
