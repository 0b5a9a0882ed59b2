"""A folder of images: class sub-folders -> labelled; a flat folder of images -> unlabelled (y = -1).

``<root>/<class>/**/<image>`` gives labels in sorted class-name order (like torchvision ImageFolder);
``<root>/<image>`` gives y = -1 and ``num_classes = 0``. If ``<root>/<split>`` is a folder it is used
instead of ``root`` (so ``root/train`` and ``root/test`` work as splits). Images are read lazily with
PIL, converted to RGB, resized on the shorter side and centre-cropped to a square of ``img_size``
(default: the shorter side of the first image). Normalisation stats default to ImageNet's.

Every image is a regular file (FIFOs, devices and sockets are skipped when indexing and refused when
read, without blocking), links must stay inside the root, a file is read under a size cap
(``CAPS["image"]``) and an image of more than :data:`MAX_PIXELS` pixels is refused from its header,
before it is decoded (a decompression bomb costs nothing).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .base import ImageDataset, check_img_size
from .stats import NORM_STATS
from gandistill.io.errors import GandistillError, UnsafeFileError
from gandistill.io.files import is_regular, read_bytes

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
HINT = ("expected <root>/<class_name>/<image> (labelled) or <root>/<image> (unlabelled); "
        f"image types: {', '.join(IMG_EXTENSIONS)}")


MAX_PIXELS = 4096 * 4096


def _is_image(p: Path, root: Optional[Path] = None) -> bool:
    """A regular image file (links followed only inside ``root``)."""
    if p.suffix.lower() not in IMG_EXTENSIONS or p.name.startswith(".") or not is_regular(p):
        return False
    if root is not None:  # a link (of the file or a folder above it) must not lead outside the root
        real, top = p.resolve(), root.resolve()
        if top not in real.parents:
            return False
    return True


def _open_rgb(path: Path):
    from PIL import Image  # lazy: PIL only when a folder of images is read

    data = read_bytes(path, "image", kind="image")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise UnsafeFileError(f"an image of {w}x{h} pixels (more than {MAX_PIXELS}; a decompression "
                                      "bomb?)", path=path)
            return im.convert("RGB")
    except GandistillError:
        raise
    except Exception as e:  # PIL raises several types for broken files
        raise UnsafeFileError(f"cannot read image: {type(e).__name__}: {e}", path=path) from None


def square_resize(im, size: int):
    """Resize so the shorter side is ``size`` (bicubic), then centre-crop ``size x size``."""
    from PIL import Image  # lazy: PIL only when a folder of images is read

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
    loose = sorted(p for p in root.iterdir() if _is_image(p, root))
    per_class = {d.name: sorted(p for p in d.rglob("*") if _is_image(p, root)) for d in class_dirs}
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
