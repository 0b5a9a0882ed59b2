"""Datasets: the bundled ``digits``, torchvision-format CIFAR10/100 and STL10 roots, image folders.

>>> from gandistill.data import load_dataset, load_all
>>> ds = load_dataset("digits", split="train")
>>> x, y = ds[0]            # x float [3, 32, 32] in [0, 1], y int
>>> X, Y = load_all(ds)     # [4000, 3, 32, 32], [4000]
"""
from .base import ArrayDataset, ConcatImageDataset, ImageDataset, load_all
from .digits import digits_path
from .factory import DATASETS, list_datasets, load_dataset
from .stats import IMAGENET_MEAN, IMAGENET_STD, NORM_STATS

__all__ = [
    "load_dataset", "load_all", "list_datasets", "digits_path", "DATASETS", "NORM_STATS",
    "IMAGENET_MEAN", "IMAGENET_STD", "ImageDataset", "ArrayDataset", "ConcatImageDataset",
]
