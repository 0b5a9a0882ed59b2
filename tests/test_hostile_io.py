"""Hostile run folders, banks, datasets and exports: every attack ends in one clean GandistillError line,
quickly, never a hang, a crash, a traceback or silently loaded garbage (issue 15).

Hangs and crashes run in a forked child with a timeout (``io_attacks.run_bounded``), so a regression
fails the test instead of hanging the suite or killing it.
"""
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from io_attacks import (bank_header, bank_size, colliding_int_dict_pickle, deflate_bomb_state, empty_tensor_flood,
                        mkfifo, png_bomb, run_bounded, safetensors_bytes, stl10_root, write_bank)

from conftest import tiny_G

from gandistill.engine import FitConfig, fit
from gandistill.io.errors import GandistillError

CLEAN = "GandistillError"


def clean(res, *extra):
    """The child ended with one of our errors (or one of ``extra`` types), not a hang/crash/other type."""
    assert res["outcome"] == "raised", res
    assert any(t in res["types"] for t in (CLEAN,) + extra), res
    first = res["message"].split("\n")[0]
    assert len(first) <= 400
    return first


def toy(out, **kw):
    base = dict(method="sns", student="test_resnet", img_size=16, batch=8, steps=2, dim=32, proj_hidden=16,
                squeeze_hidden=16, out=str(out), eval="none", ckpt_every=1, teacher_kwargs={"G": tiny_G()})
    base.update(kw)
    return FitConfig(**base)


def resume_run(out):
    fit(toy(out, resume=True), log=lambda s: None)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile") / "run"
    fit(toy(out), log=lambda s: None)
    return out


def copy_run(run, tmp_path, name="cut"):
    dst = tmp_path / name
    shutil.copytree(run, dst)
    return dst


def tiny_student(**kw):
    from gandistill.students import create_student

    torch.manual_seed(0)
    return create_student("test_resnet", **{"img_size": 16, "proj_layers": 2, "proj_hidden": 16, "proj_out": 8, **kw})


def student_run(folder, student=None, state=None, config_kwargs=None, meta=None):
    """A run folder as eval/export read it: checkpoint.json + student.safetensors + config.json."""
    student = student or tiny_student()
    folder.mkdir(parents=True, exist_ok=True)
    st = state if state is not None else {k: v.contiguous() for k, v in student.state_dict().items()}
    save_file(st, str(folder / "student.safetensors"))
    kwargs = student.config.to_dict()
    name = kwargs.pop("name")
    (folder / "checkpoint.json").write_text(json.dumps(
        {"format": "gandistill-student", "version": 1, "student": name, "student_kwargs": kwargs,
         "weights": "student.safetensors", "step": 3, **(meta or {})}))
    (folder / "config.json").write_text(json.dumps(
        {"config": {"dataset": "digits", "student": name, "student_kwargs": config_kwargs or {}}, "resolved": {}}))
    return folder


# ------------------------------------------------------------------------------------------------ 1. hangs


@pytest.mark.parametrize("victim", ["checkpoint.json", "student.safetensors", "train_state.pt"])
def test_fifo_in_a_run_folder_does_not_hang_resume(run, tmp_path, victim):
    cut = copy_run(run, tmp_path)
    mkfifo(cut / victim)
    res = run_bounded(resume_run, cut, timeout=60)
    clean(res)


def test_fifo_config_in_a_sibling_run_does_not_hang_resume_auto(run, tmp_path):
    from gandistill.engine.checkpoint import find_latest_run

    root = tmp_path / "runs"
    sib = copy_run(run, root, "sibling")
    mkfifo(sib / "config.json")
    record = json.loads((run / "config.json").read_text())
    res = run_bounded(find_latest_run, root, record, timeout=20)
    assert res["outcome"] == "ok", res


def test_fifo_weights_do_not_hang_eval(tmp_path):
    from gandistill.evaluate import load_student

    folder = student_run(tmp_path / "r")
    mkfifo(folder / "student.safetensors")
    clean(run_bounded(load_student, folder, timeout=20))


def test_fifo_backbone_json_does_not_hang_load_backbone(tmp_path):
    from gandistill.students.export import load_backbone

    mkfifo(tmp_path / "exp" / "backbone.json")
    clean(run_bounded(load_backbone, tmp_path / "exp", timeout=20))


def test_export_refuses_hostile_student_kwargs(tmp_path):
    """A timm kwarg pointing at a FIFO (checkpoint_path) or an unknown kwarg never reaches timm or backbone.json."""
    from gandistill.students.export import export_backbone

    fifo = mkfifo(tmp_path / "pipe")
    for i, kw in enumerate(({"checkpoint_path": str(fifo)}, {"no_such_kwarg": 1})):
        folder = student_run(tmp_path / f"r{i}", config_kwargs=kw)
        res = run_bounded(export_backbone, folder, tmp_path / f"out{i}", timeout=30)
        msg = clean(res)
        assert "is not a known key" in msg
        assert not (tmp_path / f"out{i}" / "backbone.json").exists()


def test_cifar_batch_with_colliding_keys_is_refused_fast(tmp_path):
    from gandistill.data.cifar import read_batch

    path = tmp_path / "data_batch_1"
    path.write_bytes(colliding_int_dict_pickle(60_000))
    t0 = time.process_time()
    res = run_bounded(read_batch, path, timeout=10)
    assert res["outcome"] == "raised" and "ValueError" in res["types"], res
    assert time.process_time() - t0 < 5


# ------------------------------------------------------------------------------------------------ 2. SIGBUS


def _bank_truncated_while_in_use(folder):
    from gandistill.teachers.bank import BankTeacher

    bt = BankTeacher(folder)
    bt.sample(4, torch.Generator().manual_seed(0))
    os.truncate(folder / "bank.bin", 4096)
    bt.sample(64, torch.Generator().manual_seed(1))


def test_bank_truncated_while_in_use_is_an_error_not_sigbus(tmp_path):
    h = bank_header(n=64, c=3, r=16, dims=(8,))
    write_bank(tmp_path / "b", h)
    res = run_bounded(_bank_truncated_while_in_use, tmp_path / "b", timeout=30)
    assert "truncated" in clean(res)


def _stl10_truncated_while_in_use(root):
    from gandistill.data import load_dataset

    ds = load_dataset("stl10", root=root)
    ds[0]
    os.truncate(Path(root) / "stl10_binary" / "train_X.bin", 3 * 96 * 96)
    for i in range(len(ds)):
        ds[i]


def test_stl10_truncated_while_in_use_is_an_error_not_sigbus(tmp_path):
    root = stl10_root(tmp_path / "stl", n=64)
    res = run_bounded(_stl10_truncated_while_in_use, root, timeout=30)
    assert "truncated" in clean(res)


def test_weights_are_read_not_memory_mapped(tmp_path, monkeypatch):
    """safetensors' load_file / safe_open map the file (a file shrinking under the map is SIGBUS): the
    readers must not call them."""
    import safetensors.torch as st

    from gandistill.evaluate import load_student

    folder = student_run(tmp_path / "r")

    def mapped(*a, **k):
        raise AssertionError("weights were memory-mapped")

    monkeypatch.setattr(st, "load_file", mapped)
    monkeypatch.setattr(st, "safe_open", mapped)
    assert load_student(folder).model is not None


# ------------------------------------------------------------------------------------------------ 3. bombs


def test_safetensors_header_of_200k_empty_tensors_is_refused(tmp_path):
    from gandistill.evaluate import load_student

    folder = student_run(tmp_path / "r")
    (folder / "student.safetensors").write_bytes(empty_tensor_flood(200_000))
    t0 = time.process_time()
    res = run_bounded(load_student, folder, timeout=30)
    clean(res)
    assert time.process_time() - t0 < 2


def test_deflated_train_state_is_refused_before_inflating(run, tmp_path):
    cut = copy_run(run, tmp_path)
    state = torch.load(cut / "train_state.pt", weights_only=True)
    (cut / "train_state.pt").unlink()
    deflate_bomb_state(cut / "train_state.pt", state["step"], state["optimizer"], mb=64,
                       extra={k: v for k, v in state.items() if k not in ("step", "optimizer")})
    assert (cut / "train_state.pt").stat().st_size < 4 * 2 ** 20          # 64 MB of zeros inside
    msg = clean(run_bounded(resume_run, cut, timeout=60))
    assert "compressed" in msg


def _limited(fn, *args):
    import resource

    vm = int(next(ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("VmSize:"))) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + 1024 * 2 ** 20, resource.RLIM_INFINITY))
    fn(*args)


def test_checkpoint_widths_are_checked_before_building(tmp_path):
    """proj_hidden / proj_out that the weights contradict are refused from the header, before the
    rebuild allocates anything (here ~4.8 GB under a +1 GB address-space limit)."""
    from gandistill.evaluate import load_student

    folder = student_run(tmp_path / "r")
    meta = json.loads((folder / "checkpoint.json").read_text())
    meta["student_kwargs"].update(proj_layers=5, proj_hidden=20000, proj_out=20000)
    (folder / "checkpoint.json").write_text(json.dumps(meta))
    msg = clean(run_bounded(_limited, load_student, folder, timeout=60))
    assert "projector" in msg


def test_image_decompression_bomb_is_refused_from_its_header(tmp_path):
    from gandistill.data.imagefolder import load_imagefolder

    (tmp_path / "imgs").mkdir()
    png_bomb(tmp_path / "imgs" / "a.png", side=10_000)
    res = run_bounded(_limited, load_imagefolder, tmp_path / "imgs", timeout=60)
    assert "bomb" in clean(res)


# ------------------------------------------------------------------------------------------------ 4. wrong exception types


def _bank_variants():
    good = bank_header()
    out = {"list": [1, 2], "null n": {**good, "n": None}, "negative n": {**good, "n": -3},
           "string n": {**good, "n": "4"}, "float n": {**good, "n": 4.5},
           "missing key": {k: v for k, v in good.items() if k != "target_dims"},
           "offsets not a dict": {**good, "offsets": [1]}, "huge int": {**good, "n": 10 ** 30},
           "zero channels, 2^40 items": {**good, "n": 2 ** 40, "img_channels": 0, "target_dims": [0]}}
    raw = {"inf n": json.dumps(good).replace('"n": 4', '"n": Infinity').encode(),
           "deep": b"[" * 100_000 + b"]" * 100_000, "not utf-8": b"\xff\xfe{}"}
    return out, raw


@pytest.mark.parametrize("case", sorted(_bank_variants()[0]) + sorted(_bank_variants()[1]))
def test_malformed_bank_header_is_one_bank_error(tmp_path, case):
    from gandistill.teachers.bank import BankError, BankTeacher

    headers, raws = _bank_variants()
    if case in headers:
        write_bank(tmp_path / "b", headers[case], size=bank_size(bank_header()))
    else:
        write_bank(tmp_path / "b", None, raw_header=raws[case], size=bank_size(bank_header()))
    with pytest.raises(BankError) as e:
        BankTeacher(tmp_path / "b")
    assert isinstance(e.value, GandistillError) and "\n" not in str(e.value)


@pytest.mark.parametrize("patch", [{"step": "three"}, {"weights": 5}, {"student_kwargs": []},
                                   {"train_state": None}, {"weights": "/etc/passwd"}, {"weights": "../x"}])
def test_resume_json_with_wrong_types_or_escaping_names(run, tmp_path, patch):
    cut = copy_run(run, tmp_path)
    meta = json.loads((cut / "checkpoint.json").read_text())
    meta.update(patch)
    (cut / "checkpoint.json").write_text(json.dumps(meta))
    clean(run_bounded(resume_run, cut, timeout=60))


@pytest.mark.parametrize("path", ["~nosuchuser_gd/x.pkl", "/tmp/" + "a" * 300 + "/x"])
def test_unusable_paths_are_one_clean_error(path):
    from gandistill.teachers.bank import BankTeacher
    from gandistill.evaluate import load_student
    from gandistill.students.export import load_backbone

    for fn in (load_student, BankTeacher, load_backbone):
        with pytest.raises(GandistillError):
            fn(path)


def test_cli_prints_markup_in_paths_verbatim(tmp_path, monkeypatch, capsys):
    from gandistill import cli

    bad = tmp_path / "x[/]y[red]"
    bad.mkdir(parents=True)
    (bad / "checkpoint.json").write_text("{not json")
    monkeypatch.setattr(sys, "argv", ["gandistill", "eval", str(bad / "checkpoint.json")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "[/]y[red]" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------ 5. garbage


@pytest.mark.parametrize("bad", ["nan", "inf", "uint8"])
def test_garbage_weights_are_refused_naming_the_tensor(tmp_path, bad):
    from gandistill.evaluate import load_student

    s = tiny_student()
    state = {k: v.contiguous().clone() for k, v in s.state_dict().items()}
    key = "projector.0.weight"
    if bad == "uint8":
        state[key] = torch.ones_like(state[key], dtype=torch.uint8)
    else:
        state[key][0, 0] = float(bad)
    folder = student_run(tmp_path / "r", s, state=state)
    with pytest.raises(GandistillError, match=key.replace(".", r"\.")):
        load_student(folder)


def test_eval_refuses_weights_named_outside_the_folder(tmp_path):
    from gandistill.evaluate import load_student

    folder = student_run(tmp_path / "r")
    other = student_run(tmp_path / "elsewhere")
    meta = json.loads((folder / "checkpoint.json").read_text())
    meta["weights"] = str(other / "student.safetensors")                     # an absolute path
    (folder / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(GandistillError, match="absolute"):
        load_student(folder)
    os.symlink(other / "student.safetensors", folder / "link.safetensors")  # a link leading out
    meta["weights"] = "link.safetensors"
    (folder / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(GandistillError, match="outside the folder"):
        load_student(folder)


def test_bank_with_nan_targets_is_refused(tmp_path):
    from gandistill.teachers.bank import BankError, BankTeacher

    h = bank_header(n=4, c=3, r=4, dims=(5,))
    path = write_bank(tmp_path / "b", h)
    with open(path, "r+b") as f:
        f.seek(h["offsets"]["targets"])
        f.write(np.full(4 * 5, np.nan, dtype="<f2").tobytes())
    with pytest.raises(BankError, match="non-finite"):
        BankTeacher(path).sample(4)


def test_log_appends_refuse_a_fifo_at_once(tmp_path):
    """A FIFO planted under a log's name (metrics.jsonl, errors.log, the twin's log) would block a plain
    open(..., "a") forever; the writer refuses it at once, and a regular log is appended to."""
    import os
    import threading

    from gandistill.io.errors import UnsafeFileError
    from gandistill.io.files import open_append

    fifo = tmp_path / "metrics.jsonl"
    os.mkfifo(fifo)
    done = []

    def attempt():
        try:
            open_append(fifo, "metrics log")
        except UnsafeFileError as e:
            done.append(str(e))

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(5)
    assert done and "metrics log" in done[0] and "metrics.jsonl" in done[0]
    (tmp_path / "d").mkdir()
    with pytest.raises(UnsafeFileError, match="not a regular file|cannot open"):
        open_append(tmp_path / "d", "error log")
    log = tmp_path / "log.txt"
    for line in ("a", "b"):
        with open_append(log) as f:
            f.write(line + "\n")
    assert log.read_text() == "a\nb\n"
