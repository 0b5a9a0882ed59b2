"""Fig. 4: Sq & Sp students distilled from several snapshots of one GAN run, against each snapshot's quality.

For each snapshot: ``gandistill gan score`` (Frechet distance and KID in a feature space: Inception
when ``inception`` names a weights file, else the shipped offline digits judge -- the plot says
which), then the ``g-sns`` row trained with that snapshot as the teacher and probed with the preset's
protocol, once per seed (``seeds``, e.g. 0, 1, 2: error bars). The reference is Sq & Sp's SSL twin
(:attr:`MethodSpec.twin`: VICReg on the real images, no teacher), trained once per seed -- the same
run folder as Table 2's VICReg-real row in the same comparison folder -- as the paper's Fig. 4 draws
VICReg's line; the figure's second panel is Sq & Sp minus the twin (per seed, then mean ± std).
Output under ``--out``: ``figure4.csv``, ``figure4.md`` and ``figure4.png`` (matplotlib, the optional
extra ``plot``; ours beside the paper's CIFAR-100 curve, SnS paper_plots/acc_vs_fid.py). Resumable
like the tables: finished points are skipped, trained runs and probes reused.

Long runs: ``OMP_NUM_THREADS=1 nohup gandistill compare --figure 4 --seeds 0,1,2 > fig4.log 2>&1 &``.
"""
from __future__ import annotations

import csv
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rich.table import Table

from gandistill.compare import probing
from gandistill.compare.plotting import MissingPlotExtra, PLOT_HINT, pyplot
from gandistill.compare.presets import get_preset, resolve
from gandistill.compare.runner import CompareConfig, _read_json, _write_json, ensure_trained, score, twin_run_id
from gandistill.compare.tables import FIGURE4_FID, FIGURE4_TOP1, RUNS, TABLE2
from gandistill.gan import bundled_teacher_path
from gandistill.gan.score import score_generator


@dataclass
class Figure4Config:
    preset: str = "digits"
    gan_run: Optional[str] = None            # a `gandistill gan train` folder (snapshot-* inside)
    snapshots: Optional[str] = None          # or a comma list of snapshot / checkpoint folders
    max_snapshots: int = 5                   # evenly spaced over the run, the last one included
    data_root: Optional[str] = None
    budget: float = 1.0
    out: Optional[str] = None
    dry_run: bool = False
    device: str = "auto"
    seed: int = 0                            # one seed (when seeds is None)
    seeds: Optional[Sequence[int]] = None    # error bars over these seeds (e.g. 0, 1, 2)
    inception: Optional[str] = None
    score_n: int = 2000
    probe_epochs: Optional[int] = None
    probe_max_train: Optional[int] = None
    probe_max_test: Optional[int] = None
    fit_overrides: Dict[str, Any] = field(default_factory=dict)

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / f"compare-{self.preset}"

    def seed_list(self) -> Tuple[int, ...]:
        return tuple(int(s) for s in self.seeds) if self.seeds else (int(self.seed),)


@dataclass
class Figure4Point:
    snapshot: str
    fd: Optional[float] = None
    kid: Optional[float] = None
    feature_space: str = ""
    status: str = "ok"
    top1: Optional[float] = None             # mean over seeds
    metric: Optional[str] = None
    notes: List[str] = field(default_factory=list)
    seeds: List[int] = field(default_factory=lambda: [0])
    top1_std: Optional[float] = None
    top1_seeds: List[Optional[float]] = field(default_factory=list)
    twin: Optional[float] = None              # the SSL twin (no teacher), mean over the same seeds
    twin_std: Optional[float] = None
    twin_seeds: List[Optional[float]] = field(default_factory=list)
    delta: Optional[float] = None             # Sq & Sp minus twin, mean of the per-seed differences
    delta_std: Optional[float] = None
    delta_seeds: List[Optional[float]] = field(default_factory=list)


@dataclass
class Figure4Result:
    points: List[Figure4Point]
    preset: str
    out: Path
    wall_s: float
    dry_run: bool = False
    twin: Optional[float] = None
    twin_std: Optional[float] = None
    twin_method: str = ""
    seeds: List[int] = field(default_factory=lambda: [0])


def find_snapshots(cfg: Figure4Config) -> List[Path]:
    """The snapshot folders to use (see :class:`Figure4Config`), oldest first."""
    if cfg.snapshots:
        paths = [Path(s.strip()) for s in cfg.snapshots.split(",") if s.strip()]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"--snapshots: not found: {', '.join(missing)}")
        out: List[Path] = []
        for p in paths:        # a folder of snapshot-* folders stands for all of them (no subsampling)
            if p.is_dir() and not (p / "gandistill_sg2.json").exists():
                out += sorted((q for q in p.iterdir() if q.is_dir() and (q / "gandistill_sg2.json").exists()),
                              key=lambda q: q.name)
            else:
                out.append(p)
        return out
    run = Path(cfg.gan_run) if cfg.gan_run else None
    if run is None:
        bundled = Path(bundled_teacher_path()) / "snapshots"
        if not bundled.is_dir():
            raise ValueError("--figure 4 needs several snapshots of one GAN run: pass --gan-run DIR (a "
                             "`gandistill gan train` folder) or --snapshots A,B,C (or ship snapshot-* folders in the bundled teacher)")
        run = bundled
    snaps = sorted((p for p in run.iterdir() if p.is_dir() and p.name.startswith("snapshot-")
                    and (p / "gandistill_sg2.json").exists()), key=lambda p: p.name)
    if len(snaps) < 2:
        raise ValueError(f"{run} holds {len(snaps)} complete snapshot(s); Fig. 4 needs at least 2")
    k = max(2, min(cfg.max_snapshots, len(snaps)))
    idx = sorted({round(i * (len(snaps) - 1) / (k - 1)) for i in range(k)})
    return [snaps[i] for i in idx]


def _compare_cfg(cfg: Figure4Config, ckpt: Optional[Path], seed: int) -> CompareConfig:
    return CompareConfig(table=2, preset=cfg.preset, teacher_ckpt=str(ckpt) if ckpt else None,
                         data_root=cfg.data_root, budget=cfg.budget, out=str(cfg.out_dir()), device=cfg.device,
                         seed=seed, probe_epochs=cfg.probe_epochs, probe_max_train=cfg.probe_max_train,
                         probe_max_test=cfg.probe_max_test, fit_overrides=dict(cfg.fit_overrides))


def _seed_suffix(seed: int) -> str:
    return "" if seed == 0 else f"@s{seed}"          # seed 0 keeps the ids of earlier, single-seed folders


def _train_and_probe(run_id: str, base: str, ckpt: Optional[Path], seed: int, cfg: Figure4Config, preset: Any,
                     out: Path, say: Callable[[str], None]) -> Tuple[Optional[float], Optional[str], str, List[str]]:
    """(top-1, metric, status, notes) of run ``base`` (a RUNS id) trained as ``run_id`` from ``ckpt``."""
    ccfg = _compare_cfg(cfg, ckpt, seed)
    plan = resolve(dataclasses.replace(RUNS[base], id=run_id), preset, cfg.budget, seed=seed, device=cfg.device)
    run_dir, status, msg = ensure_trained(plan, ccfg, out, say)
    if status != "ok":
        return None, None, status, [msg]
    metrics, notes = score(run_dir, TABLE2, plan, ccfg, preset)
    metric = probing.headline_key(plan.probe, metrics)
    return (metrics.get(metric) if metric else None), metric, "ok", list(notes)


def twin_reference(cfg: Figure4Config, preset: Any, out: Path, say: Callable[[str], None]) -> Dict[int, Any]:
    """The SSL twin of Sq & Sp (VICReg on the real images: no teacher, so one run per seed for every
    snapshot; the same run folder as Table 2's VICReg-real row in this comparison folder)."""
    twin = twin_run_id("g-sns")
    ref = {}
    for seed in cfg.seed_list():
        try:
            ref[seed] = _train_and_probe(f"{twin}{_seed_suffix(seed)}", twin, None, seed, cfg, preset, out, say)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # the twin is a reference: the figure goes on without it
            ref[seed] = (None, None, "failed", [f"{type(e).__name__}: {e}"])
    return ref


def _mean_std(xs: Sequence[Optional[float]]) -> Tuple[Optional[float], Optional[float]]:
    v = [float(x) for x in xs if x is not None]
    if not v:
        return None, None
    m = sum(v) / len(v)
    return m, ((sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else None)


def _point_for(snap: Path, name: str, cfg: Figure4Config, preset: Any, out: Path, twin: Dict[int, Any],
               score_fn: Callable[..., Dict[str, Any]], old: Optional[Dict[str, Any]],
               say: Callable[[str], None]) -> Figure4Point:
    pt = Figure4Point(str(snap), seeds=list(cfg.seed_list()))
    if old and old.get("fd") is not None:      # the snapshot's score does not depend on the student's seed
        pt.fd, pt.kid, pt.feature_space = old["fd"], old.get("kid"), old.get("feature_space", "")
    else:
        sc = score_fn(snap, n=cfg.score_n, data=preset.dataset, data_root=cfg.data_root, inception=cfg.inception,
                      device=probing._dev(cfg.device))
        pt.fd, pt.kid, pt.feature_space = sc.get("fd"), sc.get("kid"), str(sc.get("feature_space", ""))
    statuses = []
    for seed in pt.seeds:
        try:
            top1, metric, status, notes = _train_and_probe(f"g-sns@{name}{_seed_suffix(seed)}", "g-sns", snap, seed,
                                                           cfg, preset, out, say)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a seed that cannot run says why; the figure goes on
            top1, metric, status, notes = None, None, "failed", [f"{type(e).__name__}: {e}"]
        statuses.append(status)
        pt.metric = pt.metric or metric
        pt.top1_seeds.append(top1)
        tw = twin.get(seed, (None,))[0]
        pt.twin_seeds.append(tw)
        pt.delta_seeds.append(top1 - tw if top1 is not None and tw is not None else None)
        pt.notes += [f"seed {seed}: {n}" for n in notes]
    pt.top1, pt.top1_std = _mean_std(pt.top1_seeds)
    pt.twin, pt.twin_std = _mean_std(pt.twin_seeds)
    pt.delta, pt.delta_std = _mean_std(pt.delta_seeds)      # paired per seed: the same seed's twin
    pt.status = "ok" if "ok" in statuses else (statuses[0] if len(set(statuses)) == 1 else "failed")
    return pt


def figure4(cfg: Figure4Config, log: Optional[Callable[[str], None]] = None,
            score_fn: Optional[Callable[..., Dict[str, Any]]] = None) -> Figure4Result:
    """Score each snapshot, distil and probe a Sq & Sp student from it for every seed, and train its SSL
    twin once per seed (cached under ``out``: a rerun skips finished points and trains nothing twice)."""
    say = log or (lambda s: print(s, flush=True))
    t0 = time.perf_counter()
    preset = get_preset(cfg.preset)
    snaps = find_snapshots(cfg)
    out = cfg.out_dir()
    if cfg.dry_run:
        pts = [Figure4Point(str(s), status="planned", seeds=list(cfg.seed_list())) for s in snaps]
        return Figure4Result(pts, preset.name, out, 0.0, dry_run=True, twin_method=twin_run_id("g-sns") or "",
                             seeds=list(cfg.seed_list()))
    if score_fn is None:
        score_fn = score_generator
    say(f"SSL twin ({twin_run_id('g-sns')}, no teacher): seeds {', '.join(map(str, cfg.seed_list()))} ...")
    twin = twin_reference(cfg, preset, out, say)
    points = []
    for i, snap in enumerate(snaps, 1):
        name = snap.name if snap.name.startswith("snapshot-") else snap.name or f"ckpt{i}"
        path = out / "results" / "figure4" / f"{name}.json"
        old = _read_json(path)
        if old is not None and old.get("status") in ("ok", "collapsed") and set(cfg.seed_list()) <= set(old.get("seeds") or [0]) \
                and "twin_seeds" in old:
            pt = Figure4Point(**{k: v for k, v in old.items() if k in Figure4Point.__dataclass_fields__})
            points.append(pt)
            say(f"[{i}/{len(snaps)}] {name}: done before, skipped")
            continue
        say(f"[{i}/{len(snaps)}] {name}: scoring the snapshot, then Sq & Sp from it (seeds "
            f"{', '.join(map(str, cfg.seed_list()))}) ...")
        try:
            pt = _point_for(snap, name, cfg, preset, out, twin, score_fn, old, say)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a snapshot that cannot be scored says why; the figure goes on
            pt = Figure4Point(str(snap), status="failed", notes=[f"{type(e).__name__}: {e}"], seeds=list(cfg.seed_list()))
        _write_json(path, dataclasses.asdict(pt))
        points.append(pt)
    tw_mean, tw_std = _mean_std([v[0] for v in twin.values()])
    return Figure4Result(points, preset.name, out, time.perf_counter() - t0, twin=tw_mean, twin_std=tw_std,
                         twin_method=twin_run_id("g-sns") or "", seeds=list(cfg.seed_list()))


def plot_figure4(res: Figure4Result, path: Path) -> Path:
    """Two panels (matplotlib): Sq & Sp top-1 against the teacher's FD with the SSL twin's line and band,
    and Sq & Sp minus its twin (per seed, mean ± std) with the zero line; beside the paper's CIFAR-100 curve."""
    plt = pyplot()
    pts = sorted((p for p in res.points if p.fd is not None), key=lambda p: p.fd)
    space = ", ".join(sorted({p.feature_space for p in pts if p.feature_space})) or "?"
    seeds = f"{len(res.seeds)} seed{'s' if len(res.seeds) != 1 else ''}"
    fig, ax = plt.subplots(1, 3, figsize=(14, 4.2))
    ok = [p for p in pts if p.top1 is not None]
    ax[0].errorbar([p.fd for p in ok], [p.top1 for p in ok], yerr=[p.top1_std or 0 for p in ok], fmt="o-",
                   capsize=4, color="tab:blue", label="Sq & Sp")
    if res.twin is not None:
        ax[0].axhline(res.twin, color="tab:orange", ls="--", label=f"SSL twin ({res.twin_method})")
        if res.twin_std:
            ax[0].axhspan(res.twin - res.twin_std, res.twin + res.twin_std, color="tab:orange", alpha=0.15)
    ax[0].set(xlabel=f"teacher FD [{space}] (lower = better G)", ylabel=f"top-1 % ({ok[0].metric if ok else ''})",
              title=f"ours ({res.preset}): student vs teacher, {seeds}")
    dl = [p for p in pts if p.delta is not None]
    ax[1].errorbar([p.fd for p in dl], [p.delta for p in dl], yerr=[p.delta_std or 0 for p in dl], fmt="s-",
                   capsize=4, color="tab:green", label="Sq & Sp − twin (paired per seed)")
    ax[1].axhline(0.0, color="grey", lw=1)
    ax[1].set(xlabel=f"teacher FD [{space}]", ylabel="top-1 difference (points)",
              title="the teacher's contribution (mean ± std over seeds)")
    ax[2].plot(FIGURE4_FID, FIGURE4_TOP1, "o-", color="tab:red", label="Sq & Sp (paper)")
    ax[2].set(xlabel="FID [Inception]", ylabel="top-1 %", title="paper (CIFAR-100)")
    for a in ax:
        a.grid(alpha=0.3)
        a.invert_xaxis()
        a.legend(fontsize=8, loc="best")
    fig.suptitle("Fig. 4: student top-1 against the teacher snapshot's quality, with the SSL twin")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_figure4(res: Figure4Result, command: str = "") -> Dict[str, str]:
    """figure4.csv / .md / .png (ours: top-1 and top-1 minus the SSL twin vs FD in the scorer's space,
    mean ± std over seeds; the paper: CIFAR-100 vs FID)."""
    res.out.mkdir(parents=True, exist_ok=True)
    csv_p, md_p, png_p = res.out / "figure4.csv", res.out / "figure4.md", res.out / "figure4.png"
    cols = ["snapshot", "status", "feature_space", "fd", "kid", "probe", "seeds", "top1", "top1_std", "twin",
            "twin_std", "delta", "delta_std", "top1_per_seed", "twin_per_seed", "notes"]
    with open(csv_p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for p in res.points:
            w.writerow([shown_path(p.snapshot), p.status, p.feature_space, p.fd, p.kid, p.metric, " ".join(map(str, p.seeds)),
                        p.top1, p.top1_std, p.twin, p.twin_std, p.delta, p.delta_std,
                        " ".join(_f(x) for x in p.top1_seeds), " ".join(_f(x) for x in p.twin_seeds), "; ".join(p.notes)])
    spaces = sorted({p.feature_space for p in res.points if p.feature_space}) or ["?"]
    paper = list(zip(FIGURE4_FID, FIGURE4_TOP1))
    lines = ["# Figure 4: representation quality vs teacher quality, with the SSL twin", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"Preset `{res.preset}`; seeds {', '.join(map(str, res.seeds))}; teacher quality: Frechet distance in "
              f"the `{', '.join(spaces)}` feature space (the paper: FID, Inception features, CIFAR-100). SSL twin: "
              f"`{res.twin_method}` (the same student, real data, steps and seed, no teacher): "
              f"{_pm(res.twin, res.twin_std)}. Wall time of this call: {res.wall_s / 60:.1f} min.", "",
              "| snapshot | status | FD | KID | probe | Sq & Sp top-1 | twin top-1 | Sq & Sp − twin | notes |",
              "|---|---|---|---|---|---|---|---|---|"]
    for p in res.points:
        lines.append(f"| {Path(p.snapshot).name} | {p.status} | {_f(p.fd)} | {_f(p.kid, 4)} | {p.metric or ''} | "
                     f"{_pm(p.top1, p.top1_std)} | {_pm(p.twin, p.twin_std)} | {_pm(p.delta, p.delta_std, True)} | "
                     f"{'; '.join(p.notes)} |")
    lines += ["", "± : sample std over the seeds (Sq & Sp − twin: of the per-seed differences, each seed against "
              "its own twin).", "", "Paper (CIFAR-100 Sq & Sp): " + ", ".join(f"FID {a} -> {b}" for a, b in paper), ""]
    md_p.write_text("\n".join(lines))
    try:
        plot_figure4(res, png_p)
        backend = "matplotlib"
    except MissingPlotExtra:   # the tables are written; only the PNG needs the optional extra
        backend = f"none ({PLOT_HINT})"
        png_p = None
    return {"csv": str(csv_p), "md": str(md_p), "png": str(png_p) if png_p else "", "png_backend": backend}


def shown_path(path: str) -> str:
    """``path`` as a result file should record it: relative to the working folder when inside it, else
    ``gandistill/...`` inside the installed package (the bundled snapshots), else as given -- never a
    machine's absolute home folder when a portable name exists."""
    p = Path(path)
    if not p.is_absolute():
        return str(p)
    pkg = Path(__file__).resolve().parents[1]
    for base, prefix in ((Path.cwd().resolve(), ""), (pkg, "gandistill")):
        try:
            return str(Path(prefix) / p.resolve().relative_to(base))
        except ValueError:
            continue
    return str(p)


def _pm(m: Optional[float], s: Optional[float], sign: bool = False) -> str:
    if m is None:
        return ""
    return (f"{m:+.2f}" if sign else f"{m:.2f}") + (f" ± {s:.2f}" if s is not None else "")


def _f(v: Optional[float], nd: int = 2) -> str:
    return "" if v is None else f"{v:.{nd}f}"


def print_figure4(res: Figure4Result, console, command: str = "") -> None:
    tab = Table(title=f"Figure 4 -- preset {res.preset}, seeds {', '.join(map(str, res.seeds))}"
                + (" (dry run: snapshots to use)" if res.dry_run else "")
                + (f"\nSSL twin ({res.twin_method}): {_pm(res.twin, res.twin_std)}" if res.twin is not None else ""))
    for c in ("snapshot", "status", "feature space", "FD", "Sq & Sp top-1", "Sq & Sp − twin", "notes"):
        tab.add_column(c, overflow="fold")
    for p in res.points:
        tab.add_row(Path(p.snapshot).name, p.status, p.feature_space, _f(p.fd), _pm(p.top1, p.top1_std),
                    _pm(p.delta, p.delta_std, True), "; ".join(p.notes))
    console.print(tab)
    if not res.dry_run:
        files = write_figure4(res, command)
        console.print(f"wrote {files['csv']}, {files['md']}" + (f", {files['png']}" if files["png"] else
                                                               f" (no PNG: {files['png_backend']})"))


__all__ = ["Figure4Config", "Figure4Point", "Figure4Result", "figure4", "find_snapshots", "write_figure4", "plot_figure4",
           "print_figure4"]
