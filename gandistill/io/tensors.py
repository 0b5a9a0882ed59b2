"""Reading weights: safetensors with header limits, strict dtype/shape/finite checks, and train_state.pt
through a bounded reader.

* :func:`read_safetensors_header` -- the 8-byte length and the JSON header, bounded (:data:`MAX_HEADER`
  bytes, :data:`MAX_ENTRIES` tensors) and checked: known dtypes, non-negative shapes, offsets inside
  the data that match ``shape x itemsize``, no overlaps. Reads only the header (cheap: used to check a
  checkpoint's widths before a network is built).
* :func:`read_safetensors` -- the whole file read into memory (no memory map: a file truncated while
  in use cannot raise ``SIGBUS``), header checked, tensors built by ``safetensors.torch.load``.
* :func:`check_state` -- a state dict against what a network expects: the same keys, shapes and
  dtypes (a wrong dtype is refused, never cast) and finite floating-point values (the tensor is named).
* :func:`read_train_state` -- ``train_state.pt`` (a ``torch.save`` zip): read under a cap, every zip
  member stored uncompressed and the declared sizes summing to no more than the file (no inflation),
  the pickle small and free of the values a hash-flooding dict needs, then
  ``torch.load(weights_only=True)`` from the bytes already read.
"""
from __future__ import annotations

import io
import math
import os
import pickletools
import struct
import zipfile
from typing import Any, Dict, Mapping, Optional, Tuple, Type

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load

from gandistill.io.errors import GandistillError, UnsafeFileError, one_line, show_path
from gandistill.io.files import PathLike, open_regular, read_bytes
from gandistill.io.schema import parse_json

MAX_HEADER = 8 * 2 ** 20       # bytes of a safetensors JSON header (a ViT-L's is ~100 KB)
MAX_ENTRIES = 20_000           # tensors in one safetensors file
MAX_DIMS = 8
MAX_PICKLE = 2 ** 20           # train_state.pt's data.pkl (a ResNet-50 AdamW state: ~60 KB)
MAX_PICKLE_FLOATS = 8192       # float / big-int values in it (hash-flooding needs many)
MAX_ZIP_MEMBERS = 100_000

DTYPES: Dict[str, Tuple[torch.dtype, int]] = {
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8), "I32": (torch.int32, 4), "I16": (torch.int16, 2), "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}


def _fail(error: Type[GandistillError], path: PathLike, msg: str) -> GandistillError:
    return error(f"{show_path(path)} is truncated or corrupt or unreadable as safetensors ({msg})", path=path)


def parse_safetensors_header(raw: bytes, path: PathLike = "", error: Type[GandistillError] = UnsafeFileError,
                             data_size: Optional[int] = None) -> Tuple[Dict[str, Any], Dict[str, str], int]:
    """``(entries, metadata, data_start)`` from the first bytes of a safetensors file (``raw`` holds at
    least the header); ``entries[name] = {"dtype", "shape", "data_offsets"}``. ``data_size``: bytes after
    the header in the file (checked against the offsets when given)."""
    if len(raw) < 8:
        raise _fail(error, path, "shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > MAX_HEADER:
        raise _fail(error, path, f"a header of {n} bytes (at most {MAX_HEADER})")
    if len(raw) < 8 + n:
        raise _fail(error, path, "truncated inside its header")
    try:
        header = parse_json(raw[8:8 + n])
    except ValueError as e:
        raise _fail(error, path, f"header: {e}") from None
    if type(header) is not dict:
        raise _fail(error, path, "the header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if type(meta) is not dict or not all(type(v) is str for v in meta.values()):
        raise _fail(error, path, "__metadata__ must map strings to strings")
    if len(header) > MAX_ENTRIES:
        raise _fail(error, path, f"{len(header)} tensors (at most {MAX_ENTRIES})")
    spans = []
    for name, e in header.items():
        where = f"tensor {one_line(name, 80)!r}"
        if type(e) is not dict or set(e) != {"dtype", "shape", "data_offsets"}:
            raise _fail(error, path, f"{where}: entry must have exactly dtype, shape, data_offsets")
        dt, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
        if type(dt) is not str or dt not in DTYPES:
            raise _fail(error, path, f"{where}: unsupported dtype {one_line(repr(dt), 20)}")
        if (type(shape) is not list or len(shape) > MAX_DIMS
                or not all(type(d) is int and 0 <= d < 2 ** 40 for d in shape)):
            raise _fail(error, path, f"{where}: shape must be at most {MAX_DIMS} non-negative integers")
        if type(offs) is not list or len(offs) != 2 or not all(type(o) is int and 0 <= o < 2 ** 62 for o in offs):
            raise _fail(error, path, f"{where}: data_offsets must be two non-negative integers")
        nbytes = math.prod(shape) * DTYPES[dt][1]
        if offs[1] - offs[0] != nbytes:
            raise _fail(error, path, f"{where}: offsets span {offs[1] - offs[0]} bytes, its shape needs {nbytes}")
        if data_size is not None and offs[1] > data_size:
            raise _fail(error, path, f"{where}: data past the end of the file (truncated?)")
        spans.append((offs[0], offs[1]))
    spans.sort()
    end = 0
    for a, b in spans:  # safetensors' own rule: the tensors tile the data exactly, no gap, no overlap
        if a != end:
            raise _fail(error, path, "tensors overlap or leave a gap in the data")
        end = b
    if data_size is not None and end != data_size:
        raise _fail(error, path, f"the tensors cover {end} bytes of data, the file holds {data_size}")
    return header, meta, 8 + n


def read_safetensors_header(path: PathLike, what: str = "weights file",
                            error: Type[GandistillError] = UnsafeFileError) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """The checked header of a safetensors file, reading only its first bytes."""
    fd, st = open_regular(path, what, kind="weights")
    try:
        head = os.pread(fd, 8, 0)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        raw = head + (os.pread(fd, min(n, MAX_HEADER), 8) if len(head) == 8 and n <= MAX_HEADER else b"")
    finally:
        os.close(fd)
    entries, meta, _ = parse_safetensors_header(raw, path, error, data_size=max(st.st_size - 8 - n, 0))
    return entries, meta


def read_safetensors(path: PathLike, what: str = "weights file", error: Type[GandistillError] = UnsafeFileError,
                     max_bytes: Optional[int] = None) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file read into memory (never memory-mapped)."""
    try:
        raw = read_bytes(path, what, max_bytes, kind="weights")
    except UnsafeFileError as e:
        if isinstance(e, error):
            raise
        raise error(str(e)) from None
    n = struct.unpack("<Q", raw[:8])[0] if len(raw) >= 8 else 0
    _, meta, _ = parse_safetensors_header(raw, path, error, data_size=max(len(raw) - 8 - n, 0))
    try:
        tensors = st_load(raw)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise _fail(error, path, one_line(e, 200)) from None
    return tensors, meta


def mismatch_report(own: Mapping[str, torch.Tensor], stored: Mapping[str, torch.Tensor]) -> str:
    """One line naming how ``stored`` (a file's tensors) does not fit ``own`` (a network's state dict):
    missing keys, unexpected keys and shape mismatches, a few examples of each; ``""`` when keys and shapes fit."""
    missing = [k for k in own if k not in stored]
    unexpected = [k for k in stored if k not in own]
    wrong = [f"{k} {tuple(stored[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
             if k in stored and tuple(stored[k].shape) != tuple(v.shape)]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", wrong)):
        if items:
            more = ", ..." if len(items) > 3 else ""
            parts.append(f"{len(items)} {label} (e.g. {', '.join(one_line(k, 120) for k in items[:3])}{more})")
    return one_line("; ".join(parts))


def check_state(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], path: PathLike = "",
                error: Type[GandistillError] = UnsafeFileError, what: str = "weights") -> None:
    """Refuse ``state`` unless it has exactly ``expected``'s keys, shapes and dtypes, all values finite."""
    report = mismatch_report(expected, state)
    if report:
        raise error(f"the {what} do not fit the network: {report}", path=path)
    for k, want in expected.items():
        got = state[k]
        if got.dtype != want.dtype:
            raise error(f"the {what} do not fit the network: tensor {k!r} is {got.dtype}, the network expects "
                        f"{want.dtype} (refusing to cast)", path=path)
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise error(f"the {what} hold non-finite values (NaN or inf) in tensor {k!r}", path=path)


def load_module_state(module: torch.nn.Module, path: PathLike, error: Type[GandistillError] = UnsafeFileError,
                      what: str = "weights") -> Dict[str, str]:
    """Read a safetensors file, :func:`check_state` it against ``module`` and load it (strict); returns
    the file's metadata."""
    state, meta = read_safetensors(path, f"{what} file", error)
    check_state(state, module.state_dict(), path, error, what)
    module.load_state_dict(state, strict=True)
    return meta


# ------------------------------------------------------------------------------------------------ train_state


_FLOATY = {"BINFLOAT", "FLOAT", "LONG1", "LONG4", "LONG"}


def _check_pickle(data: bytes, path: PathLike, error: Type[GandistillError]) -> None:
    if len(data) > MAX_PICKLE:
        raise error(f"the training state's pickle is {len(data)} bytes (at most {MAX_PICKLE})", path=path)
    floaty = 0
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in _FLOATY:
                floaty += 1
                if floaty > MAX_PICKLE_FLOATS:
                    break
    except (ValueError, struct.error) as e:
        raise error(f"the training state's pickle is corrupt ({one_line(e, 120)})", path=path) from None
    if floaty > MAX_PICKLE_FLOATS:  # raised outside the try: a GandistillError is a ValueError too
        raise error(f"the training state holds more than {MAX_PICKLE_FLOATS} float / long values", path=path)


def read_train_state(path: PathLike, error: Type[GandistillError] = UnsafeFileError,
                     max_bytes: Optional[int] = None) -> Dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with its inflation and work bounded (module docstring)."""
    try:
        raw = read_bytes(path, "training state", max_bytes, kind="train_state")
    except UnsafeFileError as e:
        if isinstance(e, error):
            raise
        raise error(str(e)) from None
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            infos = z.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise error(f"the training state has {len(infos)} members (at most {MAX_ZIP_MEMBERS})", path=path)
            declared = 0
            pkl = None
            for info in infos:
                if info.compress_type != zipfile.ZIP_STORED:
                    raise error(f"the training state member {one_line(info.filename, 80)!r} is compressed "
                                "(torch.save never compresses; refusing a possible zip bomb)", path=path)
                declared += info.file_size
                if info.filename.endswith("/data.pkl"):
                    pkl = info
            if declared > len(raw):
                raise error(f"the training state declares {declared} bytes inside a {len(raw)}-byte file", path=path)
            if pkl is None:
                raise error("the training state has no data.pkl (not a torch.save file)", path=path)
            if pkl.file_size > MAX_PICKLE:
                raise error(f"the training state's pickle is {pkl.file_size} bytes (at most {MAX_PICKLE})", path=path)
            _check_pickle(z.read(pkl), path, error)
    except GandistillError:
        raise
    except Exception as e:  # zipfile raises many kinds for a corrupt archive (BadZipFile, ValueError, ...)
        raise error(f"{show_path(path)} is truncated or corrupt (not a readable torch.save zip: {one_line(e, 120)})",
                    path=path) from None
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several kinds for a corrupt file
        raise error(f"{show_path(path)} is truncated or corrupt ({type(e).__name__}: {one_line(e, 160)})",
                    path=path) from None
    if type(state) is not dict:
        raise error(f"the training state holds a {type(state).__name__}, not a dict", path=path)
    return state


__all__ = ["DTYPES", "MAX_ENTRIES", "MAX_HEADER", "check_state", "load_module_state", "mismatch_report",
           "parse_safetensors_header", "read_safetensors", "read_safetensors_header", "read_train_state"]
