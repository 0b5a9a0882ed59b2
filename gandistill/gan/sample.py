"""Sampling from a trained generator, and the bundled default teacher.

``bundled_teacher_path()`` is the folder of the small StyleGAN2 (fp16 G_ema, gandistill format)
trained on the bundled ``digits`` train split that the default, offline run distils from.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import torch

from gandistill.gan.loop import save_grid
from gandistill.gan.snapshot import generator_checkpoint
from gandistill.teachers.stylegan2.checkpoint import load_sg2


def bundled_teacher_path() -> Path:
    """``gandistill/assets/digits-sg2/``: the bundled unconditional digits StyleGAN2 (fp16 G_ema + D, our format)."""
    return Path(__file__).resolve().parent.parent / "assets" / "digits-sg2"


def bundled_conditional_teacher_path() -> Path:
    """``gandistill/assets/digits-sg2-cond/``: the label-conditioned digits StyleGAN2 (c_dim = 10), kept to
    measure label leakage; runs that use it are marked ``teacher_conditional: true``."""
    return Path(__file__).resolve().parent.parent / "assets" / "digits-sg2-cond"


def sample_grid(ckpt: Union[str, Path], n: int = 64, out: Union[str, Path] = "grid.png", seed: int = 0,
                truncation_psi: float = 1.0, device: str = "cpu") -> Path:
    """Write a PNG grid of ``n`` G_ema samples of checkpoint ``ckpt`` (gandistill folder, NVlabs .pkl
    or a GAN run folder, whose latest snapshot is used); class-conditional G cycles through the classes."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ck = load_sg2(generator_checkpoint(ckpt), nets=("G_ema",), device=device)
    if ck.G_ema is None:
        raise ValueError(f"{ckpt} has no G_ema")
    G = ck.G_ema.float().eval()
    return save_grid(G, Path(out), n=n, seed=seed, c_dim=G.c_dim, truncation_psi=truncation_psi, device=device)


@torch.no_grad()
def generate_images(G: torch.nn.Module, n: int, seed: int = 0, batch: int = 256, c_dim: int = 0,
                    noise_mode: str = "const", truncation_psi: float = 1.0) -> torch.Tensor:
    """``n`` images in [-1, 1] (clamped) from a private generator; labels cycle through classes if conditional."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in range(0, n, batch):
        m = min(batch, n - s)
        z = torch.randn(m, G.z_dim, generator=g)
        c = (torch.nn.functional.one_hot(torch.arange(s, s + m) % c_dim, c_dim).float() if c_dim
             else torch.zeros(m, 0))
        out.append(G(z, c, truncation_psi=truncation_psi, noise_mode=noise_mode, force_fp32=True).float().clamp(-1, 1))
    return torch.cat(out)
