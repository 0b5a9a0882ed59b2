"""The labelled splits an evaluation runs on: ``(train, test)`` of a dataset, optionally the first N items."""
from __future__ import annotations

from typing import Any, Optional, Tuple

from torch.utils.data import Dataset

from gandistill.data import load_dataset
from gandistill.evaluation.features import EvalDataError


class FirstN(Dataset):
    """The first ``n`` items of an image dataset, keeping its attributes and batch access."""

    def __init__(self, base: Any, n: int):
        self.base, self.n = base, min(int(n), len(base))
        for a in ("name", "num_classes", "mean", "std", "resolution", "split", "classes"):
            if hasattr(base, a):
                setattr(self, a, getattr(base, a))
        if callable(getattr(base, "take", None)):
            self.take = self._take

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} items")
        return self.base[i % self.n]

    def _take(self, index: Any):
        if isinstance(index, slice):
            index = slice(*index.indices(self.n))
        return self.base.take(index)


def _load_split(name: str, root: Optional[str], split: str, img_size: Optional[int], limit: Optional[int],
                download: bool = False):
    ds = load_dataset(name, root=root, split=split, img_size=img_size,
                      download=download)  # allow-download: only when the user passed --download
    if getattr(ds, "num_classes", None) == 0:
        raise EvalDataError(
            f"dataset '{name}' split '{split}' has no labels: evaluation needs a labelled split"
            + (" (stl10: use 'train' and 'test')" if name == "stl10" else "")
        )
    if len(ds) == 0:
        raise EvalDataError(f"dataset '{name}' split '{split}' is empty")
    return FirstN(ds, limit) if limit is not None else ds


def load_eval_splits(dataset: str, data_root: Optional[str] = None, img_size: Optional[int] = None,
                     max_train: Optional[int] = None, max_test: Optional[int] = None,
                     train_split: str = "train", test_split: str = "test", download: bool = False) -> Tuple[Any, Any]:
    """The labelled ``(train, test)`` splits an evaluation runs on (first ``max_*`` items when given);
    ``download`` fetches cifar10 / cifar100 / stl10 into ``data_root`` when missing (opt-in)."""
    return (_load_split(dataset, data_root, train_split, img_size, max_train, download),
            _load_split(dataset, data_root, test_split, img_size, max_test, download))
