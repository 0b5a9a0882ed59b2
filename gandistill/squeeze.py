"""The squeeze module T_phi (paper §4.1, Fig. 3 right; SnS ``CompactRepr``).

    T_phi(h^g) = MLP( sum_i  W_i mu(h^g_i) + b_i )

* mu: global average pooling of each teacher block output (pooled [N, C_i] inputs pass through);
* one lateral ``Linear(C_i -> hidden, bias=True)`` per block, the laterals **summed** (no BN/ReLU
  after the sum);
* an MLP head of ``depth`` Linear layers: (depth-1) x [Linear(hidden, hidden, bias=False), BN1d, ReLU]
  then ``Linear(hidden, dim, bias=True)``.

``depth=0`` is SnS's ``VanillaCompactRepr`` (vanilla distillation, Eq. 5): no parameters, the pooled
blocks are concatenated and ``out_dim = sum(C_i)``.

>>> import torch
>>> T = SqueezeModule([512] * 4)                    # the CIFAR config: 4 blocks x 512 channels
>>> T([torch.randn(8, 512) for _ in range(4)]).shape
torch.Size([8, 2048])
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import Tensor, nn


class SqueezeModule(nn.Module):
    """T_phi: per-block lateral Linear layers, summed, then a ``depth``-layer MLP (depth 0 = concat)."""

    def __init__(self, in_dims: Sequence[int], dim: int = 2048, hidden: int = 2048, depth: int = 3) -> None:
        super().__init__()
        in_dims = [int(c) for c in in_dims]
        if not in_dims or any(c < 1 for c in in_dims):
            raise ValueError(f"in_dims must be a non-empty list of positive channel counts, got {in_dims}")
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        if depth > 0 and (dim < 1 or hidden < 1):
            raise ValueError(f"dim and hidden must be positive, got dim={dim}, hidden={hidden}")
        self.in_dims = tuple(in_dims)
        self.depth = int(depth)
        if depth == 0:
            self.out_dim = sum(in_dims)
            self.laterals = nn.ModuleList()
            self.head = nn.Identity()
            return
        self.out_dim = int(dim)
        self.laterals = nn.ModuleList(nn.Linear(c, hidden, bias=True) for c in in_dims)
        layers: List[nn.Module] = []
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(hidden, dim, bias=True))
        self.head = nn.Sequential(*layers)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """``feats``: one tensor per block, [N, C_i] (pooled) or [N, C_i, H, W] (pooled here)."""
        if len(feats) != len(self.in_dims):
            raise ValueError(f"expected {len(self.in_dims)} feature tensors, got {len(feats)}")
        pooled = []
        for i, (f, c) in enumerate(zip(feats, self.in_dims)):
            if f.ndim == 4:
                f = f.mean(dim=(2, 3))
            if f.ndim != 2 or f.shape[1] != c:
                raise ValueError(f"feature {i} should be [N, {c}] or [N, {c}, H, W], got {tuple(f.shape)}")
            pooled.append(f)
        if self.depth == 0:
            return torch.cat(pooled, dim=1)
        x = self.laterals[0](pooled[0])
        for lat, f in zip(self.laterals[1:], pooled[1:]):
            x = x + lat(f)
        return self.head(x)

    def extra_repr(self) -> str:
        return f"in_dims={list(self.in_dims)}, out_dim={self.out_dim}, depth={self.depth}"
