"""StyleGAN3's operations in plain PyTorch: FIR resampling with 1-D (separable) or 2-D filters, the
filtered leaky ReLU, and the modulated convolution with input gain.

All of them are the plain, reference formulation (no custom CUDA kernels), so they run on any device
and in any float dtype:

* ``upfirdn2d``: insert ``up - 1`` zeros between samples, pad (negative pads crop), convolve with the
  filter (a true convolution: the filter is flipped), keep every ``down``-th sample. A 1-D filter
  [n] is applied along x, then along y; the gain is split evenly between the two passes. The
  upsampling runs as a transposed convolution and the downsampling as a strided one, so no
  inserted zero is multiplied and no dropped sample computed.
* ``filtered_lrelu``: ``x + b`` -> ``up``-fold upsampling with ``fu`` (gain ``up^2``, the given
  padding) -> ``clamp(lrelu(., slope) * gain)`` -> ``down``-fold downsampling with ``fd``. This is
  the paper's alias-free nonlinearity: the pointwise lrelu runs at the higher temporary rate.
* ``modulated_conv2d``: weights scaled by the per-sample styles and (when ``demodulate``) normalised
  to unit norm per output channel; the input gain (1/sqrt of the layer's magnitude EMA) is folded
  into the weights. Weights and styles are pre-normalised by their RMS for numerical range, which
  demodulation makes a no-op up to the 1e-8 epsilon.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from gandistill.teachers.stylegan2.ops import _pads, bias_act


def _fir_1d(x: torch.Tensor, f: torch.Tensor, along: int, down: int = 1) -> torch.Tensor:
    """Depthwise 'valid' convolution of [N, C, H, W] with the flipped 1-D ``f`` along x (-1) or y (-2),
    keeping every ``down``-th output sample along that axis (a strided conv: the dropped ones are never computed)."""
    c = x.shape[1]
    k = f.to(device=x.device, dtype=x.dtype).flip(0)
    k, stride = (k.reshape(1, 1, 1, -1), (1, down)) if along == -1 else (k.reshape(1, 1, -1, 1), (down, 1))
    return F.conv2d(x, k.expand(c, 1, *k.shape[2:]), stride=stride, groups=c)


def _upsample_1d(x: torch.Tensor, f: torch.Tensor, up: int, lo: int, hi: int, along: int) -> torch.Tensor:
    """Zero insertion by ``up``, padding (lo, hi), 'valid' convolution with flipped ``f``, along one axis --
    computed as a transposed convolution, so the inserted zeros are never multiplied.

    With ``t = conv_transpose(x, f, stride=up)`` (``t[s] = sum_i x[i] f[s - i up]``), output sample ``j``
    of the zero-insertion form is ``t[j + len(f) - 1 - lo]`` (zero outside ``t``).
    """
    c, n, taps = x.shape[1], x.shape[along], f.numel()
    k = f.to(device=x.device, dtype=x.dtype)
    if along == -1:
        t = F.conv_transpose2d(x, k.reshape(1, 1, 1, taps).expand(c, 1, 1, taps), stride=(1, up), groups=c)
    else:
        t = F.conv_transpose2d(x, k.reshape(1, 1, taps, 1).expand(c, 1, taps, 1), stride=(up, 1), groups=c)
    length = n * up + lo + hi - taps + 1
    start = taps - 1 - lo
    right = start + length - t.shape[along]
    return F.pad(t, [-start, right, 0, 0] if along == -1 else [0, 0, -start, right])


def upfirdn2d(x: torch.Tensor, f: Optional[torch.Tensor], up: int = 1, down: int = 1,
              padding: Sequence[int] = (0, 0, 0, 0), gain: float = 1.0, fast: bool = True) -> torch.Tensor:
    """Upsample, pad, FIR-filter with ``f`` (1-D separable, 2-D, or None = identity), downsample.

    ``fast=False`` always takes the literal zero-insertion route (the tests compare the two).
    """
    n, c, h, w = x.shape
    px0, px1, py0, py1 = _pads(padding)
    if up > 1 and down == 1 and f is not None and f.ndim == 1 and fast:  # polyphase: same maths, 1/up the work
        g = math.sqrt(gain)
        return _upsample_1d(_upsample_1d(x, f * g, up, px0, px1, along=-1), f * g, up, py0, py1, along=-2)
    if up > 1:  # zero insertion: sample i lands at i * up
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    if f is not None and f.ndim == 1:
        g = math.sqrt(gain)
        return _fir_1d(_fir_1d(x, f * g, along=-1, down=down), f * g, along=-2, down=down)
    if f is not None:
        k = (f * gain).to(device=x.device, dtype=x.dtype).flip([0, 1])
        return F.conv2d(x, k[None, None].expand(c, 1, *k.shape), stride=down, groups=c)
    if gain != 1:
        x = x * gain
    return x[:, :, ::down, ::down] if down > 1 else x


def filtered_lrelu(x: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor],
                   b: Optional[torch.Tensor], up: int = 1, down: int = 1, padding: Sequence[int] = (0, 0, 0, 0),
                   gain: float = math.sqrt(2), slope: float = 0.2, clamp: Optional[float] = None) -> torch.Tensor:
    """Bias, ``up``x upsampling (filter ``fu``), clamped leaky ReLU times ``gain``, ``down``x downsampling (``fd``)."""
    x = bias_act(x, b)
    x = upfirdn2d(x, fu, up=up, padding=padding, gain=up ** 2)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return upfirdn2d(x, fd, down=down)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     padding: int = 0, input_gain: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-sample modulated convolution as one grouped conv: x [N, I, H, W], weight [O, I, k, k], styles [N, I]."""
    n = x.shape[0]
    out_c, in_c, kh, kw = weight.shape
    w = weight.float()
    s = styles.float()
    if demodulate:
        w = w * w.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
    w = w.unsqueeze(0) * s.reshape(n, 1, in_c, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(n, out_c, 1, 1, 1)
    if input_gain is not None:
        w = w * input_gain.float().expand(n, in_c).reshape(n, 1, in_c, 1, 1)
    y = F.conv2d(x.reshape(1, n * in_c, *x.shape[2:]), w.reshape(n * out_c, in_c, kh, kw).to(x.dtype),
                 padding=padding, groups=n)
    return y.reshape(n, out_c, *y.shape[2:])
