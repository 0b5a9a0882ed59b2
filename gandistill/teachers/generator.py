"""``sg2-generator``: synthetic images and the pooled synthesis-block features h^g (Eq. 4).

A StyleGAN3 G works here too, with its synthesis layers as the blocks (``teachers/sg3.py``).

For w ~ P(w) (z ~ N(0, I) through the mapping network, truncation 1, one w broadcast to every
layer, no style mixing), the teacher returns the image G(w) clamped to [-1, 1] and
h^g = [mu(h^g_1), ..., mu(h^g_L)], the globally average-pooled output x of each synthesis block
(b4, b8, ...). A conditional G gets class-balanced labels c.
"""
from __future__ import annotations

import contextlib
from typing import Any, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from gandistill.teachers.base import Teacher, TeacherSample, load_sg2_nets, pool, use_fast_path
from gandistill.teachers.registry import register_teacher

PRECISIONS = ("fp32", "bf16", "fp16")


def _parse_blocks(blocks: Union[None, str, Sequence[str]], available: Sequence[str]) -> Tuple[str, ...]:
    if blocks is None or blocks == "" or blocks == "all":
        return tuple(available)
    names = [b.strip() for b in blocks.split(",")] if isinstance(blocks, str) else list(blocks)
    names = [f"b{b}" if b.isdigit() else b for b in names]  # "4" -> "b4"; StyleGAN3 layer names pass as given
    bad = [b for b in names if b not in available]
    if bad:
        raise ValueError(f"unknown generator block(s) {bad}; this G has {list(available)}")
    return tuple(names)


class SG2SamplingTeacher(Teacher):
    """Shared machinery: load G (``G_ema``), draw w, synthesize images (+ block features)."""

    def __init__(
        self,
        ckpt: Optional[str] = None,
        device: Any = "cpu",
        G: Optional[nn.Module] = None,
        noise_mode: str = "random",
        truncation_psi: float = 1.0,
        precision: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.ckpt_path: Optional[str] = None
        if G is None:
            ck, path = load_sg2_nets(ckpt, ("G_ema",))
            G = ck.G_ema if ck.G_ema is not None else ck.G
            self.ckpt_path = str(path)
        device = torch.device(device)
        self.G = G.float().to(device)
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be random|const|none, got {noise_mode!r}")
        self.noise_mode = noise_mode
        self.truncation_psi = float(truncation_psi)
        if precision is None:
            precision = "bf16" if use_fast_path(device) else "fp32"
        if precision not in PRECISIONS:
            raise ValueError(f"teacher precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        self.z_dim, self.c_dim, self.w_dim = int(G.z_dim), int(G.c_dim), int(G.w_dim)
        self.num_ws = int(G.num_ws)
        self.img_resolution = int(G.img_resolution)
        self.img_channels = int(G.img_channels)
        self.block_names = tuple(G.feature_channels())  # b4, b8, ... (StyleGAN3: L0_36_512, ..., L14_<res>_3)
        self.freeze()

    # -- sampling ---------------------------------------------------------------------------
    def _latents(self, n: int, generator: Optional[torch.Generator]) -> Tuple[Tensor, Optional[Tensor], Tensor]:
        dev = self.device
        z = torch.randn(n, self.z_dim, generator=generator).to(dev) if generator is not None else torch.randn(
            n, self.z_dim, device=dev
        )
        labels = c = None
        if self.c_dim > 0:
            # class-balanced labels: each class appears floor/ceil(n / c_dim) times, in random order
            perm = torch.randperm(n, generator=generator) if generator is not None else torch.randperm(n)
            labels = (torch.arange(n) % self.c_dim)[perm].to(dev)
            c = torch.nn.functional.one_hot(labels, self.c_dim).float()
        else:
            c = torch.zeros(n, 0, device=dev)
        ws = self.G.mapping(z, c, truncation_psi=self.truncation_psi)
        return ws, labels, z

    def _autocast(self):
        """bf16 autocast on GPU when ``precision="bf16"`` (``"fp16"`` uses the network's own fp16 blocks)."""
        if self.precision != "bf16" or self.device.type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)

    def synthesize(self, ws: Tensor, return_features: bool = False, noise_mode: Optional[str] = None):
        """G.synthesis(ws): fp32 on CPU; on GPU bf16 autocast or the checkpoint's fp16 blocks (``precision``)."""
        force_fp32 = not (self.device.type == "cuda" and self.precision == "fp16")
        with self._autocast():
            return self.G.synthesis(
                ws, noise_mode=noise_mode or self.noise_mode, force_fp32=force_fp32, return_features=return_features
            )

    def describe(self) -> dict:
        d = super().describe()
        d.update(
            ckpt=self.ckpt_path,
            z_dim=self.z_dim,
            c_dim=self.c_dim,
            w_dim=self.w_dim,
            num_ws=self.num_ws,
            noise_mode=self.noise_mode,
            truncation_psi=self.truncation_psi,
            precision=self.precision,
        )
        return d


@register_teacher("sg2-generator", help="StyleGAN2 generator: images + pooled synthesis-block features h^g (Eq. 4)")
class GeneratorTeacher(SG2SamplingTeacher):
    """h^g teacher. ``blocks``: which synthesis blocks to tap ("b4,b8" or None = all, as SnS)."""

    def __init__(self, ckpt: Optional[str] = None, device: Any = "cpu", blocks=None, margin: bool = False,
                 **kw: Any) -> None:
        super().__init__(ckpt=ckpt, device=device, **kw)
        self.margin = bool(margin)  # StyleGAN3 only: pool each layer's margin too (see teachers/sg3.py)
        self.target_names = self._resolve_blocks(blocks)
        channels = self.G.feature_channels()
        self.target_dims = tuple(int(channels[b]) for b in self.target_names)

    def _resolve_blocks(self, blocks) -> Tuple[str, ...]:
        return _parse_blocks(blocks, self.block_names)

    @torch.no_grad()
    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> TeacherSample:
        ws, labels, _ = self._latents(n, generator)
        img, feats = self.synthesize(ws, return_features=True)
        missing = [b for b in self.target_names if b not in feats]
        if missing:
            raise RuntimeError(f"G.synthesis returned no features for {missing} (got {sorted(feats)})")
        crop = None if self.margin else getattr(self.G.synthesis, "crop_margin", None)  # StyleGAN3 layers
        targets = [pool(crop(b, feats[b]) if crop is not None else feats[b]) for b in self.target_names]
        return TeacherSample(images=img.float().clamp(-1, 1), targets=targets, labels=labels, ws=ws.float())
