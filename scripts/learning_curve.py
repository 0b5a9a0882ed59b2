#!/usr/bin/env python
"""Learning curve of the default run: training steps vs few-shot and kNN probes, for candidate students.

Each point is a separate ``fit`` with ``--steps S`` (its cosine schedule ends at S, as a user's run
would), probed on the digits test split by the same suite as ``fit``'s closing table (few-shot
logistic regression 1/10/100 labels per class x 5 draws, kNN-20). Baselines (raw pixels, each
candidate's random init) are measured in the same run. Results go to ``OUT/curve.jsonl`` (one line a
point, appended, so an interrupted curve resumes) and ``OUT/learning_curve.png``.

usage: python scripts/learning_curve.py --out runs/lc --steps 150,300,600,1200 \
           --candidate resnet10t:32:std --candidate resnet18:16:cifar [--method sns] [--batch 64]
A candidate is NAME:IMG_SIZE:STEM[:BASE_LR] with STEM = std | cifar (BASE_LR: lr = BASE_LR * batch / 256;
default the method's, 0.03 for sns as SnS).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List


def _probe(reps: Dict[str, Any], img_size: int, seed: int = 0, probes: str = "fewshot,knn") -> Dict[str, Any]:
    """Every named probe's flat metrics per row (``shot<k>``, ``knn<k>``, ..., any registered probe)."""
    from gandistill.data import load_dataset
    from gandistill.evaluation.suite import ProbeConfig, parse_probes, probe_suite, row_metrics

    tr = load_dataset("digits", split="train", img_size=img_size)
    te = load_dataset("digits", split="test", img_size=img_size)
    t = probe_suite(reps, tr, te, ProbeConfig(probes=parse_probes(probes), seed=seed))
    return {row.name: row_metrics(row) for row in t.rows}


def _metric(d: Dict[str, Any], name: str) -> Any:
    """``d[name]``, or the first ``name<k>`` (``knn`` finds ``knn20``; older curves stored ``knn``)."""
    if name in d:
        return d[name]
    return next((v for k, v in d.items() if k.startswith(name) and k[len(name):].isdigit()), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/lc")
    ap.add_argument("--steps", default="150,300,600,1200")
    ap.add_argument("--candidate", action="append", default=None)
    ap.add_argument("--method", default="sns")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--teacher-ckpt", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plot-only", action="store_true")
    ap.add_argument("--probes", default="fewshot,knn", help="probes (registered names, comma-separated)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "curve.jsonl"
    done = {json.dumps(r["key"]) for r in _read(log)}
    cands = a.candidate or ["resnet10t:32:std"]
    if not a.plot_only:
        from gandistill.engine import FitConfig, fit
        from gandistill.evaluation.loading import load_student
        from gandistill.evaluation.suite import RAW_PIXELS

        for cand in cands:
            parts = cand.split(":")
            name, size, stem = parts[:3]
            base_lr = float(parts[3]) if len(parts) > 3 else None   # None: the method's (SnS 0.03)
            size, cifar = int(size), stem == "cifar"
            key = {"candidate": cand, "steps": 0, "method": a.method, "batch": a.batch}
            if json.dumps(key) not in done:  # baselines: random init of this candidate + raw pixels
                rnd = load_student(f"random:{name}", img_size=size, student_kwargs={"cifar_stem": cifar}, seed=0).model
                res = _probe({"random init": rnd, "raw pixels": RAW_PIXELS}, size, probes=a.probes)
                _append(log, {"key": key, "train_s": 0.0, "probes": res})
            for steps in (int(s) for s in a.steps.split(",")):
                key = {"candidate": cand, "steps": steps, "method": a.method, "batch": a.batch}
                if json.dumps(key) in done:
                    continue
                run = out / f"{name}-{size}-{stem}{'-lr' + parts[3] if base_lr else ''}-{a.method}-b{a.batch}-s{steps}"
                t0 = time.perf_counter()
                fit(FitConfig(method=a.method, student=name, cifar_stem=cifar, img_size=size, batch=a.batch,
                              steps=steps, base_lr=base_lr, eval="none", out=str(run), teacher_ckpt=a.teacher_ckpt, progress=False),
                    log=lambda s: None)
                train_s = time.perf_counter() - t0
                res = _probe({"distilled": load_student(run).model}, size, probes=a.probes)
                _append(log, {"key": key, "train_s": round(train_s, 1), "load": os.getloadavg()[0], "probes": res})
                print(cand, steps, f"{train_s:.0f}s", res["distilled"], flush=True)
    plot(_read(log), out / "learning_curve.png")


def _read(p: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []


def _append(p: Path, rec: Dict[str, Any]) -> None:
    with p.open("a") as f:
        f.write(json.dumps(rec) + "\n")


def plot(recs: List[Dict[str, Any]], png: Path) -> None:
    """Two panels (10-shot, kNN-20) vs training steps, one line per candidate, baselines dashed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG (pip install matplotlib)")
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    cands = sorted({r["key"]["candidate"] for r in recs})
    for ax, metric, title in ((axes[0], "shot10", "10 labels / class (logistic regression)"),
                              (axes[1], "knn", "kNN-20 (all 4,000 labels)")):
        raw = None
        for c in cands:
            pts = sorted((r for r in recs if r["key"]["candidate"] == c and r["key"]["steps"] > 0),
                         key=lambda r: r["key"]["steps"])
            base = [r for r in recs if r["key"]["candidate"] == c and r["key"]["steps"] == 0]
            xs = [r["key"]["steps"] for r in pts]
            ys = [_metric(r["probes"]["distilled"], metric) for r in pts]
            line, = ax.plot(xs, ys, "o-", label=c)
            for r, x, y in zip(pts, xs, ys):
                ax.annotate(f"{r['train_s']:.0f}s", (x, y), fontsize=7, textcoords="offset points", xytext=(3, 3))
            if base:
                ax.axhline(_metric(base[0]["probes"]["random init"], metric), ls=":", color=line.get_color(),
                           label=f"{c} random init")
                raw = _metric(base[0]["probes"]["raw pixels"], metric)
        if raw is not None:
            ax.axhline(raw, ls="--", color="k", label="raw pixels")
        ax.set_xlabel("training steps (batch 64; labels: wall time on the shared 2-core box)")
        ax.set_ylabel("top-1 (%) on digits test")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
