"""Tensor augmentation presets on Kornia, on the batch's device: the transformation a ~ A of the paper.

``build_augment(preset, size, mean, std, input_range, shared)`` returns a module called as
``aug(x)`` on a float batch ``[N, 3, H, W]``:

1. input range: ``"unit"`` expects [0, 1]; ``"gan"`` expects a generator output in [-1, 1] and maps
   it by ``(x + 1) / 2``. Either way the batch is clamped to [0, 1] first.
2. the preset's random ops, a chain of ``kornia.augmentation`` modules with parameters drawn per
   sample (``shared=True`` draws one set for the whole batch, as the SnS code does with torchvision
   v1 transforms on a 4-D tensor);
3. resize to ``size`` when needed (``none`` preset), then dataset normalisation ``(x - mean) / std``.

The output is on ``x``'s device, in ``x``'s dtype (the ops run in float32), ``[N, 3, size, size]``.
Random parameters come from torch's global RNG, so ``torch.manual_seed`` makes a call repeat.

Parameter semantics are torchvision's: ``ColorJitter(0.4, 0.4, 0.4, 0.1)`` means brightness,
contrast and saturation factors drawn uniformly from ``[0.6, 1.4]`` (multiplicative; contrast blends
with the grayscale mean, saturation with the grayscale image) and a hue shift drawn from
``[-0.1, 0.1]`` of the full colour circle. We pass these as explicit ranges to
``kornia.augmentation.ColorJitter`` (the class that implements torchvision's formulas; Kornia's
``ColorJiggle`` differs), so nothing depends on Kornia's scalar conventions. One difference remains:
the random order of the four jitter steps is drawn once per call (torchvision draws it per image).
``RandomResizedCrop`` uses ``align_corners=False`` bilinear resampling like torchvision.

Why Kornia and not hand-written ops: an earlier backend of vectorised tensor ops was 1.5x faster
on CPU, but the default training step ran only ~3 % slower with Kornia (measured side by side in one
process, ``benchmarks/README.md`` section 4; ``benchmarks/bench_step.py`` shows the augmentation's share
of the step), which does not justify owning and testing a second implementation of every op.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Literal, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import close_matches

InputRange = Literal["unit", "gan"]
_INPUT_RANGES = ("unit", "gan")


@dataclass(frozen=True)
class AugmentPreset:
    """One augmentation recipe; ``None``/0 switches an op off. Values use torchvision semantics."""

    name: str
    description: str = ""
    crop_scale: Optional[Tuple[float, float]] = None  # RandomResizedCrop area fraction
    crop_ratio: Tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    rotate: float = 0.0  # RandomAffine: rotation drawn from [-rotate, rotate] degrees ...
    shear: float = 0.0  # ... and x-shear from [-shear, shear] degrees, applied with probability affine_p
    affine_p: float = 0.0
    jitter: Optional[Tuple[float, float, float, float]] = None  # brightness, contrast, saturation, hue
    jitter_p: float = 0.8
    gray_p: float = 0.0
    blur_p: float = 0.0
    blur_sigma: Tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 5  # SnS: 5x5 depthwise Gaussian for STL10
    flip_p: float = 0.0

    def __post_init__(self) -> None:
        if self.crop_scale is not None and not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        if self.blur_p > 0 and (self.blur_kernel < 3 or self.blur_kernel % 2 == 0):
            raise ValueError(f"blur_kernel must be odd and >= 3, got {self.blur_kernel}")
        for name in ("jitter_p", "gray_p", "blur_p", "flip_p", "affine_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        if self.rotate < 0 or self.shear < 0:
            raise ValueError(f"rotate and shear are half-ranges in degrees (>= 0), got {self.rotate}, {self.shear}")


# ssl-digits (handwritten digits, e.g. the bundled MNIST subset): the ssl-cifar recipe made label-preserving.
# * no horizontal flip: a mirrored 2, 3, 4, 5, 7 or 9 is not that digit (ssl-cifar flips half the views);
# * crops keep >= 70 % of the area, near-square (ratio 0.85-1.18), instead of down to 20 %: a digit fills
#   most of its 28x28 box, and a 20 % crop shows a stroke fragment that could belong to any class;
# * small affine distortions instead: rotation +-15 deg and shear +-10 deg, the classic label-preserving
#   distortions of the MNIST literature (LeCun et al. 1998's distorted training set; Simard, Steinkraus &
#   Platt, ICDAR 2003), kept well below the angles that turn a 6 into a 9;
# * brightness/contrast jitter 0.4 as in ssl-cifar (stroke intensity is not the class); saturation, hue and
#   grayscale are dropped -- the images are grey, so they would be no-ops;
# * a light blur (3x3, sigma 0.1-1, p 0.3) for stroke-width invariance.
# Crop + photometric jitter remain the core of the view pair, as SimCLR (Chen et al. 2020) found.
PRESETS: Dict[str, AugmentPreset] = {
    p.name: p
    for p in (
        AugmentPreset("ssl-cifar", "SnS/VICReg CIFAR: RRC(0.2-1), jitter .4/.4/.4/.1 p=.8, gray p=.2, flip",
                      crop_scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8, gray_p=0.2, flip_p=0.5),
        AugmentPreset("ssl-stl", "ssl-cifar + Gaussian blur (5x5, sigma 0.1-2, p=.5)",
                      crop_scale=(0.2, 1.0), jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8, gray_p=0.2,
                      blur_p=0.5, flip_p=0.5),
        AugmentPreset("ssl-digits", "label-preserving for digits: RRC(0.7-1, near square), rotate 15 / shear 10 deg "
                      "p=.5, brightness/contrast .4 p=.8, blur 3x3 p=.3, no flip",
                      crop_scale=(0.7, 1.0), crop_ratio=(0.85, 1.0 / 0.85), rotate=15.0, shear=10.0, affine_p=0.5,
                      jitter=(0.4, 0.4, 0.0, 0.0), jitter_p=0.8, blur_p=0.3, blur_sigma=(0.1, 1.0), blur_kernel=3),
        AugmentPreset("linear", "linear-probe training: RRC(0.08-1) + flip", crop_scale=(0.08, 1.0), flip_p=0.5),
        # the probe's training views for digits, for the same reasons as ssl-digits (no flip, no fragments)
        AugmentPreset("linear-digits", "linear-probe training for digits: RRC(0.7-1, near square), no flip",
                      crop_scale=(0.7, 1.0), crop_ratio=(0.85, 1.0 / 0.85)),
        AugmentPreset("none", "no augmentation: resize if needed + normalise"),
    )
}


def list_augmentations() -> List[str]:
    """Names of the built-in presets."""
    return sorted(PRESETS)


def _tv_range(v: float, name: str, center: float = 1.0) -> Tuple[float, float]:
    """torchvision's scalar -> range rule: factor in [max(0, center - v), center + v]."""
    if v < 0:
        raise ValueError(f"jitter {name} must be >= 0, got {v}")
    return (max(0.0, center - v), center + v)


def _hue_range(h: float) -> Tuple[float, float]:
    if not 0 <= h <= 0.5:
        raise ValueError(f"jitter hue must lie in [0, 0.5] (fraction of the colour circle), got {h}")
    return (-h, h)


def kornia_ops(p: AugmentPreset, size: int, shared: bool = False) -> List[nn.Module]:
    """The preset as a list of ``kornia.augmentation`` modules (per-sample unless ``shared``)."""
    import kornia.augmentation as K  # imported lazily: `gandistill --help` does not pay for it

    ops: List[nn.Module] = []
    if p.crop_scale is not None:
        ops.append(K.RandomResizedCrop((size, size), scale=p.crop_scale, ratio=p.crop_ratio,
                                       same_on_batch=shared, align_corners=False))
    if p.affine_p > 0 and (p.rotate > 0 or p.shear > 0):
        ops.append(K.RandomAffine(degrees=p.rotate, shear=p.shear or None, p=p.affine_p, same_on_batch=shared,
                                  align_corners=False))
    if p.jitter is not None and p.jitter_p > 0:
        b, c, s, h = p.jitter
        ops.append(K.ColorJitter(brightness=_tv_range(b, "brightness"), contrast=_tv_range(c, "contrast"),
                                 saturation=_tv_range(s, "saturation"), hue=_hue_range(h),
                                 p=p.jitter_p, same_on_batch=shared))
    if p.gray_p > 0:
        ops.append(K.RandomGrayscale(p=p.gray_p, same_on_batch=shared))
    if p.blur_p > 0:
        ops.append(K.RandomGaussianBlur((p.blur_kernel, p.blur_kernel), sigma=p.blur_sigma, p=p.blur_p,
                                        same_on_batch=shared))
    if p.flip_p > 0:
        ops.append(K.RandomHorizontalFlip(p=p.flip_p, same_on_batch=shared))
    return ops


def resize_center(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` (bilinear, antialiased) and centre-crop ``size x size``."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if min(h, w) != size:
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        h, w = nh, nw
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


class Augment(nn.Module):
    """Input-range mapping + random Kornia ops + dataset normalisation (see module docstring)."""

    def __init__(self, preset: AugmentPreset, size: int, mean: Sequence[float], std: Sequence[float],
                 input_range: InputRange = "unit", shared: bool = False):
        super().__init__()
        if input_range not in _INPUT_RANGES:
            raise ValueError(f"input_range must be one of {_INPUT_RANGES}, got {input_range!r}")
        if int(size) < 1:
            raise ValueError(f"size must be a positive int, got {size}")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got mean={tuple(mean)}, std={tuple(std)}")
        if min(std) <= 0:
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.preset, self.size, self.input_range, self.shared = preset, int(size), input_range, bool(shared)
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.ops = nn.Sequential(*kornia_ops(preset, self.size, self.shared))

    def extra_repr(self) -> str:
        return (f"preset={self.preset.name!r}, size={self.size}, input_range={self.input_range!r}, "
                f"shared={self.shared}, mean={self.mean}, std={self.std}")

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Map the input range to [0, 1] and clamp."""
        if self.input_range == "gan":
            x = (x + 1.0) * 0.5
        return x.clamp(0.0, 1.0)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"augment expects a float batch [N, 3, H, W], got {shape}")
        if not x.is_floating_point():
            raise ValueError(f"augment expects a float tensor in [0,1] or [-1,1], got dtype {x.dtype} "
                             "(convert uint8 images with x.float() / 255)")
        dtype = x.dtype
        y = self.to_unit(x.float())
        if len(self.ops):
            y = self.ops(y)
        y = resize_center(y, self.size)
        return self.normalize(y).to(dtype)


def build_augment(preset: Union[str, AugmentPreset], size: int, mean: Sequence[float], std: Sequence[float],
                  input_range: InputRange = "unit", shared: bool = False) -> Augment:
    """Build an :class:`Augment` from a preset name (``list_augmentations()``) or an ``AugmentPreset``.

    >>> aug = build_augment("ssl-cifar", 32, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), input_range="gan")
    >>> aug(torch.rand(4, 3, 32, 32) * 2 - 1).shape
    torch.Size([4, 3, 32, 32])
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            hint = close_matches(preset, PRESETS)
            raise KeyError(f"unknown augmentation preset '{preset}'."
                           + (f" Did you mean: {', '.join(hint)}?" if hint else "")
                           + f" Known presets: {', '.join(list_augmentations())}")
        preset = PRESETS[preset]
    return Augment(preset, size, mean, std, input_range=input_range, shared=shared)


__all__ = ["AugmentPreset", "Augment", "PRESETS", "build_augment", "kornia_ops", "list_augmentations",
           "resize_center"]
