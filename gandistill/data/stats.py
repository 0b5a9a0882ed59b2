"""Per-dataset normalisation statistics (mean, std) over RGB channels in [0, 1] scale.

CIFAR10 uses the values of the Squeeze-and-Span code (SnS); STL10 and image folders use the
ImageNet statistics (as SnS does for STL10). The digits statistics are computed from the bundled
training split at load time (see :mod:`gandistill.data.digits`).
"""
from __future__ import annotations

Stats = tuple[float, float, float]

IMAGENET_MEAN: Stats = (0.485, 0.456, 0.406)
IMAGENET_STD: Stats = (0.229, 0.224, 0.225)

NORM_STATS: dict[str, tuple[Stats, Stats]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "stl10": (IMAGENET_MEAN, IMAGENET_STD),
    "imagefolder": (IMAGENET_MEAN, IMAGENET_STD),
}
