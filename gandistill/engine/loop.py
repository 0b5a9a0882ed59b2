"""The loop: cosine lr per step, one :func:`~gandistill.engine.step.forward` + :func:`update`, the
guards, ``metrics.jsonl`` and the periodic checkpoint (rank 0 only).

Guards: a non-finite loss or output, non-finite weights at a checkpoint step, or a collapsed
embedding (spread below ``collapse_threshold`` for ``collapse_patience`` consecutive steps, see
:func:`~gandistill.engine.step.embedding_spread`) stops the run with :class:`TrainingStopped`; the last
good checkpoint stays in place.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from gandistill.engine import checkpoint as ckpt
from gandistill.engine.config import TrainingStopped
from gandistill.engine.distributed import Dist, agree, mean_over_ranks
from gandistill.engine.loggers import RunLoggers
from gandistill.engine.parts import Parts
from gandistill.engine.plan import Plan
from gandistill.engine.step import cosine_lr, forward, set_lr, update

GO, NON_FINITE, COLLAPSE = 0, 1, 2


@dataclass
class LoopResult:
    final_loss: Optional[float]
    train_time_s: float
    checkpoint: Optional[Path]          # the last good checkpoint (None if none was written)


class _Checkpoints:
    """The last good checkpoint of the run and how to write the next one (rank 0 writes)."""

    def __init__(self, plan: Plan, parts: Parts, d: Dist, device: torch.device, meta: Dict[str, Any], start: int):
        self.plan, self.parts, self.d, self.device, self.meta = plan, parts, d, device, meta
        path = plan.run_dir / ckpt.CKPT_JSON
        self.last: Optional[Path] = path if path.exists() else None
        self.last_step = start if plan.resume else -1

    def save(self, step: int) -> None:
        if self.d.main:
            p = self.parts
            self.last = ckpt.save_checkpoint(self.plan.run_dir, step, p.student, p.head, p.head_kind, p.opt, self.meta,
                                             ckpt.train_state(p, self.device))
            self.last_step = step

    def kept(self) -> str:
        return (f"the last good checkpoint (step {self.last_step}) is {self.last}" if self.last is not None
                else "no checkpoint had been written yet")


def _progress(plan: Plan, d: Dist, total: int):
    show = plan.progress if plan.progress is not None else (sys.stdout.isatty()
                                                            and not os.environ.get("GANDISTILL_NO_PROGRESS"))
    if not (show and d.main and total > 0):
        return None

    p = Progress(TextColumn("[bold]fit[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                 TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
    p.start()
    p.add_task("", total=total)
    return p


def log_line(step: int, total: int, rec: Dict[str, Any]) -> str:
    keys = [k for k in ("loss", "squeeze/loss", "span/loss", "spread", "lr", "img_s") if k in rec]
    return f"step {step}/{total} " + " ".join(f"{k}={rec[k]:.4g}" for k in keys)


def log_views(logs: Optional[RunLoggers], plan: Plan, parts: Parts, step: int, n: int = 16) -> None:
    """Teacher samples and their augmented views to the image loggers, drawn from a private seed with the
    global RNG restored afterwards, so logging images never changes the training trajectory."""
    teacher = getattr(parts, "teacher", None)
    if logs is None or not logs.wants_images or teacher is None or not plan.n_syn:
        return
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []), \
            torch.no_grad():
        torch.manual_seed(plan.seed + 12345)
        syn = teacher.sample(n)
        logs.log_images(step, "teacher/samples", syn.images)
        if parts.aug_syn is not None:
            logs.log_images(step, "teacher/augmented", parts.aug_syn(syn.images))


def train(plan: Plan, parts: Parts, d: Dist, device: torch.device, say: Callable[[str], None], start: int,
          meta: Dict[str, Any], logs: Optional[RunLoggers] = None) -> LoopResult:
    """Steps ``start .. plan.total_steps``; raises :class:`TrainingStopped` when a guard fires.
    ``logs``: where rank 0 logs (default: ``metrics.jsonl`` only; the caller closes the ones it passes)."""
    total = plan.total_steps
    ckpts = _Checkpoints(plan, parts, d, device, meta, start)
    own_logs = d.main and logs is None
    if own_logs:
        logs = RunLoggers(plan.run_dir, (), jsonl=plan.run_dir / "metrics.jsonl", append=plan.resume)
    metrics_f = logs if d.main else None
    images_every = max(plan.ckpt_every, 1)
    low_spread = 0
    loss_val: Optional[float] = None
    t_train = time.perf_counter()
    progress = _progress(plan, d, total - start)

    def stop(reason: str, msg: str, step: int) -> TrainingStopped:
        text = f"training stopped at step {step}: {msg}; {ckpts.kept()}"
        if metrics_f is not None:
            metrics_f.log_event(step, {"stopped": reason, "message": text})
        return TrainingStopped(text, reason=reason, step=step, checkpoint=ckpts.last)

    try:
        parts.train_model.train()
        n_img = 0
        t_log = time.perf_counter()
        if d.main:
            log_views(metrics_f, plan, parts, start)
        for step in range(start, total):
            lr = cosine_lr(plan.lr, step, total)
            set_lr(parts.opt, plan.lr, lr)
            s = forward(plan, parts, device)
            low_spread = low_spread + 1 if s.spread < plan.collapse_threshold else 0
            code = agree(NON_FINITE if s.bad else (COLLAPSE if low_spread >= plan.collapse_patience else GO), d, device)
            if code == NON_FINITE:
                what = ("the loss is non-finite" if s.bad == ["loss"] else f"non-finite values in {s.bad} (NaN/Inf)"
                        if s.bad else "non-finite values on another rank")
                raise stop("non-finite", what, step + 1)
            if code == COLLAPSE:
                raise stop("collapse", f"the representation collapsed (embedding spread {s.spread:.2e} < "
                                       f"{plan.collapse_threshold} for {low_spread} consecutive steps)", step + 1)
            update(parts, s.loss)
            loss_val = float(s.loss.detach())
            n_img += plan.n_syn + plan.n_real
            done = step + 1
            if done % plan.log_every == 0 or done == total or step == start:
                # the loss terms as means over the global batch (every rank takes part; rank 0 writes)
                names = sorted(s.losses)
                terms = dict(zip(names, mean_over_ranks([float(s.losses[k].detach()) for k in names], d, device)))
            if d.main and (done % plan.log_every == 0 or done == total or step == start):
                now = time.perf_counter()
                rec = {"lr": lr, "spread": s.spread, "std": s.emb_std, "low_spread_steps": low_spread,
                       **{k: terms[k] for k in s.losses},
                       "img_s": n_img * d.world / max(now - t_log, 1e-9), "time_s": now - t_train}
                n_img, t_log = 0, now
                metrics_f.log_scalars(done, rec)
                if done % images_every == 0 and done != total:
                    log_views(metrics_f, plan, parts, done)
                if progress is None:
                    say(log_line(done, total, {"step": done, **rec}))
            if progress is not None:
                progress.update(progress.task_ids[0], advance=1, description=f"loss {loss_val:.3f}")
            if done % plan.ckpt_every == 0 or done == total:
                # never replace the last good checkpoint by weights a bad update made non-finite
                # (checked on every rank at the same steps, so all ranks stop together)
                if agree(0 if ckpt.all_finite(parts.model) else 1, d, device):
                    raise stop("non-finite", "non-finite weights after the update (NaN/Inf)", done)
                if low_spread == 0:
                    ckpts.save(done)
    finally:
        if progress is not None:
            progress.stop()
        if own_logs and metrics_f is not None:
            metrics_f.close()
    if loss_val is not None:
        loss_val = mean_over_ranks([loss_val], d, device)[0]
    return LoopResult(final_loss=loss_val, train_time_s=time.perf_counter() - t_train, checkpoint=ckpts.last)
