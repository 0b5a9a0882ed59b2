"""A killed run loses nothing: SIGKILL a real training process at a random step after a checkpoint,
resume it, and get bit-identical weights to an uninterrupted run (CPU); a failing checkpoint write
keeps the previous checkpoint; ``--resume auto`` finds the latest run of the same config."""
import errno
import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gandistill.engine import CheckpointWriteError, FitConfig, fit, recover
from gandistill.engine import checkpoint as ckpt_mod
from gandistill.teachers import register_teacher
from gandistill.teachers.generator import GeneratorTeacher
from gandistill.teachers.stylegan2 import save_sg2
from conftest import tiny_G

STEPS = 12
SLOW = {"sleep": 0.0}


@register_teacher("slow-sg2", help="sg2-generator that sleeps before each sample (test only)", overwrite=True)
class Slow(GeneratorTeacher):
    """Slows the training process down (numerics untouched) so the kill lands mid-run."""

    def sample(self, n, generator=None):
        time.sleep(SLOW["sleep"])
        return super().sample(n, generator)


def _cfg(out, teacher_ckpt, **kw):
    d = dict(method="sns", student="test_resnet", img_size=16, batch=8, steps=STEPS, dim=32, proj_hidden=16,
             squeeze_hidden=16, out=str(out), eval="none", log_every=1, ckpt_every=1, teacher="slow-sg2",
             teacher_ckpt=str(teacher_ckpt), device="cpu", seed=3, progress=False)
    d.update(kw)
    return FitConfig(**d)


def _train_child(cfg, sleep):
    """The training process (forked: the parent's imports come along, so it starts at once)."""
    SLOW["sleep"] = sleep
    torch.set_num_threads(1)
    fit(cfg, log=lambda s: None)


def _step(run):
    try:
        return json.loads((run / "checkpoint.json").read_text())["step"]
    except (OSError, ValueError, KeyError):
        return 0


def _weights(run):
    return {f: load_file(str(run / f)) for f in ("student.safetensors", "squeeze.safetensors")}


def test_sigkill_after_a_checkpoint_then_resume_is_bit_identical(tmp_path):
    import multiprocessing as mp

    G = save_sg2(tmp_path / "G", G_ema=tiny_G())
    fit(_cfg(tmp_path / "full", G), log=lambda s: None)            # the uninterrupted run
    kill_at = random.Random().randint(1, STEPS - 4)                 # a random step after a checkpoint
    cut_dir = tmp_path / "cut"
    child = mp.get_context("fork").Process(target=_train_child, args=(_cfg(cut_dir, G), 0.08))
    child.start()
    deadline = time.time() + 120
    while _step(cut_dir) < kill_at and child.is_alive() and time.time() < deadline:
        time.sleep(0.002)
    assert child.is_alive(), f"the run ended before the kill at step {kill_at}"
    os.kill(child.pid, signal.SIGKILL)                              # no chance to clean up
    child.join()
    killed_at = _step(cut_dir)
    assert child.exitcode == -signal.SIGKILL and kill_at <= killed_at < STEPS, (kill_at, killed_at)

    said = []
    fit(_cfg(cut_dir, G, resume=True), log=said.append)
    assert any(f"at step {killed_at}/{STEPS}" in s for s in said), said
    a, b = _weights(tmp_path / "full"), _weights(cut_dir)
    for f in a:
        assert a[f].keys() == b[f].keys()
        for k in a[f]:
            assert torch.equal(a[f][k], b[f][k]), f"{f}:{k} differs after a kill at step {killed_at}"
    assert _step(cut_dir) == STEPS and not (cut_dir / ckpt_mod.STAGING).exists()
    steps = [json.loads(l)["step"] for l in (cut_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == STEPS and sorted(set(steps)) == list(range(1, STEPS + 1))   # no step lost


def _toy(out, **kw):
    base = dict(method="sns", student="test_resnet", img_size=16, batch=8, steps=3, dim=32, proj_hidden=16,
                squeeze_hidden=16, out=None if out is None else str(out), eval="none", ckpt_every=1,
                teacher_kwargs={"G": tiny_G()})
    base.update(kw)
    return FitConfig(**base)


@pytest.mark.parametrize("fail_on", ["train_state", "head"])
def test_a_failing_checkpoint_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch, fail_on):
    # disk full while writing the 2nd checkpoint: after the student file (head) or after both (train state)
    import safetensors.torch as st

    real_save, real_st, calls = torch.save, st.save_file, {"save": 0, "st": 0}

    def full_disk():
        raise OSError(errno.ENOSPC, "No space left on device")

    def fake_save(obj, f, *a, **k):
        calls["save"] += 1
        if fail_on == "train_state" and calls["save"] == 2:
            full_disk()
        return real_save(obj, f, *a, **k)

    def fake_st(state, path, *a, **k):
        calls["st"] += 1
        if fail_on == "head" and calls["st"] == 4:               # checkpoint 2: student (3rd) done, head (4th) fails
            full_disk()
        return real_st(state, path, *a, **k)

    monkeypatch.setattr(torch, "save", fake_save)
    monkeypatch.setattr(st, "save_file", fake_st)
    monkeypatch.setattr(ckpt_mod, "save_file", fake_st)            # where the engine looks it up
    run = tmp_path / "r"
    with pytest.raises(CheckpointWriteError, match="previous checkpoint is intact") as info:
        fit(_toy(run), log=lambda s: None)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["step"] == 1 and not (run / ckpt_mod.STAGING).exists()
    from safetensors import safe_open

    for f in ("student.safetensors", "squeeze.safetensors"):       # every live file is still step 1's
        with safe_open(str(run / f), framework="pt") as h:
            assert h.metadata()["step"] == "1"
    assert torch.load(run / "train_state.pt", weights_only=True)["step"] == 1
    from gandistill.evaluate import load_student

    load_student(run)                                              # loadable
    fit(_toy(run, resume=True), log=lambda s: None)                # and resumable to the end
    assert json.loads((run / "checkpoint.json").read_text())["step"] == 3


def test_a_crash_between_the_moves_of_a_commit_rolls_forward(tmp_path, monkeypatch):
    run = tmp_path / "r"
    fit(_toy(run, steps=1), log=lambda s: None)
    real, moved = os.replace, []

    def crash_after_first(src, dst):
        if moved:
            raise KeyboardInterrupt("killed mid-commit")
        moved.append(dst)
        return real(src, dst)

    from gandistill.engine import save_checkpoint
    from gandistill.students import create_student

    student = create_student("test_resnet", img_size=16, proj_layers=0)
    monkeypatch.setattr(ckpt_mod.os, "replace", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(run / "init", 7, student, None, None, None, {"dataset": "digits"})
    monkeypatch.undo()
    assert (run / "init" / ckpt_mod.STAGING / "checkpoint.json").exists()     # the set was complete
    recover(run / "init")
    assert json.loads((run / "init" / "checkpoint.json").read_text())["step"] == 7
    assert not (run / "init" / ckpt_mod.STAGING).exists()


def test_resume_auto_finds_the_latest_run_of_the_same_config(tmp_path, monkeypatch):
    import gandistill.engine.loop as loop

    monkeypatch.chdir(tmp_path)
    real_update, n = loop.update, {"calls": 0}

    def interrupted(parts, loss):
        n["calls"] += 1
        if n["calls"] == 3:
            raise KeyboardInterrupt("preempted")
        return real_update(parts, loss)

    monkeypatch.setattr(loop, "update", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(_toy("runs/a", steps=4), log=lambda s: None)           # preempted after the step-2 checkpoint
    monkeypatch.setattr(loop, "update", real_update)
    fit(_toy("runs/b", steps=4, seed=1), log=lambda s: None)       # another config, newer
    os.utime("runs/b/checkpoint.json")
    said = []
    res = fit(_toy(None, steps=4, resume="auto"), log=said.append)
    assert res.run_dir == Path("runs/a") and any("resumed runs/a at step 2" in s for s in said)
    assert json.loads(Path("runs/a/checkpoint.json").read_text())["step"] == 4
    fresh = fit(_toy(None, steps=4, seed=2, resume="auto"), log=said.append)   # nothing of that config yet
    assert fresh.run_dir.parent == Path("runs") and fresh.run_dir.name not in ("a", "b")
    assert any("no earlier run of this config" in s for s in said)
    given = fit(_toy("elsewhere", steps=2, resume="auto"), log=lambda s: None)  # --out given, empty: new run
    assert given.run_dir == Path("elsewhere")


def test_resume_auto_on_the_command_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from gandistill.cli import app

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["fit", "--resume", "sideways", "--eval", "none"])
    flat = lambda out: " ".join(out.replace("│", " ").split())   # noqa: E731 -- rich boxes wrap the message
    assert r.exit_code == 2 and "'sideways' is not one of 'last', 'auto'" in flat(r.output)   # refused at parse time
    r = CliRunner().invoke(app, ["fit", "--resume", "last"])
    assert r.exit_code == 2 and "--resume last needs --out" in flat(r.output)
