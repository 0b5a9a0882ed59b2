"""Where the default ``gandistill fit`` spends its time: start-up, data and teacher, the training step
(sns and its SSL twin vicreg-real), and each closing probe per column (feature extraction, few-shot,
kNN, fast linear), so that the twin's column can be paid for without lowering the step count.

    OMP_NUM_THREADS=1 python benchmarks/bench_default_run.py              # 20 timed steps per method
    python benchmarks/bench_default_run.py --steps 10 --skip-probes       # the step only

Step times are the median of ``--steps`` steps after 3 warm-up steps, extrapolated to the default 500.
The probe rows time one random-init student column (a trained student costs the same: same network,
same feature width) and the raw-pixel column. The machine is usually shared: the load average is
printed at the start and the end, and the shares (% of the extrapolated total) travel better than seconds.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: E402 (adds the repo root to sys.path)

REPO = Path(__file__).resolve().parents[1]


def time_startup() -> float:
    """Wall time of ``import gandistill.cli`` in a fresh interpreter (what every command pays first)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gandistill.cli"], cwd=REPO, check=True)
    return time.perf_counter() - t0


def time_steps(method: str, steps: int, out: Path) -> dict:
    """Set-up time and the median step time of ``method`` on the default config (probes off)."""
    import torch

    from gandistill.engine import FitConfig, fit

    times: list = []
    t_prev = [None]

    def log(s: str) -> None:        # the loop logs every step with log_every=1; time between log lines
        now = time.perf_counter()
        if s.startswith("step") or "loss" in s:
            if t_prev[0] is not None:
                times.append(now - t_prev[0])
            t_prev[0] = now

    torch.manual_seed(0)
    t0 = time.perf_counter()
    res = fit(FitConfig(method=method, steps=steps + 3, eval="none", out=str(out / method), progress=False,
                        log_every=1, ssl_twin=False), log=log)
    total = time.perf_counter() - t0
    per_step = C.median(times[3:]) if len(times) > 4 else res.train_time_s / max(1, steps + 3)
    return {"setup_s": total - res.train_time_s, "step_s": per_step, "train_s": res.train_time_s}


def time_probes(out: Path) -> dict:
    """Per-probe seconds of one student column and of the raw-pixel column (default probe settings)."""
    from gandistill.evaluate import load_eval_splits
    from gandistill.evaluation.features import extract_features
    from gandistill.evaluation.fewshot import fewshot_probe
    from gandistill.evaluation.knn import knn_features
    from gandistill.evaluation.linear import probe_features
    from gandistill.evaluation.suite import ProbeConfig, raw_pixels
    from gandistill.students import create_student

    cfg = ProbeConfig()
    train, test = load_eval_splits("digits", None, 32, None, None)
    student = create_student("resnet10t", img_size=32, cifar_stem=False).eval()
    res = {}
    for name, rep in (("student column", student), ("raw-pixel column", raw_pixels)):
        t0 = time.perf_counter()
        ftr, ytr = extract_features(rep, train, cfg.batch, "cpu")
        fte, yte = extract_features(rep, test, cfg.batch, "cpu")
        t1 = time.perf_counter()
        fewshot_probe(ftr, ytr, fte, yte, shots=cfg.shots, draws=cfg.draws, seed=0)
        t2 = time.perf_counter()
        knn_features(ftr, ytr, fte, yte, k=cfg.knn_k, t=cfg.knn_t)
        t3 = time.perf_counter()
        probe_features(ftr, ytr, fte, yte, epochs=cfg.fast_epochs, batch=cfg.batch, seed=0)
        t4 = time.perf_counter()
        res[name] = {"extract": t1 - t0, "fewshot": t2 - t1, "knn": t3 - t2, "fast": t4 - t3, "dim": ftr.shape[1]}
    return res


def time_twin_schedule(steps: int, threads: int, out: Path) -> dict:
    """Wall time of training the run and its SSL twin (``steps`` each, probes on 200/100 images only):
    one after the other on ``threads`` threads, and side by side (the twin in a second process, the
    threads split between the two) -- what ``fit`` does on a multi-core CPU."""
    import os

    import torch

    from gandistill.engine import FitConfig, fit

    res = {}
    for mode, label in (("0", f"sequential, {threads} thread(s) each"), ("1", "side by side, threads split")):
        os.environ["GANDISTILL_TWIN_PARALLEL"] = mode
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        r = fit(FitConfig(steps=steps, ssl_twin=True, eval="knn", eval_random=False, eval_raw_pixels=False,
                          eval_max_train=200, eval_max_test=100, out=str(out / f"twin-{mode}"), progress=False),
                log=lambda s: None)
        res[label] = {"wall_s": time.perf_counter() - t0, "main_train_s": r.train_time_s,
                      "twin_train_s": (r.twin or {}).get("train_time_s")}
    os.environ.pop("GANDISTILL_TWIN_PARALLEL", None)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per method (after 3 warm-up steps)")
    ap.add_argument("--total-steps", type=int, default=500, help="the default run's steps (extrapolation)")
    ap.add_argument("--skip-probes", action="store_true")
    ap.add_argument("--skip-steps", action="store_true")
    ap.add_argument("--twin-schedule", type=int, default=0, metavar="STEPS",
                    help="also time run + twin sequential vs side by side for STEPS steps each")
    ap.add_argument("--threads", type=int, default=2, help="--twin-schedule: threads of the sequential case")
    args = ap.parse_args()
    C.print_facts(C.machine())
    out = Path(tempfile.mkdtemp(prefix="gandistill-bench-default-"))
    parts = [("start-up (import gandistill.cli)", time_startup())]
    if not args.skip_steps:
        for method, what in (("sns", "distilled student"), ("vicreg-real", "SSL twin")):
            r = time_steps(method, args.steps, out)
            parts.append((f"{what} ({method}): set-up", r["setup_s"]))
            parts.append((f"{what} ({method}): {args.total_steps} steps at {r['step_s'] * 1000:.0f} ms",
                          r["step_s"] * args.total_steps))
    if not args.skip_probes:
        for col, r in time_probes(out).items():
            for k in ("extract", "fewshot", "knn", "fast"):
                parts.append((f"probe, {col} ({r['dim']}-d): {k}", r[k]))
    total = sum(s for _, s in parts)
    rows = [(name, s, 100.0 * s / total) for name, s in parts]
    print()
    print(C.table(["part", "seconds", "% of total"], rows,
                  title=f"default run's parts (extrapolated total {total:.0f} s; one student column shown: "
                        "the closing table has the distilled, twin and random-init columns)"))
    if args.twin_schedule:
        sched = time_twin_schedule(args.twin_schedule, args.threads, out)
        rows = [(k, v["wall_s"], v["main_train_s"], v["twin_train_s"]) for k, v in sched.items()]
        print()
        print(C.table(["schedule", "wall s (both + set-up + kNN)", "run train s", "twin train s"], rows,
                      title=f"run + SSL twin, {args.twin_schedule} steps each (load now {C.load()})"))
        seq, par = (v["wall_s"] for v in sched.values())
        print(f"side by side / sequential wall: {par / seq:.2f}")
    print(f"# load at end: {C.load()}")


if __name__ == "__main__":
    main()
