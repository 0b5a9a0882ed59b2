""":func:`fit`: config -> plan -> parts -> loop -> results, and the probe after training.

A run folder holds ``config.json`` (the resolved config, versions, git revision), ``metrics.jsonl``,
the last checkpoint (see :mod:`gandistill.engine.checkpoint`), ``init/`` (the random initialisation,
the probe's baseline) and ``summary.json``.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from gandistill.engine import checkpoint as ckpt
from gandistill.engine.config import FitConfig, FitResult
from gandistill.engine.distributed import (Dist, barrier, broadcast_object, rank_seeds, resolve_device,
                                           setup_distributed, teardown_distributed)
from gandistill.engine.loop import train
from gandistill.engine.parts import build_parts, build_teacher, teacher_conditional
from gandistill.engine.plan import Plan, check_labelled, make_plan, plan_dict
from gandistill.engine.record import run_record


def fit(cfg: FitConfig, log: Optional[Callable[[str], None]] = None) -> FitResult:
    """Train a student by ``cfg.method`` and (unless ``cfg.eval == "none"``) probe it.

    Raises :class:`TrainingStopped` when a guard fires, ``ValueError``/``KeyError`` for bad settings,
    ``FileNotFoundError`` for missing checkpoints or data.
    """
    t_start = time.perf_counter()
    d = setup_distributed(cfg.device)
    try:
        return _fit(cfg, d, log, t_start)
    finally:
        teardown_distributed(d)


def _fit(cfg: FitConfig, d: Dist, log: Optional[Callable[[str], None]], t_start: float) -> FitResult:
    from gandistill.data import load_dataset

    say = (log or (lambda s: print(s, flush=True))) if d.main else (lambda s: None)
    device = resolve_device(cfg.device, d)
    torch.manual_seed(rank_seeds(cfg.seed, d.world)[d.rank]["torch"])
    # the archives hold every split, so fetching with the training split serves the probe's splits too
    train_ds = load_dataset(cfg.dataset, root=cfg.data_root, split=cfg.train_split, img_size=cfg.img_size,
                            download=cfg.download)  # allow-download: only when the user passed --download

    # config -> plan (nothing below reads cfg)
    plan = make_plan(cfg, len(train_ds), int(getattr(train_ds, "resolution", 32)), device, d.world)
    check_labelled(plan, train_ds, lambda: load_dataset(plan.dataset, root=plan.data_root, split="train",
                                                        img_size=plan.img_size))
    record = plan_dict(plan, len(train_ds))
    if d.main:      # rank 0 decides where the run lives (and finishes an interrupted checkpoint write)
        plan = ckpt.resolve_resume(plan, record, say)
        if plan.resume:
            ckpt.recover(plan.run_dir)
    where = broadcast_object((plan.run_dir, plan.resume), d)
    plan = replace(plan, run_dir=where[0], resume=where[1], resume_auto=False)
    barrier(d)
    ckpt.check_run_dir(plan, record)
    if d.main:
        plan.run_dir.mkdir(parents=True, exist_ok=True)

    # plan -> parts
    teacher = build_teacher(plan, device)
    info = run_record(plan, len(train_ds), teacher, d, device)
    info["teacher_conditional"] = conditional = teacher_conditional(teacher)
    if hasattr(train_ds, "mean") and hasattr(train_ds, "std"):     # the input normalisation (for export)
        info["resolved"]["normalise"] = {"mean": [float(v) for v in train_ds.mean],
                                         "std": [float(v) for v in train_ds.std]}
    if plan.spec.objective == "probe":
        return _probe_only(plan, teacher, train_ds, info, say, device, t_start, d, conditional)
    parts = build_parts(plan, teacher, train_ds, device, d)
    info["resolved"]["student_params"] = sum(p.numel() for p in parts.student.parameters())
    info["resolved"]["head_params"] = sum(p.numel() for p in parts.head.parameters()) if parts.head is not None else 0
    if teacher is not None and hasattr(teacher, "perceptual_name"):
        info["resolved"]["perceptual"] = teacher.perceptual_name

    meta = ckpt.checkpoint_meta(plan, teacher)
    start = 0
    if plan.resume:
        start = ckpt.resume(plan, parts)
        say(f"resumed {plan.run_dir} at step {start}/{plan.total_steps}")
    if d.main:
        info["resumed_from_step"] = start
        ckpt.write_json(plan.run_dir / "config.json", info)
        if plan.eval.random and plan.eval.protocol != "none" and not plan.resume:
            # the run's own random initialisation: the baseline the probe compares against
            ckpt.save_checkpoint(plan.run_dir / "init", 0, parts.student, None, None, None, meta)

    # parts -> loop -> results
    loop = train(plan, parts, d, device, say, start, meta)
    result = FitResult(run_dir=plan.run_dir, checkpoint=loop.checkpoint, steps=plan.total_steps,
                       final_loss=loop.final_loss, time_s=0.0, train_time_s=loop.train_time_s,
                       teacher_conditional=conditional, config=info)
    if d.main and plan.eval.protocol != "none":
        say(f"training done in {loop.train_time_s:.1f}s; evaluating ({plan.eval.protocol}, fast={plan.eval.fast}) ...")
        result.eval, result.eval_random = _evaluate(plan, device)
    result.time_s = time.perf_counter() - t_start
    if d.main:
        ckpt.write_json(plan.run_dir / "summary.json", result.to_dict())
    return result


def _evaluate(plan: Plan, device: torch.device) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
    from gandistill.evaluate import evaluate

    e = plan.eval
    kw = dict(protocol=e.protocol, dataset=plan.dataset, data_root=plan.data_root, epochs=e.epochs,
              fast=e.fast, device=str(device), seed=plan.seed, img_size=plan.img_size,
              max_train=e.max_train, max_test=e.max_test)
    res = evaluate(str(plan.run_dir), **kw)
    rnd = None
    if e.random:
        init = plan.run_dir / "init"
        if (init / ckpt.CKPT_JSON).exists():
            rnd = evaluate(str(init), **kw)
        else:  # resumed runs: a fresh random student of the same architecture
            torch.manual_seed(plan.seed)
            rnd = evaluate(f"random:{plan.student_name}", **kw)
        rnd["source"] = "random-init"
    return res, rnd


def _probe_only(plan: Plan, teacher: Any, train_ds: Any, info: Dict[str, Any], say: Callable[[str], None],
                device: torch.device, t_start: float, d: Dist, conditional: bool) -> FitResult:
    """``d-direct``: no training, a linear probe on the frozen discriminator features (images in [-1,1])."""
    from gandistill.data import load_dataset
    from gandistill.evaluate import linear_probe

    if teacher is None or not hasattr(teacher, "features"):
        raise ValueError(f"method {plan.spec.name} needs a feature teacher such as sg2-discriminator")
    if d.main:
        ckpt.write_json(plan.run_dir / "config.json", info)
    res = None
    e = plan.eval
    if d.main:
        test_ds = load_dataset(plan.dataset, root=plan.data_root, split="test", img_size=plan.img_size,
                               download=plan.download)  # allow-download: only when the user passed --download
        if e.max_train or e.max_test:
            from gandistill.evaluate import FirstN

            train_ds = FirstN(train_ds, e.max_train) if e.max_train else train_ds
            test_ds = FirstN(test_ds, e.max_test) if e.max_test else test_ds
        say(f"probing frozen discriminator features {list(teacher.target_names)} ({teacher.num_features}-d) ...")
        res = linear_probe(teacher, train_ds, test_ds, epochs=e.epochs or 90, fast=e.fast,
                           device=device, seed=plan.seed, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        res.pop("history", None)
        res.update(student=f"{plan.teacher_name}:{teacher.mode}", dataset=plan.dataset, protocol="linear")
    result = FitResult(run_dir=plan.run_dir, checkpoint=None, steps=0, final_loss=None,
                       time_s=time.perf_counter() - t_start, train_time_s=0.0, eval=res,
                       teacher_conditional=conditional, config=info)
    if d.main:
        ckpt.write_json(plan.run_dir / "summary.json", result.to_dict())
    return result
