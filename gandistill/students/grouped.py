"""Several student passes as ONE batched forward, each pass keeping its own BatchNorm statistics.

SnS runs the student three times per step (the synthetic view and two real views), so that every
pass is normalised by its own batch statistics and the BN running statistics are updated once per
pass, in order. :func:`forward_groups` concatenates the passes into one batch -- the convolutions and
matrix products then run once on 3 x 32 images instead of three times on 32, larger and more
efficient kernels -- while every BatchNorm layer (any ``torch.nn.modules.batchnorm._BatchNorm``, so
also SyncBatchNorm and timm's BatchNormAct) normalises each group with that group's statistics and
updates its running statistics group after group: the same maths as the separate passes (outputs,
gradients, running statistics and ``num_batches_tracked``; float rounding aside).

Layers that mix samples other than BatchNorm are not handled; the default students have none.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, List, Sequence

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def _grouped_forward(bn: _BatchNorm, sizes: Sequence[int]):
    cls_forward = type(bn).forward

    def forward(x: Tensor) -> Tensor:
        if x.shape[0] != sum(sizes):
            raise ValueError(f"{type(bn).__name__}: batch of {x.shape[0]} does not split into groups {list(sizes)}")
        return torch.cat([cls_forward(bn, part) for part in x.split(list(sizes))])

    return forward


@contextlib.contextmanager
def batch_groups(module: nn.Module, sizes: Sequence[int]) -> Iterator[nn.Module]:
    """Within the block, every BatchNorm of ``module`` in training mode treats its input batch as the
    consecutive groups ``sizes`` (separate statistics, sequential running-stat updates)."""
    sizes = [int(s) for s in sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"group sizes must be positive, got {sizes}")
    patched: List[_BatchNorm] = []
    try:
        if len(sizes) > 1:
            for m in module.modules():
                if isinstance(m, _BatchNorm) and m.training and "forward" not in m.__dict__:
                    m.forward = _grouped_forward(m, sizes)
                    patched.append(m)
        yield module
    finally:
        for m in patched:
            del m.forward


def forward_groups(model: nn.Module, xs: Sequence[Tensor]) -> List[Tensor]:
    """``[model(x) for x in xs]`` computed as one forward of ``torch.cat(xs)`` (see module docstring)."""
    xs = list(xs)
    if len(xs) == 1:
        return [model(xs[0])]
    sizes = [x.shape[0] for x in xs]
    with batch_groups(model, sizes):
        z = model(torch.cat(xs))
    return list(z.split(sizes))


__all__ = ["batch_groups", "forward_groups"]
