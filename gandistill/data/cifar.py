"""CIFAR-10 / CIFAR-100 from a local root in the torchvision ("python version") layout.

We read the documented pickle batches ourselves instead of through ``torchvision.datasets.CIFAR10``:
torchvision verifies the md5 of every batch file, which rejects the small fake roots our tests use,
and re-hashes 160 MB on every load. Our reader uses a restricted unpickler that only admits the
numpy array reconstruction globals, so a hostile file cannot run code. ``download`` set to True delegates
the fetch (and md5 check) to torchvision, then reads the files with this reader.

Layout (``<root>/cifar-10-batches-py/``): ``data_batch_1 .. data_batch_5``, ``test_batch``,
``batches.meta``; each batch a pickled dict with ``data`` (uint8 [N, 3072], CHW row-major) and
``labels``. CIFAR-100 (``<root>/cifar-100-python/``): ``train``, ``test``, ``meta`` with
``fine_labels`` and ``fine_label_names``.
"""
from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .base import ArrayDataset, check_img_size
from .stats import NORM_STATS


@dataclass(frozen=True)
class CifarLayout:
    """Where a CIFAR variant keeps its files inside the root."""

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    tv_class: str


CIFAR10 = CifarLayout("cifar10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                      ("test_batch",), "batches.meta", "labels", "label_names", 10, "CIFAR10")
CIFAR100 = CifarLayout("cifar100", "cifar-100-python", ("train",), ("test",), "meta",
                       "fine_labels", "fine_label_names", 100, "CIFAR100")

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy-array globals (CIFAR batches need nothing else)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch file")
        if module.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core" + module[len("numpy.core"):]
        return getattr(importlib.import_module(module), name)


def read_batch(path: Path) -> dict:
    """Read one CIFAR pickle batch (keys decoded to str) with the restricted unpickler."""
    try:
        with open(path, "rb") as f:
            obj = _ArrayOnlyUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise ValueError(f"{path} is not a CIFAR pickle batch ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is not a CIFAR pickle batch (holds a {type(obj).__name__}, expected a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _layout_hint(layout: CifarLayout, root: Path) -> str:
    files = ", ".join(layout.train_files[:1] + (("...",) if len(layout.train_files) > 1 else ())
                      + layout.test_files + (layout.meta_file,))
    return (f"expected {root}/{layout.folder}/{{{files}}} (torchvision {layout.tv_class} format); "
            f"set download to True to fetch it")


def _download(layout: CifarLayout, root: Path) -> None:
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        getattr(tvd, layout.tv_class)(str(root), train=train, download=True)  # allow-download: only when the user passed download=True


def load_cifar(layout: CifarLayout, root: Path, split: str = "train", download: bool = False,
               img_size: Optional[int] = None) -> ArrayDataset:
    """Load ``split`` (``train`` / ``test``) of a CIFAR variant from ``root`` into memory (uint8)."""
    if split not in ("train", "test"):
        raise ValueError(f"{layout.name} has splits train, test; got split={split!r}")
    root = Path(root)
    if download:
        _download(layout, root)
    folder = root / layout.folder
    files = layout.train_files if split == "train" else layout.test_files
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{layout.name}: missing {folder / missing[0]}; {_layout_hint(layout, root)}")
    datas, labels = [], []
    for f in files:
        batch = read_batch(folder / f)
        if "data" not in batch or layout.label_key not in batch:
            raise ValueError(f"{folder / f} lacks the 'data'/'{layout.label_key}' entries; "
                             f"{_layout_hint(layout, root)}")
        data = np.asarray(batch["data"])
        lab = np.asarray(batch[layout.label_key], dtype=np.int64).reshape(-1)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(lab) != len(data):
            raise ValueError(f"{folder / f}: expected uint8 data [N, 3072] and N labels, got "
                             f"{data.dtype} {data.shape} and {len(lab)} labels; {_layout_hint(layout, root)}")
        if len(lab) and (lab.min() < 0 or lab.max() >= layout.num_classes):
            raise ValueError(f"{folder / f}: labels outside 0..{layout.num_classes - 1}")
        datas.append(data)
        labels.append(lab)
    classes: list[str] = []
    meta = folder / layout.meta_file
    if meta.is_file():
        names = read_batch(meta).get(layout.names_key, [])
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    images = torch.from_numpy(np.concatenate(datas).reshape(-1, 3, 32, 32))
    mean, std = NORM_STATS[layout.name]
    return ArrayDataset(images, torch.from_numpy(np.concatenate(labels)), name=layout.name, split=split,
                        num_classes=layout.num_classes, mean=mean, std=std,
                        img_size=check_img_size(img_size), classes=classes)


def load_cifar10(root: Path, split: str = "train", download: bool = False,
                 img_size: Optional[int] = None) -> ArrayDataset:
    """CIFAR-10 (50k train / 10k test, 32x32, 10 classes) from a torchvision root."""
    return load_cifar(CIFAR10, root, split, download, img_size)


def load_cifar100(root: Path, split: str = "train", download: bool = False,
                  img_size: Optional[int] = None) -> ArrayDataset:
    """CIFAR-100 (50k train / 10k test, 32x32, 100 fine classes) from a torchvision root."""
    return load_cifar(CIFAR100, root, split, download, img_size)
