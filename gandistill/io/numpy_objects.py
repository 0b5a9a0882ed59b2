"""The few numpy objects NVlabs snapshots hold, rebuilt without numpy and only in their exact shapes.

StyleGAN2-ADA and StyleGAN3 modules keep small numpy values in their attribute dicts. A snapshot
pickles them through numpy's own reconstructors, named ``numpy.core.multiarray.*`` (numpy 1.x) or
``numpy._core.multiarray.*`` (numpy 2). We never import numpy for them; each global resolves to a
stand-in here that accepts exactly one shape of call and refuses everything else:

* ``scalar(dtype('f8'), <8 bytes>)`` -> a Python ``float`` (cutoffs, gains, sampling rates);
  ``scalar(dtype('b1'), <1 byte 0 or 1>)`` -> a Python ``bool`` (``use_fp16``). Any other dtype is refused.
* ``_reconstruct(numpy.ndarray, (0,), b'b')`` -> an empty ``Int64Pair``, which one BUILD with numpy's
  state ``(1, (2,), dtype('i8'), False, <16 little-endian bytes>)`` fills (StyleGAN3's ``size``,
  ``in_size``, ``out_size``). Any other shape, dtype, order, or a second BUILD is refused; an
  ``Int64Pair`` that was never built refuses to be read.
"""
from __future__ import annotations

import struct
from typing import Any, Iterator, Tuple

from gandistill.io.safe_pickle import ForbiddenError, Global, NumpyDType, SafeLoadError, summary

NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")


def strict_numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """``numpy.core.multiarray.scalar`` for float64 and bool only -> ``float`` / ``bool``."""
    if isinstance(data, str):  # protocol 0-2 files spell bytes as latin-1 text
        data = data.encode("latin1")
    if not isinstance(dtype, NumpyDType) or not isinstance(data, (bytes, bytearray)):
        raise SafeLoadError("malformed numpy scalar (expected a dtype and its raw bytes)")
    if dtype.code == "f8" and len(data) == 8:
        return struct.unpack(dtype.struct_format, bytes(data))[0]
    if dtype.code == "b1" and bytes(data) in (b"\x00", b"\x01"):
        return bytes(data) == b"\x01"
    raise ForbiddenError(f"a numpy scalar of dtype {summary(dtype.code, 20)} with {len(data)} bytes; only float64 "
                         "and bool scalars are part of the snapshot format")


class Int64Pair:
    """Stand-in for a numpy int64 array of shape (2,) (``[width, height]`` sizes in StyleGAN3 modules)."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: Tuple[int, int] = ()  # type: ignore[assignment]

    @property
    def values(self) -> Tuple[int, int]:
        if not self._values:
            raise SafeLoadError("a numpy array in the snapshot was created but never filled (no BUILD)")
        return self._values

    def tolist(self) -> list:
        return list(self.values)

    def __getitem__(self, i: int) -> int:
        return self.values[i]

    def __iter__(self) -> Iterator[int]:
        return iter(self.values)

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        return f"Int64Pair({list(self._values)})"


def numpy_reconstruct(cls: Any, shape: Any = None, typecode: Any = None) -> Int64Pair:
    """``numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')`` -> an empty ``Int64Pair``."""
    if isinstance(typecode, str):
        typecode = typecode.encode("latin1")
    if not (type(cls) is Global and (cls.module, cls.name) == ("numpy", "ndarray")) or shape != (0,) \
            or typecode != b"b":
        raise ForbiddenError("numpy _reconstruct is called with arguments other than (numpy.ndarray, (0,), b'b'); "
                             "only that call is part of the snapshot format")
    return Int64Pair()


def int64_pair_build(arr: Int64Pair, state: Any, vm: Any) -> None:
    """BUILD on an ``Int64Pair``: exactly ``(1, (2,), dtype('i8'), False, <16 bytes>)``."""
    if arr._values:
        raise ForbiddenError("a numpy array in the snapshot is built twice; refusing")
    ok = (type(state) is tuple and len(state) == 5 and state[0] == 1 and state[1] == (2,)
          and isinstance(state[2], NumpyDType) and state[2].code == "i8" and state[3] is False)
    raw = state[4] if ok else None
    if isinstance(raw, str):
        raw = raw.encode("latin1")
    if not ok or not isinstance(raw, (bytes, bytearray)) or len(raw) != 16:
        shape = state[1] if type(state) is tuple and len(state) > 1 else None
        shape_text = repr(shape) if type(shape) is tuple and len(shape) <= 8 and all(type(n) is int and
                                                                                      abs(n) < 2 ** 40 for n in shape) \
            else summary(shape, 40)
        dtype = state[2].code if type(state) is tuple and len(state) > 2 and isinstance(state[2], NumpyDType) else "?"
        raise ForbiddenError(f"a numpy array of shape {shape_text} and dtype {summary(dtype, 20)}; only "
                             "int64 arrays of shape (2,) are part of the snapshot format")
    arr._values = struct.unpack(state[2].byteorder + "qq", bytes(raw))
