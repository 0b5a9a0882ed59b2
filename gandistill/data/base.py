"""Dataset base classes shared by every loader.

Every dataset yields ``(x, y)``: ``x`` a float tensor ``[3, H, W]`` in ``[0, 1]``, ``y`` an int
(``-1`` when unlabelled), and carries ``name, num_classes, mean, std, resolution`` (plus ``split``
and ``classes``). :class:`ArrayDataset` keeps uint8 images in memory (or in a numpy memmap) and
is the fast path of :func:`load_all`.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .stats import Stats


def resize_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a float batch ``[N, C, H, W]`` to ``size x size`` (bilinear, antialiased), kept in [0, 1]."""
    if x.shape[-2:] == (size, size):
        return x
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp_(0.0, 1.0)


def check_img_size(img_size: Optional[int]) -> Optional[int]:
    """Validate the optional ``img_size`` argument."""
    if img_size is None:
        return None
    if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < 1:
        raise ValueError(f"img_size must be a positive int or None, got {img_size!r}")
    return img_size


class ImageDataset(Dataset):
    """Base class: holds the metadata attributes every gandistill dataset exposes."""

    def __init__(self, name: str, split: str, num_classes: int, mean: Stats, std: Stats,
                 resolution: int, classes: Sequence[str] = ()):
        self.name = name
        self.split = split
        self.num_classes = int(num_classes)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.resolution = int(resolution)
        self.classes = list(classes)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"num_classes={self.num_classes}, resolution={self.resolution})")


class ArrayDataset(ImageDataset):
    """Images kept as uint8 ``[N, C, H, W]`` (C = 1 or 3; a torch tensor or numpy array/memmap).

    Grey images (C = 1) are replicated to 3 channels; images are resized to ``resolution``
    on access when it differs from the stored size.
    """

    def __init__(self, images: Any, labels: torch.Tensor, *, name: str, split: str, num_classes: int,
                 mean: Stats, std: Stats, img_size: Optional[int] = None, classes: Sequence[str] = ()):
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected uint8 images [N, 1|3, H, W], got shape {tuple(images.shape)}")
        if len(labels) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(labels)} labels")
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.stored_size = int(images.shape[-1])
        super().__init__(name, split, num_classes, mean, std, img_size or self.stored_size, classes)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _to_float(self, u8: Any) -> torch.Tensor:
        x = torch.as_tensor(np.ascontiguousarray(u8) if isinstance(u8, np.ndarray) else u8)
        x = x.float().div_(255.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return resize_batch(x, self.resolution)

    def take(self, index: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch access: ``index`` is a slice or an index array -> (x [n,3,R,R] in [0,1], y [n])."""
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        return self._to_float(self.images[index]), self.labels[index]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} images")
        x = self._to_float(self.images[i: i + 1] if i >= 0 else self.images[n + i: n + i + 1])[0]
        return x, int(self.labels[i])


class ConcatImageDataset(ImageDataset):
    """Concatenation of datasets that share resolution and normalisation (e.g. STL10 train+unlabeled)."""

    def __init__(self, parts: Sequence[ImageDataset], *, split: str, num_classes: int):
        first = parts[0]
        super().__init__(first.name, split, num_classes, first.mean, first.std, first.resolution, first.classes)
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} images")
        i = i % n
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.parts[k][i - int(self.offsets[k])]


def load_all(dataset: Dataset, max_items: Optional[int] = None,
             chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole dataset (or its first ``max_items``) as ``(x [N,3,H,W] float in [0,1], y LongTensor [N])``.

    In-memory sets (digits, CIFAR, STL10) are sliced directly; others are read item by item.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if max_items is not None:
        if max_items < 0:
            raise ValueError(f"max_items must be >= 0, got {max_items}")
        n = min(n, int(max_items))
    if isinstance(dataset, ArrayDataset):
        xs, ys = [], []
        for s in range(0, n, chunk):
            x, y = dataset.take(slice(s, min(n, s + chunk)))
            xs.append(x.contiguous())
            ys.append(y)
        if not xs:
            r = dataset.resolution
            return torch.empty(0, 3, r, r), torch.empty(0, dtype=torch.long)
        return torch.cat(xs), torch.cat(ys)
    if isinstance(dataset, ConcatImageDataset):
        xs, ys, left = [], [], n
        for part in dataset.parts:
            if left <= 0:
                break
            x, y = load_all(part, left, chunk)
            xs.append(x)
            ys.append(y)
            left -= len(y)
        return torch.cat(xs), torch.cat(ys)
    items = [dataset[i] for i in range(n)]
    if not items:
        r = int(getattr(dataset, "resolution", 0))
        return torch.empty(0, 3, r, r), torch.empty(0, dtype=torch.long)
    return torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items], dtype=torch.long)
