"""A folder of images: class sub-folders -> labelled; a flat folder of images -> unlabelled (y = -1).

``<root>/<class>/**/<image>`` gives labels in sorted class-name order (like torchvision ImageFolder);
``<root>/<image>`` gives y = -1 and ``num_classes = 0``. If ``<root>/<split>`` is a folder it is used
instead of ``root`` (so ``root/train`` and ``root/test`` work as splits). Images are read lazily with
PIL, converted to RGB, resized on the shorter side and centre-cropped to a square of ``img_size``
(default: the shorter side of the first image). Normalisation stats default to ImageNet's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .base import ImageDataset, check_img_size
from .stats import NORM_STATS

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
HINT = ("expected <root>/<class_name>/<image> (labelled) or <root>/<image> (unlabelled); "
        f"image types: {', '.join(IMG_EXTENSIONS)}")


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMG_EXTENSIONS and not p.name.startswith(".")


def _open_rgb(path: Path):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as e:  # PIL raises several types for broken files
        raise ValueError(f"cannot read image {path}: {e}") from None


def square_resize(im, size: int):
    """Resize so the shorter side is ``size`` (bicubic), then centre-crop ``size x size``."""
    from PIL import Image

    w, h = im.size
    if (w, h) != (size, size):
        s = size / min(w, h)
        im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
    return im


class ImageFolderDataset(ImageDataset):
    """Lazily loaded image files with optional class labels."""

    def __init__(self, files: list[Path], labels: list[int], classes: list[str], split: str, resolution: int):
        mean, std = NORM_STATS["imagefolder"]
        super().__init__("imagefolder", split, len(classes), mean, std, resolution, classes)
        self.files, self.labels = files, labels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        im = square_resize(_open_rgb(self.files[i]), self.resolution)
        x = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
        return x, self.labels[i]


def load_imagefolder(root: Path, split: str = "train", download: bool = False,
                     img_size: Optional[int] = None) -> ImageFolderDataset:
    """Index the images under ``root`` (or ``root/split``); see the module docstring for the layout."""
    root = Path(root)
    if download:
        raise ValueError("imagefolder cannot be downloaded; point root at a local folder")
    if not root.is_dir():
        raise FileNotFoundError(f"imagefolder: no folder at {root}; {HINT}")
    if (root / split).is_dir():
        root = root / split
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    loose = sorted(p for p in root.iterdir() if _is_image(p))
    per_class = {d.name: sorted(p for p in d.rglob("*") if _is_image(p)) for d in class_dirs}
    per_class = {k: v for k, v in per_class.items() if v}
    if per_class and loose:
        raise ValueError(f"imagefolder: {root} mixes class sub-folders ({', '.join(list(per_class)[:3])}) "
                         f"with loose images ({loose[0].name}); {HINT}")
    if per_class:
        classes = sorted(per_class)
        files = [p for c in classes for p in per_class[c]]
        labels = [k for k, c in enumerate(classes) for _ in per_class[c]]
    elif loose:
        classes, files, labels = [], loose, [-1] * len(loose)
    else:
        raise ValueError(f"imagefolder: no images found in {root}; {HINT}")
    size = check_img_size(img_size)
    if size is None:
        size = min(_open_rgb(files[0]).size)
    return ImageFolderDataset(files, labels, classes, split, size)
