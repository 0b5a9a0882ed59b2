"""The StyleGAN2-ADA objective: non-saturating logistic loss and lazy R1.

With D logits ``D(.)`` and softplus ``sp(t) = log(1 + e^t)``:

* G:  ``L_G = E_z[ sp(-D(aug(G(z)))) ]``                      (non-saturating)
* D:  ``L_D = E_z[ sp(D(aug(G(z)))) ] + E_x[ sp(-D(aug(x))) ]``
* R1: ``L_R1 = gamma/2 * E_x[ ||grad_x D(aug(x))||^2 ] * interval``, evaluated every ``interval``
  D steps ("lazy" regularisation), the gradient taken w.r.t. the un-augmented real image.

G draws ``ws = G.mapping(z, c)``; with probability ``style_mixing_prob`` the ws after a random
cut-off layer come from a second latent (style mixing). Training synthesis uses random noise.

Options for greyscale, saturated data such as digits (off by default, not part of the ADA objective):
``clamp_fakes`` shows D ``clamp(G(z), -1, 1)`` with a straight-through gradient (every consumer of a
teacher clamps its images) and adds ``range_weight * sum relu(|G(z)| - range_margin)`` to L_G so the raw
outputs stay bounded; :func:`tie_grey` ties the toRGB output rows (R = G = B).

PacGAN (Lin et al. 2018, against mode dropping): with ``pack = k > 1`` D judges k images of the same
kind (all real or all fake) at once: each image is augmented on its own, then consecutive groups of k
are stacked along channels (:func:`pack_inputs`), so D sees N/k samples of 3k channels and the losses
above average over those N/k logits. R1's gradient is still taken w.r.t. each un-augmented real image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def generate(G: nn.Module, z: Tensor, c: Tensor, style_mixing_prob: float = 0.0,
             update_emas: bool = False) -> Tensor:
    """Training-time G forward: mapping (+ optional style mixing), synthesis with random noise."""
    ws = G.mapping(z, c, update_emas=update_emas)
    if style_mixing_prob > 0:
        num_ws = ws.shape[1]
        cutoff = torch.randint(1, num_ws, (), device=ws.device)
        use_mix = torch.rand((), device=ws.device) < style_mixing_prob
        cutoff = torch.where(use_mix, cutoff, torch.full_like(cutoff, num_ws))
        ws2 = G.mapping(torch.randn_like(z), c, update_emas=False)
        layer = torch.arange(num_ws, device=ws.device).view(1, num_ws, 1)
        ws = torch.where(layer < cutoff, ws, ws2)
    return G.synthesis(ws, noise_mode="random", force_fp32=True, update_emas=update_emas)


def pack_inputs(x: Tensor, c: Tensor, pack: int) -> tuple[Tensor, Tensor]:
    """PacGAN packing: images ``[N, C, H, W] -> [N/k, k*C, H, W]`` (images ``i*k .. i*k+k-1`` stacked along
    channels, in order) and labels ``[N, D] -> [N/k, k*D]`` alike; ``pack = 1`` returns the inputs as they are."""
    if pack == 1:
        return x, c
    if x.shape[0] % pack:
        raise ValueError(f"PacGAN: a batch of {x.shape[0]} images cannot be packed in groups of {pack}")
    return rearrange(x, "(n k) c h w -> n (k c) h w", k=pack), rearrange(c, "(n k) d -> n (k d)", k=pack)


def r1_penalty(D: Callable[[Tensor, Tensor], Tensor], real: Tensor, c: Tensor,
               augment: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """Per-image ``||grad_x D(aug(x))||^2`` (summed over C,H,W) and the logits, with a graph for backprop."""
    x = real.detach().requires_grad_(True)
    logits = D(augment(x), c)
    (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return g.square().sum(dim=(1, 2, 3)), logits


def clamp_straight_through(x: Tensor) -> Tensor:
    """``clamp(x, -1, 1)`` in the forward pass, identity gradient in the backward pass."""
    return x + (x.clamp(-1.0, 1.0) - x).detach()


@dataclass
class StyleGAN2Loss:
    """Holds G, D, the augmentation and the loss weights; each method returns (loss, logs)."""

    G: nn.Module
    D: nn.Module
    augment: Callable[[Tensor], Tensor]
    r1_gamma: float = 0.05
    style_mixing_prob: float = 0.0
    clamp_fakes: bool = False  #: D sees clamp(G(z), -1, 1) (straight-through gradient), as consumers of the teacher do
    range_weight: float = 0.0  #: with clamp_fakes: weight of sum(relu(|G(z)| - range_margin)) bounding raw outputs
    range_margin: float = 4.0  #: raw outputs may overshoot to +-margin for free (so clamping gives exact black/white)
    pack: int = 1              #: PacGAN: D judges this many images at once (stacked along channels)

    def judge(self, img: Tensor, c: Tensor) -> Tensor:
        """D's logits for (augmented) images: one per image, or one per pack of ``pack`` images."""
        return self.D(*pack_inputs(img, c, self.pack))

    def _fake(self, z: Tensor, c: Tensor, update_emas: bool = False) -> tuple[Tensor, Tensor]:
        img = generate(self.G, z, c, self.style_mixing_prob, update_emas=update_emas)
        if not self.clamp_fakes:
            return img, img.new_zeros(())
        excess = (img.abs() - self.range_margin).relu().sum(dim=(1, 2, 3)).mean()
        return clamp_straight_through(img), excess

    def g_main(self, z: Tensor, c: Tensor) -> tuple[Tensor, dict]:
        """Non-saturating G loss ``mean softplus(-D(aug(G(z))))``."""
        fake, excess = self._fake(z, c)
        logits = self.judge(self.augment(fake), c)
        loss = F.softplus(-logits).mean()
        logs = {"loss_G": float(loss.detach()), "score_fake_G": float(logits.detach().mean())}
        if self.clamp_fakes:
            loss = loss + self.range_weight * excess
            logs["range_excess"] = float(excess.detach())
        return loss, logs

    def d_main(self, z: Tensor, gen_c: Tensor, real: Tensor, real_c: Tensor) -> tuple[Tensor, dict, Tensor]:
        """Logistic D loss; also returns the real logits (for the ADA heuristic)."""
        with torch.no_grad():
            fake, _ = self._fake(z, gen_c, update_emas=True)
        logits_fake = self.judge(self.augment(fake), gen_c)
        logits_real = self.judge(self.augment(real), real_c)
        loss_fake = F.softplus(logits_fake).mean()
        loss_real = F.softplus(-logits_real).mean()
        loss = loss_fake + loss_real
        logs = {"loss_D": float(loss.detach()), "score_real": float(logits_real.detach().mean()),
                "score_fake": float(logits_fake.detach().mean())}
        return loss, logs, logits_real.detach()

    def d_reg(self, real: Tensor, real_c: Tensor, gain: float) -> tuple[Tensor, dict]:
        """Lazy R1: ``gamma/2 * mean ||grad||^2 * gain`` (gain = the R1 interval)."""
        pen, logits = r1_penalty(self.judge, real, real_c, self.augment)
        loss = (pen.mean() * (self.r1_gamma / 2) + logits.mean() * 0) * gain
        return loss, {"r1_penalty": float(pen.detach().mean())}


def ema_beta(batch: int, cur_nimg: int, ema_kimg: float, rampup: Optional[float]) -> float:
    """G EMA decay per step: ``0.5 ** (batch / ema_nimg)``, ``ema_nimg = min(ema_kimg*1000, cur_nimg*rampup)``."""
    ema_nimg = ema_kimg * 1000.0
    if rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """``theta_ema <- theta + beta (theta_ema - theta)`` for parameters; buffers are copied."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


@torch.no_grad()
def tie_grey(G: nn.Module) -> int:
    """Project every toRGB layer of G onto grey output (R = G = B): weight rows and bias set to their mean.

    The skip generator's image is a sum of upsampled toRGB outputs, and toRGB is a modulated 1x1 conv
    without demodulation, so equal output rows make every image exactly grey. Applied after each G step
    (projected gradient descent), it removes colour as a trivial real/fake cue on greyscale data.
    Returns the number of layers tied.
    """
    n = 0
    for name, mod in G.named_modules():
        if name.endswith("torgb") and hasattr(mod, "weight"):
            w = mod.weight
            w.copy_(w.mean(dim=0, keepdim=True).expand_as(w))
            if getattr(mod, "bias", None) is not None:
                mod.bias.copy_(mod.bias.mean().expand_as(mod.bias))
            n += 1
    return n
