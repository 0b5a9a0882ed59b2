"""Evaluate a distilled (or random) student: linear probe and/or weighted kNN on a labelled dataset.

>>> from gandistill.evaluate import evaluate
>>> evaluate("runs/sns-digits", protocol="both")                # doctest: +SKIP
>>> evaluate("random:resnet10t", dataset="digits", protocol="knn")  # doctest: +SKIP

``gandistill eval RUN_OR_CKPT`` is a thin shell over :func:`evaluate`. The pieces
(:func:`linear_probe`, :func:`knn_eval`, :func:`extract_features`) work on any frozen feature
function and any dataset yielding ``(x in [0,1], y)``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import torch
from torch.utils.data import Dataset

from gandistill.evaluation.features import EvalDataError, extract_features
from gandistill.evaluation.knn import knn_eval, knn_predict
from gandistill.evaluation.linear import PAPER_LR, linear_probe, probe_features
from gandistill.evaluation.loading import CheckpointError, LoadedStudent, load_student

__all__ = [
    "evaluate", "EvalConfig", "linear_probe", "knn_eval", "knn_predict", "extract_features",
    "probe_features", "load_student", "LoadedStudent", "CheckpointError", "EvalDataError", "PROTOCOLS", "FirstN",
    "evaluate_config",
]

PROTOCOLS = ("linear", "knn", "both")
DEFAULT_DATASET = "digits"   # for random:<name> baselines with no run config to read


@dataclass
class EvalConfig:
    """Everything :func:`evaluate` needs beyond the student (the CLI maps its flags to these)."""

    protocol: str = "linear"
    dataset: Optional[str] = None        # default: the run's dataset, else digits
    data_root: Optional[str] = None
    epochs: Optional[int] = None         # default 90 (paper)
    fast: bool = True                    # cached-feature probe; False = full paper protocol
    device: str = "cpu"
    batch: int = 256
    lr: float = PAPER_LR
    k: int = 200
    t: float = 0.1
    seed: int = 0
    img_size: Optional[int] = None       # default: the student's img_size, else the dataset's
    train_split: str = "train"
    test_split: str = "test"
    max_train: Optional[int] = None
    max_test: Optional[int] = None
    student_kwargs: Optional[Dict[str, Any]] = None


class FirstN(Dataset):
    """The first ``n`` items of an image dataset, keeping its attributes and batch access."""

    def __init__(self, base: Any, n: int):
        self.base, self.n = base, min(int(n), len(base))
        for a in ("name", "num_classes", "mean", "std", "resolution", "split", "classes"):
            if hasattr(base, a):
                setattr(self, a, getattr(base, a))
        if callable(getattr(base, "take", None)):
            self.take = self._take

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} items")
        return self.base[i % self.n]

    def _take(self, index: Any):
        if isinstance(index, slice):
            index = slice(*index.indices(self.n))
        return self.base.take(index)


_FirstN = FirstN   # the engine imports this name


def _run_value(cfg: Dict[str, Any], *keys: str) -> Any:
    """First of ``keys`` found in a run config, looking one level into nested sections too."""
    for k in keys:
        if cfg.get(k) not in (None, ""):
            return cfg[k]
    for sec in cfg.values():
        if isinstance(sec, dict):
            for k in keys:
                if sec.get(k) not in (None, ""):
                    return sec[k]
    return None


def _load_split(name: str, root: Optional[str], split: str, img_size: Optional[int], limit: Optional[int]):
    from gandistill.data import load_dataset

    ds = load_dataset(name, root=root, split=split, img_size=img_size)
    if getattr(ds, "num_classes", None) == 0:
        raise EvalDataError(
            f"dataset '{name}' split '{split}' has no labels: evaluation needs a labelled split"
            + (" (stl10: use 'train' and 'test')" if name == "stl10" else "")
        )
    if len(ds) == 0:
        raise EvalDataError(f"dataset '{name}' split '{split}' is empty")
    return FirstN(ds, limit) if limit is not None else ds


def evaluate(
    run_or_ckpt: Union[str, Path],
    protocol: str = "linear",
    dataset: Optional[str] = None,
    data_root: Optional[str] = None,
    epochs: Optional[int] = None,
    fast: bool = True,
    device: str = "cpu",
    *,
    batch: int = 256,
    lr: float = PAPER_LR,
    k: int = 200,
    t: float = 0.1,
    seed: int = 0,
    img_size: Optional[int] = None,
    train_split: str = "train",
    test_split: str = "test",
    max_train: Optional[int] = None,
    max_test: Optional[int] = None,
    student_kwargs: Optional[Dict[str, Any]] = None,
    progress: Optional[Callable[[dict], None]] = None,
) -> Dict[str, Any]:
    """Rebuild the student of a run folder / checkpoint (or ``random:<timm-name>``) and evaluate it.

    ``protocol``: ``linear`` (probe; ``fast=True`` trains on cached features, ``fast=False`` runs
    the paper protocol with augmentation), ``knn`` (k=200, t=0.1 weighted kNN) or ``both``.
    ``device="auto"`` picks CUDA when available. The dataset defaults to the run's own (its
    checkpoint JSON / ``config.json``), else ``digits``; it is loaded at the student's ``img_size``. ``student_kwargs`` only applies to ``random:`` students (a checkpoint
    carries its own); their initialisation is seeded with ``seed``. ``max_train``/``max_test``
    keep the first items of each split (quick looks).

    Returns ``dict(student, source, dataset, img_size, protocol, top1, linear={...}, knn={...},
    time_s)`` where ``top1`` is the linear top-1 when a probe ran, else the kNN top-1.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    t0 = time.perf_counter()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded = load_student(run_or_ckpt, img_size=img_size, student_kwargs=student_kwargs, seed=seed)
    cfg = {"checkpoint": loaded.meta, **loaded.run_config}
    ds_name = dataset or _run_value(cfg, "dataset") or DEFAULT_DATASET
    if not isinstance(ds_name, str):
        raise EvalDataError(f"cannot tell the dataset from the run config (got {ds_name!r}); pass dataset=")
    root = data_root or _run_value(cfg, "data_root")
    size = img_size or loaded.kwargs.get("img_size") or _run_value(cfg, "img_size")
    train = _load_split(ds_name, root, train_split, size, max_train)
    test = _load_split(ds_name, root, test_split, size, max_test)
    model = loaded.model.to(device)

    out: Dict[str, Any] = dict(student=loaded.name, source=loaded.source,
                               checkpoint=str(loaded.weights) if loaded.weights else None,
                               dataset=ds_name, img_size=size or getattr(train, "resolution", None),
                               protocol=protocol, num_train=len(train), num_test=len(test))
    lin_kw = dict(epochs=90 if epochs is None else epochs, batch=batch, lr=lr, device=device, seed=seed, progress=progress)
    if protocol == "both" and fast:      # one feature extraction serves both protocols
        ftr, ytr = extract_features(model, train, batch, device)
        fte, yte = extract_features(model, test, batch, device)
        n_cls = getattr(train, "num_classes", None) or None
        out["linear"] = probe_features(ftr, ytr, fte, yte, num_classes=n_cls, **lin_kw)
        pred = knn_predict(ftr, ytr, fte, k=k, t=t, num_classes=out["linear"]["num_classes"])
        out["knn"] = dict(top1=100.0 * (pred == yte).float().mean().item(), k=min(k, ftr.shape[0]), t=t,
                          num_train=ftr.shape[0], num_test=fte.shape[0], feature_dim=ftr.shape[1])
    else:
        if protocol in ("linear", "both"):
            out["linear"] = linear_probe(model, train, test, fast=fast, **lin_kw)
        if protocol in ("knn", "both"):
            out["knn"] = knn_eval(model, train, test, k=k, t=t, batch=batch, device=device)
    if "linear" in out:
        out["linear"].pop("history", None)
    out["top1"] = out["linear"]["top1"] if "linear" in out else out["knn"]["top1"]
    out["time_s"] = time.perf_counter() - t0
    return out


def evaluate_config(run_or_ckpt: Union[str, Path], cfg: EvalConfig,
                    progress: Optional[Callable[[dict], None]] = None) -> Dict[str, Any]:
    """:func:`evaluate` with the settings of an :class:`EvalConfig`."""
    kw = dict(vars(cfg))
    return evaluate(run_or_ckpt, kw.pop("protocol"), kw.pop("dataset"), kw.pop("data_root"), kw.pop("epochs"),
                    kw.pop("fast"), kw.pop("device"), progress=progress, **kw)
