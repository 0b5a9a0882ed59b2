"""``sg2-discriminator``: pooled discriminator block features h^d (Eq. 2), for "direct use".

Images go in as a batch in [-1, 1] (the range D was trained on). ``mode="single"`` returns the
penultimate ``b4.fc`` output; ``mode="multi"`` concatenates the pooled block outputs with ``b4.fc``
as SnS's ``eval_discriminator.py --regex "b32|b16|b8|b4.fc$"`` does: for a 32 px D that is every
block (b32, b16, b8); above 32 px the first (highest-resolution) block is dropped.
The minibatch-std group is the whole batch (SnS sets ``mbstd.group_size`` to the batch size).
A PacGAN D (``gan train --pack k``: its input has 3k channels) judged packs of k images; as a feature
extractor it is shown each image k times over (a pack of copies), so there is one feature row per image.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from gandistill.teachers.base import Teacher, load_sg2_nets, pool, resolve_ckpt, use_fast_path
from gandistill.teachers.registry import register_teacher
from gandistill.teachers.stylegan2.checkpoint import available_nets

MODES = ("single", "multi")


def default_blocks(block_resolutions: Sequence[int], img_resolution: int, mode: str) -> Tuple[str, ...]:
    """The D feature names tapped for ``mode`` (see module docstring)."""
    if mode == "single":
        return ("b4.fc",)
    blocks = [f"b{r}" for r in block_resolutions if r != 4]
    if img_resolution > 32 and len(blocks) > 1:
        blocks = blocks[1:]
    return tuple(blocks) + ("b4.fc",)


def _set_mbstd_whole_batch(D: nn.Module) -> None:
    """Make minibatch-std use the whole batch as one group (group_size None = N)."""
    for m in D.modules():
        if type(m).__name__ == "MinibatchStdLayer" or hasattr(m, "num_channels") and hasattr(m, "group_size"):
            m.group_size = None


@register_teacher("sg2-discriminator", help="StyleGAN2 discriminator: pooled block features (single = b4.fc, multi = SnS concat)")
class DiscriminatorTeacher(Teacher):
    """Frozen D as a feature extractor: ``features(x in [-1,1]) -> [N, sum(target_dims)]``."""

    can_sample = False

    def __init__(
        self,
        ckpt: Optional[str] = None,
        device: Any = "cpu",
        mode: str = "multi",
        blocks=None,
        D: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"discriminator mode must be one of {MODES}, got {mode!r}")
        self.ckpt_path = None
        if D is None:
            if "D" not in available_nets(resolve_ckpt(ckpt)):
                raise ValueError(
                    f"{resolve_ckpt(ckpt)} has no discriminator D (our bundled/converted teachers may keep only G_ema); "
                    "the sg2-discriminator teacher needs a checkpoint with D, e.g. an NVlabs snapshot .pkl"
                )
            ck, path = load_sg2_nets(ckpt, ("D",))
            D = ck.D
            self.ckpt_path = str(path)
        self.D = D.float().to(torch.device(device))
        _set_mbstd_whole_batch(self.D)
        self.mode = mode
        self.c_dim = int(getattr(D, "c_dim", 0))
        self.img_resolution = int(D.img_resolution)
        d_channels = int(getattr(D, "img_channels", 3))
        self.pack = d_channels // 3 if d_channels > 3 and d_channels % 3 == 0 else 1   # PacGAN D: 3k channels
        self.img_channels = d_channels // self.pack
        channels = D.feature_channels()
        res = list(getattr(D, "block_resolutions", [int(k[1:]) for k in channels if k[1:].isdigit()]))
        if blocks is None:
            names = default_blocks(res, self.img_resolution, mode)
        else:
            names = tuple(b.strip() for b in blocks.split(",")) if isinstance(blocks, str) else tuple(blocks)
        bad = [b for b in names if b not in channels]
        if bad:
            raise ValueError(f"unknown discriminator feature(s) {bad}; this D has {sorted(channels)}")
        self.target_names = names
        self.target_dims = tuple(int(channels[b]) for b in names)
        self.freeze()

    @property
    def num_features(self) -> int:
        return int(sum(self.target_dims))

    def feature_list(self, x: Tensor) -> list:
        """The pooled features, one [N,C_i] tensor per name in ``target_names``."""
        if x.ndim != 4 or x.shape[1] != self.img_channels:
            raise ValueError(f"D expects images [N,{self.img_channels},H,W] in [-1,1], got {tuple(x.shape)}")
        if x.shape[-1] != self.img_resolution or x.shape[-2] != self.img_resolution:
            x = nn.functional.interpolate(x, size=(self.img_resolution,) * 2, mode="bilinear", align_corners=False)
        if self.pack > 1:
            x = x.repeat(1, self.pack, 1, 1)          # a pack of copies: [N, 3k, H, W]
        c = torch.zeros(x.shape[0], self.c_dim, device=x.device)
        force_fp32 = not use_fast_path(x.device)
        kw = {"force_fp32": force_fp32}
        try:
            _, feats = self.D(x.float(), c, return_features=True, **kw)
        except TypeError:
            _, feats = self.D(x.float(), c, return_features=True)
        return [pool(feats[b]) for b in self.target_names]

    def features(self, x: Tensor) -> Tensor:
        """h^d = concat of the pooled features for images ``x`` in [-1, 1]."""
        return torch.cat(self.feature_list(x), dim=1)

    forward = features

    def describe(self) -> dict:
        d = super().describe()
        d.update(ckpt=self.ckpt_path, mode=self.mode)
        return d
