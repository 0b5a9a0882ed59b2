"""Transfer by linear classification on other labelled datasets (the paper's Table 3 protocol, from
Ericsson et al., "How well do self-supervised models transfer?", CVPR 2021).

For every dataset and every representation (the distilled backbone, its random initialisation, and the
run's SSL twin when it has one):

1. **Frozen features.** Every image is resized so its shorter side is the run's resolution (bicubic),
   centre-cropped to a square of that size, scaled to [0, 1] and normalised with the run's own
   mean/std; the backbone runs in ``eval()`` without gradients (global-pooled features).
2. **Splits.** A dataset brings train/ and test/ (and optionally val/); without val, 20 % of train
   (stratified, fixed seed) is held out as the validation split. A folder without train/test is
   split 75/25 (stratified, fixed seed) first.
3. **Multinomial logistic regression** by L-BFGS (full batch, float64, from zero) on the features
   z-scored with the training statistics: mean cross-entropy + ``l2 / 2 ||W||^2``
   (:func:`gandistill.evaluation.fewshot.fit_logreg`).
4. **L2 strength** chosen from :data:`L2_GRID` by the validation top-1 (ties: the stronger L2), then
   the classifier is refitted on train + val with that strength and scored once on test.

The table holds the test top-1 per dataset and representation, and the average over the datasets.
"""
from __future__ import annotations

import csv
import inspect
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from gandistill.data.imagefolder import load_imagefolder, square_resize
from gandistill.evaluation.features import extract_features
from gandistill.evaluation.fewshot import fit_logreg, zscore
from gandistill.evaluation.loading import load_student
from gandistill.io.errors import ConfigError, show_path

#: the L2 strengths tried on the validation split (weight decay on W of the mean cross-entropy)
L2_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
VAL_FRACTION = 0.2
TEST_FRACTION = 0.25


@dataclass
class TransferConfig:
    """Everything ``gandistill transfer`` takes."""

    run: str = ""                                  # run folder (or checkpoint) of the distilled student
    datasets: Tuple[str, ...] = ()                 # folder:PATH | torchvision:NAME:ROOT
    img_size: Optional[int] = None                 # default: the run's resolution
    l2_grid: Tuple[float, ...] = L2_GRID
    val_fraction: float = VAL_FRACTION             # of train, when the dataset has no val split
    test_fraction: float = TEST_FRACTION           # of a folder with neither train/ nor test/
    seed: int = 0                                  # the splits' seed
    batch: int = 256
    device: str = "cpu"
    download: bool = False                         # torchvision datasets: fetch into ROOT (opt-in)
    baselines: bool = True                         # also the random-init student and the SSL twin
    max_iter: int = 1000                           # L-BFGS iterations per fit
    out: Optional[str] = None                      # where transfer.csv/.md/.png go (default RUN/transfer)


@dataclass
class DatasetSpec:
    kind: str                                      # "folder" | "torchvision"
    name: str
    root: Path


def parse_dataset(spec: str) -> DatasetSpec:
    """``folder:PATH`` or ``torchvision:NAME:ROOT`` (a ConfigError otherwise)."""
    kind, _, rest = spec.partition(":")
    if kind == "folder" and rest:
        return DatasetSpec("folder", Path(rest).name or rest, Path(rest).expanduser())
    if kind == "torchvision":
        name, _, root = rest.partition(":")
        if name and root:
            return DatasetSpec("torchvision", name, Path(root).expanduser())
    raise ConfigError(f"--dataset {spec!r}: expected folder:PATH or torchvision:NAME:ROOT")


class Resized(Dataset):
    """(image, label) items of another dataset as [0, 1] tensors resized by :func:`square_resize`."""

    def __init__(self, base: Any, size: int):
        self.base, self.size = base, size

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> Tuple[Tensor, int]:
        im, y = self.base[i]
        im = square_resize(im.convert("RGB"), self.size)
        return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0), int(y)


def _torchvision_split(cls: Any, root: Path, split: str, download: bool) -> Optional[Dataset]:
    """``cls(root, split=...)`` or ``cls(root, train=...)``; None when the class has no such split."""
    params = inspect.signature(cls.__init__).parameters
    try:
        if "split" in params:
            return cls(str(root), split=split, download=download)
        if "train" in params and split in ("train", "test"):
            return cls(str(root), train=split == "train", download=download)
    except (ValueError, TypeError):        # an unknown split name for this dataset
        return None
    return None


def load_splits(spec: DatasetSpec, size: int, download: bool) -> Dict[str, Dataset]:
    """The dataset's own splits among ``train``, ``val``, ``test`` (or ``all`` when it has none)."""
    if spec.kind == "folder":
        if not spec.root.is_dir():
            raise ConfigError("no such folder", path=spec.root)
        if (spec.root / "train").is_dir() and (spec.root / "test").is_dir():
            parts = ("train", "val", "test") if (spec.root / "val").is_dir() else ("train", "test")
            out = {p: load_imagefolder(spec.root, split=p, img_size=size) for p in parts}
        else:
            out = {"all": load_imagefolder(spec.root, split="all", img_size=size)}
        classes = [ds.classes for ds in out.values()]
        if not classes[0]:
            raise ConfigError("transfer needs class sub-folders (labelled images)", path=spec.root)
        if any(c != classes[0] for c in classes):
            raise ConfigError("train/, val/ and test/ must hold the same class sub-folders", path=spec.root)
        return out
    import torchvision.datasets as tvd                 # torchvision is a dependency; its datasets load lazily

    cls = getattr(tvd, spec.name, None)
    if cls is None:
        raise ConfigError(f"torchvision has no dataset {spec.name!r}")
    out: Dict[str, Dataset] = {}
    try:
        for split in ("train", "val", "test"):
            ds = _torchvision_split(cls, spec.root, split, download)
            if ds is not None:
                out[split] = Resized(ds, size)
        if "train" not in out and "trainval" in str(cls.__init__.__doc__ or "") + str(cls.__doc__ or ""):
            out["train"] = Resized(cls(str(spec.root), split="trainval", download=download), size)
        if not out:
            out["all"] = Resized(cls(str(spec.root), download=download), size)
    except RuntimeError as e:                          # torchvision: "Dataset not found ... download=True"
        raise ConfigError(f"torchvision:{spec.name}: {e} (pass --download to fetch it)", path=spec.root) from None
    return out


def stratified_split(labels: Tensor, fraction: float, seed: int) -> Tuple[Tensor, Tensor]:
    """Indices (kept, held out): ``fraction`` of every class (at least one item when it has two) held out."""
    g = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for c in labels.unique(sorted=True):
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n = min(len(idx) - 1, max(1 if len(idx) > 1 else 0, round(fraction * len(idx))))
        held.append(idx[:n])
        keep.append(idx[n:])
    return torch.cat(keep).sort().values, torch.cat(held).sort().values


def top1(W: Tensor, b: Tensor, x: Tensor, y: Tensor) -> float:
    return float(((x.double() @ W.T + b).argmax(1) == y).double().mean() * 100.0)


def logreg_transfer(tr: Tuple[Tensor, Tensor], val: Tuple[Tensor, Tensor], te: Tuple[Tensor, Tensor],
                    grid: Sequence[float] = L2_GRID, max_iter: int = 1000) -> Dict[str, Any]:
    """Choose the L2 strength on ``val``, refit on train + val, score on ``te`` (see the module docs)."""
    num_classes = int(max(tr[1].max(), val[1].max(), te[1].max())) + 1
    xtr, xval = zscore(tr[0], val[0])
    val_acc = {}
    for l2 in grid:
        W, b, _ = fit_logreg(xtr, tr[1], num_classes, l2=l2, max_iter=max_iter)
        val_acc[l2] = top1(W, b, xval, val[1])
    best = max(sorted(grid, reverse=True), key=lambda l2: val_acc[l2])    # ties: the stronger L2
    x_all, y_all = torch.cat([tr[0], val[0]]), torch.cat([tr[1], val[1]])
    x_all, xte = zscore(x_all, te[0])
    W, b, info = fit_logreg(x_all, y_all, num_classes, l2=best, max_iter=max_iter)
    return {"top1": top1(W, b, xte, te[1]), "l2": best, "val_top1": val_acc[best],
            "val_by_l2": {str(k): v for k, v in val_acc.items()}, "converged": bool(info["converged"])}


def _features(model: Any, splits: Dict[str, Dataset], cfg: TransferConfig, mean: Any,
              std: Any) -> Dict[str, Tuple[Tensor, Tensor]]:
    """Features of the three protocol splits (train, val, test), splitting with ``cfg.seed`` where needed."""
    f = {k: extract_features(model, ds, cfg.batch, cfg.device, mean, std) for k, ds in splits.items()}
    if "all" in f:
        x, y = f.pop("all")
        keep, held = stratified_split(y, cfg.test_fraction, cfg.seed)
        f["train"], f["test"] = (x[keep], y[keep]), (x[held], y[held])
    if "val" not in f:
        x, y = f["train"]
        keep, held = stratified_split(y, cfg.val_fraction, cfg.seed + 1)
        f["train"], f["val"] = (x[keep], y[keep]), (x[held], y[held])
    return f


def representations(cfg: TransferConfig) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The models to compare ({label: model}) and the run's facts (resolution, normalisation, notes)."""
    loaded = load_student(cfg.run, img_size=cfg.img_size)
    run_dir = Path(cfg.run) if Path(cfg.run).is_dir() else (loaded.weights.parent if loaded.weights else Path("."))
    resolved = loaded.run_config.get("resolved", {}) if loaded.run_config else {}
    size = cfg.img_size or resolved.get("img_size") or loaded.kwargs.get("img_size") or 32
    norm = resolved.get("normalise") or {}
    models = {f"{loaded.name} (distilled)": loaded.model}
    notes: List[str] = []
    if cfg.baselines:
        init = run_dir / "init"
        if init.is_dir():
            models["random init"] = load_student(init, img_size=cfg.img_size).model
        else:
            seed = int(loaded.run_config.get("config", {}).get("seed", cfg.seed)) if loaded.run_config else cfg.seed
            models["random init"] = load_student(f"random:{loaded.name}", student_kwargs=loaded.kwargs, seed=seed).model
            notes.append(f"random init: a fresh {loaded.name} seeded with {seed} (no {show_path(init)})")
        twin = _twin_path(run_dir)
        if twin is not None:
            models["SSL twin"] = load_student(twin, img_size=cfg.img_size).model
            notes.append(f"SSL twin: {show_path(twin)}")
    return models, {"img_size": int(size), "mean": norm.get("mean"), "std": norm.get("std"), "notes": notes,
                    "student": loaded.name}


def _twin_path(run_dir: Path) -> Optional[Path]:
    """The SSL twin named by the run's ``summary.json`` (``"twin"``: a path, or a dict holding one)."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    twin = summary.get("twin") if isinstance(summary, dict) else None
    if isinstance(twin, dict):
        twin = twin.get("run_dir") or twin.get("run") or twin.get("checkpoint")
    if not isinstance(twin, str):
        return None
    p = Path(twin)
    p = p if p.is_absolute() or p.exists() else run_dir / p
    return p if p.exists() else None


@dataclass
class TransferResult:
    rows: List[Dict[str, Any]] = field(default_factory=list)      # one per (dataset, representation)
    datasets: List[str] = field(default_factory=list)
    models: List[str] = field(default_factory=list)
    facts: Dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def average(self) -> Dict[str, Optional[float]]:
        """Mean test top-1 over the datasets, per representation."""
        out = {}
        for m in self.models:
            v = [r["top1"] for r in self.rows if r["model"] == m]
            out[m] = sum(v) / len(v) if len(v) == len(self.datasets) and v else None
        return out


def transfer(cfg: TransferConfig, log: Callable[[str], None] = lambda s: None) -> TransferResult:
    """Run the protocol on every dataset of ``cfg`` for every representation."""
    if not cfg.datasets:
        raise ConfigError("transfer needs at least one --dataset folder:PATH or torchvision:NAME:ROOT")
    specs = [parse_dataset(s) for s in cfg.datasets]
    t0 = time.perf_counter()
    models, facts = representations(cfg)
    res = TransferResult(datasets=[s.name for s in specs], models=list(models), facts=facts)
    for spec in specs:
        splits = load_splits(spec, facts["img_size"], cfg.download)
        for label, model in models.items():
            f = _features(model, splits, cfg, facts["mean"], facts["std"])
            r = logreg_transfer(f["train"], f["val"], f["test"], cfg.l2_grid, cfg.max_iter)
            res.rows.append({"dataset": spec.name, "model": label, **r, "n_train": len(f["train"][1]),
                             "n_val": len(f["val"][1]), "n_test": len(f["test"][1]),
                             "classes": int(torch.cat([f["train"][1], f["test"][1]]).unique().numel())})
            log(f"{spec.name}: {label}: top-1 {r['top1']:.2f} (L2 {r['l2']:g}, val {r['val_top1']:.2f})")
    res.wall_s = time.perf_counter() - t0
    return res


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def summary_table(res: TransferResult) -> Tuple[List[str], List[List[str]]]:
    """Representation x dataset test top-1 (%), plus the average column."""
    header = ["representation"] + res.datasets + ["average"]
    by = {(r["dataset"], r["model"]): r["top1"] for r in res.rows}
    avg = res.average()
    return header, [[m] + [_fmt(by.get((d, m))) for d in res.datasets] + [_fmt(avg[m])] for m in res.models]


def write_outputs(res: TransferResult, out: Path, command: str = "") -> Dict[str, Any]:
    """transfer.csv (one line per dataset and representation), transfer.md (the tables), transfer.png."""
    out.mkdir(parents=True, exist_ok=True)
    cols = ["dataset", "model", "top1", "l2", "val_top1", "n_train", "n_val", "n_test", "classes", "converged"]
    with open(out / "transfer.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in res.rows:
            w.writerow([r[c] for c in cols])
    header, rows = summary_table(res)
    md = ["# Transfer: linear classification on frozen features (Table 3 protocol)", ""]
    if command:
        md += [f"`{command}`", ""]
    md += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
    md += ["", f"Images resized to {res.facts.get('img_size')} px (shorter side, bicubic) and centre-cropped; "
           "L-BFGS multinomial logistic regression on z-scored features; L2 chosen on the validation split "
           "from " + ", ".join(f"{v:g}" for v in L2_GRID) + ", then refitted on train + val."]
    md += [f"- {n}" for n in res.facts.get("notes", [])]
    (out / "transfer.md").write_text("\n".join(md) + "\n")
    (out / "transfer.json").write_text(json.dumps({"rows": res.rows, "average": res.average(),
                                                   "facts": res.facts, "wall_s": res.wall_s}, indent=1))
    return {"csv": out / "transfer.csv", "md": out / "transfer.md", "png": _write_png(res, out / "transfer.png")}


def _write_png(res: TransferResult, path: Path) -> Optional[Path]:
    """Grouped bars of test top-1 per dataset (matplotlib, an optional extra; None when missing)."""
    try:
        import matplotlib                          # lazy: optional plotting extra
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt            # lazy: optional plotting extra

    by = {(r["dataset"], r["model"]): r["top1"] for r in res.rows}
    names = res.datasets + ["average"]
    avg = res.average()
    width = 0.8 / max(1, len(res.models))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(names)), 3.2))
    for k, m in enumerate(res.models):
        vals = [by.get((d, m)) or 0.0 for d in res.datasets] + [avg[m] or 0.0]
        ax.bar([i + k * width for i in range(len(names))], vals, width, label=m)
    ax.set_xticks([i + width * (len(res.models) - 1) / 2 for i in range(len(names))], names)
    ax.set_ylabel("test top-1 (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["TransferConfig", "TransferResult", "transfer", "logreg_transfer", "stratified_split", "parse_dataset",
           "load_splits", "summary_table", "write_outputs", "L2_GRID"]
