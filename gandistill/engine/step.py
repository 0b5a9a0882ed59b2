"""One training step for every method: the teacher's sample and the real images, the objective's
inputs, forward and loss (:mod:`gandistill.objectives`; e.g. ``distill`` for ``sns``/``squeeze``)::

    x_syn, h = teacher.sample(alpha * B)            # frozen G, no_grad; h = pooled block features / w
    inputs   = objective.inputs(x_syn, h, x_real)   # augmented views
    out      = objective.forward(S, head, inputs)   # all student passes in ONE call (DDP)
    L        = objective.loss(out)

On GPU the student runs under bf16/fp16 autocast with the losses in fp32. :func:`forward` computes the losses and reports
non-finite values; :func:`update` applies the gradient step.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from gandistill.engine.parts import Parts
from gandistill.engine.plan import Plan
from gandistill.objectives import Objective


def embedding_spread(z: Tensor) -> float:
    """Collapse monitor: sqrt(D) * mean_j std_j(z_i / ||z_i||) over a batch z [N, D].

    About 1 for a well-spread (whitened) embedding, 0 when every sample maps to the same direction
    (SimSiam's collapse diagnostic, made scale free).
    """
    z = z.detach().float()
    if z.ndim != 2 or z.shape[0] < 2:
        return float("nan")
    zn = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return float(zn.std(dim=0).mean() * math.sqrt(z.shape[1]))


def cosine_lr(base: float, step: int, total: int) -> float:
    """lr at ``step`` of ``total``: base * 0.5 * (1 + cos(pi * step / total)), no warm-up."""
    return base * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


def autocast(device: torch.device, precision: str):
    """bf16/fp16 autocast on GPU; nothing on CPU or in fp32."""
    if precision == "fp32" or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def embedding_of(out: Dict[str, Tensor], objective: Optional[Objective] = None) -> Optional[Tensor]:
    """The student embedding the collapse monitor watches (the objective's; without one, the first
    of the built-in objectives' embedding outputs)."""
    if objective is not None:
        return objective.embedding(out)
    for k in ("z_syn", "z_real1", "z1", "e_syn", "e_real"):
        if k in out:
            return out[k]
    return None


def make_inputs(plan: Plan, parts: Parts, device: torch.device) -> Tuple[Dict[str, Any], Dict[str, Tensor]]:
    """The student inputs of one step (augmented/normalised) and the raw images some losses need:
    the teacher's sample, then the real images, then the objective's augmentations."""
    cl = (lambda x: x.contiguous(memory_format=torch.channels_last)) if plan.channels_last else (lambda x: x)
    syn = parts.teacher.sample(plan.n_syn, generator=parts.z_gen) if plan.n_syn else None
    x_real = parts.stream.next().to(device, non_blocking=True).float() if parts.stream is not None else None
    return plan.objective.inputs(plan, parts, syn, x_real, cl)


@dataclass
class StepOut:
    """What one forward pass produced: the loss terms, the non-finite outputs, the embedding's health."""

    losses: Dict[str, Tensor]
    loss: Optional[Tensor]
    bad: List[str]               # names of non-finite outputs ("loss" for a non-finite loss)
    spread: float                # embedding_spread (nan when there is none or it is non-finite)
    emb_std: float


def forward(plan: Plan, parts: Parts, device: torch.device) -> StepOut:
    """Sample, augment, run the trainables once and compute the method's loss (fp32)."""
    inputs, batch = make_inputs(plan, parts, device)
    with autocast(device, plan.precision):
        out = parts.train_model(**inputs)
    out = {k: v.float() for k, v in out.items()}
    bad = [k for k, v in out.items() if not bool(torch.isfinite(v).all())]
    losses = plan.objective.loss(plan.weights, out, parts.teacher, batch) if not bad else {}
    loss = losses.get("loss")
    if loss is not None and not bool(torch.isfinite(loss)):
        bad.append("loss")
    emb = embedding_of(out, plan.objective)
    spread = embedding_spread(emb) if (emb is not None and not bad) else float("nan")
    emb_std = float(emb.detach().float().std(dim=0).mean()) if emb is not None else float("nan")
    return StepOut(losses=losses, loss=loss, bad=bad, spread=spread, emb_std=emb_std)


def set_lr(opt: torch.optim.Optimizer, base: float, lr: float) -> None:
    """The cosine lr on every group, except heads with a fixed lr (SimSiam's predictor) keep ``base``."""
    for g in opt.param_groups:
        g["lr"] = base if g.get("fixed") else lr


def update(parts: Parts, loss: Tensor) -> None:
    """One SGD step on ``loss`` (through the GradScaler under fp16)."""
    opt, scaler = parts.opt, parts.scaler
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()
