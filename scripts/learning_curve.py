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

The curve that decides (issue 14.4): Sq & Sp against its SSL twins, 3 seeds, error bars (mean ± std
over seeds), in the background on one thread per process:

    OMP_NUM_THREADS=1 nohup python scripts/learning_curve.py --out runs/lc-ssl \
        --methods sns,vicreg-real,vicreg-mixed --seeds 0,1,2 --steps 250,500,1000,2000,4000 \
        --png docs/img/learning_curve_ssl.png > runs/lc-ssl.log 2>&1 &

``--methods sns:sg2-d-on-g,...`` trains a method with another teacher (here: D's features of G's
samples as the squeeze targets); the point is keyed and plotted under that name.

Rerunning the same command skips every point already in ``OUT/curve.jsonl`` and continues a point
whose training was interrupted from its last checkpoint. To use both cores, start the same command
twice: the two workers share ``OUT`` and each takes the next point the other has not claimed
(``OUT/<point>.claim``).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List


SHOTS = (1, 10, 100)


def _probe(reps: Dict[str, Any], img_size: int, seed: int = 0, probes: str = "fewshot,knn") -> Dict[str, Any]:
    """Every named probe's flat metrics per row (``shot<k>``, ``shot<k>_std``, ``knn<k>``, ..., any registered
    probe, plug-ins included)."""
    from gandistill.data import load_dataset
    from gandistill.evaluation.suite import ProbeConfig, parse_probes, probe_suite, row_metrics

    tr = load_dataset("digits", split="train", img_size=img_size)
    te = load_dataset("digits", split="test", img_size=img_size)
    t = probe_suite(reps, tr, te, ProbeConfig(probes=parse_probes(probes), shots=SHOTS, seed=seed))
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
    ap.add_argument("--method", default=None, help="one method (older spelling of --methods)")
    ap.add_argument("--methods", default=None, help="comma list of methods, e.g. sns,vicreg-real,vicreg-mixed; "
                    "METHOD:TEACHER picks the teacher (sns:sg2-d-on-g: D's features of G's samples)")
    ap.add_argument("--seeds", default="0", help="comma list of seeds (error bars: mean ± std over them)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--teacher-ckpt", default=None)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--png", default=None, help="the plot (default OUT/learning_curve.png)")
    ap.add_argument("--shots", default="1,10,100", help="few-shot label counts per class")
    ap.add_argument("--plot-only", action="store_true")
    ap.add_argument("--summary", default=None, help="also write the mean ± std table (Markdown) to this file")
    ap.add_argument("--probes", default="fewshot,knn", help="probes (registered names, comma-separated)")
    a = ap.parse_args()
    global SHOTS
    SHOTS = tuple(int(x) for x in a.shots.split(","))
    import torch

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "curve.jsonl"
    cands = a.candidate or ["resnet10t:32:std"]
    methods = [m.strip() for m in (a.methods or a.method or "sns").split(",") if m.strip()]
    seeds = [int(x) for x in a.seeds.split(",") if x.strip()]
    if not a.plot_only:
        for _ in range(2):   # the second pass takes the points of a worker that died while this one ran
            for steps in (int(x) for x in a.steps.split(",")):   # breadth first: every method and seed at a
                for method in methods:                             # budget before the next budget, so that an
                    for seed in seeds:                             # unfinished curve has error bars where it stops
                        run_points(a, out, log, cands, method, seed, steps)
    plot(_read(log), Path(a.png) if a.png else out / "learning_curve.png")
    if a.summary:
        Path(a.summary).write_text(summarise(_read(log), order=methods))
        print(f"wrote {a.summary}")


def _key(cand: str, steps: int, method: str, batch: int, seed: int) -> Dict[str, Any]:
    key: Dict[str, Any] = {"candidate": cand, "steps": steps, "method": method, "batch": batch}
    if seed:                                   # seed 0 keeps the keys of earlier single-seed curves
        key["seed"] = seed
    return key


def run_points(a: Any, out: Path, log: Path, cands: List[str], method: str, seed: int, steps: int) -> None:
    """The missing ``steps`` point of ``method`` at ``seed`` for every candidate (baselines once per candidate
    and seed)."""
    from gandistill.engine import FitConfig, fit
    from gandistill.evaluation.loading import load_student
    from gandistill.evaluation.suite import RAW_PIXELS

    for cand in cands:
        parts = cand.split(":")
        name, size, stem = parts[:3]
        base_lr = float(parts[3]) if len(parts) > 3 else None   # None: the method's (SnS 0.03)
        size, cifar = int(size), stem == "cifar"
        key = _key(cand, 0, method, a.batch, seed)
        have_base = any(r["key"]["candidate"] == cand and r["key"]["steps"] == 0 and r["key"].get("seed", 0) == seed
                        for r in _read(log))
        if not have_base:  # baselines (once per candidate and seed): random init of this candidate + raw pixels
            rnd = load_student(f"random:{name}", img_size=size, student_kwargs={"cifar_stem": cifar}, seed=seed).model
            res = _probe({"random init": rnd, "raw pixels": RAW_PIXELS}, size, seed, a.probes)
            _append(log, {"key": key, "train_s": 0.0, "probes": res})
        key = _key(cand, steps, method, a.batch, seed)
        run = out / (f"{name}-{size}-{stem}{'-lr' + parts[3] if base_lr else ''}-{method.replace(':', '-')}"
                     f"-b{a.batch}-s{steps}" + (f"-seed{seed}" if seed else ""))
        if json.dumps(key) not in {json.dumps(r["key"]) for r in _read(log)} and _claim(run):
            t0 = time.perf_counter()
            # resume="auto": a point whose training was interrupted continues from its checkpoint
            meth, _, teacher = method.partition(":")       # METHOD:TEACHER, e.g. sns:sg2-d-on-g
            fit(FitConfig(method=meth, teacher=teacher or None, student=name, cifar_stem=cifar, img_size=size,
                          batch=a.batch, seed=seed, steps=steps, base_lr=base_lr, eval="none", out=str(run), teacher_ckpt=a.teacher_ckpt,
                          progress=False, ssl_twin=False, resume="auto"),
                log=lambda s: None)
            train_s = time.perf_counter() - t0
            res = _probe({"distilled": load_student(run).model}, size, seed, a.probes)
            _append(log, {"key": key, "train_s": round(train_s, 1), "load": os.getloadavg()[0], "probes": res})
            print(cand, method, f"seed {seed}", steps, f"{train_s:.0f}s", res["distilled"], flush=True)


def _claim(run: Path) -> bool:
    """Whether this process may train ``run``: several workers may share one ``--out`` (one per core),
    each taking the next point nobody holds. A claim is ``RUN.claim`` holding the worker's pid, made with
    O_EXCL; a claim whose process is gone (a killed job) is taken over."""
    claim = run.with_name(run.name + ".claim")
    for _ in range(2):
        try:
            fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                pid = int(claim.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid == os.getpid():
                return True
            if pid and _alive(pid):
                return False
            claim.unlink(missing_ok=True)     # stale: its worker died; try once more
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(p: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []


def _append(p: Path, rec: Dict[str, Any]) -> None:
    with p.open("a") as f:
        f.write(json.dumps(rec) + "\n")


def _series(recs: List[Dict[str, Any]], cand: str, method: str, metric: str):
    """(steps, mean, std) over the seeds of ``method``'s points (std None for a single seed)."""
    by_steps: Dict[int, List[float]] = {}
    for r in recs:
        k = r["key"]
        if k["candidate"] == cand and k.get("method", "sns") == method and k["steps"] > 0:
            v = _metric(r["probes"]["distilled"], metric)
            if v is not None:
                by_steps.setdefault(k["steps"], []).append(v)
    xs = sorted(by_steps)
    means = [sum(by_steps[x]) / len(by_steps[x]) for x in xs]
    stds = [(sum((v - m) ** 2 for v in by_steps[x]) / (len(by_steps[x]) - 1)) ** 0.5 if len(by_steps[x]) > 1 else 0.0
            for x, m in zip(xs, means)]
    return xs, means, stds, [len(by_steps[x]) for x in xs]


def _paired(recs: List[Dict[str, Any]], cand: str, a: str, b: str, steps: int, metric: str) -> List[float]:
    """``a - b`` per seed at ``steps`` over the seeds both methods have (paired differences)."""
    def by_seed(m: str) -> Dict[int, float]:
        return {r["key"].get("seed", 0): _metric(r["probes"]["distilled"], metric) for r in recs
                if r["key"]["candidate"] == cand and r["key"].get("method", "sns") == m and r["key"]["steps"] == steps}
    va, vb = by_seed(a), by_seed(b)
    return [va[s] - vb[s] for s in sorted(set(va) & set(vb)) if va[s] is not None and vb[s] is not None]


def summarise(recs: List[Dict[str, Any]], metrics=("shot1", "shot10", "knn"), order=()) -> str:
    """Markdown: per step budget, each method's mean ± std over seeds (n seeds), then the paired
    differences of the first method against each other one (per seed, mean ± std). Methods come in
    ``order`` (the command's ``--methods``), then any others in the order the curve met them."""
    lines = []
    for cand in sorted({r["key"]["candidate"] for r in recs}):
        seen = list(dict.fromkeys(r["key"].get("method", "sns") for r in recs
                                  if r["key"]["candidate"] == cand and r["key"]["steps"] > 0))
        methods = [m for m in order if m in seen] + [m for m in seen if m not in order]
        steps = sorted({r["key"]["steps"] for r in recs if r["key"]["candidate"] == cand and r["key"]["steps"] > 0})
        lines += [f"### {cand}", "", "| steps | method | seeds | " + " | ".join(metrics) + " |",
                  "|---|---|---|" + "---|" * len(metrics)]
        for row in ("raw pixels", "random init"):     # the baselines, measured per seed in the same job
            vals = [[_metric(r["probes"][row], metric) for r in recs if r["key"]["candidate"] == cand
                     and r["key"]["steps"] == 0 and row in r["probes"]] for metric in metrics]
            if vals[0]:
                lines.append(f"| – | {row} | {len(vals[0])} | " + " | ".join(_plain(v) for v in vals) + " |")
        for st in steps:
            for m in methods:
                cols = []
                n = 0
                for metric in metrics:
                    xs, ys, es, ns = _series(recs, cand, m, metric)
                    if st in xs:
                        i = xs.index(st)
                        n = ns[i]
                        cols.append(f"{ys[i]:.1f}" + (f" ± {es[i]:.1f}" if ns[i] > 1 else ""))
                    else:
                        cols.append("–")
                if n:
                    lines.append(f"| {st} | {m} | {n} | " + " | ".join(cols) + " |")
        if len(methods) > 1:
            ref = methods[0]
            lines += ["", f"Paired per seed: {ref} minus each other method (mean ± std over common seeds).", "",
                      "| steps | difference | seeds | " + " | ".join(metrics) + " |", "|---|---|---|" + "---|" * len(metrics)]
            for st in steps:
                for m in methods[1:]:
                    diffs = [_paired(recs, cand, ref, m, st, metric) for metric in metrics]
                    if diffs[0]:
                        lines.append(f"| {st} | {ref} − {m} | {len(diffs[0])} | "
                                     + " | ".join(_signed(d) for d in diffs) + " |")
        lines.append("")
    return "\n".join(lines)


def _mean_of(recs: List[Dict[str, Any]], row: str, metric: str) -> Any:
    """Mean of ``row``'s ``metric`` over the records that have it (None when none does)."""
    vals = [v for v in (_metric(r["probes"].get(row, {}), metric) for r in recs) if v is not None]
    return sum(vals) / len(vals) if vals else None


def _plain(v: List[float]) -> str:
    m = sum(v) / len(v)
    return f"{m:.1f}" + (f" ± {(sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5:.1f}" if len(v) > 1 else "")


def _signed(v: List[float]) -> str:
    if not v:
        return "–"
    m = sum(v) / len(v)
    sd = (sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else None
    return f"{m:+.1f}" + (f" ± {sd:.1f}" if sd is not None else "")


def plot(recs: List[Dict[str, Any]], png: Path) -> None:
    """Panels 1-shot, 10-shot and kNN-20 vs training steps: one line per (candidate, method), mean ±
    std over seeds as error bars; raw pixels (black, dashed) and random init (dotted) as baselines."""
    try:
        import matplotlib  # optional extra `plot`

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG (pip install 'gandistill[plot]')")
        return
    metrics = [m for m in ("shot1", "shot10", "knn") if any(_metric(r["probes"].get("distilled", r["probes"].get(
        "raw pixels", {})), m) is not None for r in recs)]
    titles = {"shot1": "1 label / class", "shot10": "10 labels / class", "knn": "kNN-20 (all labels)"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4.2), squeeze=False)
    cands = sorted({r["key"]["candidate"] for r in recs})
    methods = list(dict.fromkeys(r["key"].get("method", "sns") for r in recs))
    nseeds = max((len({r["key"].get("seed", 0) for r in recs if r["key"].get("method", "sns") == m}) for m in methods),
                 default=1)
    for ax, metric in zip(axes[0], metrics):
        raw = rnd = None
        for c in cands:
            for m in methods:
                xs, ys, es, ns = _series(recs, c, m, metric)
                if xs:
                    ax.errorbar(xs, ys, yerr=es, fmt="o-", capsize=3,
                                label=f"{m}" + (f" ({c})" if len(cands) > 1 else ""))
            base = [r for r in recs if r["key"]["candidate"] == c and r["key"]["steps"] == 0]
            if base:                               # the baselines' mean over seeds, as in the summary table
                raw = _mean_of(base, "raw pixels", metric)
                rnd = _mean_of(base, "random init", metric)
        if raw is not None:
            ax.axhline(raw, ls="--", color="k", lw=1, label="raw pixels")
        if rnd is not None:
            ax.axhline(rnd, ls=":", color="grey", lw=1, label="random init")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training steps (batch 64, log scale)")
        ax.set_ylabel("top-1 (%) on digits test")
        ax.set_title(titles[metric] + (f", mean ± std over {nseeds} seeds" if nseeds > 1 else ""), fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("Learning curve: Squeeze-and-Span (sns) against its SSL twins on digits")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
