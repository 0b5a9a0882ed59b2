"""Scoring a row: the preset's probe on a student, a frozen discriminator or a baseline; Table 6's MMD.

Two probe kinds (:class:`gandistill.compare.presets.ProbeSpec`):

* ``paper-linear``: SnS's linear protocol through :func:`gandistill.evaluate.evaluate`
  (``fast=False``: RandomResizedCrop + flip, frozen backbone in eval mode, the preset's SGD or LARS, cosine) and
  :func:`gandistill.evaluate.linear_probe` for the frozen D on [-1, 1] images.
* ``suite``: the embedded preset's probes through :func:`gandistill.evaluation.suite.probe_suite`:
  the registry's default probes (few-shot logistic regression, kNN, fast probe) on one feature extraction.

Every scorer returns ``(metrics: {name: value}, notes: [str])``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gandistill.compare.presets import ProbeSpec
from gandistill.data import load_dataset
from gandistill.evaluation.features import extract_features
from gandistill.evaluation.linear import linear_probe
from gandistill.evaluation.loading import load_student
from gandistill.evaluation.mmd import mmd2_unbiased
from gandistill.evaluation.probes import default_probes
from gandistill.evaluation.run import evaluate
from gandistill.evaluation.splits import FirstN
from gandistill.evaluation.suite import Precomputed, ProbeConfig, probe_suite, row_metrics
from gandistill.teachers import create_teacher

Metrics = Dict[str, float]


def headline_key(probe: ProbeSpec, metrics: Metrics) -> Optional[str]:
    """The metric printed beside the paper's number: top-1 of the preset's main protocol."""
    for k in (["top1"] if probe.kind == "paper-linear" else ["shot10", "fast", "linear", "top1"]):
        if k in metrics:
            return k
    return next(iter(metrics), None)


def _load_splits(dataset: str, data_root: Optional[str], img_size: Optional[int], max_train: Optional[int],
                 max_test: Optional[int]):
    train = load_dataset(dataset, root=data_root, split="train", img_size=img_size)
    test = load_dataset(dataset, root=data_root, split="test", img_size=img_size)
    if max_train:
        train = FirstN(train, max_train)
    if max_test:
        test = FirstN(test, max_test)
    return train, test


def features_suite(fn: Any, train: Any, test: Any, probe: ProbeSpec, *, device: str, seed: int,
                   epochs: Optional[int] = None, mean: Optional[Sequence[float]] = None,
                   std: Optional[Sequence[float]] = None) -> Tuple[Metrics, List[str]]:
    """The suite on a frozen feature function (Student, D teacher, nn.Flatten for raw pixels).

    Metrics: ``shot<k>`` (few-shot mean top-1), ``knn<k>``, ``fast`` (cached-feature linear probe), and
    those of every other default probe (:func:`suite_metrics`).
    """
    ftr, ytr = extract_features(fn, train, 256, device, mean, std)
    fte, yte = extract_features(fn, test, 256, device, mean, std)
    # the default probes of the registry: fewshot, knn, fast (+ any plug-in registered with default=True)
    cfg = ProbeConfig(probes=default_probes(), shots=tuple(probe.shots) or (1, 10, 100), knn_k=probe.knn_k,
                      fast_epochs=epochs or probe.epochs, seed=seed, device=device)
    table = probe_suite({"rep": Precomputed(ftr, fte, ytr, yte)}, train, test, cfg)
    return suite_metrics(table.rows[0])


def suite_metrics(row: Any) -> Tuple[Metrics, List[str]]:
    """A :class:`~gandistill.evaluation.suite.ProbeRow` as flat metrics (every registered probe's
    :meth:`~gandistill.evaluation.probes.Probe.metrics`: ``shot<k>``, ``shot<k>_std``, ``knn<k>``,
    ``fast``, ``linear``, ...) and its notes."""
    return row_metrics(row), list(row.notes)


def probe_student(run_dir: str, probe: ProbeSpec, *, dataset: str, data_root: Optional[str], device: str,
                  seed: int = 0, epochs: Optional[int] = None, max_train: Optional[int] = None,
                  max_test: Optional[int] = None) -> Tuple[Metrics, List[str]]:
    """The preset's probe on the student of ``run_dir`` (backbone features, before the projector)."""
    if probe.kind == "paper-linear":
        res = evaluate(run_dir, protocol="linear", dataset=dataset, data_root=data_root, epochs=epochs or probe.epochs,
                       fast=False, device=device, batch=probe.batch, lr=probe.base_lr, optimizer=probe.optimizer,
                       seed=seed, max_train=max_train, max_test=max_test)
        return {"top1": float(res["top1"])}, []
    loaded = load_student(run_dir)
    train, test = _load_splits(dataset, data_root, loaded.kwargs.get("img_size"), max_train, max_test)
    return features_suite(loaded.model, train, test, probe, device=_dev(device), seed=seed, epochs=epochs)


class _DFeatures(nn.Module):
    """Frozen D features of [-1, 1] images (the probe normalises with mean = std = 0.5)."""

    def __init__(self, teacher: Any) -> None:
        super().__init__()
        self.teacher = teacher

    def forward(self, x: Tensor) -> Tensor:
        return self.teacher.features(x)


def probe_discriminator(teacher_kwargs: Dict[str, Any], probe: ProbeSpec, *, ckpt: Optional[str], dataset: str,
                        data_root: Optional[str], device: str, seed: int = 0, epochs: Optional[int] = None,
                        max_train: Optional[int] = None, max_test: Optional[int] = None) -> Tuple[Metrics, List[str]]:
    """Table 1 "Direct use": the probe on the frozen D's pooled features (SnS eval_discriminator.py)."""
    dev = _dev(device)
    teacher = create_teacher("sg2-discriminator", ckpt=ckpt, device=dev, **teacher_kwargs)
    train, test = _load_splits(dataset, data_root, None, max_train, max_test)
    half = (0.5, 0.5, 0.5)
    notes = [f"D features {list(teacher.target_names)} ({teacher.num_features}-d)"]
    if probe.kind == "paper-linear":
        res = linear_probe(_DFeatures(teacher), train, test, epochs=epochs or probe.epochs, batch=probe.batch,
                           lr=probe.base_lr, optimizer=probe.optimizer, fast=False, device=dev, seed=seed,
                           mean=half, std=half)
        return {"top1": float(res["top1"])}, notes
    m, n = features_suite(_DFeatures(teacher), train, test, probe, device=dev, seed=seed, epochs=epochs,
                          mean=half, std=half)
    return m, notes + n


def probe_baselines(student: str, student_kwargs: Dict[str, Any], probe: ProbeSpec, *, dataset: str,
                    data_root: Optional[str], device: str, seed: int = 0, epochs: Optional[int] = None,
                    max_train: Optional[int] = None, max_test: Optional[int] = None) -> Dict[str, Tuple[Metrics, List[str]]]:
    """The same probes on raw pixels and on a randomly initialised student of the rows' architecture."""
    dev = _dev(device)
    kw = {k: v for k, v in student_kwargs.items() if k not in ("name", "pretrained")}
    loaded = load_student(f"random:{student}", student_kwargs=kw, seed=seed)
    train, test = _load_splits(dataset, data_root, kw.get("img_size"), max_train, max_test)
    return {
        "raw pixels": features_suite(nn.Flatten(), train, test, probe, device=dev, seed=seed, epochs=epochs),
        f"random-init {student}": features_suite(loaded.model, train, test, probe, device=dev, seed=seed, epochs=epochs),
    }


@torch.no_grad()
def representation_mmd(run_dir: str, *, teacher_ckpt: Optional[str], dataset: str, data_root: Optional[str],
                       n: int, device: str, seed: int = 0) -> Tuple[Metrics, List[str]]:
    """Table 6: unbiased MMD^2 (Gaussian kernel, median bandwidth) between the student's backbone
    features of ``n`` synthetic images of the teacher and ``n`` real training images."""
    dev = _dev(device)
    loaded = load_student(run_dir)
    size = loaded.kwargs.get("img_size")
    real_ds = load_dataset(dataset, root=data_root, split="train", img_size=size)
    g = torch.Generator().manual_seed(seed)
    n = min(int(n), len(real_ds))
    idx = torch.randperm(len(real_ds), generator=g)[:n]
    xr = torch.stack([real_ds[int(i)][0] for i in idx]) if not callable(getattr(real_ds, "take", None)) \
        else real_ds.take(idx)[0].float()
    teacher = create_teacher("sg2-generator", ckpt=teacher_ckpt, device=dev)
    xs = []
    for s in range(0, n, 256):
        xs.append(((teacher.sample(min(256, n - s), generator=g).images.float().cpu() + 1.0) / 2.0).clamp(0, 1))
    xs_t = torch.cat(xs)
    if xs_t.shape[-1] != xr.shape[-1]:
        xs_t = F.interpolate(xs_t, size=xr.shape[-2:], mode="bilinear", align_corners=False)
    mean, std = tuple(real_ds.mean), tuple(real_ds.std)
    dummy = torch.zeros(n, dtype=torch.long)
    fs, _ = extract_features(loaded.model, (xs_t, dummy), 256, dev, mean, std)
    fr, _ = extract_features(loaded.model, (xr, dummy), 256, dev, mean, std)
    res = mmd2_unbiased(fs, fr, kernel="gaussian", sigma="median")
    return ({"mmd2": res["mmd2"], "sigma": float(res["sigma"])},
            [f"MMD^2: n={n} synthetic vs {n} real train images, Gaussian kernel, sigma = median pairwise distance"])


def _dev(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


__all__ = ["probe_student", "probe_discriminator", "probe_baselines", "representation_mmd", "features_suite",
           "headline_key", "suite_metrics"]
