"""``sg2-encoder``: the post-hoc encoder baseline (Eq. 3, Table 1 "Encoding" rows).

An encoder E (a student whose projector outputs w_dim * num_ws numbers, read as w+) is trained
against the frozen G:

    L_syn  = ||G(E(x)) - x||_1 + L_percep(G(E(x)), x) + lambda * MSE(E(x), w+),   x = G(w+)
    L_real = ||G(E(x)) - x||_1 + L_percep(G(E(x)), x)                             (real x in [-1,1])

(SnS's encode.py: weights 1 / 1 / 1, LPIPS with ``net='alex'``, mean squared error for the latent term.)
Gradients pass through the frozen synthesis network. The perceptual loss is the paper's LPIPS-AlexNet
(:mod:`gandistill.losses.lpips`, ``"lpips-alex"``) when its weights are given by path
(``lpips_weights``: the lpips ``alex.pth`` or a combined file; ``alexnet_weights``: the torchvision
alexnet state dict, when separate); nothing is ever downloaded or looked up. Otherwise an offline
stand-in with the same form -- unit-normalise each spatial feature vector over channels, squared
distance summed over channels, averaged over positions and layers -- on
``"d-features"``: the block outputs of the checkpoint's own frozen D, when it has one, else
``"random-conv"``: a fixed, seeded random 3-stage conv net. ``teacher.perceptual_name`` records
which one ran (the compare table labels non-LPIPS rows from it).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gandistill.losses.lpips import LPIPS, MIN_SIZE
from gandistill.teachers.base import TeacherSample, load_sg2_nets
from gandistill.teachers.generator import SG2SamplingTeacher
from gandistill.teachers.registry import register_teacher

PERCEPTUAL = ("auto", "lpips", "lpips-alex", "d-features", "random-conv", "none")


def _unit(x: Tensor, eps: float = 1e-10) -> Tensor:
    return x / (x.pow(2).sum(dim=1, keepdim=True) + eps).sqrt()


def feature_distance(fa: List[Tensor], fb: List[Tensor]) -> Tensor:
    """LPIPS-form distance without learned weights: mean over layers of mean_hw sum_c (unit(a) - unit(b))^2."""
    per_layer = [(_unit(a.float()) - _unit(b.float())).pow(2).sum(dim=1).mean() for a, b in zip(fa, fb)]
    return torch.stack(per_layer).mean()


class RandomConvPerceptual(nn.Module):
    """A fixed random conv net (seeded, Kaiming init) whose three stage outputs define a feature distance."""

    name = "random-conv"

    def __init__(self, in_channels: int = 3, widths=(32, 64, 128), seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        layers, c = [], in_channels
        for w in widths:
            conv = nn.Conv2d(c, w, 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * (2.0 / (c * 9)) ** 0.5)
                conv.bias.zero_()
            layers.append(conv)
            c = w
        self.convs = nn.ModuleList(layers)
        self.requires_grad_(False).eval()

    def feats(self, x: Tensor) -> List[Tensor]:
        out = []
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            out.append(x)
            if i < len(self.convs) - 1:
                x = F.avg_pool2d(x, 2)
        return out

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return feature_distance(self.feats(a), self.feats(b))


class DFeaturePerceptual(nn.Module):
    """Distance between the frozen discriminator's block outputs (all blocks before the epilogue)."""

    name = "d-features"

    def __init__(self, D: nn.Module) -> None:
        super().__init__()
        self.D = D.float().requires_grad_(False).eval()
        self.c_dim = int(getattr(D, "c_dim", 0))
        self.blocks = [f"b{r}" for r in D.block_resolutions if r != 4]

    def feats(self, x: Tensor) -> List[Tensor]:
        c = torch.zeros(x.shape[0], self.c_dim, device=x.device)
        _, f = self.D(x, c, return_features=True)
        return [f[b] for b in self.blocks]

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return feature_distance(self.feats(a), self.feats(b))


class LpipsAlexPerceptual(nn.Module):
    """The paper's perceptual term: LPIPS-alex v0.1 averaged over the batch, from local weight files."""

    name = "lpips-alex"

    def __init__(self, lpips_weights: str, alexnet_weights: Optional[str] = None) -> None:
        super().__init__()

        self.net = LPIPS.from_files(lpips_weights, alexnet_weights)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.net(a, b).mean()


def lpips_available(lpips_weights: Optional[str] = None, alexnet_weights: Optional[str] = None) -> bool:
    """True when LPIPS weights were given by path and those files exist (weights are never searched for)."""
    paths = [p for p in (lpips_weights, alexnet_weights) if p]
    return bool(lpips_weights) and all(Path(p).is_file() for p in paths)


def build_perceptual(kind: str, D: Optional[nn.Module], lpips_weights: Optional[str] = None,
                     alexnet_weights: Optional[str] = None) -> Optional[nn.Module]:
    """Pick the perceptual loss (see module docstring); ``auto`` is lpips-alex if weights are given, else
    d-features (with a D), else random-conv."""
    if kind not in PERCEPTUAL:
        raise ValueError(f"perceptual must be one of {PERCEPTUAL}, got {kind!r}")
    if alexnet_weights and not lpips_weights:
        raise ValueError("alexnet_weights needs lpips_weights (the LPIPS linear layers, e.g. lpips' alex.pth)")
    if lpips_weights and kind not in ("auto", "lpips", "lpips-alex"):
        raise ValueError(f"lpips_weights was given but perceptual={kind!r}; use perceptual='lpips' (or 'auto')")
    if lpips_weights:
        return LpipsAlexPerceptual(lpips_weights, alexnet_weights)
    if kind in ("lpips", "lpips-alex"):
        raise ValueError(f"perceptual={kind!r} needs lpips_weights=PATH (the lpips alex.pth, plus "
                         "alexnet_weights=PATH, or one combined file); nothing is downloaded")
    if kind == "none":
        return None
    if kind in ("auto", "d-features") and D is not None:
        return DFeaturePerceptual(D)
    if kind == "d-features":
        raise ValueError("perceptual='d-features' needs a teacher checkpoint that contains D")
    return RandomConvPerceptual()


@register_teacher("sg2-encoder", help="post-hoc encoder E against the frozen G (Eq. 3: L1 + perceptual + lambda*||E(x)-w||^2)")
class EncoderTeacher(SG2SamplingTeacher):
    """Samples (x = G(w+), w+) and scores an encoder output e = E(x) with :meth:`loss` (Eq. 3).

    ``target_dims = (num_ws * w_dim,)``: the student's projector output size. ``lpips_weights`` /
    ``alexnet_weights``: local LPIPS-alex files (see :mod:`gandistill.losses.lpips`); with them the
    perceptual term is the paper's (``perceptual_name == "lpips-alex"``).
    """

    def __init__(
        self,
        ckpt: Optional[str] = None,
        device: Any = "cpu",
        latent_weight: float = 1.0,
        perceptual: str = "auto",
        lpips_weights: Optional[str] = None,
        alexnet_weights: Optional[str] = None,
        G: Optional[nn.Module] = None,
        D: Optional[nn.Module] = None,
        **kw: Any,
    ) -> None:
        path = None
        if G is None:
            ck, path = load_sg2_nets(ckpt, ("G_ema", "D"))
            G = ck.G_ema if ck.G_ema is not None else ck.G
            if G is None:
                raise ValueError(f"{path} holds no generator (G_ema or G)")
            D = D if D is not None else ck.D
        super().__init__(ckpt=None, device=device, G=G, **kw)
        self.ckpt_path = str(path) if path is not None else None
        self.latent_weight = float(latent_weight)
        self.lpips_weights, self.alexnet_weights = lpips_weights, alexnet_weights
        self.target_names = ("ws",)
        self.target_dims = (self.num_ws * self.w_dim,)
        if lpips_weights and self.img_resolution < MIN_SIZE:
            raise ValueError(f"LPIPS-alex needs images of at least {MIN_SIZE} px; "
                             f"this G makes {self.img_resolution} px")
        self.perceptual = build_perceptual(perceptual, D, lpips_weights, alexnet_weights)
        if self.perceptual is not None:
            self.perceptual.to(self.device)
        self.perceptual_name = getattr(self.perceptual, "name", "none")
        self.freeze()

    @torch.no_grad()
    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> TeacherSample:
        ws, labels, _ = self._latents(n, generator)
        img = self.synthesize(ws, return_features=False)
        return TeacherSample(images=img.float().clamp(-1, 1), targets=[ws.float().flatten(1)], labels=labels, ws=ws.float())

    def reconstruct(self, e: Tensor) -> Tensor:
        """G.synthesis(E(x)) with gradients flowing back into ``e`` ([N, num_ws*w_dim])."""
        if e.ndim != 2 or e.shape[1] != self.num_ws * self.w_dim:
            raise ValueError(f"encoder output must be [N, {self.num_ws * self.w_dim}] (num_ws*w_dim), got {tuple(e.shape)}")
        return self.synthesize(e.float().view(-1, self.num_ws, self.w_dim)).float()

    def loss(self, e: Tensor, x: Tensor, ws: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Eq. 3 for a batch: ``x`` in [-1,1]; ``ws`` (synthetic only) adds lambda * MSE(e, w+).

        Returns ``loss, l1, percep, latent`` (latent is 0 for real images).
        """
        recon = self.reconstruct(e)
        x = x.float()
        if recon.shape[-2:] != x.shape[-2:]:
            x = F.interpolate(x, size=recon.shape[-2:], mode="bilinear", align_corners=False)
        l1 = (recon - x).abs().mean()
        percep = self.perceptual(recon, x) if self.perceptual is not None else l1.new_zeros(())
        latent = F.mse_loss(e.float(), ws.float().flatten(1)) if ws is not None else l1.new_zeros(())
        loss = l1 + percep + self.latent_weight * latent
        return {"loss": loss, "l1": l1.detach(), "percep": percep.detach(), "latent": latent.detach()}

    def describe(self) -> dict:
        d = super().describe()
        d.update(perceptual=self.perceptual_name, latent_weight=self.latent_weight)
        if self.lpips_weights:
            d.update(lpips_weights=self.lpips_weights, alexnet_weights=self.alexnet_weights)
        return d
