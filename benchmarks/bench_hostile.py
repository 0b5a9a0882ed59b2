"""Worst case per attack class on run folders, banks, datasets and exports: CPU seconds and peak memory.

    OMP_NUM_THREADS=1 python benchmarks/bench_hostile.py            # every class (about a minute)
    python benchmarks/bench_hostile.py --case fifo_resume           # one class

Each class runs in a fresh subprocess: the hostile input is built first, then the peak-RSS counter is
reset (``/proc/self/clear_refs``) and the reader is called; the row reports the outcome (the error type
or ``ok``), the CPU time of the call and its peak RSS above the RSS just before it. Budget (issue 15):
one clean line in <= 1 s of CPU and <= +200 MB. ``resume_setup_baseline`` is what ``fit --resume``
costs on the toy run before it reads ``train_state.pt`` (teacher, student, data: not the attack's
cost), so the ``train_state.pt`` rows call its reader directly. The last rows compare what replacing memory maps by
positioned reads costs (a bank's ``sample`` and STL-10 indexing, batches of 256).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def _rss_kb(field: str) -> int:
    for ln in open("/proc/self/status"):
        if ln.startswith(field + ":"):
            return int(ln.split()[1])
    return 0


def measure(fn, *args) -> dict:
    """Run ``fn(*args)``: outcome, CPU seconds, peak MB above the RSS before the call."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                   # reset VmHWM to the current RSS
    start_rss = _rss_kb("VmRSS")
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    try:
        fn(*args)
        outcome = "ok"
    except BaseException as e:  # noqa: BLE001 - the outcome is the measurement
        outcome = type(e).__name__
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"outcome": outcome, "cpu_s": round(cpu, 3), "peak_mb": round((_rss_kb("VmHWM") - start_rss) / 1024, 1)}


# ------------------------------------------------------------------------------------------------ cases


def _run_template(tmp: Path) -> Path:
    from test_hostile_io import toy

    from gandistill.engine import fit

    out = tmp / "run"
    fit(toy(out), log=lambda s: None)
    return out


def _student_run(tmp: Path, **kw) -> Path:
    from test_hostile_io import student_run

    return student_run(tmp / "srun", **kw)


def _fifo_resume(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    from test_hostile_io import resume_run

    A.mkfifo(run / "checkpoint.json")
    return measure(resume_run, run)


def _fifo_train_state(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    from gandistill.io.tensors import read_train_state

    A.mkfifo(run / "train_state.pt")
    return measure(read_train_state, run / "train_state.pt")


def _resume_setup_baseline(tmp: Path, run: Path) -> dict:
    """What fit(resume) costs before it reads train_state.pt."""
    from test_hostile_io import resume_run

    (run / "train_state.pt").write_bytes(b"")
    return measure(resume_run, run)


def _fifo_sibling_config(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    from gandistill.engine.checkpoint import find_latest_run

    rec = json.loads((run / "config.json").read_text())
    A.mkfifo(run / "config.json")
    return measure(find_latest_run, tmp, rec)


def _fifo_eval_weights(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    from gandistill.evaluate import load_student

    folder = _student_run(tmp)
    A.mkfifo(folder / "student.safetensors")
    return measure(load_student, folder)


def _fifo_backbone_json(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    from gandistill.students.export import load_backbone

    A.mkfifo(tmp / "exp" / "backbone.json")
    return measure(load_backbone, tmp / "exp")


def _export_fifo_kwarg(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    from gandistill.students.export import export_backbone

    folder = _student_run(tmp, config_kwargs={"checkpoint_path": str(A.mkfifo(tmp / "pipe"))})
    return measure(export_backbone, folder, tmp / "out")


def _cifar_colliding_keys_60k(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    from gandistill.data.cifar import read_batch

    (tmp / "b").write_bytes(A.colliding_int_dict_pickle(60_000))
    return measure(read_batch, tmp / "b")


def _bank_truncated_in_use(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    from gandistill.teachers.bank import BankTeacher

    A.write_bank(tmp / "bank", A.bank_header(n=4096, c=3, r=16, dims=(64,)))
    bt = BankTeacher(tmp / "bank")
    os.truncate(tmp / "bank" / "bank.bin", 8192)
    return measure(bt.sample, 256)


def _stl10_truncated_in_use(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    from gandistill.data import load_dataset

    ds = load_dataset("stl10", root=A.stl10_root(tmp / "stl", n=256))
    os.truncate(tmp / "stl" / "stl10_binary" / "train_X.bin", 3 * 96 * 96)
    return measure(ds.take, slice(0, 256))


def _safetensors_200k_empty(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    from gandistill.evaluate import load_student

    folder = _student_run(tmp)
    (folder / "student.safetensors").write_bytes(A.empty_tensor_flood(200_000))
    return measure(load_student, folder)


def _safetensors_20k_empty_allowed_count(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    from gandistill.io.tensors import read_safetensors

    (tmp / "w.safetensors").write_bytes(A.empty_tensor_flood(20_000))
    return measure(read_safetensors, tmp / "w.safetensors")


def _train_state_deflate_bomb(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    import torch

    state = torch.load(run / "train_state.pt", weights_only=True)
    (run / "train_state.pt").unlink()
    A.deflate_bomb_state(run / "train_state.pt", state["step"], state["optimizer"], mb=1400,
                         extra={k: v for k, v in state.items() if k not in ("step", "optimizer")})
    from gandistill.io.tensors import read_train_state

    return measure(read_train_state, run / "train_state.pt")


def _train_state_1mb_opcodes(tmp: Path, run: Path) -> dict:
    import io
    import zipfile

    import torch

    buf = io.BytesIO()
    torch.save({"step": 0}, buf)
    zin = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(tmp / "train_state.pt", "w", zipfile.ZIP_STORED) as z:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                k = (2 ** 20 - 64) // 2     # a dict {"step": 0, "x": [0] * k}: the largest pickle allowed
                data = (b"\x80\x02}(X\x04\x00\x00\x00stepK\x00X\x01\x00\x00\x00x](" + b"K\x00" * k
                        + b"eu.")
            z.writestr(info.filename, data)
    from gandistill.io.tensors import read_train_state

    return measure(read_train_state, tmp / "train_state.pt")


def _checkpoint_widths_4gb(tmp: Path, run: Path) -> dict:
    from gandistill.evaluate import load_student

    folder = _student_run(tmp)
    meta = json.loads((folder / "checkpoint.json").read_text())
    meta["student_kwargs"].update(proj_layers=5, proj_hidden=20000, proj_out=20000)
    (folder / "checkpoint.json").write_text(json.dumps(meta))
    return measure(load_student, folder)


def _png_bomb_100mpx(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    from gandistill.data.imagefolder import load_imagefolder

    (tmp / "imgs").mkdir()
    A.png_bomb(tmp / "imgs" / "a.png", side=10_000)
    return measure(load_imagefolder, tmp / "imgs")


def _bank_header_1mb_deep(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    from gandistill.teachers.bank import read_header

    A.write_bank(tmp / "bank", None, raw_header=b"[" * 2 ** 19 + b"]" * 2 ** 19, size=2 ** 21)
    return measure(read_header, tmp / "bank")


def _bank_header_2e40_items(tmp: Path, run: Path) -> dict:
    import io_attacks as A
    from gandistill.teachers.bank import BankTeacher

    h = A.bank_header()
    A.write_bank(tmp / "bank", {**h, "n": 2 ** 40, "img_channels": 0, "target_dims": [0]}, size=A.bank_size(h))
    return measure(BankTeacher, tmp / "bank")


def _checkpoint_json_4mb(tmp: Path, run: Path) -> dict:
    from gandistill.evaluate import load_student

    folder = _student_run(tmp)
    meta = json.loads((folder / "checkpoint.json").read_text())
    meta["pad"] = [[0] * 10 for _ in range(19_000)]
    text = json.dumps(meta)
    (folder / "checkpoint.json").write_text(text + " " * max(0, 4 * 2 ** 20 - len(text) - 1))
    return measure(load_student, folder)


def bank_read_cost(tmp: Path) -> dict:
    """ms per ``sample(256)`` of a 16 px bank: positioned reads vs the memory map the bank used before."""
    import numpy as np
    import torch

    import io_attacks as A
    from gandistill.teachers.bank import BankTeacher

    h = A.bank_header(n=8192, c=3, r=16, dims=(512,))
    A.write_bank(tmp / "bank", h, fill=b"\1")
    bt = BankTeacher(tmp / "bank")
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(50):
        bt.sample(256, g)
    read_ms = (time.perf_counter() - t0) / 50 * 1e3
    off, n = h["offsets"], h["n"]
    imgs = np.memmap(tmp / "bank" / "bank.bin", mode="r", dtype=np.uint8, offset=off["images"], shape=(n, 3, 16, 16))
    tg = np.memmap(tmp / "bank" / "bank.bin", mode="r", dtype=np.float16, offset=off["targets"], shape=(n, 512))
    t0 = time.perf_counter()
    for _ in range(50):                                # the memory-mapped sample() as it was before issue 15
        idx = torch.randint(n, (256,), generator=g).numpy()
        img = torch.from_numpy(np.ascontiguousarray(imgs[idx])).float().mul_(1.0 / 127.5).sub_(1.0)
        flat = torch.from_numpy(np.ascontiguousarray(tg[idx])).float()
        list(flat.split([512], dim=1)), img
    mmap_ms = (time.perf_counter() - t0) / 50 * 1e3
    return {"outcome": f"pread {read_ms:.2f} ms vs mmap {mmap_ms:.2f} ms per sample(256)", "cpu_s": 0, "peak_mb": 0}


def stl_read_cost(tmp: Path) -> dict:
    import numpy as np

    import io_attacks as A
    from gandistill.data import load_dataset

    ds = load_dataset("stl10", root=A.stl10_root(tmp / "stl", n=1024))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(20):
        ds.images[rng.integers(0, 1024, 256)]
    read_ms = (time.perf_counter() - t0) / 20 * 1e3
    mm = np.memmap(tmp / "stl" / "stl10_binary" / "train_X.bin", dtype=np.uint8, mode="r", shape=(1024, 3, 96, 96))
    t0 = time.perf_counter()
    for _ in range(20):
        np.ascontiguousarray(mm[rng.integers(0, 1024, 256)].transpose(0, 1, 3, 2))
    mmap_ms = (time.perf_counter() - t0) / 20 * 1e3
    return {"outcome": f"pread {read_ms:.2f} ms vs mmap {mmap_ms:.2f} ms per 256 images", "cpu_s": 0, "peak_mb": 0}


def _read_vs_mmap_bank(tmp: Path, run: Path) -> dict:
    return bank_read_cost(tmp)


def _read_vs_mmap_stl10(tmp: Path, run: Path) -> dict:
    return stl_read_cost(tmp)


# attack name -> builder and measurement, in the order the full benchmark runs them
CASES = {"resume_setup_baseline": _resume_setup_baseline, "fifo_resume": _fifo_resume,
         "fifo_train_state": _fifo_train_state, "fifo_sibling_config": _fifo_sibling_config,
         "fifo_eval_weights": _fifo_eval_weights, "fifo_backbone_json": _fifo_backbone_json,
         "export_fifo_kwarg": _export_fifo_kwarg, "cifar_colliding_keys_60k": _cifar_colliding_keys_60k,
         "bank_truncated_in_use": _bank_truncated_in_use, "stl10_truncated_in_use": _stl10_truncated_in_use,
         "safetensors_200k_empty": _safetensors_200k_empty,
         "safetensors_20k_empty_allowed_count": _safetensors_20k_empty_allowed_count,
         "train_state_deflate_bomb": _train_state_deflate_bomb, "train_state_1mb_opcodes": _train_state_1mb_opcodes,
         "checkpoint_widths_4gb": _checkpoint_widths_4gb, "png_bomb_100mpx": _png_bomb_100mpx,
         "bank_header_1mb_deep": _bank_header_1mb_deep, "bank_header_2e40_items": _bank_header_2e40_items,
         "checkpoint_json_4mb": _checkpoint_json_4mb, "read_vs_mmap_bank": _read_vs_mmap_bank,
         "read_vs_mmap_stl10": _read_vs_mmap_stl10}


def case(name: str, tmp: Path, template: Path) -> dict:
    """Build the hostile input of attack ``name`` in ``tmp`` (on a copy of ``template`` where the run
    exists) and measure its reader."""
    import io_attacks  # noqa: F401 - imported before every case, as the cases' helpers
    import test_hostile_io  # noqa: F401
    import timm  # noqa: F401 - imports are not the attack's cost

    import gandistill.evaluate  # noqa: F401
    import gandistill.students.export  # noqa: F401

    if name not in CASES:
        raise SystemExit(f"unknown case {name}")
    run = tmp / "cut"
    if template.exists():
        shutil.copytree(template, run)
    return CASES[name](tmp, run)


NEEDS_RUN = {"resume_setup_baseline", "fifo_resume", "fifo_train_state", "fifo_sibling_config", "train_state_deflate_bomb"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=CASES)
    ap.add_argument("--template", help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    if args.case:                                       # child: one case, one JSON line
        with tempfile.TemporaryDirectory() as d:
            print(json.dumps({"case": args.case, **case(args.case, Path(d), Path(args.template or "/nonexistent"))}))
        return
    with tempfile.TemporaryDirectory() as d:
        template = _run_template(Path(d))
        rows = []
        for name in CASES:
            cmd = [sys.executable, __file__, "--case", name] + (["--template", str(template)] if name in NEEDS_RUN else [])
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
                line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
                row = json.loads(line[-1]) if line else {"case": name, "outcome": f"died rc={out.returncode}",
                                                         "cpu_s": float("nan"), "peak_mb": float("nan")}
            except subprocess.TimeoutExpired:
                row = {"case": name, "outcome": f"timeout > {args.timeout:.0f} s", "cpu_s": float("nan"),
                       "peak_mb": float("nan")}
            rows.append(row)
            print(f"| {row['case']:36s} | {row['outcome']:58s} | {row['cpu_s']:7} | {row['peak_mb']:8} |", flush=True)


if __name__ == "__main__":
    main()
