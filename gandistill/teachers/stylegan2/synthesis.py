"""StyleGAN2 synthesis network: w+ [N, num_ws, w_dim] -> image, block by block (b4, b8, ..., b<res>).

Architectures (``architecture=``): ``orig`` (only the last block emits RGB), ``skip`` (every block's
ToRGB output is added to the 2x-upsampled running image; the default) and ``resnet`` (residual blocks
with a 1x1 upsampling skip conv, scaled by sqrt(1/2)).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .layers import DEFAULT_FILTER, Conv2dLayer, FullyConnectedLayer
from .ops import (MODCONV_IMPLS, activation_gain, bias_act, choose_modconv, modulated_conv2d,
                  modulated_conv2d_winograd, setup_filter, upsample2d)

NOISE_MODES = ("random", "const", "none")
ARCHITECTURES = ("orig", "skip", "resnet")


def _impl_name(fused_modconv: Union[bool, str]) -> str:
    """True/False (NVlabs' flag) or an implementation name -> one of ``MODCONV_IMPLS``."""
    if isinstance(fused_modconv, bool):
        return "fused" if fused_modconv else "nonfused"
    if fused_modconv not in MODCONV_IMPLS:
        raise ValueError(f"fused_modconv must be True, False or one of {MODCONV_IMPLS}, got {fused_modconv!r}")
    return fused_modconv


def _check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture '{architecture}'; choose one of {', '.join(ARCHITECTURES)}")


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x upsampling) + per-pixel noise + bias + lrelu (gain sqrt 2) + clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: Optional[float] = None,
        channels_last: bool = False,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.act_gain = activation_gain(activation)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random",
                fused_modconv: Union[bool, str] = True, gain: float = 1.0) -> torch.Tensor:
        """``fused_modconv``: True/"fused" (grouped conv), False/"nonfused", or "winograd" (fast inference path)."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got '{noise_mode}'")
        impl = _impl_name(fused_modconv)
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device,
                                dtype=torch.float32) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        if impl == "winograd":
            return modulated_conv2d_winograd(x, self.weight, styles, noise=noise, up=self.up,
                                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                                             bias=self.bias, act=self.activation, gain=self.act_gain * gain,
                                             clamp=clamp, cache_owner=self)
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=(impl == "fused"))
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def auto_impl(self, x: torch.Tensor, training: bool) -> str:
        """:func:`choose_modconv` for this layer's input ``x``."""
        return choose_modconv(x.device, x.dtype, x.shape[0], self.in_channels, self.out_channels, x.shape[-1],
                              self.weight.shape[-1], training, up=self.up)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, resolution={self.resolution}, "
                f"up={self.up}")


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to RGB without demodulation (style scaled by 1/sqrt(fan_in)), bias, clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: Optional[float] = None, channels_last: bool = False):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: Union[bool, str] = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        impl = _impl_name(fused_modconv)
        if impl == "winograd" and self.weight.shape[-1] == 1 and not torch.is_grad_enabled():
            # fast path: the per-sample 1x1 weights s_n,c W_o,c applied by one batched matmul on the
            # channels-last map (no modulated copy of x); same maths as the non-fused path
            n, c, h, w_ = x.shape
            wn = styles.to(x.dtype)[:, :, None] * self.weight[:, :, 0, 0].to(x.dtype).t()[None]  # [N, C, O]
            y = torch.bmm(x.permute(0, 2, 3, 1).reshape(n, h * w_, c), wn)
            x = y.view(n, h, w_, -1).permute(0, 3, 1, 2)
        else:
            x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=(impl == "fused"))
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (conv0 up) + conv1 + ToRGB; returns ``(x, img)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: Optional[float] = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        **layer_kwargs,
    ):
        super().__init__()
        _check_architecture(architecture)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def forward(
        self,
        x: Optional[torch.Tensor],
        img: Optional[torch.Tensor],
        ws: torch.Tensor,
        force_fp32: bool = True,
        fused_modconv: Union[None, bool, str] = None,
        noise_mode: str = "random",
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        w_iter = iter(ws.unbind(dim=1))
        on_gpu = ws.device.type != "cpu"
        dtype = torch.float16 if (self.use_fp16 and not force_fp32 and on_gpu) else torch.float32
        explicit = None if fused_modconv is None else _impl_name(fused_modconv)
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            if x is None:
                raise ValueError(f"block b{self.resolution} needs the previous block's output")
            x = x.to(dtype)

        def impl(layer: SynthesisLayer, inp: torch.Tensor) -> str:  # None: the automatic rule per layer
            return explicit or layer.auto_impl(inp, self.training)

        used = []
        if self.in_channels == 0:
            used.append(impl(self.conv1, x))
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=used[-1])
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            used.append(impl(self.conv0, x))
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=used[-1])
            used.append(impl(self.conv1, x))
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=used[-1], gain=math.sqrt(0.5))
            x = y + x
        else:
            used.append(impl(self.conv0, x))
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=used[-1])
            used.append(impl(self.conv1, x))
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=used[-1])
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            rgb_impl = explicit or ("winograd" if "winograd" in used else
                                    choose_modconv(x.device, x.dtype, x.shape[0], 0, 0, 0, 1, self.training))
            y = self.torgb(x, next(w_iter), fused_modconv=rgb_impl).to(torch.float32)
            img = img + y if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


class SynthesisNetwork(nn.Module):
    """Blocks b4 ... b<img_resolution> with ``min(channel_base // res, channel_max)`` channels each."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        **block_kwargs,
    ):
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions: List[int] = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            is_last = res == img_resolution
            block = SynthesisBlock(in_channels, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=is_last, use_fp16=(res >= fp16_resolution),
                                   **block_kwargs)
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def feature_channels(self) -> Dict[str, int]:
        """Channels of each block's output ``x``: ``{"b4": C4, "b8": C8, ...}``."""
        return {f"b{res}": getattr(self, f"b{res}").out_channels for res in self.block_resolutions}

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "const",
        force_fp32: bool = True,
        fused_modconv: Union[None, bool, str] = None,
        return_features: bool = False,
        update_emas: bool = False,
    ):
        """``ws`` [N, num_ws, w_dim] -> image [N, C, R, R] (and ``{"b<res>": x}`` when ``return_features``)."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        x = img = None
        feats: Dict[str, torch.Tensor] = {}
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, force_fp32=force_fp32, fused_modconv=fused_modconv,
                           noise_mode=noise_mode)
            if return_features:
                feats[f"b{res}"] = x
        return (img, feats) if return_features else img

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}"
