"""One training step for every method (``objective="distill"``, i.e. ``sns``/``squeeze``/``vanilla``...)::

    x_syn, h = teacher.sample(alpha * B)            # frozen G, no_grad; h = pooled block features / w
    z_s  = S(aug(x_syn));   z_t = T_phi(h)          # squeeze: squeeze_loss(z_s, z_t)      (Eq. 11)
    z_r1 = S(aug(x_real));  z_r2 = S(aug(x_real))   # span: vicreg_loss(z_r1, z_r2)       (Eq. 12)
    L = alpha * L_squeeze + (1 - alpha) * L_span

(three student passes, as SnS does, so each gets its own BN statistics -- run as one batched forward
with per-pass BatchNorm statistics when the student has ``forward_groups``). On GPU the student runs
under bf16/fp16 autocast with the losses in fp32. :func:`forward` computes the losses and reports
non-finite values; :func:`update` applies the gradient step.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from gandistill.methods import method_loss

if TYPE_CHECKING:  # pragma: no cover
    from gandistill.engine.parts import Parts
    from gandistill.engine.plan import Plan


class DistillModel(nn.Module):
    """The trainables (student S_theta and its head: T_phi or SimSiam's predictor) with ONE forward
    per step, so DDP sees every student pass of the step in a single call."""

    def __init__(self, objective: str, student: nn.Module, head: Optional[nn.Module]) -> None:
        super().__init__()
        self.objective = objective
        self.student = student
        self.head = head

    def forward(self, x_syn: Optional[Tensor] = None, targets: Optional[List[Tensor]] = None,
                v1: Optional[Tensor] = None, v2: Optional[Tensor] = None,
                x_real: Optional[Tensor] = None) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        S = self.student
        # Student.forward_groups: the passes as ONE batched forward, each BatchNorm normalising every
        # group with its own statistics (the same maths as separate passes, fewer kernel launches)
        fg = getattr(S, "forward_groups", None)
        if self.objective == "distill":
            if x_syn is not None and v1 is not None and fg is not None and x_syn.shape[1:] == v1.shape[1:]:
                out["z_syn"], out["z_real1"], out["z_real2"] = fg([x_syn, v1, v2])
                out["z_target"] = self.head(targets)
            else:
                if x_syn is not None:
                    out["z_syn"] = S(x_syn)
                    out["z_target"] = self.head(targets)
                if v1 is not None:
                    out["z_real1"], out["z_real2"] = S(v1), S(v2)
        elif self.objective in ("vicreg", "simsiam"):
            out["z1"], out["z2"] = fg([v1, v2]) if fg is not None else (S(v1), S(v2))
            if self.head is not None:
                out["p1"], out["p2"] = self.head(out["z1"]), self.head(out["z2"])
        elif self.objective == "encoder":
            if x_syn is not None:
                out["e_syn"] = S(x_syn)
            if x_real is not None:
                out["e_real"] = S(x_real)
        else:
            raise ValueError(f"objective {self.objective!r} does not train")
        return out


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


def embedding_of(out: Dict[str, Tensor]) -> Optional[Tensor]:
    """The student embedding the collapse monitor watches."""
    for k in ("z_syn", "z_real1", "z1", "e_syn", "e_real"):
        if k in out:
            return out[k]
    return None


def make_inputs(plan: "Plan", parts: "Parts", device: torch.device) -> Tuple[Dict[str, Any], Dict[str, Tensor]]:
    """The student inputs of one step (augmented/normalised) and the raw images some losses need."""
    from gandistill.augment import resize_center

    cl = (lambda x: x.contiguous(memory_format=torch.channels_last)) if plan.channels_last else (lambda x: x)
    aug_syn, aug_real = parts.aug_syn, parts.aug_real
    inputs: Dict[str, Any] = {}
    batch: Dict[str, Tensor] = {}
    syn = parts.teacher.sample(plan.n_syn, generator=parts.z_gen) if plan.n_syn else None
    x_real = parts.stream.next().to(device, non_blocking=True).float() if parts.stream is not None else None
    obj = plan.spec.objective
    if obj == "distill":
        if syn is not None:
            inputs["x_syn"] = cl(aug_syn(syn.images))
            inputs["targets"] = [t.float() for t in syn.targets]
        if x_real is not None:
            inputs["v1"], inputs["v2"] = cl(aug_real(x_real)), cl(aug_real(x_real))
    elif obj in ("vicreg", "simsiam"):
        v1, v2 = [], []
        if syn is not None:
            v1.append(aug_syn(syn.images))
            v2.append(aug_syn(syn.images))
        if x_real is not None:
            v1.append(aug_real(x_real))
            v2.append(aug_real(x_real))
        inputs["v1"], inputs["v2"] = cl(torch.cat(v1)), cl(torch.cat(v2))
    elif obj == "encoder":
        # "normalised": E sees dataset-normalised images (as the linear probe will); "raw": E sees
        # images in G's range [-1, 1] (SnS's encode.py). G reconstructs in [-1, 1] either way.
        raw = plan.encoder_input == "raw"
        if syn is not None:
            inputs["x_syn"] = cl(resize_center(syn.images, plan.img_size) if raw else aug_syn(syn.images))
            batch["x_syn"], batch["ws"] = syn.images, syn.ws
        if x_real is not None:
            inputs["x_real"] = cl(resize_center(x_real * 2.0 - 1.0, plan.img_size) if raw else parts.norm_real(x_real))
            batch["x_real"] = x_real * 2.0 - 1.0
    return inputs, batch


@dataclass
class StepOut:
    """What one forward pass produced: the loss terms, the non-finite outputs, the embedding's health."""

    losses: Dict[str, Tensor]
    loss: Optional[Tensor]
    bad: List[str]               # names of non-finite outputs ("loss" for a non-finite loss)
    spread: float                # embedding_spread (nan when there is none or it is non-finite)
    emb_std: float


def forward(plan: "Plan", parts: "Parts", device: torch.device) -> StepOut:
    """Sample, augment, run the trainables once and compute the method's loss (fp32)."""
    inputs, batch = make_inputs(plan, parts, device)
    with autocast(device, plan.precision):
        out = parts.train_model(**inputs)
    out = {k: v.float() for k, v in out.items()}
    bad = [k for k, v in out.items() if not bool(torch.isfinite(v).all())]
    losses = method_loss(plan.spec, plan.weights, out, parts.teacher, batch) if not bad else {}
    loss = losses.get("loss")
    if loss is not None and not bool(torch.isfinite(loss)):
        bad.append("loss")
    emb = embedding_of(out)
    spread = embedding_spread(emb) if (emb is not None and not bad) else float("nan")
    emb_std = float(emb.detach().float().std(dim=0).mean()) if emb is not None else float("nan")
    return StepOut(losses=losses, loss=loss, bad=bad, spread=spread, emb_std=emb_std)


def set_lr(opt: torch.optim.Optimizer, base: float, lr: float) -> None:
    """The cosine lr on every group, except heads with a fixed lr (SimSiam's predictor) keep ``base``."""
    for g in opt.param_groups:
        g["lr"] = base if g.get("fixed") else lr


def update(parts: "Parts", loss: Tensor) -> None:
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
