"""A :class:`FitConfig` resolved once into a :class:`Plan`: the method's defaults filled in, the batch
split into synthetic and real parts per rank, the schedule and the run folder fixed.

Everything downstream (parts, step, loop, checkpoints) reads the plan, never the config::

    n_syn = round(alpha * B / world),  n_real = B / world - n_syn,  lr = base_lr * B / 256
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from gandistill import augment
from gandistill.data import load_dataset
from gandistill.engine.config import (DEFAULT_STEPS, ENCODER_INPUTS, PRECISIONS, FitConfig,
                                      config_dict, default_run_dir, student_choice)
from gandistill.evaluation.suite import parse_probes, protocol_words
from gandistill.methods import LossWeights, MethodSpec, get_method
from gandistill.objectives import Objective, get_objective
from gandistill.engine.twin import twin_method
from gandistill.teachers.conditioning import conditional_warning


@dataclass(frozen=True)
class EvalPlan:
    """The probe run after training (``protocol == "none"``: no probe)."""

    protocol: str
    fast: bool
    epochs: Optional[int]
    random: bool
    max_train: Optional[int]
    max_test: Optional[int]
    raw_pixels: bool                    # the closing table's raw-pixel row


@dataclass(frozen=True)
class Plan:
    """The resolved run: what to build (teacher, student, head), how to train it and where to write."""

    spec: MethodSpec
    weights: LossWeights
    # teacher
    teacher_name: Optional[str]
    teacher_ckpt: Optional[str]
    teacher_kwargs: Dict[str, Any]
    bank: Optional[str]                 # a feature bank of the teacher's samples, read instead of running G
    # student and head
    student_name: str
    cifar_stem: Optional[bool]
    student_kwargs: Dict[str, Any]
    proj_layers: int
    proj_hidden: Optional[int]          # None: the backbone's width (SimSiam)
    proj_final_bn: bool                 # SimSiam: BatchNorm1d(dim, affine=False) closes the projector
    dim: int
    depth: int
    squeeze_hidden: int
    # data
    dataset: str
    data_root: Optional[str]
    train_split: str
    download: bool                      # the user opted in to fetching the dataset
    img_size: int
    n_syn: int
    n_real: int
    aug_preset: str
    shared_aug: bool
    encoder_input: str                  # "normalised" | "raw"
    workers: int
    # schedule and numerics
    total_steps: int
    steps_per_epoch: int
    lr: float
    wd: float
    precision: str
    channels_last: bool
    sync_bn: bool
    seed: int
    # the loop
    run_dir: Path
    resume: bool                        # continue run_dir from its checkpoint
    resume_auto: bool                   # "--resume auto": look for the latest run of this config first
    log_every: int
    ckpt_every: int
    collapse_threshold: float
    collapse_patience: int
    progress: Optional[bool]
    eval: EvalPlan
    config: Dict[str, Any] = field(default_factory=dict)   # the source config, JSON-able (for the record)

    @property
    def objective(self) -> Objective:
        """The method's objective (:mod:`gandistill.objectives`): heads, inputs, forward and loss."""
        return get_objective(self.spec.objective)


def default_augment(dataset: str) -> str:
    """The preset when none is given: ssl-stl for STL-10, ssl-digits for digits (if registered), else ssl-cifar."""
    name = dataset.lower()
    if name.startswith("stl"):
        return "ssl-stl"
    if name == "digits":
        if "ssl-digits" in augment.PRESETS:
            return "ssl-digits"
    return "ssl-cifar"


def split_batch(cfg: FitConfig, objective: Objective, alpha: float, device: torch.device,
                world: int) -> Tuple[int, int]:
    """``(n_syn, n_real)`` per rank: ``n_syn = round(alpha * B / world)``; none for an objective that
    does not train. Refuses batches that cannot be split so."""
    if cfg.batch < 2 * world:
        raise ValueError(f"batch must be at least 2 per rank, got {cfg.batch} for {world} rank(s)")
    if cfg.batch % world:
        raise ValueError(f"batch {cfg.batch} is not divisible by the {world} ranks")
    if cfg.sync_bn and world > 1 and device.type == "cpu":
        raise ValueError("--sync-bn needs GPUs (PyTorch's SyncBatchNorm runs on CUDA only); drop it on CPU")
    per_rank = cfg.batch // world
    n_syn = int(round(alpha * per_rank)) if objective.trains else 0
    n_real = per_rank - n_syn if objective.trains else 0
    if objective.needs_synthetic and alpha in (0.0,):
        raise ValueError(f"method {cfg.method} with alpha=0 has no synthetic images to distil from")
    for n, what in ((n_syn, "synthetic"), (n_real, "real")):
        if 0 < n < 2:
            raise ValueError(f"the {what} part of the batch has {n} image(s) per rank; VICReg/var need at least 2 "
                             f"(batch {cfg.batch}, alpha {alpha})")
    return n_syn, n_real


def check_eval(protocol: str, fast: Optional[bool]) -> None:
    """Refuse an ``--eval`` that is neither ``none`` nor registered probe names."""
    if protocol == "none":
        return
    try:
        parse_probes(protocol, fast)
    except ValueError as e:
        raise ValueError(f"eval must be 'none' or comma-separated probes ({', '.join(protocol_words())}): "
                         f"{e}") from None


def make_plan(cfg: FitConfig, train_len: int, resolution: int, device: torch.device, world: int) -> Plan:
    """Resolve ``cfg`` for a training set of ``train_len`` images at ``resolution`` on ``world`` ranks."""
    spec = get_method(cfg.method)
    if cfg.resume not in (False, True, "auto"):
        raise ValueError(f"resume must be False, True or 'auto', got {cfg.resume!r}")
    alpha = spec.alpha if cfg.alpha is None else float(cfg.alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    objective = get_objective(spec.objective)
    n_syn, n_real = split_batch(cfg, objective, alpha, device, world)
    steps_per_epoch = max(1, train_len // cfg.batch)
    if cfg.steps is not None:
        total = int(cfg.steps)
    elif cfg.epochs is not None:
        total = int(round(float(cfg.epochs) * steps_per_epoch))
    else:
        total = DEFAULT_STEPS
    if total < 1 and objective.trains:
        raise ValueError(f"the run needs at least one step (steps={cfg.steps}, epochs={cfg.epochs})")
    precision = cfg.precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    check_eval(cfg.eval, cfg.eval_fast)
    base_lr = spec.base_lr if cfg.base_lr is None else float(cfg.base_lr)
    if cfg.encoder_input not in ENCODER_INPUTS:
        raise ValueError(f"encoder_input must be one of {ENCODER_INPUTS}, got {cfg.encoder_input!r}")
    preset = cfg.augment if cfg.augment is not None else default_augment(cfg.dataset)
    w = LossWeights(
        sim=spec.sim if cfg.sim is None else float(cfg.sim),
        var=spec.var if cfg.var is None else float(cfg.var),
        cov=spec.cov if cfg.cov is None else float(cfg.cov),
        alpha=alpha,
        var_cov_on=cfg.var_cov_on or spec.var_cov_on,
        gather=cfg.gather,
    )
    student_name, stem = student_choice(cfg)
    return Plan(
        spec=spec, weights=w,
        teacher_name=cfg.teacher or spec.teacher, teacher_ckpt=cfg.teacher_ckpt,
        teacher_kwargs=dict(cfg.teacher_kwargs), bank=cfg.bank,
        student_name=student_name, cifar_stem=stem, student_kwargs=dict(cfg.student_kwargs),
        proj_layers=spec.proj_layers if cfg.proj_layers is None else int(cfg.proj_layers),
        proj_hidden=spec.proj_hidden if cfg.proj_hidden is None else int(cfg.proj_hidden),
        proj_final_bn=bool(getattr(spec, "proj_final_bn", False)),
        dim=spec.dim if cfg.dim is None else int(cfg.dim),
        depth=spec.squeeze_depth if cfg.squeeze_depth is None else int(cfg.squeeze_depth),
        squeeze_hidden=cfg.squeeze_hidden,
        dataset=cfg.dataset, data_root=cfg.data_root, train_split=cfg.train_split,
        download=cfg.download, img_size=int(cfg.img_size or resolution), n_syn=n_syn, n_real=n_real, aug_preset=preset,
        shared_aug=cfg.shared_aug, encoder_input=cfg.encoder_input, workers=cfg.workers,
        total_steps=total, steps_per_epoch=steps_per_epoch, lr=base_lr * cfg.batch / 256.0,
        wd=spec.weight_decay if cfg.wd is None else float(cfg.wd), precision=precision,
        channels_last=cfg.channels_last, sync_bn=cfg.sync_bn, seed=cfg.seed,
        run_dir=Path(cfg.out) if cfg.out else default_run_dir(cfg), resume=cfg.resume is True,
        resume_auto=cfg.resume == "auto",
        log_every=cfg.log_every, ckpt_every=cfg.ckpt_every or max(50, total // 10),
        collapse_threshold=cfg.collapse_threshold, collapse_patience=cfg.collapse_patience,
        progress=cfg.progress,
        eval=EvalPlan(protocol=cfg.eval, fast=cfg.eval_fast, epochs=cfg.eval_epochs, random=cfg.eval_random,
                      max_train=cfg.eval_max_train, max_test=cfg.eval_max_test,
                      raw_pixels=cfg.eval_raw_pixels),
        config=config_dict(cfg),
    )


def check_labelled(plan: Plan, ds: Any, probe_ds: Optional[Callable[[], Any]] = None) -> None:
    """Fail before training, not after it, when the evaluation would need labels the dataset lacks.

    ``ds`` is the training split; the probe reads split ``train`` (``probe_ds()`` loads it when the
    training split is another one, e.g. STL-10's ``train+unlabeled``).
    """
    if getattr(ds, "num_classes", None) != 0:
        return
    if not plan.spec.trains:
        raise ValueError(f"method {plan.spec.name} is a linear probe and needs a labelled dataset; "
                         f"'{plan.dataset}' (split {plan.train_split}) has no labels")
    if plan.eval.protocol != "none":
        split = plan.train_split
        if split != "train" and probe_ds is not None:
            if getattr(probe_ds(), "num_classes", None) != 0:
                return
            split = "train"
        raise ValueError(f"dataset '{plan.dataset}' (split {split}) has no labels, so --eval {plan.eval.protocol} "
                         "cannot run after training; pass --eval none (and evaluate later on a labelled dataset "
                         "with `gandistill eval RUN --dataset NAME`)")


def plan_dict(plan: Plan, train_len: int) -> Dict[str, Any]:
    """The plan as recorded in ``config.json`` and printed by ``--dry-run``."""
    return {
        "config": dict(plan.config),
        "method": plan.spec.to_dict(),
        "resolved": {
            "student": plan.student_name, "cifar_stem": plan.cifar_stem,
            "teacher": plan.teacher_name, "img_size": plan.img_size, "batch_syn_per_rank": plan.n_syn,
            "batch_real_per_rank": plan.n_real, "total_steps": plan.total_steps,
            "steps_per_epoch": plan.steps_per_epoch, "lr": plan.lr, "weight_decay": plan.wd,
            "augment": plan.aug_preset if plan.spec.augment else "none", "augment_real": plan.aug_preset,
            "precision": plan.precision, "proj_layers": plan.proj_layers, "proj_hidden": plan.proj_hidden,
            "dim": plan.dim, "squeeze_depth": plan.depth, "loss_weights": asdict(plan.weights),
            "proj_final_bn": plan.proj_final_bn, "train_split": plan.train_split, "train_images": train_len,
        },
    }


def resolved_config(cfg: FitConfig) -> Dict[str, Any]:
    """The config with method defaults filled in (what ``--dry-run`` prints); builds nothing heavy."""
    ds = load_dataset(cfg.dataset, root=cfg.data_root, split=cfg.train_split, img_size=cfg.img_size,
                      download=cfg.download)  # allow-download: only when the user passed --download
    dev = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if cfg.device == "auto" else cfg.device))
    plan = make_plan(cfg, len(ds), int(getattr(ds, "resolution", 32)), dev, int(os.environ.get("WORLD_SIZE", "1")))
    check_labelled(plan, ds, lambda: load_dataset(cfg.dataset, root=cfg.data_root, split="train",
                                                  img_size=cfg.img_size))
    out = plan_dict(plan, len(ds))
    out["conditional_teacher"] = conditional_warning(plan.teacher_name, plan.teacher_ckpt)
    out["ssl_twin"] = twin_method(cfg) if get_objective(plan.spec.objective).trains else None
    return out
