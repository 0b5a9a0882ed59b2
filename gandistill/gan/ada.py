"""Adaptive discriminator augmentation (ADA, Karras et al. 2020) in plain tensor ops.

Every op is applied *per sample* with probability ``p`` and is differentiable twice (integer
translation is a gather, cutout a mask product, colour ops are affine maps), so the lazy R1
penalty can take the gradient of ``D(aug(x))`` with respect to ``x``. The same module is applied
to real and generated images before D. Images are in the GAN range [-1, 1].

The probability is steered by the overfitting heuristic ``r_t = E[sign(D(real))]``:
every ``interval`` steps ``p <- clip(p + sign(r_t - target) * batch * interval / (ada_kimg * 1000), 0, 1)``
(:func:`ada_adjust`), i.e. p can travel from 0 to 1 in ``ada_kimg`` thousand images.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from gandistill.gan.config import ADA_OPS, DEFAULT_ADA_OPS


def ada_adjust(p: float, rt: float, target: float, batch: int, interval: int, ada_kimg: float) -> float:
    """One ADA update of the augmentation probability.

    ``p' = clip(p + sign(rt - target) * (batch * interval) / (ada_kimg * 1000), 0, 1)``:
    a discriminator that is too sure about reals (rt above target) gets more augmentation.
    """
    if ada_kimg <= 0:
        raise ValueError(f"ada_kimg must be > 0, got {ada_kimg}")
    step = (batch * interval) / (ada_kimg * 1000.0)
    sign = (rt > target) - (rt < target)
    return float(min(max(p + sign * step, 0.0), 1.0))


class AdaController:
    """Accumulates ``sign(D(real))`` and moves ``aug.p`` every ``interval`` steps (:func:`ada_adjust`)."""

    def __init__(self, aug: "AdaAugment", target: float = 0.6, interval: int = 4, ada_kimg: float = 500.0):
        self.aug, self.target, self.interval, self.ada_kimg = aug, target, interval, ada_kimg
        self.sign_sum = 0.0
        self.count = 0
        self.steps = 0
        self.last_rt: Optional[float] = None

    def accumulate(self, real_logits: Tensor) -> None:
        """Record the signs of one batch of real logits."""
        s = torch.sign(real_logits.detach().float())
        self.sign_sum += float(s.sum())
        self.count += s.numel()

    def step(self, batch: int) -> None:
        """Call once per training step; updates p every ``interval`` steps."""
        self.steps += 1
        if self.steps % self.interval or self.count == 0:
            return
        rt = self.sign_sum / self.count
        self.last_rt = rt
        self.aug.p.fill_(ada_adjust(float(self.aug.p), rt, self.target, batch, self.interval, self.ada_kimg))
        self.sign_sum, self.count = 0.0, 0

    def state_dict(self) -> dict:
        return {"sign_sum": self.sign_sum, "count": self.count, "steps": self.steps,
                "last_rt": self.last_rt}

    def load_state_dict(self, d: dict) -> None:
        self.sign_sum, self.count, self.steps = float(d["sign_sum"]), int(d["count"]), int(d["steps"])
        self.last_rt = d.get("last_rt")


def _reflect_index(i: Tensor, n: int) -> Tensor:
    """Reflect (without repeating the edge) integer indices into [0, n)."""
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


class AdaAugment(nn.Module):
    """Per-sample differentiable augmentation with a shared probability buffer ``p``.

    Ops (each drawn independently per sample with probability p):
      ``xflip`` horizontal flip; ``translate`` integer shift up to ``translate_frac`` of the size with
      reflect padding; ``cutout`` a zeroed square of side ``cutout_frac``; ``brightness`` add N(0, 0.2);
      ``contrast`` scale by lognormal(0, 0.5 ln 2); ``saturation`` scale the chroma around the
      per-pixel channel mean by lognormal(0, ln 2).
    """

    def __init__(self, ops: Sequence[str] = DEFAULT_ADA_OPS, p: float = 0.0, translate_frac: float = 0.125,
                 cutout_frac: float = 0.5, brightness_std: float = 0.2, contrast_std: float = 0.5,
                 saturation_std: float = 1.0):
        super().__init__()
        bad = [op for op in ops if op not in ADA_OPS]
        if bad:
            raise ValueError(f"unknown augment op(s) {bad}; known: {', '.join(ADA_OPS)}")
        self.ops = tuple(ops)
        self.translate_frac, self.cutout_frac = translate_frac, cutout_frac
        self.brightness_std, self.contrast_std, self.saturation_std = brightness_std, contrast_std, saturation_std
        self.register_buffer("p", torch.tensor(float(p)))

    def _mask(self, n: int, p: float, device) -> Tensor:
        return torch.rand(n, device=device) < p

    def forward(self, x: Tensor) -> Tensor:
        """Augment a batch ``x`` [N,C,H,W]; identity when p == 0 (no random numbers drawn)."""
        if x.ndim != 4:
            raise ValueError(f"AdaAugment expects [N,C,H,W], got shape {tuple(x.shape)}")
        p = float(self.p)
        if p <= 0 or not self.ops:
            return x
        n, c, h, w = x.shape
        dev = x.device
        for op in self.ops:
            m = self._mask(n, p, dev)
            if op == "xflip":
                x = torch.where(m.view(n, 1, 1, 1), x.flip(3), x)
            elif op == "translate":
                shift = torch.round((torch.rand(n, 2, device=dev) * 2 - 1) * self.translate_frac
                                    * torch.tensor([w, h], device=dev)).long() * m.view(n, 1).long()
                ix = _reflect_index(torch.arange(w, device=dev).view(1, w) - shift[:, :1], w)  # [N,W]
                iy = _reflect_index(torch.arange(h, device=dev).view(1, h) - shift[:, 1:], h)  # [N,H]
                idx = (iy.view(n, h, 1) * w + ix.view(n, 1, w)).view(n, 1, h * w).expand(n, c, h * w)
                x = x.reshape(n, c, h * w).gather(2, idx).view(n, c, h, w)
            elif op == "cutout":
                centre = torch.rand(n, 2, device=dev)
                gx = (torch.arange(w, device=dev, dtype=x.dtype) + 0.5) / w
                gy = (torch.arange(h, device=dev, dtype=x.dtype) + 0.5) / h
                outx = (gx.view(1, 1, w) - centre[:, 0].view(n, 1, 1)).abs() >= self.cutout_frac / 2
                outy = (gy.view(1, h, 1) - centre[:, 1].view(n, 1, 1)).abs() >= self.cutout_frac / 2
                keep = (outx | outy) | ~m.view(n, 1, 1)
                x = x * keep.unsqueeze(1).to(x.dtype)
            elif op == "brightness":
                b = torch.randn(n, device=dev, dtype=x.dtype) * self.brightness_std * m
                x = x + b.view(n, 1, 1, 1)
            elif op == "contrast":
                s = torch.exp2(torch.randn(n, device=dev, dtype=x.dtype) * self.contrast_std)
                s = torch.where(m, s, torch.ones_like(s))
                x = x * s.view(n, 1, 1, 1)
            elif op == "saturation":
                s = torch.exp2(torch.randn(n, device=dev, dtype=x.dtype) * self.saturation_std)
                s = torch.where(m, s, torch.ones_like(s))
                luma = x.mean(dim=1, keepdim=True)
                x = luma + (x - luma) * s.view(n, 1, 1, 1)
        return x

    def extra_repr(self) -> str:
        return f"ops={self.ops}, p={float(self.p):.3f}"


__all__ = ["AdaAugment", "AdaController", "ada_adjust"]
