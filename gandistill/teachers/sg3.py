"""StyleGAN3 teachers: ``sg3-generator`` (pooled synthesis-layer features), ``sg3-latent`` (w), ``sg3-discriminator``.

StyleGAN3 has no resolution blocks: its synthesis network is an input layer (Fourier features)
followed by ``num_layers + 1`` layers ``L{idx}_{size}_{channels}`` (the last one, ToRGB, has 3
channels). For h^g (Eq. 4) each synthesis layer stands in for one of the paper's blocks:
``targets = [mu(L0), ..., mu(L14)]``, the global average pool of every layer's output. By default
the pool covers the image area only: each layer computes a margin beyond the image borders
(10 px at 16/32/... samples per unit; none on the last two layers), which is cropped first
(``margin=True`` pools the full map, margin included). ``blocks="L12_52_16,L13_32_16"`` (names as a
run's ``config.json`` lists them under ``target_names``, or indices ``"12,13"``) picks layers.

``sg2-generator`` given a StyleGAN3 snapshot computes the same targets; ``sg3-generator`` also
checks that the G is a StyleGAN3 one and accepts layer indices. w is sampled exactly as for
StyleGAN2 (z ~ N(0, I) through the mapping network, truncation 1, one w broadcast to all ``num_ws``
rows); the discriminator is the StyleGAN3 repository's copy of StyleGAN2's (same network, its own
defaults, read from the snapshot), so ``sg3-discriminator`` taps it as ``sg2-discriminator`` does.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from gandistill.teachers.discriminator import DiscriminatorTeacher
from gandistill.teachers.generator import GeneratorTeacher
from gandistill.teachers.latent import LatentTeacher
from gandistill.teachers.registry import register_teacher


def _require_sg3(G: Any, path: Optional[str], instead: str) -> None:
    if hasattr(G.synthesis, "block_resolutions") or not hasattr(G.synthesis, "layer_names"):
        raise ValueError(f"{path or 'this G'} is a StyleGAN2 generator, not a StyleGAN3 one: use --teacher {instead}")


@register_teacher("sg3-generator", help="StyleGAN3 generator: images + pooled outputs of every synthesis layer (h^g)")
class SG3GeneratorTeacher(GeneratorTeacher):
    """h^g from a StyleGAN3 G: one pooled target per synthesis layer (``margin``: pool the margin too)."""

    def _resolve_blocks(self, blocks: Any) -> Tuple[str, ...]:
        """Layer names or indices ("12,13" -> L12_..., L13_...); None or "all" = every layer."""
        _require_sg3(self.G, self.ckpt_path, "sg2-generator")
        if isinstance(blocks, int) and not isinstance(blocks, bool):  # --teacher-opt blocks=12 parses as an int
            blocks = [str(blocks)]
        if isinstance(blocks, str) and blocks not in ("", "all"):
            blocks = [b.strip() for b in blocks.split(",")]
        if isinstance(blocks, (list, tuple)):
            by_index = {n.split("_")[0][1:]: n for n in self.block_names}
            blocks = [by_index.get(str(b), str(b)) for b in blocks]
        return super()._resolve_blocks(blocks)

    def describe(self) -> dict:
        d = super().describe()
        d.update(margin=self.margin, family="stylegan3")
        return d


@register_teacher("sg3-latent", help="StyleGAN3 generator: images + their latent w (one w_dim vector)")
class SG3LatentTeacher(LatentTeacher):
    """w teacher on a StyleGAN3 G (``targets = [w]``)."""

    def __init__(self, ckpt: Optional[str] = None, device: Any = "cpu", **kw: Any) -> None:
        super().__init__(ckpt=ckpt, device=device, **kw)
        _require_sg3(self.G, self.ckpt_path, "sg2-latent")


@register_teacher("sg3-discriminator", help="StyleGAN3-repository discriminator: pooled block features "
                                            "(single = b4.fc, multi = SnS concat)")
class SG3DiscriminatorTeacher(DiscriminatorTeacher):
    """The discriminator of a StyleGAN3 snapshot (StyleGAN2's architecture with that repository's defaults)."""
