"""CIFAR-10 / CIFAR-100 from a local root in the torchvision ("python version") layout.

We read the documented pickle batches ourselves instead of through ``torchvision.datasets.CIFAR10``:
torchvision verifies the md5 of every batch file, which rejects the small fake roots our tests use,
and re-hashes 160 MB on every load. Our reader runs the pickles on ``gandistill.io.safe_pickle.SafeUnpickler``
(a whitelisting interpreter: nothing is imported or called but our stand-ins for numpy's array
reconstruction, with bounded depth, keys and work), after checking that each file is a regular file
under ``MAX_BATCH_BYTES``; so a hostile file can neither run code nor crash, hang or exhaust memory.
``download`` set to True delegates the fetch (and md5 check) to torchvision, then reads the files
with this reader.

Layout (``<root>/cifar-10-batches-py/``): ``data_batch_1 .. data_batch_5``, ``test_batch``,
``batches.meta``; each batch a pickled dict with ``data`` (uint8 [N, 3072], CHW row-major) and
``labels``. CIFAR-100 (``<root>/cifar-100-python/``): ``train``, ``test``, ``meta`` with
``fine_labels`` and ``fine_label_names``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from gandistill.io.safe_pickle import (
    Allowed,
    ForbiddenError,
    Global,
    NumpyDType,
    SafeLoadError,
    SafeUnpickler,
    codecs_encode,
    numpy_dtype_build,
    numpy_scalar,
    read_regular_file,
    summary,
)

from .base import ArrayDataset, check_img_size
from .stats import NORM_STATS

MAX_BATCH_BYTES = 2 ** 30  # CIFAR-100 "train" is 155 MB
MAX_DIMS = 32


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

def _np_dtype(dt: Any) -> np.dtype:
    if not isinstance(dt, NumpyDType):
        raise SafeLoadError("an array record has no numeric numpy dtype")
    return np.dtype(dt.numpy_str)


def _checked_shape(shape: Any, dtype: np.dtype, nbytes: int) -> tuple:
    if type(shape) is not tuple or len(shape) > MAX_DIMS or not all(type(n) is int and n >= 0 for n in shape):
        raise SafeLoadError(f"malformed array shape {summary(shape)}")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != nbytes:
        raise SafeLoadError(f"array of shape {shape} and type {dtype} needs {count * dtype.itemsize} bytes, "
                            f"the file gives {nbytes}")
    return shape


def _raw(data: Any) -> bytes:
    if isinstance(data, str):  # Python 2 str decoded as latin1
        data = data.encode("latin1")
    if not isinstance(data, (bytes, bytearray)):
        raise ForbiddenError(f"array data is a {type(data).__name__}, not raw bytes (object arrays are refused)")
    return data


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')``: an empty array that BUILD then fills."""
    if type(subtype) is not Global or subtype.name != "ndarray" or shape != (0,) or typecode not in (b"b", "b"):
        raise ForbiddenError("refusing numpy _reconstruct with unexpected arguments")
    return np.ndarray((0,), np.int8)


def _ndarray_build(arr: np.ndarray, state: Any, vm: SafeUnpickler) -> None:
    """BUILD on that array: ``(version, shape, dtype, is_fortran, raw)``, checked before numpy sees it."""
    if type(state) is not tuple or len(state) not in (4, 5):
        raise SafeLoadError("malformed array state")
    version, (shape, dt, fortran, data) = (state[0] if len(state) == 5 else 0), state[-4:]
    if type(version) is not int or type(fortran) not in (bool, int):
        raise SafeLoadError("malformed array state")
    dtype, data = _np_dtype(dt), _raw(data)
    arr.__setstate__((1, _checked_shape(shape, dtype, len(data)), dtype, bool(fortran), data))


def _frombuffer(buf: Any, dt: Any, shape: Any, order: Any = "C") -> np.ndarray:
    """``numpy.core.numeric._frombuffer(buf, dtype, shape, order)`` (protocol-5 pickles of arrays)."""
    dtype, buf = _np_dtype(dt), _raw(buf)
    if order not in ("C", "F"):
        raise SafeLoadError(f"malformed array order {summary(order)}")
    return np.frombuffer(buf, dtype=dtype).reshape(_checked_shape(shape, dtype, len(buf)), order=order)


def _refuse_call(*args: Any) -> None:
    raise ForbiddenError("refusing to call numpy.ndarray")


_ALLOWED_GLOBALS = {
    **{(m, "_reconstruct"): Allowed(call=_reconstruct) for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): Allowed(call=numpy_scalar) for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): Allowed(call=_frombuffer) for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): Allowed(call=_refuse_call),
    ("numpy", "dtype"): Allowed(call=NumpyDType),
    ("_codecs", "encode"): Allowed(call=codecs_encode),
}
_BUILD = {np.ndarray: _ndarray_build, NumpyDType: numpy_dtype_build}


def _find_class(module: str, name: str) -> Allowed:
    allowed = _ALLOWED_GLOBALS.get((module, name))
    if allowed is None:
        raise ForbiddenError(f"global {module}.{name} is not allowed in a CIFAR batch file")
    return allowed


#: dict keys / set elements a CIFAR file may hold in all (a batch has 4-5, the meta file 3)
MAX_KEYS = 64


class _CifarUnpickler(SafeUnpickler):
    """The safe interpreter with CIFAR's own bound on keys: only strings (``str`` / ``bytes``, whose hashes
    are randomised per process, so no file can make them collide) and at most :data:`MAX_KEYS` of them.
    A file with thousands of colliding integer keys is refused at the first few, in microseconds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys = 0

    def check_key(self, k: Any) -> None:
        self._keys += 1
        if self._keys > MAX_KEYS:
            raise self._error(f"more than {MAX_KEYS} dict keys (a CIFAR batch has 5)", forbidden=True)
        super().check_key(k)
        if type(k) not in (str, bytes):
            raise self._error(f"a dict key is a {type(k).__name__}; CIFAR batches have string keys only",
                              forbidden=True)


def read_batch(path: Path) -> dict:
    """Read one CIFAR pickle batch (keys decoded to str) with the safe interpreter; ``ValueError`` if bad.

    Python 2 strings come back as ``bytes``; arrays as read-only numpy arrays over the file's bytes.
    """
    try:
        data = read_regular_file(path, MAX_BATCH_BYTES, what="CIFAR batch file")
        obj = _CifarUnpickler(data, find_class=_find_class, build=_BUILD, str8="bytes",
                            fmt="the CIFAR batch format").load()
    except SafeLoadError as e:
        msg = str(e)
        msg = msg[len(str(path)) + 2:] if msg.startswith(f"{path}: ") else msg
        raise ValueError(f"{path} is not a CIFAR pickle batch ({msg})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is not a CIFAR pickle batch (holds a {type(obj).__name__}, expected a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _labels(v: Any, path: Path) -> np.ndarray:
    """A flat list of ints (or an integer array) as int64; anything else (e.g. nested lists) is refused."""
    if isinstance(v, np.ndarray) and v.dtype.kind in "iu" and v.ndim == 1:
        return v.astype(np.int64)
    if isinstance(v, (list, tuple)) and all(type(x) is int for x in v):
        try:
            return np.asarray(v, dtype=np.int64)
        except OverflowError:
            pass
    raise ValueError(f"{path}: labels must be a flat list of integers, got {summary(v)}")


def _layout_hint(layout: CifarLayout, root: Path) -> str:
    files = ", ".join(layout.train_files[:1] + (("...",) if len(layout.train_files) > 1 else ())
                      + layout.test_files + (layout.meta_file,))
    return (f"expected {root}/{layout.folder}/{{{files}}} (torchvision {layout.tv_class} format): "
            f"pass --download to fetch it (or point --data-root at a folder that holds these files; from Python: "
            f"gandistill.data.load_dataset('{layout.name}', root='{root}') with its download argument set to True)")


def _download(layout: CifarLayout, root: Path) -> None:
    import torchvision.datasets as tvd  # lazy: torchvision datasets, only to download

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
    missing = [f for f in files if not os.path.lexists(folder / f)]  # non-regular files: refused by read_batch
    if missing:
        raise FileNotFoundError(f"{layout.name}: missing {folder / missing[0]}; {_layout_hint(layout, root)}")
    datas, labels = [], []
    for f in files:
        batch = read_batch(folder / f)
        if "data" not in batch or layout.label_key not in batch:
            raise ValueError(f"{folder / f} lacks the 'data'/'{layout.label_key}' entries; "
                             f"{_layout_hint(layout, root)}")
        data = batch["data"]
        if not isinstance(data, np.ndarray):
            raise ValueError(f"{folder / f}: 'data' is a {type(data).__name__}, expected a uint8 array; "
                             f"{_layout_hint(layout, root)}")
        lab = _labels(batch[layout.label_key], folder / f)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(lab) != len(data):
            raise ValueError(f"{folder / f}: expected uint8 data [N, 3072] and N labels, got "
                             f"{data.dtype} {data.shape} and {len(lab)} labels; {_layout_hint(layout, root)}")
        if len(lab) and (lab.min() < 0 or lab.max() >= layout.num_classes):
            raise ValueError(f"{folder / f}: labels outside 0..{layout.num_classes - 1}")
        datas.append(data)
        labels.append(lab)
    classes: list[str] = []
    meta = folder / layout.meta_file
    if meta.exists():
        names = read_batch(meta).get(layout.names_key, [])
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, (str, bytes)) for n in names):
            raise ValueError(f"{meta}: '{layout.names_key}' must be a list of strings, got {summary(names)}")
        classes = [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]
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
