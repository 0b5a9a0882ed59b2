"""One-shot GPU readiness check: one prepared, unattended script for a short GPU slot (<= 8 minutes).

    python benchmarks/gpu_check.py                # on one GPU (H200-sized): the full check
    python benchmarks/gpu_check.py --dry-run      # every part on CPU at tiny sizes (tests/test_gpu_check.py)

It prints one table with the machine and versions:

* **fit steps** of ``sns`` and ``vicreg-real`` at SnS's CIFAR-10 preset shape (ResNet-18 with the CIFAR
  stem, batch 512, SGD base lr 0.03 / wd 5e-4, ssl-cifar augmentation shared per synthetic batch, a
  random-weight ``cifar``-config StyleGAN2 G with 512 channels built by our own code) in fp32, bf16
  autocast and bf16 + channels_last, each without and with ``torch.compile``: images/s, ms/step, peak memory.
  The real images are the bundled digits at 32 px (only the shape matters for speed; CIFAR-10 is not
  needed on the machine);
* the **G forward** (batch 256) per path: fp32, bf16 autocast, fp32 + ``torch.compile``, with the max
  abs difference of the images to fp32;
* a **1-process NCCL torchrun** smoke run (process group, all_reduce, broadcast_object, one DDP step
  of the ResNet-18 student);
* the **estimated wall time of an 800-epoch CIFAR-10 run** (50,000 // 512 = 97 steps per epoch) from the
  fastest measured ``sns`` step.

Every part runs in its own subprocess with a time box; a failing or overrunning part prints one line
(its error) and the others go on. The table is also written to ``$OUT/gpu_check.md`` when ``$OUT`` is set
(and to ``--out FILE`` when given).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

VARIANTS = ("fp32", "bf16", "bf16+channels_last")
EPOCHS, TRAIN_IMAGES = 800, 50000
#: (shape of a part, seconds it may take) -- about 7 minutes in all on one GPU
FULL = dict(batch=512, img=32, student="resnet18", g_cfg="cifar", g_batch=256, warmup=3, steps=10, g_reps=10)
TINY = dict(batch=8, img=16, student="test_resnet", g_cfg="tiny", g_batch=4, warmup=1, steps=1, g_reps=1)
BUDGET_S = {"step sns": 55, "step vicreg-real": 45, "step sns compiled": 120, "step vicreg-real compiled": 90,
            "G forward": 70, "NCCL torchrun": 50}


def _row(**kw: Any) -> None:
    """A result row for the parent (one JSON line; rows printed before a time-out still count)."""
    print("ROW " + json.dumps(kw), flush=True)


def _error(e: BaseException) -> str:
    from gandistill.io.errors import one_line

    return one_line(f"{type(e).__name__}: {e}", 200)


def _generator(shape: Dict[str, Any]):
    """A random-weight StyleGAN2 G built by our code (``cifar``: 32 px, 512 channels)."""
    import torch

    from gandistill.teachers.stylegan2 import Generator
    from gandistill.teachers.stylegan2.configs import sg2_kwargs

    torch.manual_seed(0)
    g_kw, _ = sg2_kwargs(shape["g_cfg"], img_resolution=shape["img"])
    return Generator(**g_kw)


def _step_parts(method: str, variant: str, compiled: bool, shape: Dict[str, Any], dev: str, dry: bool, G: Any):
    import torch

    from gandistill.data import load_dataset
    from gandistill.engine import FitConfig
    from gandistill.engine.distributed import Dist
    from gandistill.engine.parts import build_parts, build_teacher
    from gandistill.engine.plan import make_plan

    ds = load_dataset("digits", split="train", img_size=shape["img"])
    cfg = FitConfig(method=method, student=shape["student"], cifar_stem=True, img_size=shape["img"],
                    batch=shape["batch"], base_lr=0.03, wd=5e-4, augment="ssl-cifar", shared_aug=True,
                    precision="fp32" if variant == "fp32" else "bf16", channels_last="channels_last" in variant,
                    eval="none", steps=10 ** 6, seed=0, out=tempfile.mkdtemp(), device=dev,
                    teacher_kwargs={"G": G} if method == "sns" else {})
    device = torch.device(dev)
    plan = make_plan(cfg, len(ds), ds.resolution, device, 1)
    parts = build_parts(plan, build_teacher(plan, device), ds, device, Dist())
    if "channels_last" in variant:
        parts.train_model.to(memory_format=torch.channels_last)
    if compiled:
        # Student.forward_groups swaps BatchNorm.forward on the instances for each call, which dynamo cannot
        # trace ("'BatchNorm1d' object has no attribute 'forward'"): compiled rows run the passes separately
        parts.student.forward_groups = None
        parts.train_model = torch.compile(parts.train_model, backend="eager" if dry else "inductor")
    parts.train_model.train()
    return plan, parts


def part_step(method: str, compiled: bool, dry: bool) -> None:
    """Images/s, ms/step and peak memory of ``method``'s fit step per variant."""
    import torch

    from gandistill.engine import step as S

    dev = "cpu" if dry else "cuda"
    shape = TINY if dry else FULL
    G = _generator(shape) if method == "sns" else None
    for variant in VARIANTS:
        name = f"{method} {variant}" + (" compiled" if compiled else "")
        try:
            plan, parts = _step_parts(method, variant, compiled, shape, dev, dry, G)
            if dev == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t_warm = time.perf_counter()
            for _ in range(shape["warmup"]):
                S.update(parts, S.forward(plan, parts, torch.device(dev)).loss)
            _sync(dev)
            t0 = time.perf_counter()
            for _ in range(shape["steps"]):
                S.update(parts, S.forward(plan, parts, torch.device(dev)).loss)
            _sync(dev)
            dt = (time.perf_counter() - t0) / shape["steps"]
            peak = torch.cuda.max_memory_allocated() / 2 ** 30 if dev == "cuda" else float("nan")
            _row(part="step", name=name, method=method, ok=True, img_s=shape["batch"] / dt, ms=dt * 1e3,
                 peak_gib=peak, warmup_s=t0 - t_warm)
        except Exception as e:  # one failing variant must not hide the others
            _row(part="step", name=name, method=method, ok=False, error=_error(e))


def _sync(dev: str) -> None:
    if dev == "cuda":
        import torch

        torch.cuda.synchronize()


def part_gforward(dry: bool) -> None:
    """G forward per path with the max abs difference of the images to fp32."""
    import torch

    from gandistill.teachers.generator import GeneratorTeacher

    dev = "cpu" if dry else "cuda"
    shape = TINY if dry else FULL
    G = _generator(shape)
    ref = None
    for name, precision, compiled in (("fp32", "fp32", False), ("bf16 autocast", "bf16", False),
                                      ("fp32 compiled", "fp32", True)):
        try:
            t = GeneratorTeacher(G=G, device=dev, noise_mode="const", precision=precision)
            if compiled:
                t.G.synthesis = torch.compile(t.G.synthesis, backend="eager" if dry else "inductor")
            with torch.no_grad():
                t.sample(shape["g_batch"], generator=torch.Generator().manual_seed(1))       # warm-up / compile
                _sync(dev)
                t0 = time.perf_counter()
                for _ in range(shape["g_reps"]):
                    img = t.sample(shape["g_batch"], generator=torch.Generator().manual_seed(1)).images
                _sync(dev)
            dt = (time.perf_counter() - t0) / shape["g_reps"]
            img = img.float().cpu()
            ref = img if ref is None else ref
            _row(part="G", name=f"G forward {name}", ok=True, img_s=shape["g_batch"] / dt, ms=dt * 1e3,
                 max_diff=float((img - ref).abs().max()))
            if compiled:
                t.G.synthesis = t.G.synthesis._orig_mod
        except Exception as e:
            _row(part="G", name=f"G forward {name}", ok=False, error=_error(e))


def part_nccl(dry: bool) -> None:
    """Under torchrun (1 process): NCCL (gloo in a dry run) group, all_reduce, broadcast_object, one DDP step."""
    import torch
    import torch.distributed as dist

    from gandistill.students import create_student

    backend, dev = ("gloo", "cpu") if dry else ("nccl", f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    try:
        if dev.startswith("cuda"):
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
        t = torch.ones(4, device=dev) * (dist.get_rank() + 1)
        dist.all_reduce(t)
        obj = [{"hello": dist.get_rank()}]
        dist.broadcast_object_list(obj, src=0)
        model = torch.nn.parallel.DistributedDataParallel(create_student("resnet18", img_size=32).to(dev))
        x = torch.randn(8, 3, 32, 32, device=dev)
        model(x).float().pow(2).mean().backward()
        dist.barrier()
        ok = bool(t.sum().item() == 4 * dist.get_world_size()) and obj[0]["hello"] == 0
        _row(part="nccl", name=f"torchrun 1 process ({backend})", ok=ok, world=dist.get_world_size(),
             error=None if ok else "all_reduce/broadcast gave wrong values")
        dist.destroy_process_group()
    except Exception as e:
        _row(part="nccl", name=f"torchrun 1 process ({backend})", ok=False, error=_error(e))


def run_part(label: str, argv: List[str], budget: float, env: Dict[str, str]) -> List[Dict[str, Any]]:
    """Run one part in a subprocess with a time box; its rows, or one error row."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=budget, env=env, cwd=_ROOT)
        out, err, note = p.stdout, p.stderr, None if p.returncode == 0 else f"exit code {p.returncode}"
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err, note = "", f"timed out after {budget:.0f}s"
    rows = [json.loads(line[4:]) for line in out.splitlines() if line.startswith("ROW ")]
    if note or not rows:
        tail = (err or "").strip().splitlines()[-1:] or [""]
        rows.append({"part": label, "name": label, "ok": False, "error": f"{note or 'no result'} {tail[0][:160]}"})
    for r in rows:
        r.setdefault("wall_s", round(time.perf_counter() - t0, 1))
    return rows


def run_inline(label: str, argv: List[str]) -> List[Dict[str, Any]]:
    """Run one part in this process (``--inline``: no subprocess start-up, no time box; for fast tests)."""
    import contextlib
    import io

    buf = io.StringIO()
    args = [a for a in argv[argv.index(os.path.abspath(__file__)) + 1:]]
    if "nccl" in args:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29500 + os.getpid() % 1000), RANK="0",
                          LOCAL_RANK="0", WORLD_SIZE="1")
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(buf):
            main(args)
    except Exception as e:
        buf.write("ROW " + json.dumps({"part": label, "name": label, "ok": False, "error": _error(e)}) + "\n")
    rows = [json.loads(line[4:]) for line in buf.getvalue().splitlines() if line.startswith("ROW ")]
    for r in rows:
        r.setdefault("wall_s", round(time.perf_counter() - t0, 1))
    return rows


def parts_to_run(dry: bool) -> Dict[str, List[str]]:
    me = [sys.executable, os.path.abspath(__file__)] + (["--dry-run"] if dry else [])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                os.path.abspath(__file__)] + (["--dry-run"] if dry else [])
    return {
        "step sns": me + ["--part", "step", "--method", "sns"],
        "step vicreg-real": me + ["--part", "step", "--method", "vicreg-real"],
        "step sns compiled": me + ["--part", "step", "--method", "sns", "--compiled"],
        "step vicreg-real compiled": me + ["--part", "step", "--method", "vicreg-real", "--compiled"],
        "G forward": me + ["--part", "gforward"],
        "NCCL torchrun": torchrun + ["--part", "nccl"],
    }


def facts(dry: bool) -> Dict[str, str]:
    import platform

    import torch

    f = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "python": platform.python_version(),
         "torch": torch.__version__, "cuda": str(torch.version.cuda), "mode": "dry run (CPU, tiny sizes)" if dry
         else "GPU"}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        f["gpu"] = f"{p.name}, {p.total_memory / 2 ** 30:.0f} GiB, {torch.cuda.device_count()} device(s)"
        f["nccl"] = ".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else "n/a"
    try:
        import kornia
        import timm

        f["timm / kornia"] = f"{timm.__version__} / {kornia.__version__}"
    except ImportError:
        pass
    return f


def estimate(rows: List[Dict[str, Any]]) -> Optional[str]:
    """800 CIFAR-10 epochs at the fastest measured sns step."""
    sns = [r for r in rows if r.get("part") == "step" and r.get("method") == "sns" and r.get("ok")]
    if not sns:
        return None
    best = min(sns, key=lambda r: r["ms"])
    steps = EPOCHS * (TRAIN_IMAGES // FULL["batch"])
    hours = steps * best["ms"] / 1e3 / 3600
    return (f"800-epoch CIFAR-10 sns run: {steps} steps x {best['ms']:.1f} ms ({best['name']}) = {hours:.2f} h "
            "of training (closing probes not included)")


def render(f: Dict[str, str], rows: List[Dict[str, Any]], est: Optional[str]) -> str:
    lines = ["# gandistill GPU check", ""] + [f"- {k}: {v}" for k, v in f.items()] + [""]
    lines += ["| part | images/s | ms | peak GiB | max diff to fp32 | status |", "|---|---|---|---|---|---|"]
    for r in rows:
        num = (lambda k, fmt: format(r[k], fmt) if isinstance(r.get(k), (int, float)) and r[k] == r[k] else "")
        status = "ok" if r.get("ok") else f"FAILED: {r.get('error')}"
        lines.append(f"| {r['name']} | {num('img_s', '.0f')} | {num('ms', '.1f')} | {num('peak_gib', '.2f')} | "
                     f"{num('max_diff', '.2e')} | {status} |")
    lines += ["", est or "800-epoch estimate: no successful sns step to base it on"]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="every part on CPU at tiny sizes")
    ap.add_argument("--part", choices=("step", "gforward", "nccl"), help=argparse.SUPPRESS)
    ap.add_argument("--method", default="sns", help=argparse.SUPPRESS)
    ap.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help="also write the table here")
    ap.add_argument("--budget-scale", type=float, default=1.0, help="multiply every part's time box")
    ap.add_argument("--inline", action="store_true", help="run the parts in this process (no time boxes)")
    a = ap.parse_args(argv)
    if a.part == "step":
        return part_step(a.method, a.compiled, a.dry_run) or 0
    if a.part == "gforward":
        return part_gforward(a.dry_run) or 0
    if a.part == "nccl":
        return part_nccl(a.dry_run) or 0
    env = {**os.environ, "PYTHONPATH": _ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "GANDISTILL_NO_PROGRESS": "1"}
    if a.dry_run:
        env["CUDA_VISIBLE_DEVICES"] = ""
    t0 = time.perf_counter()
    rows: List[Dict[str, Any]] = []
    for label, cmd in parts_to_run(a.dry_run).items():
        rows += (run_inline(label, cmd) if a.inline else
                 run_part(label, cmd, BUDGET_S[label] * a.budget_scale * (3 if a.dry_run else 1), env))
        print(f"# {label}: done at {time.perf_counter() - t0:.0f}s", flush=True)
    text = render(facts(a.dry_run), rows, estimate(rows)) + f"\ntotal wall time {time.perf_counter() - t0:.0f}s\n"
    print(text)
    for dest in [a.out] + ([os.path.join(os.environ["OUT"], "gpu_check.md")] if os.environ.get("OUT") else []):
        if dest:
            Path(dest).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
