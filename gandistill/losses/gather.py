"""All-gather with gradients across ``torch.distributed`` ranks (for batch statistics).

The VICReg variance/covariance terms are batch statistics, so under DDP each rank can compute them
on the *global* batch by gathering every rank's embeddings first (facebookresearch/vicreg does the
same with its ``FullGatherLayer``).

Gradient convention: the backward pass sums the incoming gradients over ranks (all-reduce) and hands
each rank the slice of its own rows. Every rank computes the same global loss ``L``, so a rank's
local gradient is ``world_size * dL/dz_local``; DDP's gradient *averaging* then yields exactly
``dL/dz_local``. Shards may have different numbers of rows.
"""
from __future__ import annotations

from typing import Any, List, Tuple

import torch
import torch.distributed as dist


def dist_ready() -> bool:
    """True when torch.distributed is available, initialised and has more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _GatherRows(torch.autograd.Function):
    """Concatenate every rank's ``[n_r, D]`` tensor along dim 0, differentiably."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world = dist.get_world_size()
        n_local = torch.tensor([z.shape[0]], device=z.device, dtype=torch.long)
        sizes_t = [torch.zeros_like(n_local) for _ in range(world)]
        dist.all_gather(sizes_t, n_local)
        sizes = [int(s.item()) for s in sizes_t]
        n_max = max(sizes)
        padded = z.new_zeros((n_max,) + tuple(z.shape[1:]))
        padded[: z.shape[0]] = z
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded.contiguous())
        rank = dist.get_rank()
        ctx.offset = sum(sizes[:rank])
        ctx.n = z.shape[0]
        return torch.cat([p[:s] for p, s in zip(parts, sizes)], dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[torch.Tensor]:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return (grad[ctx.offset : ctx.offset + ctx.n],)


def gather_rows(z: torch.Tensor) -> torch.Tensor:
    """All-gather ``z`` ([n_local, D]) from every rank into ``[sum n_r, D]`` with gradients.

    A no-op (returns ``z``) when torch.distributed is not initialised or has one rank.
    """
    if not dist_ready():
        return z
    return _GatherRows.apply(z)


__all__: List[str] = ["dist_ready", "gather_rows"]
