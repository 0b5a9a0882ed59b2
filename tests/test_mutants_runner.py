"""Fast targeted tests of gandistill/compare/runner.py (mutation group `runner`): run plans, the resumable
caches (rows, runs, probe results, baselines), reading its own JSON back from disk as untrusted input,
scoring, the SSL twin lookup and the teacher's contribution. Nothing trains: ``engine.fit`` and the
probes of :mod:`gandistill.compare.probing` are replaced by fakes that write what the real ones write."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gandistill import engine
from gandistill.compare import probing
from gandistill.compare import runner as R
from gandistill.compare.presets import ProbeSpec, RowPlan, get_preset, resolve
from gandistill.compare.runner import CompareConfig, RowResult
from gandistill.compare.tables import RUNS, RowSpec, TableSpec, get_table
from gandistill.engine import TrainingStopped

DIGITS = get_preset("digits")
C10 = get_preset("cifar10")
SUITE = DIGITS.probe                     # kind suite, knn_k 20, shots (1, 10, 100), epochs 90


def read(path):
    return json.loads(Path(path).read_text())


def write(path, obj):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))


class Fakes:
    """engine.fit and the probes, recording their calls."""

    def __init__(self, monkeypatch, metrics=None, stop=None):
        self.fits, self.probes, self.said = [], [], []
        self.metrics = metrics or (lambda run_dir: {"shot10": 50.0 + len(Path(run_dir).name), "knn20": 40.0})
        self.stop = stop or {}
        monkeypatch.setattr(engine, "fit", self.fit)
        monkeypatch.setattr(probing, "probe_student", self.probe_student)
        for name in ("probe_discriminator", "representation_mmd", "probe_baselines"):   # a test that expects one
            monkeypatch.setattr(probing, name, self.unexpected(name))                      # sets its own fake
        monkeypatch.setattr(R, "conditional_warning", lambda teacher, ckpt: None)
        monkeypatch.delenv("GANDISTILL_DEBUG", raising=False)

    def fit(self, cfg, log=None):
        self.fits.append(cfg)
        run = Path(cfg.out)
        run.mkdir(parents=True, exist_ok=True)
        log("fit says hi")
        reason = self.stop.get(run.name)
        if reason:
            raise TrainingStopped(f"stopped: {reason}", reason=reason, step=7)
        write(run / "checkpoint.json", {"format": "gandistill-student", "student": "test_resnet",
                                        "weights": "w.safetensors", "student_kwargs": {"proj_final_bn": True}})
        write(run / "summary.json", {})

    @staticmethod
    def unexpected(name):
        def fail(*a, **k):
            raise AssertionError(f"probing.{name} called")
        return fail

    def probe_student(self, run_dir, p, **kw):
        self.probes.append((Path(run_dir).name, p, kw))
        return self.metrics(run_dir), [f"probed {Path(run_dir).name}"]

    def say(self, s):
        self.said.append(s)


def cfg_for(tmp_path, rows, **kw):
    base = dict(table=1, rows=rows, out=str(tmp_path / "cmp"), device="cpu", baselines=False)
    base.update(kw)
    return CompareConfig(**base)


# ----------------------------------------------------------------------------- small pieces
def test_out_dir_and_row_result_round_trip():
    assert CompareConfig(out="x/y").out_dir() == Path("x/y")
    assert CompareConfig(preset="stl10").out_dir() == Path("runs") / "compare-stl10"
    r = RowResult(1, "k", "g", "l", "run", "ok", metrics={"a": 1.0, "b": 2.0}, headline="b")
    assert r.value == 2.0
    assert RowResult(1, "k", "g", "l", "run", "ok", metrics={"a": 1.0}).value is None
    assert RowResult(1, "k", "g", "l", "run", "ok", metrics={"a": 1.0}, headline="x").value is None
    d = r.to_dict()
    assert d == {"table": 1, "key": "k", "group": "g", "label": "l", "run": "run", "status": "ok",
                 "metrics": {"a": 1.0, "b": 2.0}, "headline": "b", "paper": None, "notes": [], "time_s": 0.0,
                 "run_dir": None, "twin": None}
    assert RowResult.from_dict(dict(d, unknown=3)) == r
    assert R.STATUSES == ("ok", "collapsed", "failed")


def test_read_json_refuses_what_does_not_fit(tmp_path):
    p = tmp_path / "a" / "b.json"
    R._write_json(p, {"x": Path("p"), "y": [1, 2]})             # folders made, paths written as text
    assert read(p) == {"x": "p", "y": [1, 2]} and p.read_text().startswith("{\n \"x\"")   # indent 1
    assert R._read_json(p) == {"x": "p", "y": [1, 2]}
    assert R._read_json(tmp_path / "missing.json") is None
    for bad in ("{", "[1, 2]", "3", "null", '"s"', "NaN"):
        write(p, bad)
        assert R._read_json(p) is None, bad
    os.mkfifo(tmp_path / "fifo")
    assert R._read_json(tmp_path / "fifo") is None                # never blocks on a FIFO
    write(p, {"status": 3})
    assert R._read_json(p, R.RUN_STATE) is None and R._read_json(p) == {"status": 3}


def test_plans_for_resolves_each_selected_row_with_the_settings(monkeypatch):
    seen = []

    def fake_resolve(run, preset, budget, **kw):
        seen.append((run.id, preset.name, budget, kw))
        return run.id

    monkeypatch.setattr(R, "resolve", fake_resolve)
    cfg = CompareConfig(preset="cifar10", budget=0.5, lpips_weights="w.pth", seed=3, device="cuda", rows="g-sns,d-multi")
    t1 = get_table(1)
    assert R.plans_for(t1, cfg) == {"d-multi": "d-multi", "g-sns": "g-sns"}
    assert seen[0] == ("d-multi", "cifar10", 0.5, dict(lpips_weights="w.pth", seed=3, device="cuda"))
    seen.clear()
    assert R.plans_for(t1, cfg, rows=[t1.rows[0]]) == {"d-single": "d-single"}
    assert R.plans_for(t1, cfg, rows=[]) == {}
    assert len(R.plans_for(t1, CompareConfig())) == len(t1.rows)


def test_signature_and_check_out(tmp_path):
    cfg = CompareConfig(preset="digits", budget=0.5, seed=2, teacher_ckpt=Path("t.pkl"), fit_overrides={"steps": 3})
    assert R._signature(cfg) == {"preset": "digits", "budget": 0.5, "seed": 2, "teacher_ckpt": "t.pkl",
                                 "fit_overrides": {"steps": 3}}
    assert R._signature(CompareConfig())["teacher_ckpt"] is None
    R._check_out(tmp_path, cfg, {"c_dim": 10})
    assert read(tmp_path / "compare.json") == dict(R._signature(cfg), conditional_teacher={"c_dim": 10})
    R._check_out(tmp_path, cfg, None)                                    # the same settings resume
    assert read(tmp_path / "compare.json")["conditional_teacher"] == {"c_dim": 10}    # not rewritten
    for other in (dict(budget=1.0), dict(seed=0), dict(preset="cifar10"), dict(teacher_ckpt=None),
                  dict(fit_overrides={"steps": 4})):
        c = CompareConfig(**{**dict(preset="digits", budget=0.5, seed=2, teacher_ckpt="t.pkl",
                                    fit_overrides={"steps": 3}), **other})
        with pytest.raises(ValueError, match="other settings") as e:
            R._check_out(tmp_path, c)
        assert str(tmp_path) in str(e.value)
    write(tmp_path / "compare.json", "[1]")                              # not ours: written afresh
    R._check_out(tmp_path, cfg)
    assert read(tmp_path / "compare.json") == dict(R._signature(cfg), conditional_teacher=None)


def test_twin_run_id():
    assert R.twin_run_id("g-sns") == "vicreg-real" and R.twin_run_id("w-sns") == "vicreg-real"
    assert R.twin_run_id("g-sns@snapshot-1@x") == "vicreg-real"
    assert R.twin_run_id("g-squeeze") == "vicreg-syn" and R.twin_run_id("g-vanilla") == "vicreg-syn"
    assert R.twin_run_id("vicreg-real") is None and R.twin_run_id("simsiam-real") is None
    assert R.twin_run_id("d-single") is None and R.twin_run_id("d-multi") is None
    assert R.twin_run_id("nope") is None and R.twin_run_id("x@g-sns") is None


def test_num_classes(monkeypatch):
    class DS:
        num_classes = 7

    seen = []
    monkeypatch.setattr(R, "load_dataset", lambda name, root=None, split=None: seen.append((name, root, split)) or DS())
    assert R._num_classes(DIGITS, CompareConfig(data_root="r")) == 7 and seen == [("digits", "r", "test")]
    DS.num_classes = 0
    assert R._num_classes(DIGITS, CompareConfig()) == 10

    def boom(*a, **k):
        raise OSError("no data")

    monkeypatch.setattr(R, "load_dataset", boom)
    assert R._num_classes(get_preset("cifar100"), CompareConfig()) == 100
    assert R._num_classes(C10, CompareConfig()) == 10


def test_fit_config_merges_overrides(tmp_path):
    run = RUNS["g-sns"]
    plan = RowPlan(run, dict(method="sns", steps=5, batch=8, teacher_kwargs={"a": 1, "b": 2}), SUITE)
    cfg = CompareConfig(teacher_ckpt="t.pkl", data_root="d", loggers=["tensorboard"],
                        fit_overrides={"batch": 4, "teacher_kwargs": {"b": 3}, "seed": 9})
    fc = R._fit_config(plan, cfg, tmp_path / "run", True)
    assert isinstance(fc, engine.FitConfig)
    assert (fc.method, fc.steps, fc.batch, fc.seed) == ("sns", 5, 4, 9)
    assert fc.teacher_kwargs == {"a": 1, "b": 3} and fc.teacher_ckpt == "t.pkl" and fc.data_root == "d"
    assert fc.out == str(tmp_path / "run") and fc.resume is True and fc.loggers == ("tensorboard",)
    assert fc.ssl_twin is False
    assert plan.fit["teacher_kwargs"] == {"a": 1, "b": 2} and cfg.fit_overrides["teacher_kwargs"] == {"b": 3}
    fc = R._fit_config(RowPlan(run, dict(method="sns", teacher_kwargs=None), SUITE),
                       CompareConfig(fit_overrides={"ssl_twin": True, "teacher_kwargs": None}), tmp_path, False)
    assert fc.teacher_kwargs == {} and fc.resume is False and fc.ssl_twin is True and fc.loggers == ()
    fc = R._fit_config(RowPlan(run, dict(method="sns"), SUITE), CompareConfig(), tmp_path, False)
    assert fc.teacher_kwargs == {} and fc.teacher_ckpt is None


# ----------------------------------------------------------------------------- ensure_trained
def plan_of(run_id, preset=DIGITS):
    return resolve(RUNS[run_id], preset, 1.0, seed=0, device="cpu")


def test_ensure_trained_trains_once_and_reuses(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    cfg = cfg_for(tmp_path, "g-sns")
    out = tmp_path / "cmp"
    run_dir, status, msg = R.ensure_trained(plan_of("g-sns"), cfg, out, f.say)
    assert (run_dir, status, msg) == (out / "runs" / "g-sns", "ok", "")
    assert len(f.fits) == 1 and f.fits[0].resume is False and f.fits[0].out == str(run_dir)
    assert f.said == ["    fit says hi"]
    st = read(run_dir / "compare_run.json")
    assert st["status"] == "ok" and st["time_s"] >= 0.0 and set(st) == {"status", "time_s"}
    assert R.ensure_trained(plan_of("g-sns"), cfg, out, f.say) == (run_dir, "ok", "")
    assert len(f.fits) == 1
    write(run_dir / "compare_run.json", {"status": "collapsed", "message": "gone"})
    assert R.ensure_trained(plan_of("g-sns"), cfg, out, f.say) == (run_dir, "collapsed", "gone")
    write(run_dir / "compare_run.json", {"status": "collapsed"})
    assert R.ensure_trained(plan_of("g-sns"), cfg, out, f.say) == (run_dir, "collapsed", "")
    assert len(f.fits) == 1


def test_ensure_trained_finished_interrupted_and_failed_runs(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    cfg, out = cfg_for(tmp_path, "g-sns"), tmp_path / "cmp"
    run_dir = out / "runs" / "g-sns"
    write(run_dir / "summary.json", {})                                 # finished before compare knew it
    assert R.ensure_trained(plan_of("g-sns"), cfg, out, f.say) == (run_dir, "ok", "")
    assert f.fits == [] and read(run_dir / "compare_run.json") == {"status": "ok", "message": "finished earlier"}
    # an earlier failure is tried again; an interrupted fit (checkpoint, no summary) continues
    write(run_dir / "compare_run.json", {"status": "failed", "message": "x"})
    (run_dir / "summary.json").unlink()
    write(run_dir / "checkpoint.json", {})
    write(run_dir / "metrics.jsonl", "kept\n")
    assert R.ensure_trained(plan_of("g-sns"), cfg, out, f.say)[1] == "ok"
    assert f.fits[-1].resume is True and (run_dir / "metrics.jsonl").read_text() == "kept\n"
    # a run killed before its first checkpoint starts afresh without its stale log and config
    run2 = out / "runs" / "vicreg-real"
    write(run2 / "metrics.jsonl", "stale\n")
    write(run2 / "config.json", {})
    write(run2 / "compare_run.json", "not json")
    write(run2 / "other.txt", "kept")
    Fakes.fit_keep = None
    seen = {}
    real = f.fit

    def spy(c, log=None):
        seen["before"] = sorted(p.name for p in run2.iterdir())
        return real(c, log)

    monkeypatch.setattr(engine, "fit", spy)
    assert R.ensure_trained(plan_of("vicreg-real"), cfg, out, f.say)[1] == "ok"
    assert f.fits[-1].resume is False and seen["before"] == ["compare_run.json", "other.txt"]


@pytest.mark.parametrize("reason, status", [("collapse", "collapsed"), ("non-finite", "failed")])
def test_ensure_trained_records_a_stopped_training(tmp_path, monkeypatch, reason, status):
    f = Fakes(monkeypatch, stop={"g-sns": reason})
    out = tmp_path / "cmp"
    run_dir, st, msg = R.ensure_trained(plan_of("g-sns"), cfg_for(tmp_path, "g-sns"), out, f.say)
    word = "collapsed" if status == "collapsed" else "stopped"
    assert st == status and msg == f"{word} at step 7: stopped: {reason}"
    rec = read(run_dir / "compare_run.json")
    assert (rec["status"], rec["message"], rec["reason"], rec["step"]) == (status, msg, reason, 7)
    assert rec["time_s"] >= 0.0
    assert R.ensure_trained(plan_of("g-sns"), cfg_for(tmp_path, "g-sns"), out, f.say)[1] == status
    assert len(f.fits) == (1 if status == "collapsed" else 2)          # a failure is tried again


def test_ensure_trained_stop_without_reason_or_step(tmp_path, monkeypatch):
    Fakes(monkeypatch)

    class Bare(TrainingStopped):
        def __init__(self):
            RuntimeError.__init__(self, "bare")

    def fit(cfg, log=None):
        raise Bare()

    monkeypatch.setattr(engine, "fit", fit)
    run_dir, st, msg = R.ensure_trained(plan_of("g-sns"), cfg_for(tmp_path, "g-sns"), tmp_path, print)
    assert st == "failed" and msg == "stopped at step ?: bare"
    rec = read(run_dir / "compare_run.json")
    assert rec["reason"] == "" and rec["step"] is None


# ----------------------------------------------------------------------------- scoring
def test_score_caches_by_probe_settings(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    run_dir = tmp_path / "run"
    cfg = CompareConfig(probe_epochs=3, probe_max_train=50, probe_max_test=20, seed=4, data_root="d", device="cpu")
    plan = RowPlan(RUNS["g-sns"], {}, SUITE)
    m, notes = R.score(run_dir, get_table(1), plan, cfg, DIGITS)
    assert m == {"shot10": 53.0, "knn20": 40.0} and notes == ["probed run"]
    assert f.probes == [("run", SUITE, dict(dataset="digits", data_root="d", device="cpu", seed=4, epochs=3,
                                            max_train=50, max_test=20))]
    key = "suite:sgd:256:30.0:3:20:1,10,100:50:20:4:True"
    assert read(run_dir / "compare_probe.json") == {key: {"metrics": m, "notes": notes}}
    assert R.score(run_dir, get_table(1), plan, cfg, DIGITS) == (m, notes) and len(f.probes) == 1
    # other settings: another key beside it; the preset's epochs when none are given
    R.score(run_dir, get_table(1), plan, CompareConfig(seed=4), DIGITS)
    assert set(read(run_dir / "compare_probe.json")) == {key, "suite:sgd:256:30.0:90:20:1,10,100:None:None:4:True"}
    # a cache that is not ours is recomputed, not trusted
    for bad in ({key: {"metrics": {"shot10": "x"}, "notes": []}}, {key: {"metrics": {}}}, [1], {key: 3}):
        write(run_dir / "compare_probe.json", bad)
        assert R.score(run_dir, get_table(1), plan, cfg, DIGITS) == (m, notes)
    assert len(f.probes) == 6
    write(run_dir / "compare_probe.json", {key: {"metrics": {"x": 1}, "notes": ["cached"]}})
    assert R.score(run_dir, get_table(1), plan, cfg, DIGITS) == ({"x": 1}, ["cached"])


def test_score_mmd(tmp_path, monkeypatch):
    seen = []

    def mmd(run_dir, **kw):
        seen.append((run_dir, kw))
        return {"mmd2": 0.5}, ["n"]

    monkeypatch.setattr(probing, "representation_mmd", mmd)
    run_dir = tmp_path / "run"
    t6 = get_table(6)
    cfg = CompareConfig(teacher_ckpt="t.pkl", data_root="d", seed=2, device="cpu")
    assert R.score(run_dir, t6, plan_of("g-sns"), cfg, DIGITS) == ({"mmd2": 0.5}, ["n"])
    assert seen == [(str(run_dir), dict(teacher_ckpt="t.pkl", dataset="digits", data_root="d", n=1000, device="cpu",
                                        seed=2))]
    assert list(read(run_dir / "compare_probe.json")) == ["mmd:1000:2"]
    R.score(run_dir, t6, plan_of("g-sns"), CompareConfig(mmd_samples=7), DIGITS)
    assert seen[-1][1]["n"] == 7 and "mmd:7:0" in read(run_dir / "compare_probe.json")


def test_run_notes_from_the_runs_own_record(tmp_path):
    run = tmp_path / "run"
    enc, ss, sns = plan_of("enc-syn"), plan_of("simsiam-real"), plan_of("g-sns")
    cfgj = {"config": {}}
    assert R._run_notes(run, sns) == [] and R._run_notes(run, ss) == [
        "SimSiam projector without its final BatchNorm1d (the engine/student lack proj_final_bn)"]
    write(run / "config.json", dict(cfgj, teacher_conditional=True))
    assert R._run_notes(run, sns) == ["label-conditioned teacher: not self-supervised"]
    for teacher, cond in (({"c_dim": 10}, True), ({"c_dim": 0}, False), ({"c_dim": None}, False),
                          ({"c_dim": "10"}, False), ("sg2", False), (None, False)):
        write(run / "config.json", dict(cfgj, teacher=teacher, teacher_conditional=False))
        assert R._run_notes(run, sns) == (["label-conditioned teacher: not self-supervised"] if cond else []), teacher
    write(run / "config.json", dict(cfgj, resolved={"perceptual": "d-features"}))
    assert R._run_notes(run, enc) == [
        "perceptual term: d-features, not LPIPS (pass --lpips-weights for the paper's loss)"]
    assert R._run_notes(run, sns) == []
    for ok in ("lpips", "lpips-alex"):
        write(run / "config.json", dict(cfgj, resolved={"perceptual": ok}))
        assert R._run_notes(run, enc) == []
    write(run / "config.json", dict(cfgj, teacher={"perceptual": "mse"}))
    assert R._run_notes(run, enc) == ["perceptual term: mse, not LPIPS (pass --lpips-weights for the paper's loss)"]
    write(run / "config.json", dict(cfgj, resolved={"perceptual": None}, teacher={"perceptual": "mse"}))
    assert R._run_notes(run, enc)[0].startswith("perceptual term: mse")
    write(run / "config.json", dict(cfgj, resolved=None, teacher="sg2-encoder"))
    assert R._run_notes(run, enc) == []
    for bad in ({"resolved": [1], "teacher_conditional": True}, {"teacher_conditional": "no"}, [1]):   # not ours
        write(run / "config.json", bad)
        assert R._run_notes(run, enc) == [], bad
    write(run / "config.json", {"resolved": {"perceptual": "x"}, "teacher_conditional": True})   # a minimal record
    assert len(R._run_notes(run, enc)) == 2
    (run / "config.json").unlink()
    ck = {"format": "gandistill-student", "student": "s", "weights": "w"}
    write(run / "checkpoint.json", dict(ck, student_kwargs={"proj_final_bn": True}))
    assert R._run_notes(run, ss) == []
    write(run / "checkpoint.json", dict(ck, student_kwargs={"proj_final_bn": False}))
    assert len(R._run_notes(run, ss)) == 1
    write(run / "checkpoint.json", dict(ck))
    assert len(R._run_notes(run, ss)) == 1


# ----------------------------------------------------------------------------- run_row
def test_run_row_ok_collapsed_failed(tmp_path, monkeypatch):
    f = Fakes(monkeypatch, stop={"g-squeeze-novarcov": "collapse", "g-vanilla": "non-finite"})
    monkeypatch.setattr(R, "_num_classes", lambda preset, cfg: 4)
    out = tmp_path / "cmp"
    cfg = cfg_for(tmp_path, None)
    t1, t5 = get_table(1), get_table(5)
    row = t1.rows[-1]                                                   # g-sns, paper cifar10 92.54
    plan = plan_of("g-sns")
    plan.notes = ["plan note"]
    res = R.run_row(t1, row, plan, cfg, DIGITS, out, f.say)
    assert (res.table, res.key, res.group, res.label, res.run, res.status) == (1, "g-sns", row.group, row.label,
                                                                              "g-sns", "ok")
    assert res.paper == 92.54 and res.run_dir == str(out / "runs" / "g-sns")
    assert res.metrics == {"shot10": 55.0, "knn20": 40.0} and res.headline == "shot10" and res.value == 55.0
    assert res.notes == ["plan note", "probed g-sns"] and plan.notes == ["plan note"] and res.time_s > 0.0
    c = R.run_row(t5, t5.rows[2], plan_of("g-squeeze-novarcov"), cfg, DIGITS, out, f.say)
    assert c.status == "collapsed" and c.metrics == {"chance": 25.0} and c.headline == "chance" and c.value == 25.0
    assert c.notes[-1] == "collapsed at step 7: stopped: collapse; reported at chance as the paper does"
    assert c.paper == 10.0
    t6 = get_table(6)
    c6 = R.run_row(t6, RowSpec("x", "g", "l", "g-squeeze-novarcov", {}), plan_of("g-squeeze-novarcov"), cfg, DIGITS,
                   out, f.say)
    assert c6.status == "collapsed" and c6.metrics == {} and c6.headline is None and c6.paper is None
    v = R.run_row(t5, t5.rows[1], plan_of("g-vanilla"), cfg, DIGITS, out, f.say)
    assert v.status == "failed" and v.metrics == {} and v.notes[-1] == "stopped at step 7: stopped: non-finite"
    assert v.headline is None and v.value is None
    assert not (out / "results" / "errors.log").exists()               # a recorded stop is no crash


def test_run_row_mmd_headline_and_paper_column(tmp_path, monkeypatch):
    f = Fakes(monkeypatch, metrics=lambda d: {"mmd2": 0.25, "other": 1.0})
    monkeypatch.setattr(probing, "representation_mmd", lambda run_dir, **kw: ({"mmd2": 0.25, "zz": 2.0}, []))
    t6 = get_table(6)
    res = R.run_row(t6, t6.rows[3], plan_of("g-sns"), cfg_for(tmp_path, None), DIGITS, tmp_path, f.say)
    assert res.headline == "mmd2" and res.value == 0.25 and res.paper == 0.45
    res = R.run_row(t6, t6.rows[3], plan_of("g-sns", C10), cfg_for(tmp_path, None), get_preset("stl10"), tmp_path,
                    f.say)
    assert res.paper == 3.71                                             # the preset's paper column
    monkeypatch.setattr(probing, "representation_mmd", lambda run_dir, **kw: ({"zz": 2.0}, []))
    (tmp_path / "runs" / "g-sns" / "compare_probe.json").unlink()
    res = R.run_row(t6, t6.rows[3], plan_of("g-sns"), cfg_for(tmp_path, None), DIGITS, tmp_path, f.say)
    assert res.headline == "zz"                                          # the probe's own choice, no mmd2


def test_run_row_frozen_discriminator(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    seen = []

    def probe_d(teacher_kwargs, probe, **kw):
        seen.append((teacher_kwargs, probe, kw))
        return {"top1": 61.0}, ["d note"]

    monkeypatch.setattr(probing, "probe_discriminator", probe_d)
    cfg = cfg_for(tmp_path, None, teacher_ckpt="t.pkl", data_root="d", seed=5, probe_epochs=2, probe_max_train=9,
                  probe_max_test=8)
    t1 = get_table(1)
    plan = plan_of("d-multi")
    res = R.run_row(t1, t1.rows[1], plan, cfg, DIGITS, tmp_path, f.say)
    assert res.status == "ok" and res.metrics == {"top1": 61.0} and res.notes == ["d note"]
    assert res.headline == "top1" and res.run_dir is None and f.fits == []
    assert seen == [({"mode": "multi"}, plan.probe, dict(ckpt="t.pkl", dataset="digits", data_root="d", device="cpu",
                                                         seed=5, epochs=2, max_train=9, max_test=8))]
    plan.fit.pop("teacher_kwargs")
    R.run_row(t1, t1.rows[1], plan, cfg, DIGITS, tmp_path, f.say)
    assert seen[-1][0] == {}
    t6 = TableSpec(6, "t", ("cifar10",), (), metric="mmd2")
    res = R.run_row(t6, t1.rows[1], plan_of("d-multi"), cfg, DIGITS, tmp_path, f.say)
    assert res.status == "failed" and res.notes == [
        "ValueError: a frozen-discriminator row has no student representation to compare"]
    assert res.metrics == {}


def test_run_row_crash_is_written_down_unless_debugging(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)

    def boom(*a, **k):
        raise OSError("disk on fire")

    monkeypatch.setattr(probing, "probe_student", boom)
    t1 = get_table(1)
    out = tmp_path / "cmp"
    res = R.run_row(t1, t1.rows[-1], plan_of("g-sns"), cfg_for(tmp_path, None), DIGITS, out, f.say)
    assert res.status == "failed" and res.notes[-1] == "OSError: disk on fire" and res.headline is None
    log = (out / "results" / "errors.log").read_text()
    assert log.startswith("--- table 1 row g-sns\nTraceback") and "disk on fire" in log
    R.run_row(t1, t1.rows[-2], plan_of("g-squeeze"), cfg_for(tmp_path, None), DIGITS, out, f.say)
    assert (out / "results" / "errors.log").read_text().count("--- table 1 row") == 2   # appended
    monkeypatch.setenv("GANDISTILL_DEBUG", "1")
    with pytest.raises(OSError, match="disk on fire"):
        R.run_row(t1, t1.rows[-1], plan_of("g-sns"), cfg_for(tmp_path, None), DIGITS, out, f.say)

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.delenv("GANDISTILL_DEBUG")
    monkeypatch.setattr(probing, "probe_student", interrupt)
    with pytest.raises(KeyboardInterrupt):
        R.run_row(t1, t1.rows[-1], plan_of("g-sns"), cfg_for(tmp_path, None), DIGITS, out, f.say)


# ----------------------------------------------------------------------------- compare end to end (faked)
def test_compare_runs_resumes_and_says_so(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    cfg = cfg_for(tmp_path, "g-squeeze,g-sns")
    res = R.compare(cfg, log=f.say)
    out = tmp_path / "cmp"
    assert res.out == out and res.skipped == [] and res.table.number == 1 and res.preset.name == "digits"
    assert [r.key for r in res.rows] == ["g-squeeze", "g-sns"] and res.baselines == [] and res.wall_s > 0
    # the row is written as scored; the twin lookup comes after every row (and again on resume)
    assert read(out / "results" / "table1" / "g-sns.json") == dict(res.rows[1].to_dict(), notes=["probed g-sns"])
    assert res.rows[1].notes[-1].startswith("SSL twin vicreg-real: not in this comparison")
    lines = [s for s in f.said if not s.startswith("    fit")]
    assert lines[0] == "[1/2] g-squeeze: Generator feature / Squeeze | Syn. (run g-squeeze)"
    assert lines[1].startswith("    -> ok, shot10 = 59 (") and lines[1].endswith("s)")
    assert lines[3].startswith("    -> ok, shot10 = 55")
    assert read(out / "compare.json")["conditional_teacher"] is None
    f.said.clear()
    again = R.compare(cfg, log=f.say)
    assert again.skipped == ["g-squeeze", "g-sns"] and [r.to_dict() for r in again.rows] == [r.to_dict() for r in res.rows]
    assert f.said == ["[1/2] g-squeeze: done before (ok), skipped", "[2/2] g-sns: done before (ok), skipped"]
    assert len(f.fits) == 2
    # a row file that is not a row (edited, truncated, another shape) is recomputed from the caches
    for bad in ("[]", '{"status": "ok"}', json.dumps(dict(res.rows[1].to_dict(), status="great")),
                json.dumps(dict(res.rows[1].to_dict(), metrics={"shot10": "high"})), "{"):
        write(out / "results" / "table1" / "g-sns.json", bad)
        third = R.compare(cfg, log=f.say)
        assert third.skipped == ["g-squeeze"] and third.rows[1].status == "ok", bad
        assert third.rows[1].metrics == res.rows[1].metrics
    assert len(f.fits) == 2 and len(f.probes) == 2                       # from the run and probe caches


def test_compare_without_log_prints(tmp_path, monkeypatch, capsys):
    Fakes(monkeypatch)
    R.compare(cfg_for(tmp_path, "g-sns"))
    assert "[1/1] g-sns: Generator feature" in capsys.readouterr().out


def test_compare_needs_a_teacher_for_paper_presets_and_marks_conditional_folders(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    with pytest.raises(ValueError, match="--teacher-ckpt .*cifar10: teacher: an unconditional"):
        R.compare(cfg_for(tmp_path, "g-sns", preset="cifar10"), log=f.say)
    seen = []

    def cond(teacher, ckpt):
        seen.append((teacher, ckpt))
        return {"message": "teacher is class-conditional", "c_dim": 10}

    monkeypatch.setattr(R, "conditional_warning", cond)
    monkeypatch.chdir(tmp_path)
    cfg = CompareConfig(table=1, rows="g-sns", teacher_ckpt="c.pkl", device="cpu", baselines=False)
    res = R.compare(cfg, log=f.say)
    assert seen == [("sg2-generator", "c.pkl")] and f.said[0] == "warning: teacher is class-conditional"
    assert res.out == Path("runs") / "compare-digits-cond"
    assert read(tmp_path / "runs" / "compare-digits-cond" / "compare.json")["conditional_teacher"]["c_dim"] == 10
    res = R.compare(cfg_for(tmp_path, "g-sns", teacher_ckpt="c.pkl"), log=f.say)
    assert res.out == tmp_path / "cmp"                                   # a folder named by the user is kept


def test_compare_twins_and_baselines_only_where_they_belong(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    calls = {"twins": 0, "base": 0}
    monkeypatch.setattr(R, "attach_twins", lambda *a: calls.__setitem__("twins", calls["twins"] + 1))

    def base(cfg, preset, plans, out, say):
        calls["base"] += 1
        return ["b"]

    monkeypatch.setattr(R, "baselines", base)
    monkeypatch.setattr(probing, "representation_mmd", lambda run_dir, **kw: ({"mmd2": 0.5}, []))
    assert R.compare(cfg_for(tmp_path, "g-sns", baselines=True), log=f.say).baselines == ["b"]
    assert calls == {"twins": 1, "base": 1}
    assert R.compare(cfg_for(tmp_path, "g-sns"), log=f.say).baselines == []
    assert calls == {"twins": 2, "base": 1}
    r6 = R.compare(cfg_for(tmp_path, "sns", table=6, baselines=True), log=f.say)
    assert r6.baselines == [] and calls == {"twins": 2, "base": 1}
    assert "mmd2 = 0.5" in f.said[-1]


def test_compare_paper_probe_preset_has_no_baselines(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    monkeypatch.setattr(R, "baselines", lambda *a: pytest.fail("baselines of a paper-linear preset"))
    import dataclasses
    monkeypatch.setattr(R, "get_preset", lambda name: dataclasses.replace(C10, needs_teacher_ckpt=False))
    monkeypatch.setattr(R, "_num_classes", lambda *a: 10)
    res = R.compare(cfg_for(tmp_path, "g-sns", preset="cifar10", baselines=True), log=f.say)
    assert res.baselines == [] and res.rows[0].status == "ok"


# ----------------------------------------------------------------------------- the SSL twin
def _row(run, status="ok", metrics=None, headline="shot10", notes=None):
    return RowResult(1, run, "g", "l", run, status, metrics=dict(metrics or {}), headline=headline,
                     notes=list(notes or []))


def test_attach_twins_from_the_table_and_the_difference(tmp_path, monkeypatch):
    Fakes(monkeypatch)
    sns = _row("g-sns", metrics={"shot10": 60.5, "knn20": 50.0, "fast": 70.0, "s": "x"},
               notes=["teacher's contribution (old)", "keep"])
    vic = _row("vicreg-real", metrics={"shot10": 58.25, "knn20": 52, "other": 1.0, "fast": None})
    sq = _row("g-squeeze", metrics={"shot10": 50.0})
    failed = _row("g-vanilla", status="failed")
    results = [sns, vic, sq, failed]
    R.attach_twins(results, get_table(1), cfg_for(tmp_path, None), DIGITS, tmp_path)
    assert sns.twin == {"run": "vicreg-real", "metrics": vic.metrics,
                        "difference": {"shot10": 2.25, "knn20": -2.0}}
    assert sns.twin["metrics"] is not vic.metrics
    assert sns.notes == ["keep", "teacher's contribution (minus SSL twin vicreg-real): shot10 +2.25"]
    assert vic.twin is None and failed.twin is None and failed.notes == []
    note = "SSL twin vicreg-syn: not in this comparison (add its row to see the teacher's contribution)"
    assert sq.twin is None and sq.notes == [note]
    R.attach_twins(results, get_table(1), cfg_for(tmp_path, None), DIGITS, tmp_path)
    assert sq.notes == [note] and sns.notes[-1].endswith("+2.25") and len(sns.notes) == 2   # not repeated
    # a headline the twin lacks: the difference without a note; a failed twin is no twin
    other = _row("g-sns", metrics={"knn20": 1.0}, headline="chance")
    R.attach_twins([other, vic], get_table(1), cfg_for(tmp_path, None), DIGITS, tmp_path)
    assert other.twin["difference"] == {"knn20": -51.0} and other.notes == []
    lone = _row("g-sns", metrics={"knn20": 1.0})
    R.attach_twins([lone, _row("vicreg-real", status="failed", metrics={"knn20": 5.0})], get_table(1),
                   cfg_for(tmp_path, None), DIGITS, tmp_path)
    assert lone.twin is None and lone.notes[0].startswith("SSL twin vicreg-real: not in this comparison")


def test_attach_twins_scores_a_run_trained_for_another_table(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    out = tmp_path / "cmp"
    write(out / "runs" / "vicreg-real" / "compare_run.json", {"status": "ok"})
    sns = _row("g-sns", metrics={"shot10": 70.0})
    cfg = cfg_for(tmp_path, None, probe_epochs=1)
    R.attach_twins([sns], get_table(1), cfg, DIGITS, out)
    assert sns.twin["run"] == "vicreg-real" and sns.twin["metrics"] == {"shot10": 61.0, "knn20": 40.0}
    assert sns.twin["difference"] == {"shot10": 9.0}
    assert f.fits == [] and f.probes[0][0] == "vicreg-real" and f.probes[0][2]["epochs"] == 1
    assert f.probes[0][1] == resolve(RUNS["vicreg-real"], DIGITS, 1.0).probe
    for st in ({"status": "failed"}, {"status": ["ok"]}, "[]"):
        write(out / "runs" / "vicreg-real" / "compare_run.json", st)
        lone = _row("g-sns", metrics={"shot10": 70.0})
        R.attach_twins([lone], get_table(1), cfg, DIGITS, out)
        assert lone.twin is None and len(f.probes) == 1, st


def test_attach_twins_resolves_the_twin_under_the_comparisons_settings(tmp_path, monkeypatch):
    Fakes(monkeypatch)
    out = tmp_path / "cmp"
    write(out / "runs" / "vicreg-real" / "compare_run.json", {"status": "ok"})
    seen = []

    def fake_resolve(run, preset, budget, **kw):
        seen.append((run.id, preset.name, budget, kw))
        return resolve(run, preset, budget, **kw)

    monkeypatch.setattr(R, "resolve", fake_resolve)
    cfg = cfg_for(tmp_path, None, budget=0.5, lpips_weights="w", seed=3)
    R.attach_twins([_row("g-sns", metrics={"shot10": 70.0})], get_table(1), cfg, DIGITS, out)
    assert seen == [("vicreg-real", "digits", 0.5, dict(lpips_weights="w", seed=3, device="cpu"))]


# ----------------------------------------------------------------------------- baselines
def test_baselines_probe_once_and_are_cached(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    out = tmp_path / "cmp"
    cfg = cfg_for(tmp_path, None, probe_epochs=2, probe_max_train=30, probe_max_test=10, seed=1, data_root="d")
    plans = {"d-single": plan_of("d-single"), "g-squeeze": plan_of("g-squeeze"), "g-sns": plan_of("g-sns")}
    assert R.baselines(cfg, DIGITS, plans, out, f.say) == [] and f.said == []       # nothing trained yet
    ck = {"format": "gandistill-student", "student": "test_resnet", "weights": "w"}
    write(out / "runs" / "g-sns" / "checkpoint.json", dict(ck, student_kwargs={"drop_rate": 0.1}))
    write(out / "runs" / "g-squeeze" / "checkpoint.json", "[]")          # not a checkpoint: passed over
    write(out / "runs" / "d-single" / "checkpoint.json", dict(ck, student="resnet18"))   # probes train nothing
    seen = []

    def probe_baselines(student, kwargs, probe, **kw):
        seen.append((student, kwargs, probe, kw))
        return {"raw pixels": ({"shot10": 30.0, "knn20": 2.0}, ["r"]), "random init": ({"fast": 20.0}, [])}

    monkeypatch.setattr(probing, "probe_baselines", probe_baselines)
    rows = R.baselines(cfg, DIGITS, plans, out, f.say)
    assert seen == [("test_resnet", {"drop_rate": 0.1}, SUITE, dict(dataset="digits", data_root="d", device="cpu",
                                                                   seed=1, epochs=2, max_train=30, max_test=10))]
    assert f.said == ["baselines: raw pixels and a random-init student, same probes ..."]
    assert [r.to_dict() for r in rows] == [
        RowResult(0, "raw pixels", "baseline", "raw pixels", "-", "ok", metrics={"shot10": 30.0, "knn20": 2.0},
                  headline="shot10", notes=["r"]).to_dict(),
        RowResult(0, "random init", "baseline", "random init", "-", "ok", metrics={"fast": 20.0},
                  headline="fast").to_dict()]
    assert read(out / "results" / "baselines.json") == {"2:30:10:1:True": {
        "raw pixels": {"metrics": {"shot10": 30.0, "knn20": 2.0}, "notes": ["r"]},
        "random init": {"metrics": {"fast": 20.0}, "notes": []}}}
    assert [r.to_dict() for r in R.baselines(cfg, DIGITS, plans, out, f.say)] == [r.to_dict() for r in rows]
    assert len(seen) == 1
    # other settings: probed again; a checkpoint without student_kwargs; a cache that is not ours
    write(out / "runs" / "g-sns" / "checkpoint.json", ck)
    R.baselines(cfg_for(tmp_path, None), DIGITS, plans, out, f.say)
    assert len(seen) == 2 and seen[-1][1] == {} and "None:None:None:0:True" in read(out / "results" / "baselines.json")
    write(out / "results" / "baselines.json", {"2:30:10:1:True": {"raw pixels": {"metrics": []}}})
    R.baselines(cfg, DIGITS, plans, out, f.say)
    assert len(seen) == 3


def test_baselines_failure_is_context_not_a_crash(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    out = tmp_path / "cmp"
    write(out / "runs" / "g-sns" / "checkpoint.json", {"format": "gandistill-student", "student": "s", "weights": "w"})

    def boom(*a, **k):
        raise RuntimeError("no memory")

    monkeypatch.setattr(probing, "probe_baselines", boom)
    plans = {"g-sns": plan_of("g-sns")}
    assert R.baselines(cfg_for(tmp_path, None), DIGITS, plans, out, f.say) == []
    assert f.said[-1] == "    baselines failed: RuntimeError: no memory"
    assert not (out / "results" / "baselines.json").exists()
    monkeypatch.setenv("GANDISTILL_DEBUG", "1")
    with pytest.raises(RuntimeError):
        R.baselines(cfg_for(tmp_path, None), DIGITS, plans, out, f.say)


# ----------------------------------------------------------------------------- gaps found by the first mutation pass
def test_other_settings_message_shows_old_and_new(tmp_path):
    R._check_out(tmp_path, CompareConfig(budget=0.5))
    with pytest.raises(ValueError, match=r"\{'budget': \(0\.5, 1\.0\)\} \(old, new\)"):
        R._check_out(tmp_path, CompareConfig(budget=1.0))


def test_compare_progress_lines_for_rows_without_a_value_or_time(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)

    def fake_run_row(table, row, plan, cfg, preset, out, say):
        if row.key == "g-sns":
            return RowResult(1, row.key, row.group, row.label, row.run, "failed", time_s=0.0)
        return RowResult(1, row.key, row.group, row.label, row.run, "ok", metrics={"top1": 12.345}, headline="top1",
                         time_s=0.0)

    monkeypatch.setattr(R, "run_row", fake_run_row)
    R.compare(cfg_for(tmp_path, "g-squeeze,g-sns"), log=f.say)
    assert f.said[1] == "    -> ok, top1 = 12.35" and f.said[3] == "    -> failed"


def test_compare_measures_its_time(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    res = R.compare(cfg_for(tmp_path, "g-sns"), log=f.say)
    assert 0.0 < res.rows[0].time_s <= res.wall_s < 60.0
    st = read(tmp_path / "cmp" / "runs" / "g-sns" / "compare_run.json")
    assert 0.0 <= st["time_s"] < 60.0
    f2 = Fakes(monkeypatch, stop={"vicreg-real": "collapse"})
    R.compare(cfg_for(tmp_path, "real-vicreg", table=2), log=f2.say)
    assert 0.0 <= read(tmp_path / "cmp" / "runs" / "vicreg-real" / "compare_run.json")["time_s"] < 60.0


def test_compare_finds_the_twin_trained_for_another_table(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    cfg2 = cfg_for(tmp_path, "real-vicreg", table=2, probe_epochs=1)
    vic = R.compare(cfg2, log=f.say).rows[0]
    cfg1 = cfg_for(tmp_path, "g-sns", table=1, probe_epochs=1)
    sns = R.compare(cfg1, log=f.say).rows[0]
    assert sns.twin == {"run": "vicreg-real", "metrics": vic.metrics,
                        "difference": {"shot10": -6.0, "knn20": 0.0}}
    assert len(f.fits) == 2 and [p[0] for p in f.probes] == ["vicreg-real", "g-sns"]     # scored from its cache
    # without its probe cache the twin is probed again (never trained again), on the preset's dataset
    (tmp_path / "cmp" / "runs" / "vicreg-real" / "compare_probe.json").unlink()
    assert R.compare(cfg1, log=f.say).rows[0].twin == sns.twin
    assert len(f.fits) == 2 and f.probes[-1][0] == "vicreg-real" and f.probes[-1][2]["dataset"] == "digits"


def test_compare_baselines_from_the_trained_rows(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    seen = []

    def probe_baselines(student, kwargs, probe, **kw):
        seen.append((student, kwargs, probe, kw["seed"], kw["epochs"]))
        return {"raw pixels": ({"shot10": 30.0}, [])}

    monkeypatch.setattr(probing, "probe_baselines", probe_baselines)
    res = R.compare(cfg_for(tmp_path, "g-sns", baselines=True, seed=3, probe_epochs=2), log=f.say)
    assert seen == [("test_resnet", {"proj_final_bn": True}, SUITE, 3, 2)]
    assert [(b.key, b.value) for b in res.baselines] == [("raw pixels", 30.0)]
    assert f.said[-1] == "baselines: raw pixels and a random-init student, same probes ..."
    assert "3" in "".join(read(tmp_path / "cmp" / "results" / "baselines.json"))


def test_collapse_at_chance_of_the_presets_dataset(tmp_path, monkeypatch):
    f = Fakes(monkeypatch, stop={"g-squeeze-novarcov": "collapse"})
    seen = []

    class DS:
        num_classes = 5

    monkeypatch.setattr(R, "load_dataset", lambda name, root=None, split=None: seen.append((name, root)) or DS())
    t5 = get_table(5)
    cfg = cfg_for(tmp_path, None, data_root="dr")
    c = R.run_row(t5, t5.rows[2], plan_of("g-squeeze-novarcov"), cfg, get_preset("cifar100"), tmp_path, f.say)
    assert c.metrics == {"chance": 20.0} and seen == [("cifar100", "dr")]


def test_a_crash_before_the_folder_exists_is_still_logged(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)

    def boom(cfg, log=None):
        raise OSError("no disk")

    monkeypatch.setattr(engine, "fit", boom)
    out = tmp_path / "a" / "b"
    t1 = get_table(1)
    res = R.run_row(t1, t1.rows[-1], plan_of("g-sns"), cfg_for(tmp_path, None), DIGITS, out, f.say)
    assert res.status == "failed" and "no disk" in (out / "results" / "errors.log").read_text()
    assert 0.0 < res.time_s < 60.0


def test_headline_mmd2_only_for_the_mmd_table(tmp_path, monkeypatch):
    f = Fakes(monkeypatch, metrics=lambda d: {"zz": 1.0, "mmd2": 3.0, "shot10": 2.0})
    monkeypatch.setattr(probing, "representation_mmd", lambda run_dir, **kw: ({"zz": 2.0, "mmd2": 0.25}, []))
    t6, t1 = get_table(6), get_table(1)
    assert R.run_row(t6, t6.rows[3], plan_of("g-sns"), cfg_for(tmp_path, None), DIGITS, tmp_path,
                     f.say).headline == "mmd2"
    assert R.run_row(t1, t1.rows[-1], plan_of("g-sns"), cfg_for(tmp_path, None), DIGITS, tmp_path,
                     f.say).headline == "shot10"


def test_run_state_of_another_shape_is_not_trusted(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    out = tmp_path / "cmp"
    run_dir = out / "runs" / "g-sns"
    write(run_dir / "compare_run.json", {"status": "collapsed", "message": 5})
    assert R.ensure_trained(plan_of("g-sns"), cfg_for(tmp_path, None), out, f.say)[1] == "ok" and len(f.fits) == 1
    # a finished run whose summary is gone is still finished: not trained again, its record kept
    (run_dir / "summary.json").unlink()
    before = (run_dir / "compare_run.json").read_text()
    assert R.ensure_trained(plan_of("g-sns"), cfg_for(tmp_path, None), out, f.say) == (run_dir, "ok", "")
    assert len(f.fits) == 1 and (run_dir / "compare_run.json").read_text() == before
    # the twin lookup trusts the same record only
    write(out / "runs" / "vicreg-real" / "compare_run.json", {"status": "ok", "message": 5})
    sns = _row("g-sns", metrics={"shot10": 70.0})
    R.attach_twins([sns], get_table(1), cfg_for(tmp_path, None), DIGITS, out)
    assert sns.twin is None and f.probes == []


def test_twin_without_a_run_in_the_comparison(monkeypatch):
    monkeypatch.setattr(R, "RUNS", {"g-sns": RUNS["g-sns"]})
    assert R.twin_run_id("g-sns") is None


def test_run_notes_conditional_by_any_positive_c_dim_and_checkpoints_not_ours(tmp_path):
    run = tmp_path / "run"
    for c_dim in (1, 0.5):
        write(run / "config.json", {"config": {}, "teacher": {"c_dim": c_dim}})
        assert R._run_notes(run, plan_of("g-sns")) == ["label-conditioned teacher: not self-supervised"]
    ss = plan_of("simsiam-real")
    (run / "config.json").unlink()
    write(run / "checkpoint.json", {"student": "s", "student_kwargs": ["proj_final_bn"]})
    assert len(R._run_notes(run, ss)) == 1                                # no crash: not a checkpoint of ours
    write(run / "checkpoint.json", {"student_kwargs": {"proj_final_bn": True}})
    assert len(R._run_notes(run, ss)) == 1


def test_baselines_pass_over_a_checkpoint_of_another_shape(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    out = tmp_path / "cmp"
    write(out / "runs" / "g-squeeze" / "checkpoint.json", {"student": 5})
    write(out / "runs" / "g-sns" / "checkpoint.json",
          {"format": "gandistill-student", "student": "test_resnet", "weights": "w"})
    seen = []
    monkeypatch.setattr(probing, "probe_baselines",
                        lambda student, kwargs, probe, **kw: seen.append(student) or {"raw pixels": ({"a": 1.0}, [])})
    R.baselines(cfg_for(tmp_path, None), DIGITS, {"g-squeeze": plan_of("g-squeeze"), "g-sns": plan_of("g-sns")}, out,
                f.say)
    assert seen == ["test_resnet"]


def test_a_row_file_of_another_row_is_recomputed(tmp_path, monkeypatch):
    f = Fakes(monkeypatch)
    cfg = cfg_for(tmp_path, "g-squeeze,g-sns")
    first = R.compare(cfg, log=f.say)
    rows = tmp_path / "cmp" / "results" / "table1"
    (rows / "g-squeeze.json").write_text((rows / "g-sns.json").read_text())          # copied over by hand
    again = R.compare(cfg, log=f.say)
    assert again.skipped == ["g-sns"] and again.rows[0].key == "g-squeeze"
    assert again.rows[0].metrics == first.rows[0].metrics
    write(rows / "g-sns.json", dict(read(rows / "g-sns.json"), table=2))
    assert R.compare(cfg, log=f.say).skipped == ["g-squeeze"]
