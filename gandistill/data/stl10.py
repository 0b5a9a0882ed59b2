"""STL-10 from a local root in the torchvision layout (the official binary files).

Layout (``<root>/stl10_binary/``): ``train_X.bin``, ``train_y.bin``, ``test_X.bin``, ``test_y.bin``,
``unlabeled_X.bin`` (and ``class_names.txt``). ``*_X.bin`` are uint8 images of 3x96x96 each,
stored channel by channel in column-major order; ``*_y.bin`` are uint8 labels 1..10 (we return 0..9).
Images are read on access with positioned reads (:class:`StlImages`; the unlabeled file is 2.7 GB), so
only the items used are read -- not memory-mapped: a file truncated while in use is a clean error,
never a ``SIGBUS``.
We read the files ourselves because torchvision's STL10 checks md5 sums (rejecting test fixtures);
``download`` set to True delegates the fetch to torchvision. Only regular files are opened (a FIFO or
a link to a device is refused before any read), and the label files are size-checked before reading.
Splits: ``train`` (5k), ``test`` (8k), ``unlabeled`` (100k, y = -1), ``train+unlabeled`` (105k).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from .base import ArrayDataset, ConcatImageDataset, check_img_size
from .stats import NORM_STATS
from gandistill.io.errors import UnsafeFileError
from gandistill.io.files import RegionReader
from gandistill.io.safe_pickle import SafeLoadError, read_regular_file, regular_size

FOLDER = "stl10_binary"
SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE
STL10_SPLITS = ("train", "test", "unlabeled", "train+unlabeled")
CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def _hint(root: Path) -> str:
    return (f"expected {root}/{FOLDER}/{{train_X.bin, train_y.bin, test_X.bin, test_y.bin, unlabeled_X.bin}} "
            f"(torchvision STL10 format): pass --download to fetch it (or point --data-root at a folder that holds "
            f"these files; from Python: gandistill.data.load_dataset('stl10', root='{root}') with its download "
            f"argument set to True)")


def _size(path: Path, root: Path) -> int:
    """Size of a regular file; ``FileNotFoundError`` if missing, ``ValueError`` for a FIFO, device, folder."""
    if not os.path.lexists(path):
        raise FileNotFoundError(f"stl10: missing {path}; {_hint(root)}")
    try:
        return regular_size(path, what="STL-10 file")
    except FileNotFoundError:  # a dangling symlink
        raise FileNotFoundError(f"stl10: missing {path} (a broken link); {_hint(root)}") from None
    except SafeLoadError as e:
        raise ValueError(str(e)) from None


class StlImages:
    """``*_X.bin`` as an array-like uint8 ``[N, 3, 96, 96]`` in (C, H, W) order, read on indexing with
    positioned reads (an int, a slice or an index array gives a numpy array)."""

    ndim = 4

    def __init__(self, path: Path, n: int) -> None:
        self.path, self.shape = path, (n, 3, SIDE, SIDE)
        self._file = RegionReader(path, "STL-10 image file", UnsafeFileError)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        n = self.shape[0]
        if isinstance(index, slice):
            idx = range(*index.indices(n))
        elif isinstance(index, (int, np.integer)):
            return self[np.array([index])][0]
        else:
            idx = np.asarray(index).reshape(-1)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
        idx = [int(i) + n if int(i) < 0 else int(i) for i in idx]
        if any(not 0 <= i < n for i in idx):
            raise IndexError(f"index out of range for {n} STL-10 images")
        raw = self._file.read_rows(0, IMAGE_BYTES, idx)
        arr = np.frombuffer(raw, dtype=np.uint8).reshape(len(idx), 3, SIDE, SIDE)
        return arr.transpose(0, 1, 3, 2)  # stored column-major: swap to (H, W)


def _read_images(path: Path, root: Path) -> StlImages:
    """``*_X.bin`` as :class:`StlImages` (uint8 [N, 3, 96, 96] in (C, H, W) order, read on access)."""
    size = _size(path, root)
    if size == 0 or size % IMAGE_BYTES:
        raise ValueError(f"{path}: size {size} bytes is not a positive multiple of 3*96*96={IMAGE_BYTES}; {_hint(root)}")
    return StlImages(path, size // IMAGE_BYTES)


def _read_labels(path: Path, root: Path, n: int) -> torch.Tensor:
    size = _size(path, root)
    if size != n:
        raise ValueError(f"{path}: {size} labels for {n} images; {_hint(root)}")
    try:
        raw = read_regular_file(path, max_bytes=n, what="STL-10 label file")
    except SafeLoadError as e:
        raise ValueError(str(e)) from None
    y = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise ValueError(f"{path}: labels must be 1..10 (1-based), got range [{y.min()}, {y.max()}]")
    return torch.from_numpy(y - 1)


def _part(root: Path, part: str, img_size: Optional[int]) -> ArrayDataset:
    folder = root / FOLDER
    images = _read_images(folder / f"{part}_X.bin", root)
    if part == "unlabeled":
        labels, num_classes = torch.full((images.shape[0],), -1, dtype=torch.long), 0
    else:
        labels, num_classes = _read_labels(folder / f"{part}_y.bin", root, images.shape[0]), 10
    mean, std = NORM_STATS["stl10"]
    return ArrayDataset(images, labels, name="stl10", split=part, num_classes=num_classes, mean=mean, std=std,
                        img_size=img_size, classes=CLASSES if num_classes else [])


def load_stl10(root: Path, split: str = "train", download: bool = False,
               img_size: Optional[int] = None) -> Union[ArrayDataset, ConcatImageDataset]:
    """STL-10 ``split`` from ``root`` (96x96 unless ``img_size``; SnS trains at 64 px)."""
    if split not in STL10_SPLITS:
        raise ValueError(f"stl10 has splits {', '.join(STL10_SPLITS)}; got split={split!r}")
    img_size = check_img_size(img_size)
    root = Path(root)
    if download:
        import torchvision.datasets as tvd  # lazy: torchvision datasets, only to download

        root.mkdir(parents=True, exist_ok=True)
        tvd.STL10(str(root), split="train", download=True)  # allow-download: only when the user passed download=True
    if split == "train+unlabeled":
        parts = [_part(root, "train", img_size), _part(root, "unlabeled", img_size)]
        return ConcatImageDataset(parts, split=split, num_classes=10)
    return _part(root, split, img_size)
