"""Presets: how a table row becomes a concrete run on one dataset.

``cifar10``, ``cifar100`` and ``stl10`` reproduce SnS's scripts (``sns.py`` defaults and its
``scripts/`` overrides): ResNet-18 (CIFAR stem on 32 px CIFAR, the standard stem at 64 px on
STL-10), global batch 512, SGD momentum 0.9,
lr = base_lr x batch / 256 with cosine decay and no warm-up, T_phi in the student's optimizer,
SyncBN under DDP, one augmentation per synthetic batch (SnS applies torchvision v1 transforms to the
whole batch tensor), and the paper's linear protocol (frozen backbone in eval mode, 90 epochs).
``digits`` is the embedded preset: the bundled data and teacher, the engine's CPU defaults (student,
batch, augmentation) and a step budget sized so Table 1 fits an hour on 2 CPU cores.

``resolve(run, preset, ...)`` gives a :class:`RowPlan`: the ``FitConfig`` keyword arguments, the
probe, and notes where our run knowingly differs from the paper's.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Tuple

from gandistill.compare.tables import SQ, RunSpec
from gandistill.engine import FitConfig
from gandistill.methods import get_method
from gandistill.teachers.encoder import EncoderTeacher
from gandistill.teachers.encoder import lpips_available

# The step budget of the embedded preset at --budget 1: every training row gets the same number of
# steps (the paper trains every row 800 epochs). Sized from the default run's ~0.6 s per sns step on
# 2 CPU cores (issue 8) and the measured cost ratios of the rows' steps (encoder ~1.5x, vanilla /
# squeeze ~0.7x, vicreg / simsiam ~0.5x of sns): Table 1's eight trainings ~30 min + probes ~5 min.
DIGITS_STEPS = 400


@dataclass(frozen=True)
class ProbeSpec:
    """How a student (or frozen D) is scored.

    ``kind``: ``paper-linear`` (SnS eval_classification.py: SGD/LARS on the frozen backbone with
    RandomResizedCrop + flip, cosine, no warm-up) or ``suite`` (the embedded preset's few-shot
    logistic regression, kNN-20 and fast probe, with raw-pixel and random-init baselines).
    """

    kind: str = "paper-linear"
    epochs: int = 90
    batch: int = 256
    base_lr: float = 30.0            # lr = base_lr * batch / 256 (SnS: 30 for CIFAR, 0.1 -> 1.6 with LARS)
    optimizer: str = "sgd"           # sgd | lars
    weight_decay: float = 0.0
    knn_k: int = 200
    shots: Tuple[int, ...] = ()

    @property
    def lr(self) -> float:
        return self.base_lr * self.batch / 256.0


@dataclass(frozen=True)
class Preset:
    name: str
    dataset: str
    paper_column: str                      # the paper column our numbers are printed beside
    help: str
    student: Optional[str] = "resnet18"
    cifar_stem: Optional[bool] = True
    img_size: Optional[int] = 32
    batch: Optional[int] = 512
    epochs: Optional[float] = 800.0
    steps: Optional[int] = None            # wins over epochs (the embedded preset)
    train_images: Optional[int] = None     # len(train split): steps per epoch = train_images // batch
    train_split: str = "train"
    base_lr: Optional[float] = 0.03
    wd: Optional[float] = 5e-4
    squeeze_weights: Tuple[float, float, float] = (25.0, 25.0, 1.0)   # rows with a squeeze loss (mu > 0)
    augment: Optional[str] = "ssl-cifar"
    shared_aug: bool = True
    sync_bn: bool = True
    encoder: Dict[str, Any] = field(default_factory=dict)   # FitConfig overrides for the encoder rows
    simsiam: Dict[str, Any] = field(default_factory=dict)   # ... for the SimSiam rows
    probe: ProbeSpec = ProbeSpec()
    d_probe: ProbeSpec = ProbeSpec()       # frozen-D rows (images in [-1, 1])
    needs_teacher_ckpt: bool = True
    mmd_samples: int = 5000
    notes: Tuple[str, ...] = ()


_ENC_CIFAR = dict(batch=128, base_lr=0.01, wd=5e-4, proj_layers=2)
_SS_CIFAR = dict(base_lr=0.03, wd=5e-4, proj_layers=2)

PRESETS: Dict[str, Preset] = {p.name: p for p in (
    Preset("cifar10", "cifar10", "cifar10", "SnS's CIFAR-10 scripts (ResNet-18 CIFAR stem, 800 epochs, batch 512)",
           train_images=50000, encoder=_ENC_CIFAR, simsiam=_SS_CIFAR,
           notes=("teacher: an unconditional StyleGAN2-ADA --cfg=cifar (SnS: cifar10u-cifar-ada-best-fid.pkl, "
                  "never published); NVlabs' cifar10.pkl is class-conditional",)),
    Preset("cifar100", "cifar100", "cifar100", "SnS's CIFAR-100 scripts (as CIFAR-10, squeeze weights 10/10/1)",
           train_images=50000, squeeze_weights=(10.0, 10.0, 1.0), encoder=_ENC_CIFAR, simsiam=_SS_CIFAR,
           notes=("teacher: SnS's cifar100u-cifar-best-fid4.13.pkl (never published): train an unconditional one",)),
    Preset("stl10", "stl10", "stl10", "SnS's STL-10 scripts (ResNet-18 standard stem, 64 px, train+unlabeled, 200 ep.)",
           cifar_stem=False, img_size=64, epochs=200.0, train_images=105000, train_split="train+unlabeled",
           base_lr=0.05, wd=1e-4, augment="ssl-stl", encoder=dict(_ENC_CIFAR),
           simsiam=dict(base_lr=0.05, wd=1e-4, proj_layers=3),
           probe=ProbeSpec(batch=4096, base_lr=0.1, optimizer="lars"),
           d_probe=ProbeSpec(batch=4096, base_lr=0.1, optimizer="lars"),
           notes=("SimSiam on STL-10: 3 projector layers, lr 0.05 / wd 1e-4 (SimSiam's own values; SnS's "
                  "SnS publishes no simsiam STL-10 script)",
                  "teacher: SnS's stl10u-my128-best-fid20.86.pkl (never published)")),
    Preset("digits", "digits", "cifar10", "embedded: bundled digits + teacher on CPU (beside the paper's CIFAR-10)",
           student=None, cifar_stem=None, img_size=None, batch=None, epochs=None, steps=DIGITS_STEPS,
           base_lr=None, wd=None, augment=None, shared_aug=False, sync_bn=False,
           encoder=dict(base_lr=0.01, proj_layers=2), simsiam={},
           probe=ProbeSpec(kind="suite", epochs=90, knn_k=20, shots=(1, 10, 100)),
           d_probe=ProbeSpec(kind="suite", epochs=90, knn_k=20, shots=(1, 10, 100)),
           needs_teacher_ckpt=False, mmd_samples=1000,
           notes=("digits: 4,000 training images, 32 px; the student, batch and augmentation are the engine's "
                  "CPU defaults for digits; every training row gets the same step budget",)),
)}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None


@dataclass
class RowPlan:
    """A run resolved for one preset: FitConfig kwargs (minus out/teacher_ckpt/data_root), probe, notes."""

    run: RunSpec
    fit: Dict[str, Any]
    probe: ProbeSpec
    notes: List[str] = field(default_factory=list)

    @property
    def trains(self) -> bool:
        return self.run.kind == "train"


def fit_fields() -> set:
    return {f.name for f in fields(FitConfig)}


def _encoder_takes(option: str) -> bool:
    return option in inspect.signature(EncoderTeacher.__init__).parameters


def _scaled(value: Optional[float], budget: float) -> Optional[float]:
    return None if value is None else value * budget


def resolve(run: RunSpec, preset: Preset, budget: float = 1.0, *, lpips_weights: Optional[str] = None,
            seed: int = 0, device: str = "auto", available: Optional[set] = None) -> RowPlan:
    """The concrete run of ``run`` under ``preset`` with the step budget scaled by ``budget``.

    ``available`` is the set of FitConfig field names (default: the installed engine's); options the
    engine lacks are left out and named in ``notes`` instead.
    """
    if budget <= 0:
        raise ValueError(f"--budget must be positive, got {budget}")
    have = fit_fields() if available is None else available
    notes: List[str] = []
    kw: Dict[str, Any] = dict(method=run.method, teacher=run.teacher, teacher_kwargs=dict(run.teacher_kwargs),
                              dataset=preset.dataset, seed=seed, device=device, eval="none", progress=False)
    if run.kind == "probe-d":
        probe = preset.d_probe
        kw.update(eval="linear", eval_fast=probe.kind != "paper-linear", eval_epochs=probe.epochs, eval_random=False)
        return RowPlan(run, kw, probe, notes)

    for k in ("student", "cifar_stem", "img_size", "batch", "base_lr", "augment"):
        if getattr(preset, k) is not None:
            kw[k] = getattr(preset, k)
    if preset.wd is not None:
        kw["wd"] = preset.wd
    kw["shared_aug"], kw["sync_bn"] = preset.shared_aug, preset.sync_bn
    if preset.steps is not None:
        kw["steps"] = max(1, int(round(preset.steps * budget * run.budget)))
    else:
        kw["epochs"] = _scaled(preset.epochs, budget * run.budget)
    if run.alpha is not None:
        kw["alpha"] = run.alpha
    if run.squeeze_depth is not None:
        kw["squeeze_depth"] = run.squeeze_depth
    objective = get_method(run.method).objective
    if run.weights is not None and objective in ("distill", "vicreg"):
        sim, var, cov = run.weights
        if objective == "distill" and run.weights == SQ:      # sns.py rows: the dataset's weights
            sim, var, cov = preset.squeeze_weights
        kw.update(sim=sim, var=var, cov=cov)
    if run.method.startswith("encoder"):
        kw.update(preset.encoder)
        if lpips_weights and not _encoder_takes("lpips_weights"):
            notes.append("--lpips-weights ignored: the sg2-encoder teacher has no lpips_weights option yet")
            lpips_weights = None
        kw["teacher_kwargs"].setdefault("perceptual", "lpips" if lpips_weights else "auto")
        if lpips_weights:
            kw["teacher_kwargs"]["lpips_weights"] = lpips_weights
        if not lpips_weights:
            if not lpips_available():
                notes.append("no LPIPS weights here: the perceptual term is a stand-in (d-features of the teacher's D), "
                             "labelled in the table; pass --lpips-weights for the paper's loss")
        if "encoder_input" in have:
            kw["encoder_input"] = "raw"
        else:
            notes.append("E sees dataset-normalised images (SnS: raw [-1, 1]); the engine has no encoder_input option")
    if run.method.startswith("simsiam"):
        kw.update(preset.simsiam)
    if preset.train_split != "train":
        if "train_split" in have:
            kw["train_split"] = preset.train_split
        else:
            notes.append(f"trained on the 'train' split: the engine has no train_split option (SnS: {preset.train_split})")
    dropped = sorted(k for k in kw if k not in have)
    for k in dropped:
        notes.append(f"engine lacks FitConfig.{k}; left at the engine default")
        kw.pop(k)
    return RowPlan(run, kw, preset.probe, notes)


def describe_plan(plan: RowPlan, preset: Preset) -> Dict[str, Any]:
    """What ``--dry-run`` prints: the FitConfig kwargs plus the derived numbers SnS's scripts show."""
    kw = plan.fit
    d: Dict[str, Any] = {"method": kw.get("method"), "teacher": kw.get("teacher"),
                         "teacher_kwargs": kw.get("teacher_kwargs") or {}}
    if plan.trains:
        batch = kw.get("batch")
        spec = get_method(kw["method"])
        d.update({k: kw[k] for k in ("student", "cifar_stem", "img_size", "batch", "epochs", "steps", "train_split",
                                     "base_lr", "wd", "alpha", "sim", "var", "cov", "squeeze_depth", "proj_layers",
                                     "shared_aug", "sync_bn", "encoder_input") if k in kw})
        aug = kw.get("augment") or "engine default for the dataset"
        if spec.objective == "encoder":
            d["augment_syn"], d["augment_real"] = "none", "none (normalise only)"
        else:
            d["augment_syn"] = aug if spec.augment else "none"
            d["augment_real"] = aug
        if spec.objective == "distill":
            d["squeeze_hidden"] = 2048
        if kw.get("student") and kw["student"].startswith("resnet"):
            d["student_init"] = "timm default: zero_init_last=True (SnS: zero_init_residual=True)"
        d["precision"] = "engine auto (bf16 autocast on GPU, fp32 on CPU)"
        if batch and kw.get("base_lr") is not None:
            d["lr"] = kw["base_lr"] * batch / 256.0
        if batch and preset.train_images and kw.get("epochs") is not None:
            per = preset.train_images // batch
            d["steps_per_epoch"], d["total_steps"] = per, int(round(kw["epochs"] * per))
        d.setdefault("proj_layers", spec.proj_layers)
        d["proj_hidden"] = "backbone width" if spec.proj_hidden is None else spec.proj_hidden
        d["proj_final_bn"] = spec.proj_final_bn
        if spec.objective == "encoder":
            d["dim"] = "num_ws x w_dim (E(x) = w+; 4096 for the cifar config)"
        elif spec.objective == "distill" and kw.get("squeeze_depth", spec.squeeze_depth) == 0:
            d["dim"] = "the pooled, concatenated teacher width (2048 for G blocks b4-b32, 512 for w)"
        else:
            d["dim"] = spec.dim
        d["optimizer"] = "SGD momentum 0.9, cosine per step, no warm-up" + (
            ", predictor at fixed lr" if spec.fixed_head_lr else "")
    p = plan.probe
    d["probe"] = (f"{p.kind}: {p.optimizer} batch {p.batch} lr {p.lr:g} wd {p.weight_decay:g} {p.epochs} epochs"
                  if p.kind == "paper-linear" else
                  f"suite: few-shot {','.join(map(str, p.shots))}/class, kNN-{p.knn_k}, fast probe; baselines")
    if plan.notes:
        d["notes"] = list(plan.notes)
    return d


__all__ = ["Preset", "ProbeSpec", "PRESETS", "RowPlan", "DIGITS_STEPS", "get_preset", "resolve", "describe_plan",
           "fit_fields"]
