"""Named StyleGAN2-ADA network configurations -> constructor kwargs in NVlabs' nested layout.

``cifar`` and ``paper256`` follow NVlabs ``train.py`` (``cfg_specs``); ``stl`` is the NVlabs ``auto``
rule evaluated at 64 px; ``tiny`` is ours, small enough to train G and D on a laptop CPU.
The training hyper-parameters (batch, lr, gamma, EMA) are kept beside each network config for the
GAN trainer; they do not affect the networks.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

from gandistill.registry import close_matches


@dataclass(frozen=True)
class SG2Config:
    """One network configuration (plus the paper's training hyper-parameters for it)."""

    name: str
    description: str
    img_resolution: int
    z_dim: int = 512
    w_dim: int = 512
    map_layers: int = 8
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 4
    conv_clamp: Optional[int] = 256
    g_architecture: str = "skip"
    d_architecture: str = "resnet"
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    # training hyper-parameters (NVlabs names in brackets)
    batch: int = 64  # [mb]
    lr: float = 0.0025  # [lrate], G and D
    gamma: float = 1.0  # R1 weight
    ema_kimg: float = 10.0  # [ema]
    ema_rampup: Optional[float] = None  # [ramp]
    pl_weight: float = 2.0
    style_mixing_prob: float = 0.9

    def channels(self, img_resolution: Optional[int] = None) -> Dict[int, int]:
        """Channels per block resolution: ``min(channel_base // res, channel_max)``."""
        res = img_resolution or self.img_resolution
        return {2 ** i: min(self.channel_base // 2 ** i, self.channel_max) for i in range(2, int(math.log2(res)) + 1)}

    def to_dict(self) -> dict:
        return asdict(self)


SG2_CONFIGS: Dict[str, SG2Config] = {
    c.name: c
    for c in [
        SG2Config(
            name="tiny",
            description="32 px, z=w=64, 32-64 ch, 2 mapping layers, D orig: tests and the bundled digits teacher "
                        "(CPU-trainable)",
            img_resolution=32, z_dim=64, w_dim=64, map_layers=2, channel_base=1024, channel_max=64,
            num_fp16_res=0, conv_clamp=256, g_architecture="skip", d_architecture="orig", mbstd_group_size=4,
            batch=32, lr=0.0025, gamma=0.05, ema_kimg=5.0, ema_rampup=0.05, pl_weight=0.0, style_mixing_prob=0.0,
        ),
        SG2Config(
            name="cifar",
            description="NVlabs 'cifar': 32 px, 512 ch, 2 mapping layers, G skip, D orig, mbstd 32 "
                        "(the paper's teacher)",
            img_resolution=32, map_layers=2, channel_base=32768, channel_max=512, g_architecture="skip",
            d_architecture="orig", mbstd_group_size=32, batch=64, lr=0.0025, gamma=0.01, ema_kimg=500.0,
            ema_rampup=0.05, pl_weight=0.0, style_mixing_prob=0.0,
        ),
        SG2Config(
            name="stl",
            description="64 px STL-10-like (NVlabs 'auto' rule at 64 px): 256-512 ch, 2 mapping layers, D resnet",
            img_resolution=64, map_layers=2, channel_base=16384, channel_max=512, g_architecture="skip",
            d_architecture="resnet", mbstd_group_size=4, batch=64, lr=0.0025, gamma=0.0128, ema_kimg=20.0,
            ema_rampup=0.05, pl_weight=2.0, style_mixing_prob=0.9,
        ),
        SG2Config(
            name="paper256",
            description="NVlabs 'paper256': 256 px, 128-512 ch, 8 mapping layers, D resnet, mbstd 8",
            img_resolution=256, map_layers=8, channel_base=16384, channel_max=512, g_architecture="skip",
            d_architecture="resnet", mbstd_group_size=8, batch=64, lr=0.0025, gamma=1.0, ema_kimg=20.0,
            ema_rampup=None, pl_weight=2.0, style_mixing_prob=0.9,
        ),
    ]
}


def get_sg2_config(name: str) -> SG2Config:
    """The config called ``name``; unknown names list the known ones."""
    if name not in SG2_CONFIGS:
        hint = close_matches(name, SG2_CONFIGS)
        raise KeyError(f"unknown sg2 config '{name}'." + (f" Did you mean: {', '.join(hint)}?" if hint else "")
                       + f" Known: {', '.join(SG2_CONFIGS)}")
    return SG2_CONFIGS[name]


def list_sg2_configs() -> List[Tuple[str, str]]:
    """``[(name, one-line description)]`` for ``gandistill list sg2-configs``."""
    return [(c.name, c.description) for c in SG2_CONFIGS.values()]


def sg2_kwargs(name: str, img_resolution: Optional[int] = None, c_dim: int = 0, img_channels: int = 3
               ) -> Tuple[dict, dict]:
    """``(G_kwargs, D_kwargs)`` for ``Generator(**G_kwargs)`` / ``Discriminator(**D_kwargs)``.

    ``img_resolution`` overrides the config's (any power of two >= 8); ``c_dim > 0`` makes both
    networks class-conditional.
    """
    cfg = get_sg2_config(name)
    res = int(img_resolution or cfg.img_resolution)
    if res < 8 or res & (res - 1):
        raise ValueError(f"img_resolution must be a power of two >= 8, got {res}")
    if c_dim < 0 or img_channels < 1:
        raise ValueError(f"need c_dim >= 0 and img_channels >= 1, got c_dim={c_dim}, img_channels={img_channels}")
    synthesis = dict(channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res,
                     conv_clamp=cfg.conv_clamp)
    if cfg.g_architecture != "skip":
        synthesis["architecture"] = cfg.g_architecture
    G_kwargs = dict(z_dim=cfg.z_dim, w_dim=cfg.w_dim, mapping_kwargs=dict(num_layers=cfg.map_layers),
                    synthesis_kwargs=synthesis, c_dim=c_dim, img_resolution=res, img_channels=img_channels)
    D_kwargs = dict(block_kwargs={}, mapping_kwargs={},
                    epilogue_kwargs=dict(mbstd_group_size=cfg.mbstd_group_size),
                    channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res,
                    conv_clamp=cfg.conv_clamp, architecture=cfg.d_architecture, c_dim=c_dim, img_resolution=res,
                    img_channels=img_channels)
    return G_kwargs, D_kwargs
