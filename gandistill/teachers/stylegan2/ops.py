"""Pure-PyTorch StyleGAN2 operators: bias + activation, FIR resampling, resampling conv, modulated conv.

Everything here is built from ordinary differentiable ``torch`` ops (``conv2d``,
``conv_transpose2d``, ``pad``...), so it runs on any device, needs no compiled extension and supports
double backward (R1 regularisation). The maths follows the StyleGAN2 paper (Karras et al. 2020):

* ``bias_act``: ``y = clamp(act(x + b) * gain, -clamp, clamp)``;
* ``upfirdn2d``: zero-insertion upsampling by ``up``, padding, FIR filtering, keeping every ``down``-th pixel;
* ``conv2d_resample``: a convolution fused with 2x up/down-sampling (transposed stride-2 conv + FIR for
  upsampling, FIR + strided conv for downsampling);
* ``modulated_conv2d``: weight demodulation, ``w'_oik = s_i w_oik / sqrt(sum_ik (s_i w_oik)^2 + 1e-8)``,
  either "fused" (one grouped conv with per-sample weights) or "non-fused" (scale the input, share the
  weight, scale the output).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------------
# bias + activation


def _lrelu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return F.leaky_relu(x, alpha)


#: name -> (function(x, alpha), default alpha, default gain)
ACTIVATIONS: Dict[str, Tuple[Callable[[torch.Tensor, float], torch.Tensor], float, float]] = {
    "linear": (lambda x, a: x, 0.0, 1.0),
    "relu": (lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": (_lrelu, 0.2, math.sqrt(2)),
    "tanh": (lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": (lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": (lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": (lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": (lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": (lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def activation_gain(name: str) -> float:
    """Default gain of an activation (sqrt(2) for relu-like, 1 otherwise)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}'; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name][2]


def bias_act(
    x: torch.Tensor,
    b: Optional[torch.Tensor] = None,
    dim: int = 1,
    act: str = "linear",
    alpha: Optional[float] = None,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
) -> torch.Tensor:
    """``clamp(act(x + b) * gain)``; ``b`` is broadcast along ``dim``; ``gain`` defaults to the activation's."""
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{act}'; known: {', '.join(ACTIVATIONS)}")
    fn, def_alpha, def_gain = ACTIVATIONS[act]
    alpha = def_alpha if alpha is None else float(alpha)
    gain = def_gain if gain is None else float(gain)
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.to(x.dtype).reshape(shape)
    x = fn(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x^2) + eps)`` along ``dim`` (the mapping network's input normalisation)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# --------------------------------------------------------------------------------------------------
# FIR filters and up/down-sampling

Padding = Union[int, Sequence[int]]


def setup_filter(f: Sequence[float] = (1, 3, 3, 1), normalize: bool = True) -> torch.Tensor:
    """A 2-D FIR filter from a 1-D tap list: the outer product ``f f^T``, normalised to sum 1."""
    t = torch.as_tensor(f, dtype=torch.float32)
    if t.ndim == 0:
        t = t.reshape(1)
    if t.ndim == 1:
        t = torch.outer(t, t)
    if t.ndim != 2:
        raise ValueError(f"FIR filter must be 1-D or 2-D, got shape {tuple(t.shape)}")
    if normalize:
        t = t / t.sum()
    return t


def _pads(padding: Padding) -> Tuple[int, int, int, int]:
    """(x0, x1, y0, y1) from an int, a pair (x, y) or a quadruple."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    p = [int(v) for v in padding]
    if len(p) == 2:
        return p[0], p[0], p[1], p[1]
    if len(p) == 4:
        return p[0], p[1], p[2], p[3]
    raise ValueError(f"padding must be an int, a pair or four ints, got {padding!r}")


def upfirdn2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample (zero insertion) by ``up``, pad by ``padding``, FIR-filter with ``f``, keep every ``down``-th.

    ``f`` is a 2-D filter [fh, fw] (or None for the identity). The filter is applied as a true
    convolution (flipped) unless ``flip_filter``; it is scaled by ``gain``. Negative padding crops.
    """
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    px0, px1, py0, py1 = _pads(padding)
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    k = f.to(device=x.device, dtype=x.dtype) * gain
    if not flip_filter:
        k = k.flip([0, 1])
    if k.numel() > 1 or gain != 1:
        k = k[None, None].expand(c, 1, *k.shape)
        x = F.conv2d(x, k, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def _filter_size(f: Optional[torch.Tensor]) -> Tuple[int, int]:
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[-2])


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, padding: Padding = 0,
               gain: float = 1.0) -> torch.Tensor:
    """2x (or ``up``x) upsampling with FIR filter ``f``; output size ``H * up`` (gain ``up^2`` keeps the mean)."""
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _pads(padding)
    p = [px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=p, gain=gain * up * up)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2, padding: Padding = 0,
                 gain: float = 1.0) -> torch.Tensor:
    """FIR low-pass then keep every ``down``-th pixel; output size ``H / down``."""
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _pads(padding)
    p = [px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2, py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2]
    return upfirdn2d(x, f, down=down, padding=p, gain=gain)


# --------------------------------------------------------------------------------------------------
# convolution with resampling


def _conv(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: int = 1,
    padding: Union[int, List[int]] = 0,
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,
) -> torch.Tensor:
    """``conv2d`` (a correlation) or ``conv_transpose2d``; ``flip_weight=False`` makes it a true convolution."""
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Convolve ``x`` with ``w`` [O, I/groups, kh, kw] combined with FIR up/down-sampling by ``f``.

    Equivalent to ``upfirdn2d(up) -> conv2d(padding) -> upfirdn2d(down)`` but cheaper: upsampling
    uses a stride-``up`` transposed convolution followed by the FIR, downsampling the FIR followed by
    a strided convolution; 1x1 kernels resample on the smaller side of the conv.
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d_resample expects 4-D x and w, got {tuple(x.shape)} and {tuple(w.shape)}")
    out_ch, in_per_group, kh, kw = w.shape
    fw, fh = _filter_size(f)
    px0 = px1 = py0 = py1 = int(padding)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2
    pads = [px0, px1, py0, py1]

    if kw == 1 and kh == 1 and down > 1 and up == 1:  # 1x1 downsampling: filter first, conv on fewer pixels
        x = upfirdn2d(x, f, down=down, padding=pads, flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:  # 1x1 upsampling: conv first, then upsample
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=pads, gain=up * up, flip_filter=flip_filter)
    if down > 1 and up == 1:  # FIR + strided conv
        x = upfirdn2d(x, f, padding=pads, flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:  # transposed strided conv + FIR
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_ch // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up * up, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:  # plain conv
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=pads, flip_filter=flip_filter)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: Optional[torch.Tensor] = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """StyleGAN2 modulated convolution of ``x`` [N, I, H, W] with ``weight`` [O, I, k, k] and styles [N, I].

    ``fused_modconv=True``: build per-sample weights ``s_i w_oik`` (demodulated) and run one grouped
    conv (groups = N). ``False``: ``conv(x * s, w) * d`` with the shared weight, where
    ``d_o = (sum_ik (s_i w_oik)^2 + 1e-8)^-1/2`` -- the same maths, usually faster for large batches.
    ``noise`` (broadcastable to the output) is added after demodulation.
    """
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if styles.shape != (n, in_ch):
        raise ValueError(f"styles must be [{n}, {in_ch}], got {tuple(styles.shape)}")
    if x.dtype == torch.float16 and demodulate:  # avoid fp16 overflow: pre-normalise (cancels in demodulation)
        weight = weight * (1 / math.sqrt(in_ch * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    dcoefs = None
    if demodulate:  # sum_ik (s_i w_oik)^2 = sum_i s_i^2 sum_k w_oik^2: a [N,I] x [I,O] matmul, no [N,O,I,k,k] tensor
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight)
        if demodulate and noise is not None:
            x = torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(n, -1, 1, 1))
        elif demodulate:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        elif noise is not None:
            x = x + noise.to(x.dtype)
        return x

    w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_ch, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=n,
                        flip_weight=flip_weight)
    x = x.reshape(n, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x
