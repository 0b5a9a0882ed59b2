"""StyleGAN3 generator (stylegan3-t and stylegan3-r) in plain PyTorch.

``SG3Generator`` takes the flat constructor kwargs a StyleGAN3 snapshot stores in ``_init_kwargs``
(``z_dim``, ``w_dim``, ``mapping_kwargs``, ``channel_base``, ... ``conv_kernel=1`` and
``use_radial_filters=True`` for R) and has the official ``state_dict`` keys and shapes. Everything the
file does not state comes from this module's defaults, which are StyleGAN3's: 14 layers, the last 2
critically sampled, a 10-pixel margin, output scale 0.25, filter size 6, lrelu upsampling 2,
conv clamp 256, 4 fp16 resolutions; mapping: 2 layers, lr multiplier 0.01, w_avg_beta 0.998.

The layer schedule (``layer_schedule``): the cutoff frequency rises geometrically from
``first_cutoff`` to ``img_resolution / 2`` over the first ``num_layers - num_critical`` layers and
stays there; so does the stop band (``first_stopband`` to ``cutoff * last_stopband_rel``); each
layer's sampling rate is the smallest power of two >= twice its stop band (at most the image
size); channels are ``round(min(channel_base / 2 / cutoff, channel_max))``.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import torch
from torch import nn

from gandistill.teachers.stylegan2.layers import MappingNetwork

from .layers import SynthesisInput, SynthesisLayer

__all__ = ["SG3Generator", "SynthesisNetwork", "SynthesisInput", "SynthesisLayer", "layer_schedule",
           "SG3_MAPPING_DEFAULTS"]

SG3_MAPPING_DEFAULTS = dict(num_layers=2, lr_multiplier=0.01, w_avg_beta=0.998)


def layer_schedule(img_resolution: int, img_channels: int, channel_base: int = 32768, channel_max: int = 512,
                   num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                   first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3,
                   margin_size: int = 10) -> List[dict]:
    """Per-layer cutoff, stop band, sampling rate, half width, size and channels (index 0..num_layers)."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    rows = []
    for idx in range(num_layers + 1):
        e = min(idx / (num_layers - num_critical), 1.0)
        cutoff = first_cutoff * (last_cutoff / first_cutoff) ** e
        stopband = first_stopband * (last_stopband / first_stopband) ** e
        rate = 2.0 ** math.ceil(math.log2(min(stopband * 2, img_resolution)))
        rows.append(dict(cutoff=cutoff, stopband=stopband, sampling_rate=rate,
                         half_width=max(stopband, rate / 2) - cutoff,
                         size=img_resolution if idx >= num_layers - 1 else rate + margin_size * 2,
                         channels=img_channels if idx == num_layers else
                         int(round(min((channel_base / 2) / cutoff, channel_max)))))
    return rows


class SynthesisNetwork(nn.Module):
    """w+ [N, num_layers + 2, w_dim] -> image: ``input`` (w_0), then layers ``L{idx}_{size}_{channels}`` (w_1..)."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                 first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10,
                 output_scale: float = 0.25, num_fp16_res: int = 4, **layer_kwargs):
        super().__init__()
        if num_layers <= num_critical or num_critical < 0:
            raise ValueError(f"need num_layers > num_critical >= 0, got {num_layers}, {num_critical}")
        self.w_dim = w_dim
        self.num_ws = num_layers + 2
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_layers = num_layers
        self.num_critical = num_critical
        self.margin_size = margin_size
        self.output_scale = output_scale
        self.num_fp16_res = num_fp16_res
        rows = layer_schedule(img_resolution, img_channels, channel_base, channel_max, num_layers, num_critical,
                              first_cutoff, first_stopband, last_stopband_rel, margin_size)
        self.input = SynthesisInput(w_dim=w_dim, channels=rows[0]["channels"], size=int(rows[0]["size"]),
                                    sampling_rate=rows[0]["sampling_rate"], bandwidth=rows[0]["cutoff"])
        self.layer_names: List[str] = []
        for idx, row in enumerate(rows):
            prev = rows[max(idx - 1, 0)]
            layer = SynthesisLayer(
                w_dim=w_dim, is_torgb=(idx == num_layers), is_critically_sampled=(idx >= num_layers - num_critical),
                use_fp16=(row["sampling_rate"] * 2 ** num_fp16_res > img_resolution),
                in_channels=prev["channels"], out_channels=row["channels"], in_size=int(prev["size"]),
                out_size=int(row["size"]), in_sampling_rate=int(prev["sampling_rate"]),
                out_sampling_rate=int(row["sampling_rate"]), in_cutoff=prev["cutoff"], out_cutoff=row["cutoff"],
                in_half_width=prev["half_width"], out_half_width=row["half_width"], **layer_kwargs)
            name = f"L{idx}_{layer.out_size[0]}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    def feature_channels(self) -> Dict[str, int]:
        """Channels of each layer's output: ``{"L0_36_512": 512, ..., "L14_<res>_3": 3}``."""
        return {name: getattr(self, name).out_channels for name in self.layer_names}

    def crop_margin(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Layer ``name``'s output without its margin: the central ``out_sampling_rate`` square (the image area)."""
        m = getattr(self, name).margin
        return x[:, :, m: x.shape[2] - m, m: x.shape[3] - m] if m > 0 else x

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", force_fp32: bool = True,
                return_features: bool = False, update_emas: bool = False, **_ignored):
        """``ws`` -> image [N, C, R, R] (and ``{layer name: output}`` with margins when ``return_features``).

        ``noise_mode`` is accepted and ignored (no noise inputs); other StyleGAN2 options (e.g.
        ``fused_modconv``) are ignored too. fp16 layers run in fp16 only on CUDA without ``force_fp32``.
        """
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0])
        feats: Dict[str, torch.Tensor] = {}
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w, noise_mode=noise_mode, force_fp32=force_fp32, update_emas=update_emas)
            if return_features:
                feats[name] = x
        img = (x * self.output_scale if self.output_scale != 1 else x).to(torch.float32)
        return (img, feats) if return_features else img

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}"


class SG3Generator(nn.Module):
    """G(z, c) = synthesis(mapping(z, c)) with StyleGAN3's synthesis network; images in (nominally) [-1, 1]."""

    NVLABS_CLASS = "Generator"  # the class name StyleGAN3 snapshots store (checked per submodule on load)

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: Optional[dict] = None, **synthesis_kwargs):
        super().__init__()
        mapping_kwargs = {**SG3_MAPPING_DEFAULTS, **dict(mapping_kwargs or {})}
        self.init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs), **synthesis_kwargs)
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def feature_channels(self) -> Dict[str, int]:
        return self.synthesis.feature_channels()

    def empty_labels(self, n: int, device=None) -> torch.Tensor:
        return torch.zeros([n, self.c_dim], device=device)

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1.0,
                truncation_cutoff: Optional[int] = None, update_emas: bool = False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, img_resolution={self.img_resolution}, "
                f"num_ws={self.num_ws}")
