"""StyleGAN3's synthesis layers: the Fourier-feature input and the alias-free modulated layer.

Parameter and buffer names follow the official state_dict, so snapshot weights load by name.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from gandistill.teachers.stylegan2.layers import FullyConnectedLayer

from .filters import lowpass_filter
from .ops import filtered_lrelu, modulated_conv2d

NOISE_MODES = ("random", "const", "none")


def _pair(v) -> Tuple[int, int]:
    """An int or a [width, height] pair -> (width, height) ints."""
    if isinstance(v, (int, float)):
        return int(v), int(v)
    w, h = list(v)
    return int(w), int(h)


def _compute_dtype(use_fp16: bool, force_fp32: bool, x: torch.Tensor) -> torch.dtype:
    """fp16 only for fp16 layers on a CUDA device when not forced to fp32; fp32 everywhere else (CPU)."""
    return torch.float16 if (use_fp16 and not force_fp32 and x.device.type == "cuda") else torch.float32


class SynthesisInput(nn.Module):
    """Fourier features: ``sin(2 pi (<grid, f_c> + phi_c))`` for ``channels`` random frequencies in a disc of
    radius ``bandwidth``, rotated and translated per sample by ``affine(w) = (r_c, r_s, t_x, t_y)``,
    sampled on a ``size`` grid at ``sampling_rate`` samples per unit, then mixed by ``weight / sqrt(C)``."""

    def __init__(self, w_dim: int, channels: int, size, sampling_rate: float, bandwidth: float):
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        self.size = _pair(size)
        self.sampling_rate = float(sampling_rate)
        self.bandwidth = float(bandwidth)
        freqs = torch.randn([channels, 2])  # uniform-ish in a disc of radius `bandwidth`
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():  # starts as the identity transform: rotation (1, 0), no translation
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand([channels]) - 0.5)

    def _grid(self, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pixel-centre coordinates (x along width, y along height), in units of 1/sampling_rate."""
        w, h = self.size
        gx = (torch.arange(w, dtype=torch.float32, device=device) + 0.5 - w / 2) / self.sampling_rate
        gy = (torch.arange(h, dtype=torch.float32, device=device) + 0.5 - h / 2) / self.sampling_rate
        return gx, gy

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        n = w.shape[0]
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        rot = torch.eye(3, device=w.device).repeat(n, 1, 1)  # inverse rotation of the image
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        shift = torch.eye(3, device=w.device).repeat(n, 1, 1)  # inverse translation
        shift[:, 0, 2], shift[:, 1, 2] = -t[:, 2], -t[:, 3]
        m = rot @ shift @ self.transform.unsqueeze(0)
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ m[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = self.freqs.unsqueeze(0) @ m[:, :2, :2]  # [N, C, 2]
        # frequencies a user transform pushed out of band fade out linearly up to Nyquist
        amp = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        gx, gy = self._grid(w.device)
        arg = (gx[None, None, :, None] * freqs[:, None, None, :, 0]
               + gy[None, :, None, None] * freqs[:, None, None, :, 1])  # [N, H, W, C]
        x = torch.sin((arg + phases[:, None, None, :]) * (2 * math.pi)) * amp[:, None, None, :]
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, size={list(self.size)}, sampling_rate={self.sampling_rate:g}, "
                f"bandwidth={self.bandwidth:g}")


class SynthesisLayer(nn.Module):
    """Modulated conv (input gain 1/sqrt(magnitude EMA)) + bias + filtered leaky ReLU + clamp.

    The lrelu runs at ``tmp_sampling_rate`` (``lrelu_upsampling`` x the higher of the in/out rates):
    upsample by ``up_factor`` with ``up_filter``, lrelu, downsample by ``down_factor`` with
    ``down_filter``. The ToRGB layer (``is_torgb``) is a 1x1 modulated conv without demodulation,
    bias and clamp only (no filters, slope 1, gain 1).
    """

    def __init__(self, w_dim: int, is_torgb: bool, is_critically_sampled: bool, use_fp16: bool,
                 in_channels: int, out_channels: int, in_size, out_size, in_sampling_rate: int,
                 out_sampling_rate: int, in_cutoff: float, out_cutoff: float, in_half_width: float,
                 out_half_width: float, conv_kernel: int = 3, filter_size: int = 6, lrelu_upsampling: int = 2,
                 use_radial_filters: bool = False, conv_clamp: Optional[float] = 256,
                 magnitude_ema_beta: float = 0.999):
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb = bool(is_torgb)
        self.is_critically_sampled = bool(is_critically_sampled)
        self.use_fp16 = bool(use_fp16)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.in_size, self.out_size = _pair(in_size), _pair(out_size)
        self.in_sampling_rate, self.out_sampling_rate = int(in_sampling_rate), int(out_sampling_rate)
        rate = max(self.in_sampling_rate, self.out_sampling_rate)
        self.tmp_sampling_rate = rate * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff, self.out_cutoff = float(in_cutoff), float(out_cutoff)
        self.in_half_width, self.out_half_width = float(in_half_width), float(out_half_width)
        self.conv_kernel = 1 if is_torgb else int(conv_kernel)
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta
        self.affine = FullyConnectedLayer(w_dim, self.in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([self.out_channels, self.in_channels, self.conv_kernel,
                                                self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([self.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))
        self.up_factor = int(round(self.tmp_sampling_rate / self.in_sampling_rate))
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.down_factor = int(round(self.tmp_sampling_rate / self.out_sampling_rate))
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = bool(use_radial_filters and not is_critically_sampled)
        self.register_buffer("up_filter", lowpass_filter(self.up_taps, self.in_cutoff, self.in_half_width * 2,
                                                         self.tmp_sampling_rate))
        self.register_buffer("down_filter", lowpass_filter(self.down_taps, self.out_cutoff, self.out_half_width * 2,
                                                           self.tmp_sampling_rate, radial=self.down_radial))
        self.padding = self._padding()

    def _padding(self) -> list:
        """[x_lo, x_hi, y_lo, y_hi] so that the output has ``out_size`` samples, centred (symmetric sample
        positions: the low side gets the extra half of ``up_factor``)."""
        pads = []
        for axis in (0, 1):
            total = (self.out_size[axis] - 1) * self.down_factor + 1  # wanted size before downsampling
            total -= (self.in_size[axis] + self.conv_kernel - 1) * self.up_factor  # size after upsampling
            total += self.up_taps + self.down_taps - 2  # what the two filters take away
            lo = (total + self.up_factor) // 2
            pads += [lo, total - lo]
        return pads

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", force_fp32: bool = False,
                update_emas: bool = False) -> torch.Tensor:
        """``noise_mode`` is accepted for the StyleGAN2 call signature; StyleGAN3 layers have no noise."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got '{noise_mode}'")
        expect = (self.in_channels, self.in_size[1], self.in_size[0])
        if x.ndim != 4 or tuple(x.shape[1:]) != expect:
            raise ValueError(f"layer expects [N, {', '.join(map(str, expect))}], got {tuple(x.shape)}")
        if update_emas:
            with torch.no_grad():
                cur = x.detach().float().square().mean()
                self.magnitude_ema.copy_(cur.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel ** 2))
        dtype = _compute_dtype(self.use_fp16, force_fp32, x)
        x = modulated_conv2d(x.to(dtype), self.weight, styles, demodulate=not self.is_torgb,
                             padding=self.conv_kernel - 1, input_gain=self.magnitude_ema.rsqrt())
        gain, slope = (1.0, 1.0) if self.is_torgb else (math.sqrt(2), 0.2)
        return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias.to(x.dtype), up=self.up_factor,
                              down=self.down_factor, padding=self.padding, gain=gain, slope=slope,
                              clamp=self.conv_clamp)

    @property
    def margin(self) -> int:
        """Pixels of margin on each side of the output beyond the ``out_sampling_rate`` image area."""
        return int(round((self.out_size[0] - self.out_sampling_rate) / 2))

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}x{list(self.in_size)}@{self.in_sampling_rate}, "
                f"out={self.out_channels}x{list(self.out_size)}@{self.out_sampling_rate}, up={self.up_factor}, "
                f"down={self.down_factor}, kernel={self.conv_kernel}, torgb={self.is_torgb}, "
                f"radial={self.down_radial}")


def layer_settings(layer: SynthesisLayer) -> dict:
    """The per-layer values a snapshot stores, as plain Python values (for comparing with a file)."""
    return dict(is_torgb=layer.is_torgb, is_critically_sampled=layer.is_critically_sampled,
                in_channels=layer.in_channels, out_channels=layer.out_channels, in_size=list(layer.in_size),
                out_size=list(layer.out_size), in_sampling_rate=layer.in_sampling_rate,
                out_sampling_rate=layer.out_sampling_rate, tmp_sampling_rate=layer.tmp_sampling_rate,
                in_cutoff=layer.in_cutoff, out_cutoff=layer.out_cutoff, in_half_width=layer.in_half_width,
                out_half_width=layer.out_half_width, conv_kernel=layer.conv_kernel, up_factor=layer.up_factor,
                up_taps=layer.up_taps, down_factor=layer.down_factor, down_taps=layer.down_taps,
                down_radial=layer.down_radial, padding=list(layer.padding))


__all__: Sequence[str] = ("SynthesisInput", "SynthesisLayer", "layer_settings")
