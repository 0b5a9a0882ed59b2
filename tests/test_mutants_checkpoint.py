"""Deterministic rules of the run folder (``gandistill/engine/checkpoint.py``), stated independently of the
code (for mutation testing: ``scripts/mutation.sh checkpoint``): what ``save_checkpoint`` writes and in
which order (staged, synced, the JSON last), how a crashed write is recovered, the exact checkpoint JSON,
the fingerprint of a run, finding and checking the run to resume, and every refusal of ``resume`` (missing
parts, another step, non-finite or misshapen state), with its exact words. Fast: two-parameter networks
and tiny run folders in ``tmp_path``, no training and no CLI."""
import dataclasses
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from gandistill.engine import checkpoint as C
from gandistill.io import files as F
from gandistill.io.errors import GandistillError, UnsafeFileError, show_path


# ------------------------------------------------------------------------------------------------ helpers


class Cfg:
    def __init__(self, d):
        self.d = d

    def to_dict(self):
        return dict(self.d)


class Student(nn.Module):
    def __init__(self, name="tiny-net", extra=None):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.register_buffer("seen", torch.zeros((), dtype=torch.int64))
        self.config = Cfg({"name": name, "img_size": 8, **(extra or {})}) if name is not False else None

    def forward(self, x):
        return self.lin(x)


def student(seed=0, **kw):
    torch.manual_seed(seed)
    return Student(**kw)


def sgd(*mods, foreach=None):
    params = [p for m in mods for p in m.parameters()]
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, foreach=foreach)


def stepped(opt, *mods):
    loss = sum(m(torch.ones(1, 2)).sum() for m in mods)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return opt


def save(run, step=3, s=None, head=None, head_kind=None, opt=None, meta=None, extra=None):
    s = s if s is not None else student()
    return C.save_checkpoint(run, step, s, head, head_kind, opt, meta if meta is not None else {}, extra)


def ck(run):
    return json.loads((Path(run) / "checkpoint.json").read_text())


@dataclasses.dataclass
class Plan:
    run_dir: Path
    resume: bool = False
    resume_auto: bool = False
    config: Dict[str, Any] = dataclasses.field(default_factory=dict)
    spec: Any = None
    student_name: str = "tiny-net"


def record(**cfg):
    return {"config": {"method": "sns", "seed": 0, **cfg}, "resolved": {"student": "tiny-net", "lr": 0.1}}


def run_folder(root, name, rec, mtime=None, ckpt=True):
    d = Path(root) / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(rec))
    if ckpt:
        (d / "checkpoint.json").write_text("{}")
        if mtime is not None:
            os.utime(d / "checkpoint.json", (mtime, mtime))
    return d


# ------------------------------------------------------------------------------------------------ writing


def test_constants():
    assert (C.CKPT_JSON, C.CKPT_FORMAT, C.STAGING) == ("checkpoint.json", "gandistill-student", ".checkpoint-next")
    assert issubclass(C.ResumeError, GandistillError)
    assert issubclass(C.CheckpointWriteError, OSError)


def test_write_json_is_atomic_indented_and_stringifies(tmp_path):
    p = tmp_path / "a.json"
    C.write_json(p, {"x": [1], "p": Path("q/r")})
    assert p.read_text() == '{\n  "x": [\n    1\n  ],\n  "p": "q/r"\n}\n'
    assert os.listdir(tmp_path) == ["a.json"]


def test_atomic_write_is_the_io_layers(tmp_path):
    seen = []
    C.atomic_write(tmp_path / "b.bin", lambda p: seen.append(p) or p.write_bytes(b"xy"))
    assert (tmp_path / "b.bin").read_bytes() == b"xy"
    assert seen == [tmp_path / f".b.bin.tmp-{os.getpid()}"]


def test_state_cpu_is_a_detached_contiguous_copy():
    m = nn.Linear(3, 2)
    m.weight = nn.Parameter(torch.arange(6.0).view(3, 2).t())   # a non-contiguous parameter
    out = C._state_cpu(m)
    assert set(out) == {"weight", "bias"}
    assert out["weight"].is_contiguous() and torch.equal(out["weight"], m.weight.detach())
    assert not out["weight"].requires_grad
    out["weight"][0, 0] = 100.0
    assert m.weight[0, 0].item() == 0.0           # a copy, not a view


def test_save_checkpoint_writes_the_files_and_the_json(tmp_path):
    run = tmp_path / "a" / "run"          # created with its parents
    s, h = student(), nn.Linear(2, 2)
    opt = stepped(sgd(s, h), s, h)
    out = save(run, 7, s, h, "squeeze", opt, {"method": "sns", "teacher": "t"}, {"rng_cpu": torch.tensor([1, 2])})
    assert out == run / "checkpoint.json"
    assert sorted(os.listdir(run)) == ["checkpoint.json", "squeeze.safetensors", "student.safetensors", "train_state.pt"]
    data = ck(run)
    saved_at = data.pop("saved")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", saved_at)
    assert data == {"format": "gandistill-student", "version": 1, "student": "tiny-net",
                    "student_kwargs": {"img_size": 8}, "weights": "student.safetensors",
                    "head": "squeeze.safetensors", "head_kind": "squeeze", "train_state": "train_state.pt",
                    "step": 7, "method": "sns", "teacher": "t"}
    w = load_file(run / "student.safetensors")
    assert set(w) == {"lin.weight", "lin.bias", "seen"} and torch.equal(w["lin.weight"], s.lin.weight.detach())
    hw = load_file(run / "squeeze.safetensors")
    assert torch.equal(hw["weight"], h.weight.detach())
    from safetensors import safe_open
    for name in ("student.safetensors", "squeeze.safetensors"):
        with safe_open(run / name, "pt") as f:
            assert f.metadata() == {"step": "7"}
    st = torch.load(run / "train_state.pt", weights_only=True)
    assert set(st) == {"step", "optimizer", "rng_cpu"} and st["step"] == 7
    assert torch.equal(st["rng_cpu"], torch.tensor([1, 2]))
    assert st["optimizer"]["param_groups"][0]["lr"] == 0.1
    assert torch.equal(st["optimizer"]["state"][0]["momentum_buffer"], opt.state[s.lin.weight]["momentum_buffer"])


def test_save_checkpoint_without_head_or_optimizer(tmp_path):
    save(tmp_path, 0, student(), nn.Identity(), "predictor", None)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.json", "student.safetensors"]
    d = ck(tmp_path)
    assert (d["head"], d["head_kind"], d["train_state"], d["step"]) == (None, None, None, 0)
    save(tmp_path / "b", 1, student(), None, "squeeze", None)
    d = ck(tmp_path / "b")
    assert (d["head"], d["head_kind"]) == (None, None)


def test_save_checkpoint_without_extra_state(tmp_path):
    s = student()
    save(tmp_path, 2, s, None, None, sgd(s))
    st = torch.load(tmp_path / "train_state.pt", weights_only=True)
    assert set(st) == {"step", "optimizer"}


def test_save_checkpoint_student_name(tmp_path):
    save(tmp_path / "a", 1, student(name=False), meta={"student": "from-meta"})
    d = ck(tmp_path / "a")
    assert (d["student"], d["student_kwargs"]) == ("from-meta", {})
    save(tmp_path / "b", 1, student(name=None), meta={"student": "from-meta"})
    assert ck(tmp_path / "b")["student"] == "from-meta"
    save(tmp_path / "c", 1, student(name="own", extra={"proj_layers": 2}), meta={"x": 1})
    d = ck(tmp_path / "c")
    assert (d["student"], d["student_kwargs"], d["x"]) == ("own", {"img_size": 8, "proj_layers": 2}, 1)


def test_save_checkpoint_meta_comes_last(tmp_path):
    save(tmp_path, 4, meta={"step": 4, "student": "meta-name", "format": "gandistill-student"})
    assert ck(tmp_path)["student"] == "meta-name"


def test_save_checkpoint_twice_replaces_the_checkpoint(tmp_path):
    s = student()
    save(tmp_path, 1, s, nn.Linear(2, 2), "squeeze", sgd(s))
    save(tmp_path, 2, s, None, None, None)
    d = ck(tmp_path)
    assert d["step"] == 2 and d["head"] is None and d["train_state"] is None
    assert not (tmp_path / ".checkpoint-next").exists()


def test_save_checkpoint_syncs_every_staged_file_before_the_json_is_written(tmp_path, monkeypatch):
    log = []
    stage = tmp_path / ".checkpoint-next"

    def spy(p):
        log.append((Path(p), (stage / "checkpoint.json").exists()))
    monkeypatch.setattr(F, "fsync_path", spy)
    s, h = student(), nn.Linear(2, 2)
    save(tmp_path, 1, s, h, "squeeze", sgd(s, h))
    assert log[:3] == [(stage / "student.safetensors", False), (stage / "squeeze.safetensors", False),
                       (stage / "train_state.pt", False)]
    assert (stage / "checkpoint.json", True) in log[3:]
    assert log[-1] == (tmp_path, False)   # the commit syncs the run folder last


def test_save_checkpoint_recovers_a_crashed_write_first(tmp_path):
    save(tmp_path, 1)
    stage = tmp_path / ".checkpoint-next"
    stage.mkdir()
    (stage / "student.safetensors").write_bytes(b"half")
    save(tmp_path, 2)
    assert ck(tmp_path)["step"] == 2
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.json", "student.safetensors"]


@pytest.mark.parametrize("err", [OSError(28, "No space left on device"), OSError("plain")])
def test_a_failing_write_raises_checkpoint_write_error_and_keeps_the_old(tmp_path, monkeypatch, err):
    save(tmp_path, 1)
    before = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}

    def fail(*a, **k):
        raise err
    monkeypatch.setattr(torch, "save", fail)
    s = student(seed=5)
    with pytest.raises(C.CheckpointWriteError) as ei:
        save(tmp_path, 2, s, None, None, sgd(s))
    e = ei.value
    detail = "No space left on device" if err.errno else "plain"
    assert e.errno == err.errno
    assert e.strerror == (f"writing the checkpoint of step 2 in {tmp_path} failed ({detail}); "
                          "the previous checkpoint is intact")
    assert e.__cause__ is err
    assert {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)} == before


@pytest.mark.parametrize("exc", [RuntimeError("bad"), KeyboardInterrupt()])
def test_other_failures_pass_through_and_clean_the_stage(tmp_path, monkeypatch, exc):
    save(tmp_path, 1)
    before = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}

    def fail(*a, **k):
        raise exc
    monkeypatch.setattr(C, "write_json", fail)
    with pytest.raises(type(exc)) as ei:
        save(tmp_path, 2)
    assert ei.value is exc
    assert {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)} == before


def test_commit_moves_the_json_last_and_syncs(tmp_path, monkeypatch):
    stage = tmp_path / ".checkpoint-next"
    stage.mkdir()
    for n in ("checkpoint.json", "b.safetensors", "a.safetensors", "train_state.pt"):
        (stage / n).write_text(n)
    moved, synced = [], []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: moved.append((Path(a).name, Path(b))) or real(a, b))
    monkeypatch.setattr(F, "fsync_path", lambda p: synced.append(Path(p)))
    C._commit(tmp_path)
    assert moved == [("a.safetensors", tmp_path / "a.safetensors"), ("b.safetensors", tmp_path / "b.safetensors"),
                     ("train_state.pt", tmp_path / "train_state.pt"), ("checkpoint.json", tmp_path / "checkpoint.json")]
    assert synced == [tmp_path]
    assert not stage.exists()
    assert (tmp_path / "checkpoint.json").read_text() == "checkpoint.json"


def test_commit_without_json_moves_the_rest(tmp_path):
    stage = tmp_path / ".checkpoint-next"
    stage.mkdir()
    (stage / "x.pt").write_text("x")
    C._commit(tmp_path)
    assert os.listdir(tmp_path) == ["x.pt"]


def test_recover_rolls_forward_a_complete_stage(tmp_path):
    save(tmp_path, 1)
    stage = tmp_path / ".checkpoint-next"
    stage.mkdir()
    (stage / "checkpoint.json").write_text('{"step": 2}')   # the other files were already moved
    C.recover(tmp_path)
    assert not stage.exists()
    assert ck(tmp_path) == {"step": 2}


def test_recover_drops_an_incomplete_stage(tmp_path):
    save(tmp_path, 1)
    before = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}
    stage = tmp_path / ".checkpoint-next"
    (stage / "sub").mkdir(parents=True)
    (stage / "student.safetensors").write_bytes(b"new")
    C.recover(str(tmp_path))
    assert {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)} == before


def test_recover_leaves_a_folder_without_stage_alone(tmp_path):
    C.recover(tmp_path)
    assert os.listdir(tmp_path) == []
    (tmp_path / ".checkpoint-next").write_text("a file, not a stage")
    C.recover(tmp_path)
    assert (tmp_path / ".checkpoint-next").read_text() == "a file, not a stage"
    C.recover(tmp_path / "missing")


def test_recover_ignores_errors_removing_the_stage(tmp_path, monkeypatch):
    (tmp_path / ".checkpoint-next").mkdir()
    calls = []
    monkeypatch.setattr(C.shutil, "rmtree", lambda p, ignore_errors=False: calls.append((Path(p), ignore_errors)))
    C.recover(tmp_path)
    assert calls == [(tmp_path / ".checkpoint-next", True)]


def test_a_failing_write_cleans_the_stage_ignoring_errors(tmp_path, monkeypatch):
    calls = []
    real = C.shutil.rmtree
    monkeypatch.setattr(C.shutil, "rmtree", lambda p, ignore_errors=False: calls.append(ignore_errors) or real(p))
    monkeypatch.setattr(C, "write_json", lambda *a: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(RuntimeError):
        save(tmp_path, 1)
    assert calls == [True]
    assert not (tmp_path / ".checkpoint-next").exists()


def test_checkpoint_meta():
    plan = SimpleNamespace(spec=SimpleNamespace(name="sns"), teacher_name="sg2", dataset="cifar10", img_size=32,
                           total_steps=100)
    assert C.checkpoint_meta(plan, SimpleNamespace(ckpt_path="t.pkl")) == {
        "method": "sns", "teacher": "sg2", "teacher_ckpt": "t.pkl", "dataset": "cifar10", "img_size": 32,
        "total_steps": 100}
    assert C.checkpoint_meta(plan, None)["teacher_ckpt"] is None


class Stream:
    def __init__(self, st=None):
        self.st, self.loaded = st, []

    def state(self):
        return self.st

    def load_state(self, s):
        self.loaded.append(s)


class Scaler:
    def __init__(self, st=None):
        self.st, self.loaded = st, []

    def state_dict(self):
        return self.st

    def load_state_dict(self, s):
        self.loaded.append(s)


def test_train_state_collects_the_rng_and_stream():
    g = torch.Generator().manual_seed(11)
    torch.manual_seed(5)
    parts = SimpleNamespace(z_gen=g, stream=Stream({"pos": 3}), scaler=Scaler({"scale": 2.0}))
    out = C.train_state(parts, torch.device("cpu"))
    assert set(out) == {"rng_cpu", "z_gen", "stream", "scaler"}
    assert torch.equal(out["rng_cpu"], torch.get_rng_state())
    assert torch.equal(out["z_gen"], g.get_state())
    assert out["stream"] == {"pos": 3} and out["scaler"] == {"scale": 2.0}
    out = C.train_state(SimpleNamespace(z_gen=g, stream=None, scaler=None), torch.device("cpu"))
    assert out["stream"] is None and out["scaler"] is None and "rng_cuda" not in out


def test_all_finite():
    m = Student()
    assert C.all_finite(m)
    with torch.no_grad():
        m.lin.bias[1] = float("nan")
    assert not C.all_finite(m)
    m = Student()
    m.register_buffer("f", torch.tensor([1.0, float("inf")]))
    assert not C.all_finite(m)
    m = nn.Module()
    m.register_buffer("i", torch.tensor([2 ** 62]))
    assert C.all_finite(m)
    m.p = nn.Parameter(torch.tensor([-float("inf")]))
    assert not C.all_finite(m)


def test_load_weights(tmp_path):
    src = student(seed=1)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w.safetensors"))
    dst = student(seed=2)
    C.load_weights(dst, tmp_path / "w.safetensors")
    assert torch.equal(dst.lin.weight, src.lin.weight)
    save_file({"lin.weight": torch.zeros(2, 2, dtype=torch.float64), "lin.bias": torch.zeros(2),
               "seen": torch.zeros((), dtype=torch.int64)}, str(tmp_path / "d.safetensors"))
    with pytest.raises(UnsafeFileError) as ei:
        C.load_weights(dst, tmp_path / "d.safetensors")
    assert type(ei.value) is UnsafeFileError
    assert "the weights do not fit the network: tensor 'lin.weight' is torch.float64" in str(ei.value)
    with pytest.raises(UnsafeFileError) as ei:
        C.load_weights(dst, tmp_path)
    assert "the weights file is a directory" in str(ei.value)


# ------------------------------------------------------------------------------------------------ fingerprints


def test_fingerprint_keeps_only_the_trajectory_settings():
    rec = {"config": {"method": "sns", "teacher_ckpt": Path("t.pkl"), "bank": None, "student_kwargs": {"a": 1},
                      "dataset": "c", "train_split": "train", "batch": 8, "squeeze_hidden": 4, "shared_aug": True,
                      "gather": "local", "seed": 1, "encoder_input": "raw", "out": "runs/x", "device": "cpu",
                      "lr": 9.0},
           "resolved": {"student": "s", "cifar_stem": True, "teacher": "t", "img_size": 32, "total_steps": 5,
                        "lr": 0.1, "weight_decay": 0.0, "augment": "a", "augment_real": "b", "precision": "fp32",
                        "proj_layers": 2, "proj_hidden": (4, 5), "proj_final_bn": False, "dim": 8,
                        "squeeze_depth": 1, "loss_weights": {"v": 1}, "seed": 99, "world_size": 2}}
    fp = C.fingerprint(rec)
    assert fp == {"method": "sns", "teacher_ckpt": "t.pkl", "bank": None, "student_kwargs": {"a": 1}, "dataset": "c",
                  "train_split": "train", "batch": 8, "squeeze_hidden": 4, "shared_aug": True, "gather": "local",
                  "seed": 1, "encoder_input": "raw", "student": "s", "cifar_stem": True, "teacher": "t",
                  "img_size": 32, "total_steps": 5, "lr": 0.1, "weight_decay": 0.0, "augment": "a",
                  "augment_real": "b", "precision": "fp32", "proj_layers": 2, "proj_hidden": [4, 5],
                  "proj_final_bn": False, "dim": 8, "squeeze_depth": 1, "loss_weights": {"v": 1}}


def test_fingerprint_of_partial_records():
    assert C.fingerprint({}) == {}
    assert C.fingerprint({"config": None, "resolved": None}) == {}
    assert C.fingerprint({"config": {"seed": 2}}) == {"seed": 2}
    assert C.fingerprint({"resolved": {"dim": 3, "x": 1}}) == {"dim": 3}


def test_fingerprint_diff():
    old = {"a": 1, "b": "x", "c": [1], "only_old": 0}
    new = {"b": "y", "a": 1, "c": [2], "only_new": 5}
    assert C.fingerprint_diff(old, new) == ["b: 'x' -> 'y'", "c: [1] -> [2]"]
    assert C.fingerprint_diff(old, old) == []
    assert C.fingerprint_diff({}, new) == []


# ------------------------------------------------------------------------------------------------ reading


def test_read_checkpoint_of_a_saved_run(tmp_path):
    save(tmp_path, 5, meta={"method": "sns"})
    meta = C.read_checkpoint(tmp_path)
    assert meta["step"] == 5 and meta["method"] == "sns" and meta["format"] == "gandistill-student"


def test_read_checkpoint_missing(tmp_path):
    with pytest.raises(FileNotFoundError) as ei:
        C.read_checkpoint(tmp_path, what="eval")
    assert str(ei.value) == f"eval: no checkpoint in {tmp_path} (expected checkpoint.json)"
    with pytest.raises(FileNotFoundError, match=r"^--resume: no checkpoint"):
        C.read_checkpoint(str(tmp_path))


def test_read_checkpoint_corrupt(tmp_path):
    p = tmp_path / "checkpoint.json"
    p.write_text("{nope")
    with pytest.raises(C.ResumeError) as ei:
        C.read_checkpoint(tmp_path, what="eval")
    assert str(ei.value) == (f"eval: {show_path(p)} is unreadable or corrupt (checkpoint: corrupt JSON "
                             "(Expecting property name enclosed in double quotes at line 1 column 2))")
    assert type(ei.value) is C.ResumeError


def test_read_checkpoint_not_a_file(tmp_path):
    (tmp_path / "checkpoint.json").mkdir()
    with pytest.raises(C.ResumeError) as ei:
        C.read_checkpoint(tmp_path)
    p = tmp_path / "checkpoint.json"
    assert str(ei.value) == (f"--resume: {show_path(p)} is unreadable or corrupt (the checkpoint is a directory, "
                             "not a regular file; refusing to read it)")


def test_read_checkpoint_error_without_the_path_prefix(tmp_path, monkeypatch):
    # a refusal that does not start with "<path>: " is shown whole
    def fake(path, what, error):
        raise error("something odd")
    monkeypatch.setattr(C, "load_json", fake)
    with pytest.raises(C.ResumeError) as ei:
        C.read_checkpoint(tmp_path)
    assert str(ei.value) == f"--resume: {show_path(tmp_path / 'checkpoint.json')} is unreadable or corrupt (something odd)"


@pytest.mark.parametrize("content, kind", [([1], "list"), ("s", "str"), ({"format": "other"}, "other"),
                                           ({"student": "x"}, "None"), ({"format": "z" * 60}, "z" * 40),
                                           ({"format": 3}, "3")])
def test_read_checkpoint_of_another_format(tmp_path, content, kind):
    p = tmp_path / "checkpoint.json"
    p.write_text(json.dumps(content))
    with pytest.raises(C.ResumeError) as ei:
        C.read_checkpoint(tmp_path, what="eval")
    assert str(ei.value) == (f"{show_path(p)}: eval: not a gandistill student checkpoint (format {kind!r}, "
                             "expected 'gandistill-student')")


def test_read_checkpoint_checks_the_schema(tmp_path):
    p = tmp_path / "checkpoint.json"
    p.write_text(json.dumps({"format": "gandistill-student", "student": "s", "weights": "../w"}) + " ")
    assert C.read_checkpoint(tmp_path)["weights"] == "../w"   # names are checked when used (inside)
    p.write_text(json.dumps({"format": "gandistill-student", "student": "s"}))
    with pytest.raises(C.ResumeError) as ei:
        C.read_checkpoint(tmp_path, what="eval")
    assert str(ei.value).startswith(f"{show_path(p)}: eval: checkpoint: ")
    assert "weights" in str(ei.value)
    p.write_text(json.dumps({"format": "gandistill-student", "student": "s", "weights": "w", "step": -1}))
    with pytest.raises(C.ResumeError, match="'step'"):
        C.read_checkpoint(tmp_path)


def test_read_record(tmp_path):
    rec = {"config": {"method": "sns"}, "resolved": {"img_size": 32}}
    (tmp_path / "config.json").write_text(json.dumps(rec))
    assert C._read_record(tmp_path) == rec
    assert C._read_record(tmp_path / "missing") is None
    (tmp_path / "config.json").write_text("{")
    assert C._read_record(tmp_path) is None
    (tmp_path / "config.json").write_text(json.dumps({"resolved": {}}))   # no "config": not a run config
    assert C._read_record(tmp_path) is None
    (tmp_path / "config.json").unlink()
    os.mkfifo(tmp_path / "config.json")
    assert C._read_record(str(tmp_path)) is None


def test_saved_time(tmp_path):
    assert C._saved_time(tmp_path) == -1.0
    (tmp_path / "checkpoint.json").write_text("{}")
    os.utime(tmp_path / "checkpoint.json", (1000.5, 1234.5))
    assert C._saved_time(tmp_path) == 1234.5


def test_find_latest_run(tmp_path):
    rec = record()
    run_folder(tmp_path, "old", rec, 1000)
    run_folder(tmp_path, "new", rec, 3000)
    run_folder(tmp_path, "mid", rec, 2000)
    run_folder(tmp_path, "other", record(seed=1), 9000)                  # another config
    run_folder(tmp_path, "nockpt", rec, ckpt=False)                      # never checkpointed
    d = run_folder(tmp_path, "dirckpt", rec, ckpt=False)
    (d / "checkpoint.json").mkdir()                                       # not a file
    d = run_folder(tmp_path, "badcfg", rec, 8000)
    (d / "config.json").write_text("{")
    (tmp_path / "stray.txt").write_text("x")
    assert C.find_latest_run(tmp_path, rec) == tmp_path / "new"
    # only the fingerprint counts, not the rest of the record
    assert C.find_latest_run(tmp_path, {**rec, "config": {**rec["config"], "out": "x"}}) == tmp_path / "new"
    assert C.find_latest_run(tmp_path, record(seed=1)) == tmp_path / "other"
    assert C.find_latest_run(tmp_path, record(seed=2)) is None


def test_find_latest_run_without_a_root(tmp_path):
    assert C.find_latest_run(tmp_path / "none", record()) is None
    (tmp_path / "f").write_text("x")
    assert C.find_latest_run(tmp_path / "f", record()) is None
    assert C.find_latest_run(str(tmp_path), record()) is None


def test_resolve_resume_only_for_auto(tmp_path):
    plan = Plan(run_dir=tmp_path / "r", resume=True, resume_auto=False)
    assert C.resolve_resume(plan, record()) is plan


def test_resolve_resume_auto_with_out(tmp_path):
    said = []
    run = tmp_path / "given"
    plan = Plan(run_dir=run, resume_auto=True, config={"out": str(run)})
    out = C.resolve_resume(plan, record(), said.append)
    assert (out.run_dir, out.resume, out.resume_auto) == (run, False, False)
    assert said == [f"--resume auto: no earlier run of this config; starting {run}"]
    # a complete staged checkpoint (crash during the commit) is recovered, then resumed
    stage = run / ".checkpoint-next"
    stage.mkdir(parents=True)
    (stage / "checkpoint.json").write_text("{}")
    said.clear()
    out = C.resolve_resume(plan, record(), said.append)
    assert (out.run_dir, out.resume, out.resume_auto) == (run, True, False)
    assert said == [] and (run / "checkpoint.json").exists() and not stage.exists()


def test_resolve_resume_auto_searches_next_to_the_default_folder(tmp_path):
    rec = record()
    run_folder(tmp_path, "a", rec, 100)
    run_folder(tmp_path, "b", rec, 200)
    plan = Plan(run_dir=tmp_path / "fresh", resume_auto=True, config={"out": None})
    out = C.resolve_resume(plan, rec)
    assert (out.run_dir, out.resume, out.resume_auto) == (tmp_path / "b", True, False)
    assert isinstance(out.run_dir, Path)
    out = C.resolve_resume(plan, record(seed=7))   # the default `say` says nothing
    assert (out.run_dir, out.resume, out.resume_auto) == (tmp_path / "fresh", False, False)


class Spec:
    name = "sns"


def test_check_run_dir_new_run(tmp_path):
    plan = Plan(run_dir=tmp_path, resume=False, spec=Spec())
    assert C.check_run_dir(plan) is None
    (tmp_path / "checkpoint.json").write_text("{}")
    with pytest.raises(ValueError) as ei:
        C.check_run_dir(plan)
    assert str(ei.value) == (f"{tmp_path} already holds a run (checkpoint.json); pass --resume to continue it "
                             "or choose another --out")


def test_check_run_dir_resume(tmp_path):
    save(tmp_path, 2, meta={"method": "sns"})
    rec = record()
    (tmp_path / "config.json").write_text(json.dumps(rec))
    plan = Plan(run_dir=tmp_path, resume=True, spec=Spec())
    assert C.check_run_dir(plan, rec) is None
    assert C.check_run_dir(plan) is None
    # another config: refused with the differences
    with pytest.raises(ValueError) as ei:
        C.check_run_dir(plan, record(seed=4, batch=2))
    assert str(ei.value) == (f"--resume: {tmp_path} was trained with a different config (seed: 0 -> 4); "
                             "resume with the run's own settings or start a new run with another --out")
    new = {"config": {"method": "sns", "seed": 1}, "resolved": {"student": "tiny-net", "lr": 0.2}}
    with pytest.raises(ValueError, match=r"\(seed: 0 -> 1; lr: 0.1 -> 0.2\)"):
        C.check_run_dir(plan, new)
    C.check_run_dir(plan)   # without a record nothing is compared
    (tmp_path / "config.json").unlink()
    C.check_run_dir(plan, new)   # no record of the old run: nothing to compare


@pytest.mark.parametrize("method, name", [("other", "tiny-net"), ("sns", "other-net")])
def test_check_run_dir_refuses_another_method_or_student(tmp_path, method, name):
    save(tmp_path, 2, meta={"method": method}, s=student(name=name))
    plan = Plan(run_dir=tmp_path, resume=True, spec=Spec(), student_name="tiny-net")
    with pytest.raises(ValueError) as ei:
        C.check_run_dir(plan)
    assert str(ei.value) == f"--resume: {tmp_path} was a '{method}' run of '{name}', not 'sns' of 'tiny-net'"


def test_check_run_dir_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError):
        C.check_run_dir(Plan(run_dir=tmp_path, resume=True, spec=Spec()))


# ------------------------------------------------------------------------------------------------ loading


def test_load_safetensors(tmp_path):
    src = student(seed=3)
    save(tmp_path, 4, src)
    dst = student(seed=4)
    C._load_safetensors(dst, tmp_path, "student.safetensors", 4)
    assert torch.equal(dst.lin.weight, src.lin.weight)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "nometa.safetensors"))
    C._load_safetensors(student(), tmp_path, "nometa.safetensors", 99)   # no step in the metadata: not compared


def test_load_safetensors_refuses_another_step(tmp_path):
    save(tmp_path, 4)
    p = (tmp_path / "student.safetensors").resolve()
    with pytest.raises(C.ResumeError) as ei:
        C._load_safetensors(student(), tmp_path, "student.safetensors", 5)
    assert str(ei.value) == (f"{show_path(p)}: --resume: holds step 4 but checkpoint.json says step 5 "
                             "(an interrupted checkpoint write from an older version?)")
    s = student()
    save_file({k: v.contiguous() for k, v in s.state_dict().items()}, str(tmp_path / "long.safetensors"),
              metadata={"step": "9" * 60})
    with pytest.raises(C.ResumeError, match=f"holds step {'9' * 40} but"):
        C._load_safetensors(student(), tmp_path, "long.safetensors", 5)


def test_load_safetensors_refusals(tmp_path):
    save(tmp_path, 1)
    with pytest.raises(UnsafeFileError) as ei:
        C._load_safetensors(student(), tmp_path, "../x.safetensors", 1)
    assert str(ei.value).startswith(f"{show_path(tmp_path / 'checkpoint.json')}: the weights file")
    with pytest.raises(FileNotFoundError) as ei:
        C._load_safetensors(student(), tmp_path, "gone.safetensors", 1)
    assert str(ei.value) == f"--resume: {(tmp_path / 'gone.safetensors').resolve()} is missing"
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(C.ResumeError) as ei:
        C._load_safetensors(student(), tmp_path, "dir.safetensors", 1)
    assert "the --resume: weights file is a directory" in str(ei.value)
    with pytest.raises(C.ResumeError) as ei:
        C._load_safetensors(nn.Linear(2, 3), tmp_path, "student.safetensors", 1)
    assert "--resume: weights do not fit the network: " in str(ei.value)


def test_load_safetensors_refuses_non_finite(tmp_path):
    s = student()
    with torch.no_grad():
        s.lin.weight[0, 0] = float("nan")
    save(tmp_path, 1, s)
    dst = student(seed=9)
    before = dst.lin.weight.clone()
    with pytest.raises(C.ResumeError, match="non-finite values .* in tensor 'lin.weight'"):
        C._load_safetensors(dst, tmp_path, "student.safetensors", 1)
    assert torch.equal(dst.lin.weight, before)


def write_state(run, state, name="train_state.pt"):
    torch.save(state, Path(run) / name)
    return {"train_state": name}


def test_read_state(tmp_path):
    st = {"step": 3, "optimizer": {"state": {}, "param_groups": []}, "rng": torch.tensor([1, 2], dtype=torch.uint8),
          "ints": torch.tensor([2 ** 60])}
    meta = write_state(tmp_path, st)
    got = C._read_state(tmp_path, meta, 3)
    assert got["step"] == 3 and torch.equal(got["rng"], st["rng"])


@pytest.mark.parametrize("meta", [{}, {"train_state": None}, {"train_state": ""}])
def test_read_state_needs_a_train_state(tmp_path, meta):
    with pytest.raises(C.ResumeError) as ei:
        C._read_state(tmp_path, meta, 1)
    assert str(ei.value) == f"--resume: {tmp_path} has no optimizer state"


def test_read_state_file_refusals(tmp_path):
    with pytest.raises(FileNotFoundError) as ei:
        C._read_state(tmp_path, {"train_state": "t.pt"}, 1)
    assert str(ei.value) == f"--resume: {(tmp_path / 't.pt').resolve()} is missing"
    with pytest.raises(UnsafeFileError, match="training state"):
        C._read_state(tmp_path, {"train_state": "/etc/passwd"}, 1)
    (tmp_path / "t.pt").write_bytes(b"junk")
    with pytest.raises(C.ResumeError, match="not a readable torch.save zip"):
        C._read_state(tmp_path, {"train_state": "t.pt"}, 1)


@pytest.mark.parametrize("step, shown", [(4, "4"), (3.0, "3.0"), ("3", "3"), (True, "True"), (None, "None"),
                                         ("x" * 50, "x" * 40)])
def test_read_state_refuses_another_step(tmp_path, step, shown):
    meta = write_state(tmp_path, {"step": step, "optimizer": {}})
    p = (tmp_path / "train_state.pt").resolve()
    with pytest.raises(C.ResumeError) as ei:
        C._read_state(tmp_path, meta, 3)
    assert str(ei.value) == f"{show_path(p)}: --resume: holds step {shown} but checkpoint.json says step 3"


def test_read_state_without_step(tmp_path):
    meta = write_state(tmp_path, {"optimizer": {}})
    with pytest.raises(C.ResumeError, match="holds step None but checkpoint.json says step 3"):
        C._read_state(tmp_path, meta, 3)


@pytest.mark.parametrize("opt", [None, [], "x", 1])
def test_read_state_needs_an_optimizer_dict(tmp_path, opt):
    st = {"step": 3} if opt is None else {"step": 3, "optimizer": opt}
    meta = write_state(tmp_path, st)
    p = (tmp_path / "train_state.pt").resolve()
    with pytest.raises(C.ResumeError) as ei:
        C._read_state(tmp_path, meta, 3)
    assert str(ei.value) == f"{show_path(p)}: --resume: the training state has no optimizer state"


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_read_state_refuses_non_finite_tensors(tmp_path, bad):
    st = {"step": 3, "optimizer": {"state": {0: {"exp_avg": torch.tensor([0.0, bad])}}}, "ok": torch.ones(1)}
    meta = write_state(tmp_path, st)
    p = (tmp_path / "train_state.pt").resolve()
    with pytest.raises(C.ResumeError) as ei:
        C._read_state(tmp_path, meta, 3)
    assert str(ei.value) == f"{show_path(p)}: --resume: the training state holds non-finite values in optimizer.state.0.exp_avg"


def test_tensors_walks_nested_containers():
    a, b, c, d = (torch.tensor([float(i)]) for i in range(4))
    got = list(C._tensors({"x": {"y": a, 5: b}, "l": [c, (d, 1)], "n": None, "s": "t"}))
    assert [k for k, _ in got] == ["x.y", "x.5", "l[0]", "l[1][0]"]
    assert all(v is w for (_, v), w in zip(got, (a, b, c, d)))
    assert list(C._tensors(a)) == [("", a)]
    assert [k for k, _ in C._tensors([a])] == ["[0]"]
    assert [k for k, _ in C._tensors({0: a})] == ["0"]
    assert list(C._tensors(5)) == []


def _nest(t, depth, kind):
    for _ in range(depth):
        t = {"k": t} if kind == "dict" else [t]
    return t


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_tensors_depth_limit(kind):
    t = torch.ones(1)
    assert len(list(C._tensors(_nest(t, 8, kind)))) == 1
    assert list(C._tensors(_nest(t, 9, kind))) == []
    assert list(C._tensors(_nest(t, 7, kind), depth=1))[0][1] is t
    assert list(C._tensors(_nest(t, 8, kind), depth=1)) == []


def test_check_optimizer(tmp_path):
    m = nn.Linear(2, 3)
    opt = torch.optim.Adam(m.parameters())
    m(torch.ones(1, 2)).sum().backward()
    opt.step()
    C._check_optimizer(opt, tmp_path / "t.pt")            # scalar 'step' tensors are fine
    opt.state[m.weight]["note"] = "not a tensor"
    C._check_optimizer(opt, tmp_path / "t.pt")
    opt.state[m.weight]["exp_avg"] = torch.zeros(2, 3)
    with pytest.raises(C.ResumeError) as ei:
        C._check_optimizer(opt, tmp_path / "t.pt")
    assert str(ei.value) == (f"{show_path(tmp_path / 't.pt')}: --resume: the optimizer state 'exp_avg' has shape "
                             "(2, 3) / torch.float32 for a parameter of shape (3, 2)")
    opt.state[m.weight]["exp_avg"] = torch.zeros(3, 2, dtype=torch.int64)
    with pytest.raises(C.ResumeError, match=r"'exp_avg' has shape \(3, 2\) / torch.int64"):
        C._check_optimizer(opt, tmp_path / "t.pt")
    opt.state[m.weight]["exp_avg"] = torch.zeros(3, 2)
    opt.state[m.bias]["exp_avg_sq"] = torch.zeros(1)
    with pytest.raises(C.ResumeError, match="'exp_avg_sq' has shape \\(1,\\)"):
        C._check_optimizer(opt, tmp_path / "t.pt")


def test_check_optimizer_without_state(tmp_path):
    m = nn.Linear(2, 3)
    C._check_optimizer(torch.optim.SGD(m.parameters(), lr=0.1), tmp_path)


# ------------------------------------------------------------------------------------------------ resume


def parts_of(s, head=None, opt=None, stream=None, scaler=None, seed=0):
    return SimpleNamespace(model=SimpleNamespace(student=s), head=head, opt=opt, stream=stream, scaler=scaler,
                           z_gen=torch.Generator().manual_seed(seed))


def saved_run(run, step=6, foreach=True, stream_state=None, scaler_state=None, head=True):
    s = student(seed=1)
    h = nn.Linear(2, 2) if head else None
    opt = stepped(sgd(*([s, h] if head else [s]), foreach=foreach), *([s, h] if head else [s]))
    torch.manual_seed(123)
    parts = parts_of(s, h, opt, Stream(stream_state), Scaler(scaler_state), seed=42)
    extra = C.train_state(parts, torch.device("cpu"))
    C.save_checkpoint(run, step, s, h, "squeeze" if head else None, opt, {"method": "sns"}, extra)
    return s, h, opt, extra


def test_resume_restores_everything(tmp_path):
    s, h, opt, extra = saved_run(tmp_path, stream_state={"pos": 9}, scaler_state={"scale": 4.0})
    s2, h2 = student(seed=7), nn.Linear(2, 2)
    opt2 = sgd(s2, h2, foreach=False)
    parts = parts_of(s2, h2, opt2, Stream(), Scaler(), seed=0)
    torch.manual_seed(999)
    assert C.resume(Plan(run_dir=tmp_path), parts) == 6
    assert torch.equal(s2.lin.weight, s.lin.weight) and torch.equal(h2.weight, h.weight)
    assert torch.equal(opt2.state[s2.lin.weight]["momentum_buffer"], opt.state[s.lin.weight]["momentum_buffer"])
    assert torch.equal(torch.get_rng_state(), extra["rng_cpu"])
    assert torch.equal(parts.z_gen.get_state(), extra["z_gen"])
    assert parts.stream.loaded == [{"pos": 9}] and parts.scaler.loaded == [{"scale": 4.0}]
    # the new run's implementation flags survive loading the old groups
    assert [g["foreach"] for g in opt2.param_groups] == [False]
    assert opt2.param_groups[0]["lr"] == 0.1


def test_resume_skips_what_is_absent(tmp_path):
    saved_run(tmp_path, stream_state=None, scaler_state=None)
    s2, h2 = student(seed=7), nn.Linear(2, 2)
    h_before = h2.weight.clone()
    parts = parts_of(s2, None, sgd(s2, h2), Stream(), Scaler(), seed=5)
    g_before = parts.z_gen.get_state()
    assert C.resume(Plan(run_dir=tmp_path), parts) == 6
    assert parts.stream.loaded == [] and parts.scaler.loaded == []
    assert torch.equal(h2.weight, h_before)       # no head part: the head file is not loaded
    assert not torch.equal(parts.z_gen.get_state(), g_before)


def test_resume_without_stream_or_scaler_parts(tmp_path):
    saved_run(tmp_path, stream_state={"pos": 1}, scaler_state={"s": 1})
    s2, h2 = student(seed=7), nn.Linear(2, 2)
    assert C.resume(Plan(run_dir=tmp_path), parts_of(s2, h2, sgd(s2, h2))) == 6


def test_resume_ignores_none_rng_states(tmp_path, monkeypatch):
    saved_run(tmp_path)
    st = torch.load(tmp_path / "train_state.pt", weights_only=True)
    st.update(rng_cpu=None, z_gen=None, rng_cuda=torch.zeros(3, dtype=torch.uint8))
    torch.save(st, tmp_path / "train_state.pt")
    s2, h2 = student(seed=7), nn.Linear(2, 2)
    parts = parts_of(s2, h2, sgd(s2, h2), seed=5)
    g_before = parts.z_gen.get_state()
    torch.manual_seed(31)
    rng_before = torch.get_rng_state()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert C.resume(Plan(run_dir=tmp_path), parts) == 6
    assert torch.equal(parts.z_gen.get_state(), g_before) and torch.equal(torch.get_rng_state(), rng_before)


def test_resume_sets_the_cuda_rng_only_with_cuda(tmp_path, monkeypatch):
    saved_run(tmp_path)
    st = torch.load(tmp_path / "train_state.pt", weights_only=True)
    st["rng_cuda"] = torch.zeros(3, dtype=torch.uint8)
    torch.save(st, tmp_path / "train_state.pt")
    calls = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s: calls.append(s))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    s2, h2 = student(seed=7), nn.Linear(2, 2)
    C.resume(Plan(run_dir=tmp_path), parts_of(s2, h2, sgd(s2, h2)))
    assert calls == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    s2, h2 = student(seed=7), nn.Linear(2, 2)
    C.resume(Plan(run_dir=tmp_path), parts_of(s2, h2, sgd(s2, h2)))
    assert len(calls) == 1 and torch.equal(calls[0], torch.zeros(3, dtype=torch.uint8))


def test_resume_without_head_in_the_checkpoint(tmp_path):
    saved_run(tmp_path, head=False)
    s2, h2 = student(seed=7), nn.Linear(2, 2)
    before = h2.weight.clone()
    assert C.resume(Plan(run_dir=tmp_path), parts_of(s2, h2, sgd(s2))) == 6
    assert torch.equal(h2.weight, before)


def test_resume_refuses_an_optimizer_of_another_run(tmp_path):
    saved_run(tmp_path)
    s2 = student(seed=7)
    opt2 = sgd(s2)   # one group with 2 params instead of 4
    with pytest.raises(C.ResumeError) as ei:
        C.resume(Plan(run_dir=tmp_path), parts_of(s2, nn.Linear(2, 2), opt2))
    assert str(ei.value).startswith(f"{show_path(tmp_path / 'train_state.pt')}: --resume: the optimizer state does "
                                    "not fit this run: ValueError: ")


def test_resume_refuses_misshapen_moments(tmp_path):
    saved_run(tmp_path)
    st = torch.load(tmp_path / "train_state.pt", weights_only=True)
    st["optimizer"]["state"][0]["momentum_buffer"] = torch.zeros(2)
    torch.save(st, tmp_path / "train_state.pt")
    s2, h2 = student(seed=7), nn.Linear(2, 2)
    with pytest.raises(C.ResumeError) as ei:
        C.resume(Plan(run_dir=tmp_path), parts_of(s2, h2, sgd(s2, h2)))
    assert str(ei.value) == (f"{show_path(tmp_path / 'train_state.pt')}: --resume: the optimizer state "
                             "'momentum_buffer' has shape (2,) / torch.float32 for a parameter of shape (2, 2)")


def test_resume_step_comes_from_the_json(tmp_path):
    saved_run(tmp_path)
    d = ck(tmp_path)
    del d["step"]
    (tmp_path / "checkpoint.json").write_text(json.dumps(d))
    s2, h2 = student(seed=7), nn.Linear(2, 2)
    with pytest.raises(C.ResumeError, match="holds step 6 but checkpoint.json says step -1"):
        C.resume(Plan(run_dir=tmp_path), parts_of(s2, h2, sgd(s2, h2)))


def test_resume_head_step_is_checked(tmp_path):
    saved_run(tmp_path)
    save_file({k: v.contiguous() for k, v in nn.Linear(2, 2).state_dict().items()},
              str(tmp_path / "squeeze.safetensors"), metadata={"step": "5"})
    s2, h2 = student(seed=7), nn.Linear(2, 2)
    with pytest.raises(C.ResumeError, match="squeeze.safetensors: --resume: holds step 5 but"):
        C.resume(Plan(run_dir=tmp_path), parts_of(s2, h2, sgd(s2, h2)))


def test_resume_needs_the_train_state(tmp_path):
    saved_run(tmp_path)
    d = ck(tmp_path)
    d["train_state"] = None
    (tmp_path / "checkpoint.json").write_text(json.dumps(d))
    s2, h2 = student(seed=7), nn.Linear(2, 2)
    with pytest.raises(C.ResumeError, match="has no optimizer state"):
        C.resume(Plan(run_dir=tmp_path), parts_of(s2, h2, sgd(s2, h2)))


# ------------------------------------------------------------------------------------------------ survivors of the first pass


def test_a_head_with_a_single_tensor_is_saved(tmp_path):
    head = nn.Linear(2, 2, bias=False)            # one entry in its state dict
    save(tmp_path, 1, student(), head, "predictor", None)
    assert ck(tmp_path)["head"] == "predictor.safetensors"
    assert torch.equal(load_file(tmp_path / "predictor.safetensors")["weight"], head.weight.detach())


def test_a_student_without_a_config_attribute(tmp_path):
    torch.manual_seed(0)
    plain = nn.Linear(2, 2)                       # no .config at all
    save(tmp_path, 1, plain, meta={"student": "resnet18"})
    d = ck(tmp_path)
    assert (d["student"], d["student_kwargs"]) == ("resnet18", {})
    assert set(load_file(tmp_path / "student.safetensors")) == {"weight", "bias"}


def test_train_state_of_a_cuda_run_keeps_its_device_generator(monkeypatch):
    seen = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": seen.append(device) or torch.tensor([7]))
    dev = SimpleNamespace(type="cuda", index=1)
    parts = SimpleNamespace(z_gen=torch.Generator(), stream=None, scaler=None)
    out = C.train_state(parts, dev)
    assert set(out) == {"rng_cpu", "z_gen", "stream", "scaler", "rng_cuda"}
    assert torch.equal(out["rng_cuda"], torch.tensor([7]))
    assert seen == [dev]


def test_load_weights_names_the_file(tmp_path):
    p = tmp_path / "w.safetensors"
    save_file({"weight": torch.zeros(2, 2), "bias": torch.full((2,), float("inf"))}, str(p))
    with pytest.raises(UnsafeFileError) as ei:
        C.load_weights(nn.Linear(2, 2), p)
    assert str(ei.value) == f"{show_path(p)}: the weights hold non-finite values (NaN or inf) in tensor 'bias'"
    assert ei.value.path == str(p)


def test_load_safetensors_names_the_file(tmp_path):
    p = tmp_path / "student.safetensors"
    save_file({"weight": torch.zeros(3, 2), "bias": torch.zeros(2)}, str(p), metadata={"step": "1"})
    with pytest.raises(C.ResumeError) as ei:
        C._load_safetensors(nn.Linear(2, 2), tmp_path, "student.safetensors", 1)
    assert str(ei.value) == (f"{show_path(p.resolve())}: the --resume: weights do not fit the network: "
                             "1 shape mismatch (e.g. weight (3, 2) != (2, 2))")


def test_read_state_refuses_names_outside_naming_the_checkpoint(tmp_path):
    with pytest.raises(UnsafeFileError) as ei:
        C._read_state(tmp_path, {"train_state": "/etc/passwd"}, 1)
    assert str(ei.value) == (f"{show_path(tmp_path / 'checkpoint.json')}: the training state /etc/passwd must be "
                             "a relative name inside the folder (absolute paths and '..' are refused)")


def test_resolve_resume_without_an_earlier_run_does_not_resume(tmp_path):
    plan = Plan(run_dir=tmp_path / "fresh", resume=True, resume_auto=True, config={})
    out = C.resolve_resume(plan, record())
    assert (out.resume, out.resume_auto) == (False, False)


def test_resume_keeps_the_new_runs_fused_flag(tmp_path):
    saved_run(tmp_path, foreach=None)             # saved groups: fused None
    s2, h2 = student(seed=7), nn.Linear(2, 2)
    opt2 = torch.optim.SGD(list(s2.parameters()) + list(h2.parameters()), lr=0.1, momentum=0.9, fused=True)
    assert C.resume(Plan(run_dir=tmp_path), parts_of(s2, h2, opt2)) == 6
    assert [g["fused"] for g in opt2.param_groups] == [True]
