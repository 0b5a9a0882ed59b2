"""Process-group setup under ``torchrun`` (``WORLD_SIZE > 1``): NCCL on GPU, gloo on CPU; the device of
this rank; and the one collective the loop needs to stop every rank at the same step."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List

import torch
import torch.distributed as dist


@dataclass
class Dist:
    """This process's place in the job (``world == 1``: no process group)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the process group ``torchrun`` describes in the environment (if any)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()

    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    here = False
    if not dist.is_initialized():
        backend = "nccl" if (device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())) else "gloo"
        dist.init_process_group(backend=backend)
        here = True
    return Dist(world, rank, local, here)


def teardown_distributed(d: Dist) -> None:
    """Leave the process group if :func:`setup_distributed` created it."""
    if d.initialised_here:
        dist.destroy_process_group()


def resolve_device(device: str, d: Dist) -> torch.device:
    """``auto`` -> cuda if available else cpu; a bare ``cuda`` becomes this rank's local GPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but no GPU is available (use --device cpu)")
        if dev.index is None:
            dev = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(dev)
    return dev


def agree(code: int, d: Dist, device: torch.device) -> int:
    """The largest stop code over all ranks (0 = go on), so every rank stops at the same step."""
    if d.world <= 1:
        return code

    t = torch.tensor([code], dtype=torch.int32, device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def broadcast_object(obj: Any, d: Dist) -> Any:
    """Rank 0's ``obj`` on every rank (a picklable object, e.g. the run folder rank 0 chose)."""
    if d.world <= 1:
        return obj

    box = [obj if d.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(d: Dist) -> None:
    """Wait until every rank gets here (no-op on one process)."""
    if d.world > 1:
        dist.barrier()


def mean_over_ranks(values: List[float], d: Dist, device: torch.device) -> List[float]:
    """The mean of each value over all ranks (the global-batch figure when every rank holds a mean
    over an equal share of the batch); unchanged on one process."""
    if d.world <= 1 or not values:
        return list(values)

    t = torch.tensor(values, dtype=torch.float64, device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return (t / d.world).tolist()


def rank_seeds(seed: int, world: int) -> List[Dict[str, int]]:
    """The seeds of every rank: ``torch`` (initialisation -- rank 0's wins under DDP --, augmentation
    and G's noise) and ``z`` (the latent stream); distinct per rank, so ranks draw independent samples."""
    return [{"rank": r, "torch": seed + r, "z": seed * 7919 + r} for r in range(world)]
