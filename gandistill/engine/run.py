""":func:`fit`: config -> plan -> parts -> loop -> results, and the probe after training.

A run folder holds ``config.json`` (the resolved config, versions, git revision), ``metrics.jsonl``,
the last checkpoint (see :mod:`gandistill.engine.checkpoint`), ``init/`` (the random initialisation,
the probe's baseline) and ``summary.json`` (with the closing probe table, :mod:`gandistill.engine.probe`).
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Optional

import torch

from gandistill.data import load_dataset
from gandistill.engine import checkpoint as ckpt
from gandistill.engine.config import FitConfig, FitResult
from gandistill.engine.distributed import (Dist, barrier, broadcast_object, rank_seeds, resolve_device,
                                           setup_distributed, teardown_distributed)
from gandistill.engine.loggers import RunLoggers
from gandistill.engine.loop import train
from gandistill.engine.parts import build_parts, build_teacher, teacher_conditional
from gandistill.engine.plan import check_labelled, make_plan, plan_dict
from gandistill.engine.probe import closing_table, probe_names, probe_only
from gandistill.engine.record import run_record
from gandistill.engine.twin import TwinRun, split_threads, twin_config
from gandistill.teachers.conditioning import conditional_warning


def probe_rows(probes: dict) -> list:
    """The closing probe table (``ProbeTable.to_dict()``) as flat rows for the loggers."""
    out = []
    for r in probes.get("rows", []) if isinstance(probes, dict) else []:
        row = {"name": r.get("name"), "role": r.get("role")}
        for k, v in r.items():
            if isinstance(v, dict) and "top1" in v:
                row[f"{k}_top1"] = v["top1"]
            elif isinstance(v, dict) and isinstance(v.get("shots"), dict):
                row.update({f"{k}_{shot}shot": s.get("mean") for shot, s in v["shots"].items() if isinstance(s, dict)})
        out.append(row)
    return out


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
    cond_warning = conditional_warning(plan.teacher_name, plan.teacher_ckpt)
    if cond_warning is not None:          # before anything is built or trained (issue 16)
        say(f"warning: {cond_warning['message']}")
        if not plan.config.get("out"):    # the default run folder says so
            plan = replace(plan, run_dir=plan.run_dir.with_name(plan.run_dir.name + "-cond"))
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
    info["teacher_conditional"] = conditional = teacher_conditional(teacher) or cond_warning is not None
    info["conditional_teacher"] = cond_warning
    twin_cfg = twin_config(cfg, plan.run_dir) if plan.spec.objective != "probe" else None
    info["ssl_twin"] = {"method": twin_cfg.method, "run_dir": str(twin_cfg.out)} if twin_cfg else None
    if hasattr(train_ds, "mean") and hasattr(train_ds, "std"):     # the input normalisation (for export)
        info["resolved"]["normalise"] = {"mean": [float(v) for v in train_ds.mean],
                                         "std": [float(v) for v in train_ds.std]}
    if not plan.spec.trains:
        return probe_only(plan, teacher, train_ds, info, say, device, t_start, d, conditional)
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

    # parts -> loop -> results (the SSL twin trains beside the loop on a multi-core CPU, else after it)
    logs = (RunLoggers(plan.run_dir, tuple(plan.config.get("loggers") or ()), jsonl=plan.run_dir / "metrics.jsonl",
                       append=plan.resume, config=info.get("config"), name=plan.run_dir.name) if d.main else None)
    twin = TwinRun(twin_cfg, split_threads(device.type, d.world), fit) if twin_cfg is not None else None
    if twin is not None:
        twin.start(say)
    try:
        loop = train(plan, parts, d, device, say, start, meta, logs)
        result = FitResult(run_dir=plan.run_dir, checkpoint=loop.checkpoint, steps=plan.total_steps,
                           final_loss=loop.final_loss, time_s=0.0, train_time_s=loop.train_time_s,
                           teacher_conditional=conditional, config=info)
        _close(plan, d, device, conditional, say, twin, result)
        if logs is not None and result.probes:
            logs.log_table("probes", probe_rows(result.probes))
    finally:
        if logs is not None:
            logs.close()
    result.time_s = time.perf_counter() - t_start
    if d.main:
        ckpt.write_json(plan.run_dir / "summary.json", result.to_dict())
    return result


def _close(plan, d: Dist, device: torch.device, conditional: bool, say: Callable[[str], None],
           twin: Optional[TwinRun], result: FitResult) -> None:
    """Wait for (or train) the SSL twin, then the closing probe table with its column and difference.
    A twin that fails leaves the table without it (said, and recorded in ``result.twin``)."""
    twin_summary: Optional[dict] = None
    if twin is not None:
        try:
            twin_summary = twin.join(lambda c: _fit(c, d, lambda s: say(f"  [twin] {s}"), time.perf_counter()), say)
        except Exception as e:  # noqa: BLE001 -- the distilled student's result must not be lost with its twin
            say(f"warning: the SSL twin failed ({type(e).__name__}: {e}); the table goes on without it")
            result.twin = {"method": twin.cfg.method, "run_dir": str(twin.out), "error": f"{type(e).__name__}: {e}"}
            twin = None
    if d.main and plan.eval.protocol != "none":
        probes = ", ".join(probe_names(plan.eval.protocol, plan.eval.fast))
        say(f"training done in {result.train_time_s:.1f}s; probing ({probes}) ...")
        twin_dir = twin.out if twin is not None else None
        result.eval, result.eval_random, result.probes = closing_table(
            plan, device, conditional, say, twin_dir=twin_dir, twin_method=twin.cfg.method if twin else None)
        if twin is not None:
            result.twin = {"method": twin.cfg.method, "run_dir": str(twin_dir),
                           "train_time_s": (twin_summary or {}).get("train_time_s"),
                           "eval": result.probes.get("twin_eval"), "contribution": result.probes.get("difference")}
