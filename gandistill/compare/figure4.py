"""Fig. 4: Sq & Sp students distilled from several snapshots of one GAN run, against each snapshot's quality.

For each snapshot: ``gandistill gan score`` (Frechet distance and KID in a feature space: Inception
when ``inception`` names a weights file, else the shipped offline digits judge -- the plot says
which), then the ``g-sns`` row trained with that snapshot as the teacher and probed with the preset's
protocol. Output under ``--out``: ``figure4.csv``, ``figure4.md`` and ``figure4.png`` (ours beside the
paper's CIFAR-100 curve, SnS paper_plots/acc_vs_fid.py). Resumable like the tables.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from gandistill.compare import probing
from gandistill.compare.presets import get_preset, resolve
from gandistill.compare.runner import CompareConfig, _read_json, _write_json, ensure_trained, score
from gandistill.compare.tables import FIGURE4_FID, FIGURE4_TOP1, RUNS, TABLE2


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
    seed: int = 0
    inception: Optional[str] = None
    score_n: int = 2000
    probe_epochs: Optional[int] = None
    probe_max_train: Optional[int] = None
    probe_max_test: Optional[int] = None
    fit_overrides: Dict[str, Any] = field(default_factory=dict)

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / f"compare-{self.preset}"


@dataclass
class Figure4Point:
    snapshot: str
    fd: Optional[float] = None
    kid: Optional[float] = None
    feature_space: str = ""
    status: str = "ok"
    top1: Optional[float] = None
    metric: Optional[str] = None
    notes: List[str] = field(default_factory=list)


@dataclass
class Figure4Result:
    points: List[Figure4Point]
    preset: str
    out: Path
    wall_s: float
    dry_run: bool = False


def find_snapshots(cfg: Figure4Config) -> List[Path]:
    """The snapshot folders to use (see :class:`Figure4Config`), oldest first."""
    if cfg.snapshots:
        paths = [Path(s.strip()) for s in cfg.snapshots.split(",") if s.strip()]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"--snapshots: not found: {', '.join(missing)}")
        return paths
    run = Path(cfg.gan_run) if cfg.gan_run else None
    if run is None:
        from gandistill.gan import bundled_teacher_path

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


def _compare_cfg(cfg: Figure4Config, ckpt: Path) -> CompareConfig:
    return CompareConfig(table=2, preset=cfg.preset, teacher_ckpt=str(ckpt), data_root=cfg.data_root,
                         budget=cfg.budget, out=str(cfg.out_dir()), device=cfg.device, seed=cfg.seed,
                         probe_epochs=cfg.probe_epochs, probe_max_train=cfg.probe_max_train,
                         probe_max_test=cfg.probe_max_test, fit_overrides=dict(cfg.fit_overrides))


def figure4(cfg: Figure4Config, log: Optional[Callable[[str], None]] = None,
            score_fn: Optional[Callable[..., Dict[str, Any]]] = None) -> Figure4Result:
    """Score each snapshot, distil and probe a Sq & Sp student from it (cached under ``out/figure4``)."""
    say = log or (lambda s: print(s, flush=True))
    t0 = time.perf_counter()
    preset = get_preset(cfg.preset)
    snaps = find_snapshots(cfg)
    out = cfg.out_dir()
    if cfg.dry_run:
        pts = [Figure4Point(str(s), status="planned") for s in snaps]
        return Figure4Result(pts, preset.name, out, 0.0, dry_run=True)
    if score_fn is None:
        from gandistill.gan.score import score_generator as score_fn
    points = []
    for i, snap in enumerate(snaps, 1):
        name = snap.name if snap.name.startswith("snapshot-") else snap.name or f"ckpt{i}"
        path = out / "results" / "figure4" / f"{name}.json"
        old = _read_json(path)
        if old is not None:
            points.append(Figure4Point(**old))
            say(f"[{i}/{len(snaps)}] {name}: done before, skipped")
            continue
        say(f"[{i}/{len(snaps)}] {name}: scoring the snapshot, then Sq & Sp from it ...")
        pt = Figure4Point(str(snap))
        try:
            sc = score_fn(snap, n=cfg.score_n, data=preset.dataset, data_root=cfg.data_root, inception=cfg.inception,
                          device=probing._dev(cfg.device))
            pt.fd, pt.kid, pt.feature_space = sc.get("fd"), sc.get("kid"), str(sc.get("feature_space", ""))
            ccfg = _compare_cfg(cfg, snap)
            run = dataclasses.replace(RUNS["g-sns"], id=f"g-sns@{name}")
            plan = resolve(run, preset, cfg.budget, seed=cfg.seed, device=cfg.device)
            run_dir, status, msg = ensure_trained(plan, ccfg, out, say)
            if status != "ok":
                pt.status, pt.notes = status, [msg]
            else:
                metrics, notes = score(run_dir, TABLE2, plan, ccfg, preset)
                pt.metric = probing.headline_key(plan.probe, metrics)
                pt.top1 = metrics.get(pt.metric) if pt.metric else None
                pt.notes = notes
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a snapshot that cannot run says why; the figure goes on
            pt.status, pt.notes = "failed", pt.notes + [f"{type(e).__name__}: {e}"]
        _write_json(path, dataclasses.asdict(pt))
        points.append(pt)
    return Figure4Result(points, preset.name, out, time.perf_counter() - t0)


def _scatter_pil(path: Path, series: Sequence[Tuple[str, List[Tuple[float, float]], str]], title: str) -> Path:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    pw, ph, pad = 300, 240, 50
    img = Image.new("RGB", (pad + len(series) * (pw + pad), ph + 2 * pad + 20), "white")
    d = ImageDraw.Draw(img)
    d.text((pad, 8), title, fill="black", font=font)
    for k, (name, pts, xlabel) in enumerate(series):
        x0, y0 = pad + k * (pw + pad), pad + ph
        d.rectangle([x0, pad, x0 + pw, y0], outline="black")
        d.text((x0, pad - 14), name, fill="black", font=font)
        d.text((x0 + pw // 2 - 30, y0 + 18), xlabel, fill="black", font=font)
        if not pts:
            d.text((x0 + 10, pad + 10), "no points", fill="black", font=font)
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        lo_x, hi_x = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
        lo_y, hi_y = min(ys) - 1, max(ys) + 1
        uv = [(x0 + 10 + (x - lo_x) / (hi_x - lo_x) * (pw - 20), y0 - 10 - (y - lo_y) / (hi_y - lo_y) * (ph - 20))
              for x, y in sorted(pts)]
        d.line(uv, fill=(31, 119, 180), width=2)
        for (u, v), (x, y) in zip(uv, sorted(pts)):
            d.ellipse([u - 3, v - 3, u + 3, v + 3], fill=(214, 39, 40))
        for t, v in ((lo_x, lo_x), (hi_x, hi_x)):
            u = x0 + 10 + (v - lo_x) / (hi_x - lo_x) * (pw - 20)
            d.text((u - 10, y0 + 4), f"{t:.3g}", fill="black", font=font)
        for v in (lo_y + 1, hi_y - 1):
            y = y0 - 10 - (v - lo_y) / (hi_y - lo_y) * (ph - 20)
            d.text((x0 - 40, y - 6), f"{v:.1f}", fill="black", font=font)
    img.save(path)
    return path


def write_figure4(res: Figure4Result, command: str = "") -> Dict[str, str]:
    """figure4.csv / .md / .png (ours: top-1 vs FD in the scorer's space; the paper: CIFAR-100 vs FID)."""
    import csv

    res.out.mkdir(parents=True, exist_ok=True)
    csv_p, md_p, png_p = res.out / "figure4.csv", res.out / "figure4.md", res.out / "figure4.png"
    with open(csv_p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["snapshot", "status", "feature_space", "fd", "kid", "probe", "top1", "notes"])
        for p in res.points:
            w.writerow([p.snapshot, p.status, p.feature_space, p.fd, p.kid, p.metric, p.top1, "; ".join(p.notes)])
    spaces = sorted({p.feature_space for p in res.points if p.feature_space}) or ["?"]
    ours = [(p.fd, p.top1) for p in res.points if p.fd is not None and p.top1 is not None]
    paper = list(zip(FIGURE4_FID, FIGURE4_TOP1))
    lines = ["# Figure 4: representation quality vs teacher quality", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"Preset `{res.preset}`; teacher quality: Frechet distance in the `{', '.join(spaces)}` feature space "
              "(the paper: FID, Inception features, CIFAR-100). Wall time of this call: "
              f"{res.wall_s / 60:.1f} min.", "",
              "| snapshot | status | FD | KID | probe | top-1 | notes |", "|---|---|---|---|---|---|---|"]
    for p in res.points:
        lines.append(f"| {Path(p.snapshot).name} | {p.status} | {_f(p.fd)} | {_f(p.kid, 4)} | {p.metric or ''} | "
                     f"{_f(p.top1)} | {'; '.join(p.notes)} |")
    lines += ["", "Paper (CIFAR-100 Sq & Sp): " + ", ".join(f"FID {a} -> {b}" for a, b in paper), ""]
    md_p.write_text("\n".join(lines))
    _scatter_pil(png_p, [(f"ours ({res.preset}): top-1 vs FD [{', '.join(spaces)}]", ours, "FD (lower = better G)"),
                         ("paper (CIFAR-100): top-1 vs FID [Inception]", paper, "FID")],
                 "Fig. 4: student top-1 against the teacher snapshot's quality")
    return {"csv": str(csv_p), "md": str(md_p), "png": str(png_p)}


def _f(v: Optional[float], nd: int = 2) -> str:
    return "" if v is None else f"{v:.{nd}f}"


def print_figure4(res: Figure4Result, console, command: str = "") -> None:
    from rich.table import Table

    tab = Table(title=f"Figure 4 -- preset {res.preset}" + (" (dry run: snapshots to use)" if res.dry_run else ""))
    for c in ("snapshot", "status", "feature space", "FD", "KID", "top-1", "notes"):
        tab.add_column(c, overflow="fold")
    for p in res.points:
        tab.add_row(Path(p.snapshot).name, p.status, p.feature_space, _f(p.fd), _f(p.kid, 4), _f(p.top1),
                    "; ".join(p.notes))
    console.print(tab)
    if not res.dry_run:
        files = write_figure4(res, command)
        console.print(f"wrote {files['csv']}, {files['md']}, {files['png']}")


__all__ = ["Figure4Config", "Figure4Point", "Figure4Result", "figure4", "find_snapshots", "write_figure4",
           "print_figure4"]
