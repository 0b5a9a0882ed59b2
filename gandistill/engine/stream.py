"""The real-image stream: endless batches for this rank, resumable from a small state dict."""
from __future__ import annotations

from typing import Any, Dict, Iterator, Optional

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from gandistill.engine.distributed import Dist


class RealStream:
    """Endless batches of real images (x in [0,1]) for this rank: epoch-wise permutations shared by
    all ranks, each rank taking its own slice (DistributedSampler semantics)."""

    def __init__(self, ds: Any, n: int, seed: int, d: Dist, workers: int = 0) -> None:
        if n < 1:
            raise ValueError("RealStream needs a positive batch")
        self.ds, self.n, self.seed, self.d, self.workers = ds, n, seed, d, workers
        self.per_epoch = len(ds) // (n * d.world)
        if self.per_epoch < 1:
            raise ValueError(f"dataset has {len(ds)} images, fewer than one global real batch ({n * d.world})")
        self.epoch, self.i = 0, 0
        self._perm: Optional[Tensor] = None
        self._it: Optional[Iterator] = None
        self.fast = callable(getattr(ds, "take", None))

    def state(self) -> Dict[str, int]:
        return {"epoch": self.epoch, "i": self.i}

    def load_state(self, s: Dict[str, int]) -> None:
        self.epoch, self.i, self._perm, self._it = int(s["epoch"]), int(s["i"]), None, None

    def _perm_for_epoch(self) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
        return torch.randperm(len(self.ds), generator=g)

    def next(self) -> Tensor:
        if self.i >= self.per_epoch:
            self.epoch, self.i, self._perm, self._it = self.epoch + 1, 0, None, None
        if self.fast:
            if self._perm is None:
                self._perm = self._perm_for_epoch()
            start = (self.i * self.d.world + self.d.rank) * self.n
            x, _ = self.ds.take(self._perm[start:start + self.n])
        else:
            if self._it is None:
                perm = self._perm_for_epoch()[: self.per_epoch * self.n * self.d.world]
                mine = perm.view(self.per_epoch, self.d.world, self.n)[:, self.d.rank].reshape(-1)
                sub = torch.utils.data.Subset(self.ds, mine[self.i * self.n:].tolist())
                self._it = iter(DataLoader(sub, batch_size=self.n, shuffle=False, drop_last=True,
                                           num_workers=self.workers))
            x, _ = next(self._it)
        self.i += 1
        return x
