"""Vectorised tensor augmentation ops with torchvision's semantics (used by :mod:`gandistill.augment`).

Every op takes a float batch ``[N, C, H, W]`` in [0, 1] and per-sample parameters (one row per
image; a single row broadcast over the batch gives the "shared" mode). They are plain PyTorch, so
they run on any device, and they are several times faster on CPU than per-sample Kornia ops:
the crop, the resize and the horizontal flip are a single ``grid_sample`` and the hue shift skips
the full HSV round trip.

Formulas follow torchvision.transforms (v1/v2 functional):
* brightness: ``clamp(f * x)``; contrast: ``clamp(f * x + (1 - f) * mean(gray(x)))``;
  saturation: ``clamp(f * x + (1 - f) * gray(x))``; gray = 0.2989 R + 0.587 G + 0.114 B;
* hue: shift the HSV hue by ``h`` (fraction of the colour circle), keep S and V;
* RandomResizedCrop: torchvision's sampler (10 tries of area ~ U(scale)*H*W, log-uniform aspect
  ratio, then a centre-crop fallback), bilinear resampling with ``align_corners=False``.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _rows(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample factors ``[N]`` or ``[1]`` -> broadcastable ``[N|1, 1, 1, 1]`` on x's device."""
    return v.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _mask(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return m.to(device=x.device).view(-1, 1, 1, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, ``[N, 1, H, W]``."""
    r, g, b = x.unbind(dim=1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def adjust_brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return (x * _rows(f, x)).clamp(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    f = _rows(f, x)
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return (f * x + (1.0 - f) * mean).clamp(0.0, 1.0)


def adjust_saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    f = _rows(f, x)
    return (f * x + (1.0 - f) * grayscale(x)).clamp(0.0, 1.0)


def adjust_hue(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue by ``h`` (in [-0.5, 0.5], fraction of a turn); S and V are kept.

    With V = max, C = max - min and hue H in [0, 1), each output channel is
    ``V - C * clamp(min(k, 4 - k), 0, 1)``, ``k = (n + 6H) mod 6`` with n = 5, 3, 1 for R, G, B
    (the closed form of HSV -> RGB).
    """
    r, g, b = x.unbind(dim=1)
    maxc = torch.maximum(torch.maximum(r, g), b)  # elementwise: much faster than max(dim=1) on CPU
    minc = torch.minimum(torch.minimum(r, g), b)
    chroma = maxc - minc
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue6 = torch.where(maxc == r, (g - b) / safe,
                       torch.where(maxc == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue6 = torch.remainder(hue6 + 6.0 * h.to(device=x.device, dtype=x.dtype).view(-1, 1, 1), 6.0)
    n = torch.tensor((5.0, 3.0, 1.0), device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = n + hue6.unsqueeze(1)  # in [1, 11)
    k = torch.where(k >= 6.0, k - 6.0, k)
    w = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return maxc.unsqueeze(1) - chroma.unsqueeze(1) * w


_STEPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
NEUTRAL = (1.0, 1.0, 1.0, 0.0)


def color_jitter(x: torch.Tensor, factors: torch.Tensor, apply: torch.Tensor,
                 order: Tuple[int, ...] = (0, 1, 2, 3)) -> torch.Tensor:
    """torchvision ColorJitter with per-sample ``factors`` ``[N|1, 4]`` (b, c, s, h) on samples ``apply``.

    Steps whose factors are all neutral are skipped; ``order`` indexes (brightness, contrast,
    saturation, hue).
    """
    sel = apply.to(factors.device).view(-1, 1)
    factors = torch.where(sel, factors, torch.tensor(NEUTRAL, dtype=factors.dtype, device=factors.device))
    for i in order:
        f = factors[:, i]
        if bool((f == NEUTRAL[i]).all()):
            continue
        # neutral brightness/contrast/saturation factors are exact identities on [0, 1] images;
        # the hue round trip is not (float error), so it is masked
        y = _STEPS[i](x, f)
        x = torch.where(_mask(apply, x), y, x) if i == 3 else y
    return x


def random_grayscale(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Replace the selected images by their luma, repeated over the 3 channels."""
    return torch.where(_mask(apply, x), grayscale(x).expand_as(x), x)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int, apply: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur (``kernel`` taps, reflect padding) with a per-sample ``sigma``."""
    n, c, hh, ww = x.shape
    sig = sigma.to(device=x.device, dtype=x.dtype).view(-1, 1).expand(n, 1)
    t = torch.arange(kernel, device=x.device, dtype=x.dtype) - (kernel - 1) / 2
    k1 = torch.exp(-0.5 * (t.view(1, -1) / sig) ** 2)
    k1 = (k1 / k1.sum(dim=1, keepdim=True)).view(n, 1, 1, 1, kernel)  # per-sample taps
    pad = kernel // 2
    # separable passes as sums of shifted slices (much faster on CPU than a conv with N*C groups)
    xp = F.pad(x, (pad, pad, 0, 0), mode="reflect")
    y = sum(k1[..., i] * xp[..., i : i + ww] for i in range(kernel))
    yp = F.pad(y, (0, 0, pad, pad), mode="reflect")
    y = sum(k1[..., i] * yp[..., i : i + hh, :] for i in range(kernel))
    return torch.where(_mask(apply, x), y, x)


def sample_crop_boxes(n: int, height: int, width: int, scale: Tuple[float, float],
                      ratio: Tuple[float, float], tries: int = 10) -> torch.Tensor:
    """torchvision's RandomResizedCrop sampler, vectorised: ``[n, 4]`` rows (top, left, h, w) in pixels."""
    area = height * width
    target = area * torch.empty(n, tries).uniform_(scale[0], scale[1])
    log_r = torch.empty(n, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    r = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * r))
    h = torch.round(torch.sqrt(target / r))
    ok = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = torch.where(ok.any(dim=1), ok.float().argmax(dim=1), torch.full((n,), -1))
    # fallback: whole image, clipped to the ratio range (centre crop)
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fw, fh = round(height * max(ratio)), height
    else:
        fw, fh = width, height
    idx = first.clamp(min=0).view(-1, 1)
    w = torch.where(first >= 0, w.gather(1, idx).squeeze(1), torch.full((n,), float(fw)))
    h = torch.where(first >= 0, h.gather(1, idx).squeeze(1), torch.full((n,), float(fh)))
    top = torch.floor(torch.rand(n) * (height - h + 1))
    left = torch.floor(torch.rand(n) * (width - w + 1))
    top = torch.where(first >= 0, top, torch.full((n,), float((height - fh) // 2)))
    left = torch.where(first >= 0, left, torch.full((n,), float((width - fw) // 2)))
    return torch.stack([top, left, h, w], dim=1)


def crop_flip_resize(x: torch.Tensor, boxes: torch.Tensor, flip: Optional[torch.Tensor], size: int) -> torch.Tensor:
    """Resample each image's box (top, left, h, w) to ``size x size``, mirrored where ``flip``.

    One ``grid_sample`` (bilinear, ``align_corners=False``, sampling positions clamped to the box)
    equals cropping then ``F.interpolate(..., mode="bilinear", align_corners=False)``.
    """
    n, _, hh, ww = x.shape
    b = boxes.to(device=x.device, dtype=x.dtype).expand(n, 4)
    top, left, h, w = (v.view(n, 1, 1) for v in b.unbind(dim=1))
    sx = w / ww
    if flip is not None:
        sx = torch.where(flip.to(x.device).expand(n).view(n, 1, 1), -sx, sx)
    u = (torch.arange(size, device=x.device, dtype=x.dtype) * 2 + 1) / size - 1  # output pixel centres
    gx = sx * u.view(1, 1, size) + ((2 * left + w) / ww - 1)  # [n, 1, size]
    gy = (h / hh) * u.view(1, size, 1) + ((2 * top + h) / hh - 1)  # [n, size, 1]
    # clamp to the box's outer pixel centres: the border behaves as if the box had been cut out
    gx = torch.minimum(torch.maximum(gx, (2 * left + 1) / ww - 1), (2 * (left + w) - 1) / ww - 1)
    gy = torch.minimum(torch.maximum(gy, (2 * top + 1) / hh - 1), (2 * (top + h) - 1) / hh - 1)
    grid = torch.stack(torch.broadcast_tensors(gx, gy), dim=-1)  # [n, size, size, 2] as (x, y)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


__all__ = ["GRAY_WEIGHTS", "NEUTRAL", "adjust_brightness", "adjust_contrast", "adjust_hue", "adjust_saturation",
           "color_jitter", "crop_flip_resize", "gaussian_blur", "grayscale", "random_grayscale",
           "sample_crop_boxes"]
