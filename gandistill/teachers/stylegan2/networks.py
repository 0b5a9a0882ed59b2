"""StyleGAN2-ADA networks in plain PyTorch: ``Generator`` (mapping + synthesis) and ``Discriminator``.

Both take exactly the constructor kwargs NVlabs stores in a snapshot's ``_init_kwargs`` and have the
same ``state_dict`` keys and shapes, so an official snapshot's config rebuilds the same network and its
weights load by name. Feature taps (block outputs) are returned directly, no hooks needed.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from .discriminator import Discriminator, DiscriminatorBlock, DiscriminatorEpilogue, MinibatchStdLayer
from .layers import Conv2dLayer, FullyConnectedLayer, MappingNetwork
from .synthesis import SynthesisBlock, SynthesisLayer, SynthesisNetwork, ToRGBLayer

__all__ = [
    "Generator", "Discriminator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock", "SynthesisLayer",
    "ToRGBLayer", "FullyConnectedLayer", "Conv2dLayer", "DiscriminatorBlock", "DiscriminatorEpilogue",
    "MinibatchStdLayer",
]


class Generator(nn.Module):
    """G(z, c) = synthesis(mapping(z, c)); images [N, img_channels, R, R] in (nominally) [-1, 1]."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: Optional[dict] = None,
        synthesis_kwargs: Optional[dict] = None,
    ):
        super().__init__()
        mapping_kwargs = dict(mapping_kwargs or {})
        synthesis_kwargs = dict(synthesis_kwargs or {})
        self.init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs),
                                synthesis_kwargs=dict(synthesis_kwargs))
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def feature_channels(self) -> Dict[str, int]:
        """Channels of each synthesis block output: ``{"b4": C4, "b8": C8, ...}``."""
        return self.synthesis.feature_channels()

    def empty_labels(self, n: int, device=None) -> torch.Tensor:
        """A [n, c_dim] zero label tensor (c_dim may be 0)."""
        return torch.zeros([n, self.c_dim], device=device)

    def forward(
        self,
        z: torch.Tensor,
        c: Optional[torch.Tensor] = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: Optional[int] = None,
        noise_mode: str = "const",
        return_features: bool = False,
        update_emas: bool = False,
        **synthesis_kwargs,
    ):
        """Map z (and one-hot c) to w+, then synthesise; see ``SynthesisNetwork.forward`` for the options."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, return_features=return_features,
                              update_emas=update_emas, **synthesis_kwargs)

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, img_resolution={self.img_resolution}, "
                f"num_ws={self.num_ws}")
