"""``sg2-d-on-g``: G draws the images, D describes them -- h^d of synthetic images as the target.

The paper distils h^g (Eq. 4), the generator's own block features, because its Fig. 2 finds them
class-structured. On our digits teachers they are not, and the discriminator's pooled features h^d
(Eq. 2) are: ``gan score --diagnostics`` puts them 13-18 points of 10-shot accuracy above the raw
pixels of the same images, with h^g near the pixels. This teacher lets Squeeze and Span test that
directly: the synthetic images come from ``G_ema`` exactly as for ``sg2-generator`` (z ~ N(0, I),
truncation 1), and their targets are the frozen D's pooled features of those images, tapped as
``sg2-discriminator`` taps them (``mode="multi"``: every block plus ``b4.fc``; ``"single"``: ``b4.fc``;
a PacGAN D sees packs of copies). D's minibatch-std statistic spans the whole sampled batch.

It needs a checkpoint that keeps D (the bundled teacher does; our snapshots and NVlabs pickles do).
Usage: ``gandistill fit --teacher sg2-d-on-g [--teacher-ckpt SNAPSHOT] [--teacher-opt mode=single]``.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from gandistill.teachers.base import TeacherSample, load_sg2_nets
from gandistill.teachers.discriminator import DiscriminatorTeacher
from gandistill.teachers.generator import SG2SamplingTeacher
from gandistill.teachers.registry import register_teacher


def _load_g_and_d(ckpt: Optional[str]):
    """``(G, D, path)`` from one checkpoint (read once), refusing one without D or without G in one line
    naming it."""
    ck, path = load_sg2_nets(ckpt, ("G_ema", "D"))
    if ck.D is None:
        raise ValueError(f"{path} has no discriminator D; the sg2-d-on-g teacher needs a checkpoint with D "
                         "(a gan train snapshot, the bundled teacher or an NVlabs snapshot .pkl)")
    G = ck.G_ema if ck.G_ema is not None else ck.G
    if G is None:       # never fall back to another checkpoint's generator
        raise ValueError(f"{path} has no generator (G_ema or G); the sg2-d-on-g teacher needs one")
    return G, ck.D, path


@register_teacher("sg2-d-on-g", help="StyleGAN2 G's samples with D's pooled features of them (h^d) as targets")
class DiscriminatorOnSamplesTeacher(SG2SamplingTeacher):
    """``sample(n)``: images from G, ``targets = D.feature_list(images)``. ``mode``/``blocks`` as
    ``sg2-discriminator``; other keywords (``noise_mode``, ``truncation_psi``) as ``sg2-generator``."""

    def __init__(self, ckpt: Optional[str] = None, device: Any = "cpu", mode: str = "multi", blocks=None,
                 G: Optional[nn.Module] = None, D: Optional[nn.Module] = None, **kw: Any) -> None:
        path = None
        if G is None or D is None:
            g, d, path = _load_g_and_d(ckpt)
            G, D = (G if G is not None else g), (D if D is not None else d)
        super().__init__(device=device, G=G, **kw)
        self.ckpt_path = str(path) if path is not None else None
        self.disc = DiscriminatorTeacher(D=D, device=device, mode=mode, blocks=blocks)
        if self.disc.img_channels != self.img_channels:
            raise ValueError(f"G makes {self.img_channels}-channel images but D judges {self.disc.img_channels}")
        self.target_names = self.disc.target_names
        self.target_dims = self.disc.target_dims

    @torch.no_grad()
    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> TeacherSample:
        ws, labels, _ = self._latents(n, generator)
        img = self.synthesize(ws, return_features=False).float().clamp(-1, 1)
        return TeacherSample(images=img, targets=self.disc.feature_list(img), labels=labels, ws=ws.float())

    def describe(self) -> dict:
        d = super().describe()
        d.update(mode=self.disc.mode)
        return d
