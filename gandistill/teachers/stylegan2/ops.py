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

import functools
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


# --------------------------------------------------------------------------------------------------
# fast inference path: Winograd F(4x4, 3x3) modulated convolution, channels-last, fused epilogue
#
# The maths is NVlabs' non-fused modulated convolution, ``conv(x * s, w) * d + noise`` then bias,
# activation, gain and clamp; only the evaluation order differs:
#
# * a 3x3 "same" correlation is computed with Winograd's minimal filtering F(4x4, 3x3)
#   (Lavin & Gray 2016): for every 6x6 input tile d and kernel g, ``Y = A^T [(G g G^T) . (B^T d B)] A``
#   gives the 4x4 output tile with 36 instead of 144 multiplications; the 36 element-wise products
#   summed over input channels are 36 ordinary matrix products [tiles, C_in] x [C_in, C_out];
# * the 2x upsampling layer (stride-2 transposed 3x3 conv followed by the [1,3,3,1] FIR filter) is,
#   per output phase (a, b) in {0,1}^2, a 3x3 correlation of the low-resolution input: the four
#   phase kernels are linear in w (``P`` below, found by probing the reference op with unit kernels),
#   stacked as 4 * C_out output channels of one Winograd convolution and interleaved (pixel shuffle);
# * the work runs in chunks of ~``chunk_tiles`` tiles so every intermediate stays in cache, and the
#   demodulation, noise, bias, activation and clamp are applied in place on each chunk.
#
# fp32 error: about 3e-6 of the output's range per layer (the points below; (0, +-1, +-2) give ~8e-6).

WINOGRAD_TILE = 4
#: tiles per chunk (whole images): the 36 products of a chunk are one batched matmul [36, tiles, C_in] x [36, C_in, C_out]
WINOGRAD_CHUNK_TILES = 128
WINOGRAD_POINTS = (0.0, -1.0, 1.0, 0.5, -2.0)
MODCONV_IMPLS = ("fused", "nonfused", "winograd")


@functools.lru_cache(maxsize=None)
def winograd_matrices(m: int = WINOGRAD_TILE, r: int = 3,
                      points: Tuple[float, ...] = WINOGRAD_POINTS) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(A^T [m, n], G [n, r], B^T [n, n])`` of F(m, r), n = m + r - 1, in float64 (Toom-Cook).

    Rows of ``A^T`` evaluate the output polynomial at the ``n - 1`` finite ``points`` plus infinity;
    ``G`` holds the Lagrange-scaled kernel evaluations; ``B^T`` is solved so that
    ``A^T [(G g) * (B^T d)] = (sum_k d[i + k] g[k])_i`` for every d, g (checked to 1e-9).
    """
    n = m + r - 1
    a = torch.tensor(points, dtype=torch.float64)
    if a.numel() != n - 1 or len(set(points)) != n - 1:
        raise ValueError(f"F({m},{r}) needs {n - 1} distinct finite points, got {points}")
    at = torch.zeros(m, n, dtype=torch.float64)
    at[:, : n - 1] = a[None, :] ** torch.arange(m, dtype=torch.float64)[:, None]
    at[m - 1, n - 1] = 1.0
    g = torch.zeros(n, r, dtype=torch.float64)
    for j in range(n - 1):
        scale = torch.prod(torch.stack([a[j] - a[k] for k in range(n - 1) if k != j]))
        g[j] = a[j] ** torch.arange(r, dtype=torch.float64) / scale
    g[n - 1, r - 1] = 1.0
    # linear system for B^T: sum_p AT[i,p] G[p,k] BT[p,l] = [l == i + k]
    rows, rhs = [], []
    for i in range(m):
        for k in range(r):
            for l in range(n):
                coef = torch.zeros(n, n, dtype=torch.float64)
                coef[:, l] = at[i] * g[:, k]
                rows.append(coef.reshape(-1))
                rhs.append(1.0 if l == i + k else 0.0)
    sys_a, sys_b = torch.stack(rows), torch.tensor(rhs, dtype=torch.float64)
    bt = torch.linalg.lstsq(sys_a, sys_b[:, None]).solution[:, 0]
    if (sys_a @ bt - sys_b).abs().max() > 1e-9:
        raise ValueError(f"no exact Winograd transform for F({m},{r}) at points {points}")
    return at, g, bt.reshape(n, n)


@functools.lru_cache(maxsize=None)
def _transforms(device: torch.device, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B^T (x) B^T [36, 36], A^T (x) A^T [16, 36], G (x) G [36, 9])`` on ``device``."""
    at, g, bt = winograd_matrices()
    return (torch.kron(bt, bt).to(device, dtype), torch.kron(at, at).to(device, dtype),
            torch.kron(g, g).to(device, dtype))


@functools.lru_cache(maxsize=16)
def _up_phase_kernels(f_key: Tuple[float, ...], f_shape: Tuple[int, int], flip_weight: bool) -> torch.Tensor:
    """``P [4, 9, 9]``: the phase-(a,b) 3x3 kernel (taps dy,dx) of ``conv2d_resample(up=2, padding=1)``
    as a linear map of the 3x3 weight (taps k), found by probing the reference op in float64."""
    f = torch.tensor(f_key, dtype=torch.float64).reshape(f_shape)
    size, i0 = 7, 3  # low-res probe: a unit impulse at (3, 3) of a 7x7 image
    x = torch.zeros(9, 1, size, size, dtype=torch.float64)
    x[:, :, i0, i0] = 1.0
    w = torch.eye(9, dtype=torch.float64).reshape(9, 1, 3, 3)
    y = torch.stack([conv2d_resample(x[k:k + 1], w[k:k + 1], f=f, up=2, padding=1, flip_weight=flip_weight)[0, 0]
                     for k in range(9)])  # [9, 14, 14]
    # output row 2q + a reads input rows q-1..q+1 (tap dy): q = i0 + 1 - dy
    p = torch.zeros(2, 2, 3, 3, 9, dtype=torch.float64)
    seen = torch.zeros_like(y, dtype=torch.bool)
    for a in range(2):
        for b in range(2):
            for dy in range(3):
                for dx in range(3):
                    r, c = 2 * (i0 + 1 - dy) + a, 2 * (i0 + 1 - dx) + b
                    p[a, b, dy, dx] = y[:, r, c]
                    seen[:, r, c] = True
    if y[~seen].abs().max() > 0:
        raise ValueError("the upsampling filter reaches beyond a 3x3 low-resolution neighbourhood; "
                         "use the reference path (modconv='nonfused')")
    return p.reshape(4, 9, 9)


def winograd_weight(weight: torch.Tensor, up: int = 1, resample_filter: Optional[torch.Tensor] = None,
                    flip_weight: bool = True) -> torch.Tensor:
    """Transformed weights ``U [36, C_in, up^2 * C_out]`` (a transposed view) for :func:`winograd_conv2d`.

    ``up=1``: ``U = G w G^T`` of the 3x3 correlation kernel (flipped first when ``flip_weight`` is
    False, i.e. a true convolution). ``up=2``: the four phase kernels of the upsampling conv, output
    channel order (phase a, phase b, o).
    """
    out_ch, in_ch, kh, kw = weight.shape
    if (kh, kw) != (3, 3):
        raise ValueError(f"the Winograd path is for 3x3 kernels, got {kh}x{kw}")
    _, _, g2 = _transforms(weight.device, weight.dtype)
    w9 = weight.reshape(out_ch * in_ch, 9)
    if up == 1:
        if not flip_weight:
            w9 = weight.flip([2, 3]).reshape(out_ch * in_ch, 9)
        ut = torch.mm(g2, w9.t())  # [36, O*I]
        return ut.view(36, out_ch, in_ch).transpose(1, 2)
    if up != 2:
        raise ValueError(f"the Winograd path upsamples by 2 only, got up={up}")
    if resample_filter is None:
        raise ValueError("upsampling needs the resample filter")
    f = resample_filter.detach().double().cpu()
    p = _up_phase_kernels(tuple(f.reshape(-1).tolist()), tuple(f.shape), bool(flip_weight))
    q = torch.einsum("pt,atk->pak", g2.double().cpu(), p).to(weight.device, weight.dtype)  # [36, 4, 9]
    ut = torch.mm(q.reshape(36 * 4, 9), w9.t())  # [36*4, O*I]
    return ut.view(36, 4 * out_ch, in_ch).transpose(1, 2)


def cached_winograd_weight(owner: object, weight: torch.Tensor, up: int = 1,
                           resample_filter: Optional[torch.Tensor] = None, flip_weight: bool = True) -> torch.Tensor:
    """:func:`winograd_weight`, contiguous, memoised on ``owner`` until ``weight`` changes.

    The key is the weight's storage, version counter (bumped by in-place updates such as
    ``load_state_dict``), device and dtype, so a frozen teacher transforms its weights once.
    """
    key = (weight.data_ptr(), weight._version, weight.device, weight.dtype, weight.shape, up, flip_weight)
    hit = owner.__dict__.get("_winograd_cache")
    if hit is not None and hit[0] == key:
        return hit[1]
    with torch.no_grad():
        u = winograd_weight(weight.detach(), up=up, resample_filter=resample_filter, flip_weight=flip_weight)
        u = u.contiguous()
    owner.__dict__["_winograd_cache"] = (key, u)
    return u


def winograd_conv2d(
    x: torch.Tensor,
    u: torch.Tensor,
    up: int = 1,
    in_scale: Optional[torch.Tensor] = None,
    epilogue: Optional[Callable[[torch.Tensor, int, int], None]] = None,
    chunk_tiles: Optional[int] = None,
) -> torch.Tensor:
    """3x3 "same" correlation of ``x`` [N, C, H, W] (H, W multiples of 4) with transformed weights ``u``.

    Returns ``[N, C_out, H*up, W*up]`` in channels-last memory format. ``in_scale`` [N, C] multiplies
    the input per sample and channel (the modulation); ``epilogue(y, start, end)`` is called on each
    finished chunk ``y = out[start:end]`` (an NHWC view, contiguous) to apply element-wise ops in place.
    """
    n_, c, h, w = x.shape
    m, t = WINOGRAD_TILE, WINOGRAD_TILE + 2
    if h % m or w % m:
        raise ValueError(f"the Winograd path needs H and W divisible by {m}, got {h}x{w}")
    if u.shape[0] != t * t or u.shape[1] != c or u.shape[2] % (up * up):
        raise ValueError(f"transformed weights {tuple(u.shape)} do not fit input channels {c} and up={up}")
    out_ch = u.shape[2] // (up * up)
    bt2, at2, _ = _transforms(x.device, x.dtype)
    th, tw = h // m, w // m
    xh = x.permute(0, 2, 3, 1)  # NHWC view (free for a channels-last x)
    out = x.new_empty(n_, h * up, w * up, out_ch)
    per = max(1, (chunk_tiles or WINOGRAD_CHUNK_TILES) // (th * tw))
    for s in range(0, n_, per):
        e = min(n_, s + per)
        nb = e - s
        tiles = nb * th * tw
        xp = F.pad(xh[s:e], (0, 0, 1, 1, 1, 1))
        d = xp.unfold(1, t, m).unfold(2, t, m).permute(4, 5, 0, 1, 2, 3).reshape(t * t, tiles * c)
        if in_scale is not None:
            d.view(t * t, nb, th * tw, c).mul_(in_scale[s:e].to(d.dtype).view(1, nb, 1, c))
        v = torch.mm(bt2, d).view(t * t, tiles, c)
        prod = torch.bmm(v, u)  # [36, tiles, up^2 * C_out]
        y = torch.mm(at2, prod.view(t * t, -1)).view(m, m, nb, th, tw, up, up, out_ch)
        out[s:e].view(nb, th, m, up, tw, m, up, out_ch).copy_(y.permute(2, 3, 0, 5, 4, 1, 6, 7))
        if epilogue is not None:
            epilogue(out[s:e], s, e)
    return out.permute(0, 3, 1, 2)


def _inplace_act(y: torch.Tensor, act: str, alpha: float) -> None:
    if act == "linear":
        return
    if act == "lrelu":
        F.leaky_relu_(y, alpha)
    elif act == "relu":
        y.relu_()
    else:
        y.copy_(ACTIVATIONS[act][0](y, alpha))


def modulated_conv2d_winograd(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: Optional[torch.Tensor] = None,
    up: int = 1,
    resample_filter: Optional[torch.Tensor] = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    bias: Optional[torch.Tensor] = None,
    act: str = "linear",
    alpha: Optional[float] = None,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
    chunk_tiles: Optional[int] = None,
    cache_owner: Optional[object] = None,
) -> torch.Tensor:
    """``bias_act(modulated_conv2d(x, weight, styles, noise, up, padding=1, ...), bias, act, gain, clamp)``
    through :func:`winograd_conv2d` (3x3 kernels, inference only: no autograd through the in-place epilogue).

    Output: ``[N, C_out, H*up, W*up]``, channels-last memory format. ``cache_owner`` (the layer) keeps
    the transformed weights between calls (see :func:`cached_winograd_weight`).
    """
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or styles.requires_grad):
        raise RuntimeError("modconv='winograd' is an inference path; use 'nonfused' when gradients are needed")
    n = x.shape[0]
    out_ch, in_ch = weight.shape[:2]
    if styles.shape != (n, in_ch):
        raise ValueError(f"styles must be [{n}, {in_ch}], got {tuple(styles.shape)}")
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{act}'; known: {', '.join(ACTIVATIONS)}")
    fn_alpha = ACTIVATIONS[act][1] if alpha is None else float(alpha)
    gain = ACTIVATIONS[act][2] if gain is None else float(gain)
    dcoefs = None
    if demodulate:
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]
    nz = None
    if noise is not None:  # [R, R] or [N|1, 1, R, R] -> NHWC broadcast [N|1, R, R, 1]
        nz = noise.to(x.dtype)
        nz = nz.reshape(1, 1, *nz.shape) if nz.ndim == 2 else nz
        nz = nz.permute(0, 2, 3, 1)
    b = bias.to(x.dtype) if bias is not None else None

    # linear/relu/lrelu are positively homogeneous, act(g z) = g act(z) for g > 0: the gain is folded into
    # the demodulation, noise and bias, saving a pass (the reference applies it after the activation)
    pre = gain if (act in ("linear", "relu", "lrelu") and gain > 0) else 1.0
    if pre != 1.0:
        dcoefs = dcoefs * pre if dcoefs is not None else torch.full((n, out_ch), pre, dtype=x.dtype, device=x.device)
        nz = nz * pre if nz is not None else None
        b = b * pre if b is not None else None

    def epilogue(y: torch.Tensor, s: int, e: int) -> None:
        d = dcoefs[s:e].to(y.dtype).view(e - s, 1, 1, -1) if dcoefs is not None else None
        if d is not None and nz is not None:
            torch.addcmul(nz if nz.shape[0] == 1 else nz[s:e], y, d, out=y)  # y = noise + y * d, one pass
        elif d is not None:
            y.mul_(d)
        elif nz is not None:
            y.add_(nz if nz.shape[0] == 1 else nz[s:e])
        if b is not None:
            y.add_(b)
        _inplace_act(y, act, fn_alpha)
        if gain != 1 and pre == 1.0:
            y.mul_(gain)
        if clamp is not None and clamp >= 0:
            y.clamp_(-clamp, clamp)

    if cache_owner is not None and weight.dtype == x.dtype:
        u = cached_winograd_weight(cache_owner, weight, up=up, resample_filter=resample_filter, flip_weight=flip_weight)
    else:
        u = winograd_weight(weight.to(x.dtype), up=up, resample_filter=resample_filter, flip_weight=flip_weight)
    return winograd_conv2d(x, u, up=up, in_scale=styles, epilogue=epilogue, chunk_tiles=chunk_tiles)


#: auto rule thresholds (CPU, fp32, no grad): Winograd pays off from this many input and output channels
#: on maps of at least this size; measured in benchmarks/bench_sg2_forward.py
WINOGRAD_MIN_CHANNELS = 32
WINOGRAD_MIN_RES = 4


def choose_modconv(device: torch.device, dtype: torch.dtype, batch: int, in_channels: int, out_channels: int,
                   resolution: int, kernel: int, training: bool, up: int = 1) -> str:
    """The modulated-conv implementation the networks use when none is requested.

    * CPU, fp32, inference (no autograd), 3x3 kernels, maps divisible by 4 and >= ``WINOGRAD_MIN_CHANNELS``
      channels: ``"winograd"`` (several times faster than the grouped conv; same maths to ~1e-5);
    * otherwise NVlabs' rule: ``"fused"`` in eval at fp32 or batch 1, ``"nonfused"`` in training or at fp16.
    """
    dev = torch.device(device)
    if (dev.type == "cpu" and dtype == torch.float32 and not torch.is_grad_enabled() and kernel == 3
            and resolution % WINOGRAD_TILE == 0 and resolution >= WINOGRAD_MIN_RES
            and min(in_channels, out_channels) >= WINOGRAD_MIN_CHANNELS):
        return "winograd"
    return "fused" if (not training) and (dtype == torch.float32 or batch == 1) else "nonfused"
