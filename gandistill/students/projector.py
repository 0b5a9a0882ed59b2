"""The student projector: an MLP from backbone features to the representation z (SnS ``ProjExtractor``).

``proj_layers = L`` gives ``L-1`` hidden blocks ``[Linear(bias=False), BatchNorm1d, ReLU]`` followed
by an output ``Linear(bias=False)`` with no final BN (the paper's five-layer MLP: L=5, hidden 512,
out 2048). ``L = 0`` is the identity (z = backbone features).

``hidden=None`` makes the hidden width the backbone's (``in_dim``); ``final_bn=True`` appends
``BatchNorm1d(out, affine=False)`` -- together SimSiam's projector (Chen & He 2021, as SnS's
``simsiam.py`` builds it: L=2 on CIFAR, L=3 on STL-10; the last Linear's bias would be cancelled
by that BN, so it has none).
"""
from __future__ import annotations

from typing import Optional

import torch.nn as nn


def build_projector(in_dim: int, layers: int = 5, hidden: Optional[int] = 512, out: int = 2048,
                    final_bn: bool = False) -> nn.Module:
    """Build the projector MLP; see module docstring for the layout."""
    if layers < 0:
        raise ValueError(f"proj_layers must be >= 0, got {layers}")
    if layers == 0:
        if final_bn:
            raise ValueError("final_bn needs a projector (proj_layers >= 1)")
        return nn.Identity()
    hidden = in_dim if hidden is None else hidden
    if min(in_dim, hidden, out) < 1:
        raise ValueError(f"projector sizes must be positive, got in={in_dim}, hidden={hidden}, out={out}")
    mods = []
    dim = in_dim
    for _ in range(layers - 1):
        mods += [nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        dim = hidden
    mods.append(nn.Linear(dim, out, bias=False))
    if final_bn:
        mods.append(nn.BatchNorm1d(out, affine=False))
    return nn.Sequential(*mods)


__all__ = ["build_projector"]
