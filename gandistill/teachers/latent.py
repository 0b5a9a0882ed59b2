"""``sg2-latent``: synthetic images and their latent w as the target (Table 1, "latent variable" rows).

Same sampling as ``sg2-generator`` (w broadcast, truncation 1); the target is the single
w_dim-dimensional w (``ws[:, 0]``), as SnS's ``--regex='mapping$'`` hook takes it.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from gandistill.teachers.base import TeacherSample
from gandistill.teachers.generator import SG2SamplingTeacher
from gandistill.teachers.registry import register_teacher


@register_teacher("sg2-latent", help="StyleGAN2 generator: images + their latent w (one w_dim vector)")
class LatentTeacher(SG2SamplingTeacher):
    """w teacher: ``targets = [w]`` with ``w = G.mapping(z, c)[:, 0]``."""

    def __init__(self, ckpt: Optional[str] = None, device: Any = "cpu", **kw: Any) -> None:
        super().__init__(ckpt=ckpt, device=device, **kw)
        self.target_names = ("w",)
        self.target_dims = (self.w_dim,)

    @torch.no_grad()
    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> TeacherSample:
        ws, labels, _ = self._latents(n, generator)
        img = self.synthesize(ws, return_features=False)
        return TeacherSample(images=img.float().clamp(-1, 1), targets=[ws[:, 0].float()], labels=labels, ws=ws.float())
