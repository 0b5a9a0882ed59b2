"""A restricted reader for official StyleGAN2-ADA (NVlabs, PyTorch) network snapshot pickles.

Nothing from the file is imported or executed. The pickle runs on ``gandistill.io.safe_pickle.SafeUnpickler``
(a whitelisting pickle interpreter: bounded depth, no cycles, string-only dict keys, typed mutation, a
capped work budget scaled to the file size). Every pickle protocol 0-5 reads. Its globals resolve to our
stand-ins for exactly the
names the format uses (see ``ALLOWED_GLOBALS`` and ``tests/fixtures/README.md``); anything else is
refused with ``UnsafePickleError``:

* ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` -> a ``PersistentRecord`` holding
  ``class_name``, ``state`` and ``_init_kwargs``. The embedded ``module_src`` is dropped unread: it is
  never executed nor compiled.
* ``torch.storage._load_from_bytes(blob)`` -> a flat storage, parsed from the legacy (non-zip) torch
  serialization by a second restricted interpreter that only knows ``torch.<Type>Storage`` names; over a
  writable buffer (``read_snapshot(mmap/bytearray)``) the storage is a zero-copy, 64-byte aligned view.
* ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` -> views of those storages (bounds
  checked; the views of one storage may not claim more elements than it holds, so many tensors cannot
  share one small storage).
* ``numpy.dtype`` / ``numpy.core.multiarray.scalar`` -> Python numbers (no numpy import).
* ``dnnlib.util.EasyDict`` -> a plain ``dict`` subclass; ``collections.OrderedDict()`` (no arguments).
* protocols 0-3 only: ``builtins.set(list)`` of at most 64 names (``_non_persistent_buffers_set``),
  ``_codecs.encode(str, 'latin1')`` (bytes), ``copyreg._reconstructor(EasyDict, dict, {...})``; protocols
  0-2 spell ``builtins``/``copyreg`` as ``__builtin__``/``copy_reg``.

BUILD is allowed only on the EasyDict and numpy-dtype stand-ins. ``flatten_state`` refuses dotted or
duplicate names; the loader (``checkpoint.py``) checks every submodule's class, dtypes and finiteness.
"""
from __future__ import annotations

import collections
import ctypes
import functools
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import torch

from gandistill.io.safe_pickle import (
    Allowed,
    Budget,
    ForbiddenError,
    Global,
    Limits,
    NumpyDType,
    SafeLoadError,
    SafeUnpickler,
    brief,
    codecs_encode,
    numpy_dtype_build,
    numpy_scalar,
    summary,
)
from gandistill.io.numpy_objects import (
    NUMPY_MODULES,
    Int64Pair,
    int64_pair_build,
    numpy_reconstruct,
    strict_numpy_scalar,
)


class SG2LoadError(SafeLoadError):
    """A StyleGAN2 checkpoint could not be read (corrupt, truncated, hostile, wrong kind of file or network)."""


class UnsafePickleError(SG2LoadError):
    """A pickle asked for a global or operation outside the StyleGAN2-ADA format; nothing was imported or run."""


FORMAT = "the StyleGAN2-ADA snapshot format"
LIMITS = Limits()


@dataclass
class PersistentRecord:
    """What an NVlabs ``persistent_class`` object pickles as, minus its module source."""

    class_name: str
    state: Dict[str, Any]
    version: int = 6
    init_args: Tuple[Any, ...] = ()
    init_kwargs: Dict[str, Any] = field(default_factory=dict)

    @property
    def children(self) -> Dict[str, Any]:
        return dict(self.state.get("_modules") or {})


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a dict (attribute access for convenience)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _easydict_build(obj: EasyDict, state: Any, vm: SafeUnpickler) -> None:
    """BUILD on an EasyDict (what Python 3.7 wrote): an attribute dict, whose items become the dict's."""
    if state is None:
        return
    if not isinstance(state, dict):
        raise SG2LoadError(f"EasyDict state is a {type(state).__name__}, expected a dict")
    vm.set_items(obj, list(state.items()))


PERSISTENCE_VERSION = 6  # what NVlabs' torch_utils.persistence writes (and asserts on load)


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or not isinstance(meta.get("class_name"), str):
        raise SG2LoadError("malformed persistent object in the snapshot (expected a meta dict with a class_name)")
    name = summary(meta["class_name"], 80).strip("'")
    if meta.get("type") != "class":
        raise SG2LoadError(f"persistent object '{name}' has type {summary(meta.get('type'), 40)}; "
                           "only persistent classes (type 'class') are supported")
    version = meta.get("version")
    if type(version) is not int or version != PERSISTENCE_VERSION:
        raise SG2LoadError(f"persistent object '{name}' has persistence version {summary(version, 40)}; only "
                           f"version {PERSISTENCE_VERSION} (StyleGAN2-ADA PyTorch snapshots) is supported")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise SG2LoadError(f"persistent object '{name}' has no state dict")
    # meta["module_src"] is deliberately never looked at beyond this point.
    init_args = state.get("_init_args", ()) or ()
    init_kwargs = state.get("_init_kwargs", {}) or {}
    if not isinstance(init_kwargs, dict) or not isinstance(init_args, (tuple, list)):
        raise SG2LoadError(f"persistent object '{name}' has malformed _init_args/_init_kwargs")
    # no copies: a memoised state shared by many records must not cost more than once
    return PersistentRecord(class_name=meta["class_name"], state=state, version=version,
                            init_args=init_args if isinstance(init_args, tuple) else tuple(init_args[:64]),
                            init_kwargs=init_kwargs)


def _ordered_dict(*args: Any) -> collections.OrderedDict:
    """``collections.OrderedDict()``: the pickles create it empty and fill it with SETITEMS."""
    if args:
        raise UnsafePickleError("this file calls collections.OrderedDict with arguments; refusing (the snapshot "
                                "format creates them empty)")
    return collections.OrderedDict()


MAX_SET_ITEMS = 64  # `_non_persistent_buffers_set` is empty or names a few buffers


def _small_set(items: Any = ()) -> set:
    """``builtins.set(list)``: how protocols 0-3 pickle a set (``_non_persistent_buffers_set``).

    Only a list (or tuple) of at most ``MAX_SET_ITEMS`` strings; nothing else is ever hashed.
    """
    if type(items) not in (list, tuple) or len(items) > MAX_SET_ITEMS:
        raise UnsafePickleError(f"this file calls builtins.set with a {type(items).__name__}"
                                f"{f' of {len(items)} items' if isinstance(items, (list, tuple)) else ''}; refusing "
                                f"(the snapshot format only builds sets of at most {MAX_SET_ITEMS} names)")
    if not all(type(k) is str and len(k) <= 256 for k in items):
        raise UnsafePickleError("this file calls builtins.set with something other than short names; refusing")
    return set(items)


def _reconstructor(cls: Any, base: Any, state: Any = None) -> "EasyDict":
    """``copyreg._reconstructor(EasyDict, dict, items)``: how protocols 0-1 pickle a dict subclass."""
    if (type(cls) is not Global or cls.allowed.new is not EasyDict or type(base) is not Global
            or (base.module, base.name) not in (("builtins", "dict"), ("__builtin__", "dict"))
            or type(state) is not dict):
        raise UnsafePickleError("this file calls copyreg._reconstructor with something other than "
                                "(EasyDict, dict, {...}); refusing")
    return EasyDict(state)  # keys were checked when the state dict was built


# keep the historical private names importable
_NumpyDType = NumpyDType
_numpy_scalar = numpy_scalar

# ------------------------------------------------------------------------------------------------ tensors

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
MAX_TENSOR_DIMS = 16
_BLOB_HEADERS: List[bytes] = []  # byte prefixes (magic, protocol, sys info pickles) already validated


class _Storage:
    """A flat storage read from a blob, and how many elements the tensor views built on it have claimed."""

    __slots__ = ("data", "claimed")

    def __init__(self, data: torch.Tensor):
        self.data = data
        self.claimed = 0

    def __repr__(self) -> str:
        return f"<storage {self.data.dtype} x{self.data.numel()}>"


class _BlobRef:
    """What a storage persistent id in a blob resolves to (a private type: a blob cannot forge one)."""

    __slots__ = ("key", "view")

    def __init__(self, key: str, view: Optional[Tuple[int, int]]):
        self.key, self.view = key, view


class BlobContext:
    """Per-file state of the storage reader: the budget, and the zero-copy blobs already read (a blob read
    twice is refused: its bytes are moved in place when it is read)."""

    def __init__(self, budget: Budget):
        self.budget = budget
        self.seen: Dict[int, memoryview] = {}


ALIGN = 64           # tensor data is moved back onto a 64-byte boundary inside its own blob before it is viewed
MAX_BLOB_HEADER = 1 << 16


def _blob_find_class(module: str, name: str) -> Allowed:
    if module == "torch" and name in _STORAGE_DTYPES:
        return Allowed()  # only ever passed around inside a storage record
    raise UnsafePickleError(f"a tensor blob in this file wants to import {summary(module, 60)[1:-1]}."
                            f"{summary(name, 60)[1:-1]}; refusing")


def _storage_data(blob: Any, pos: int, numel: int, dtype: torch.dtype, ctx: Optional[BlobContext]) -> torch.Tensor:
    """The ``numel`` elements at ``blob[pos:]`` as a flat tensor: a view of the file's buffer when it is
    writable (the data is first moved back onto an ``ALIGN``-byte boundary over the blob's own, already
    parsed, header), else a copy."""
    nbytes = numel * dtype.itemsize
    if numel == 0:
        return torch.empty(0, dtype=dtype)
    if isinstance(blob, memoryview) and not blob.readonly and ctx is not None:
        u8 = torch.frombuffer(blob, dtype=torch.uint8)
        addr = u8.data_ptr() + pos
        shift = addr % ALIGN
        if shift <= pos:
            if shift:
                ctypes.memmove(addr - shift, addr, nbytes)
                pos -= shift
            return torch.frombuffer(blob, dtype=dtype, count=numel, offset=pos)
    return torch.frombuffer(bytearray(blob[pos:pos + nbytes]), dtype=dtype)


def load_storage_blob(blob: Any, budget: Optional[Budget] = None, ctx: Optional[BlobContext] = None) -> _Storage:
    """Parse a legacy ``torch.save`` byte string holding one storage into a flat storage (no ``torch.load``).

    The blob is five small pickles (magic, protocol, sys info, the storage record, the key list) and
    then, per key, an 8-byte element count and the raw little-endian data. A writable memoryview blob
    (``read_snapshot`` over a ``bytearray``) becomes a zero-copy view; bytes are copied.
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise SG2LoadError("tensor blob is not a byte string")
    if isinstance(blob, memoryview):
        if ctx is not None:
            if id(blob) in ctx.seen:
                raise SG2LoadError("one tensor blob is read twice; the format gives each tensor its own storage")
            ctx.seen[id(blob)] = blob
        if blob.ndim != 1 or blob.itemsize != 1:
            raise SG2LoadError("tensor blob is not a byte string")
    budget = ctx.budget if ctx is not None else budget if budget is not None else Budget(len(blob), LIMITS)
    head = bytes(blob[:MAX_BLOB_HEADER])  # the five small pickles (the data follows them)
    storages: Dict[str, List[Any]] = {}
    pickles = _BlobPickles(head, budget, functools.partial(_storage_record, storages, len(blob)))
    _skip_blob_header(pickles)
    ref = pickles.next()
    keys = pickles.next()
    _read_blob_data(blob, pickles.pos, keys, storages, ctx)
    if type(ref) is not _BlobRef:
        raise SG2LoadError("tensor blob does not hold a storage")
    root = storages[ref.key][2]
    if root is None:
        raise SG2LoadError("tensor blob storage has no data")
    if ref.view is not None:
        offset, size = ref.view
        if offset < 0 or size < 0 or offset + size > root.numel():
            raise SG2LoadError("tensor blob storage view is out of bounds")
        return _Storage(root[offset: offset + size])
    return _Storage(root)


def _storage_record(storages: Dict[str, List[Any]], nblob: int, pid: Any) -> _BlobRef:
    """A storage persistent id ``('storage', <Type>Storage, key, location, numel, view)`` -> a ``_BlobRef``;
    records ``[dtype, numel, None]`` under its key."""
    if type(pid) is not tuple or len(pid) != 6 or pid[0] != "storage":
        raise SG2LoadError(f"unexpected persistent id in a tensor blob: {summary(pid)}")
    _, stype, key, _location, numel, view = pid
    if (type(stype) is not Global or stype.name not in _STORAGE_DTYPES or type(key) not in (str, int)
            or type(numel) is not int or numel < 0):
        raise SG2LoadError("malformed storage record in a tensor blob")
    dtype = _STORAGE_DTYPES[stype.name]
    if numel * dtype.itemsize > nblob:
        raise SG2LoadError(f"a tensor blob declares {numel} elements, more than its {nblob} bytes hold")
    key = str(key)
    if key not in storages:
        storages[key] = [dtype, numel, None]
    elif storages[key][0] != dtype or storages[key][1] != numel:
        raise SG2LoadError(f"a tensor blob declares storage {summary(key)} twice, differently")
    if view is None:
        return _BlobRef(key, None)
    if type(view) is not tuple or len(view) != 3 or not all(type(v) is int for v in view[1:]):
        raise SG2LoadError("malformed storage view record in a tensor blob")
    return _BlobRef(key, (view[1], view[2]))


class _BlobPickles:
    """The small pickles at the start of a blob, read one after another by the restricted interpreter."""

    def __init__(self, head: bytes, budget: Budget, persistent_load: Any):
        self.head, self.budget, self.persistent_load, self.pos = head, budget, persistent_load, 0

    def next(self) -> Any:
        vm = SafeUnpickler(self.head, pos=self.pos, find_class=_blob_find_class, budget=self.budget, limits=LIMITS,
                           persistent_load=self.persistent_load, fmt="a tensor blob")
        obj = vm.load()
        self.pos = vm.pos
        return obj


def _skip_blob_header(pickles: _BlobPickles) -> None:
    """Check the first three pickles (magic, protocol, sys info); ``pickles.pos`` ends on the storage record."""
    header = next((h for h in _BLOB_HEADERS if pickles.head.startswith(h)), None)
    if header is not None:  # the same three header pickles as a blob already checked: same result
        pickles.pos = len(header)
        return
    if pickles.next() != _LEGACY_MAGIC:
        raise SG2LoadError("tensor blob has a wrong magic number (not legacy torch serialization)")
    if pickles.next() != _LEGACY_PROTOCOL:
        raise SG2LoadError("tensor blob has an unsupported serialization protocol")
    info = pickles.next()
    if not isinstance(info, dict) or info.get("little_endian", True) is not True:
        raise SG2LoadError("tensor blob: only little-endian sys info dicts are supported")
    if pickles.pos <= 512 and len(_BLOB_HEADERS) < 8:
        _BLOB_HEADERS.append(pickles.head[:pickles.pos])


def _read_blob_data(blob: Any, pos: int, keys: Any, storages: Dict[str, List[Any]],
                    ctx: Optional[BlobContext]) -> None:
    """Per listed key: an 8-byte element count (must match the record) and the raw data -> the storage."""
    if type(keys) is not list or not all(type(k) in (str, int) for k in keys) or len(keys) > len(storages):
        raise SG2LoadError("tensor blob has no valid storage key list")
    for key in keys:
        key = str(key)
        if key not in storages or storages[key][2] is not None:
            raise SG2LoadError(f"tensor blob lists an unknown or repeated storage key {summary(key)}")
        dtype, numel, _ = storages[key]
        if pos + 8 > len(blob):
            raise SG2LoadError("tensor blob is truncated")
        count = struct.unpack_from("<q", blob, pos)[0]
        pos += 8
        if count != numel:
            raise SG2LoadError(f"tensor blob element count {count} != declared {numel}")
        nbytes = numel * dtype.itemsize
        if pos + nbytes > len(blob):
            raise SG2LoadError("tensor blob is truncated")
        storages[key][2] = _storage_data(blob, pos, numel, dtype, ctx)
        pos += nbytes


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """A view of ``storage`` with the stored size/stride/offset, checked against the storage's bounds.

    Every view claims ``max(numel, 1)`` elements of its storage; claims beyond the storage's size (one
    small storage reused by many tensors: a memory amplification) are refused.
    """
    if not isinstance(storage, _Storage):
        raise SG2LoadError("tensor record does not reference a storage")
    if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)) or type(offset) is not int:
        raise SG2LoadError("malformed tensor record (size/stride must be tuples, offset an int)")
    if len(size) > MAX_TENSOR_DIMS or len(stride) > MAX_TENSOR_DIMS:
        raise SG2LoadError(f"tensor record with more than {MAX_TENSOR_DIMS} dimensions")
    if not all(type(s) is int for s in (*size, *stride)):
        raise SG2LoadError("malformed tensor record (size/stride entries must be ints)")
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise SG2LoadError(f"malformed tensor record (size {summary(size)}, stride {summary(stride)}, "
                           f"offset {summary(offset)})")
    flat = storage.data
    numel = 1
    for n in size:
        numel *= n
    if numel > flat.numel():  # e.g. a zero stride repeating 1 element a billion times
        raise SG2LoadError(f"tensor record of {numel} elements is larger than its storage ({flat.numel()})")
    if numel > 0:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.numel():
            raise SG2LoadError("tensor record reaches past the end of its storage")
    storage.claimed += max(numel, 1)
    if storage.claimed > max(flat.numel(), 1):
        raise SG2LoadError(f"several tensor records share one storage of {flat.numel()} elements and claim "
                           f"{storage.claimed}; the format gives each tensor its own storage")
    # as_strided counts the offset from the start of the underlying memory, not of `flat` (a storage view
    # starts inside its root): add the view's own offset
    return flat.as_strided(size, stride, flat.storage_offset() + offset)  # a view: no copy


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise SG2LoadError("parameter record does not hold a tensor")
    return data


# ------------------------------------------------------------------------------------------------ outer unpickler

# The documented globals of the format (tests/fixtures/README.md) -> our stand-ins. `_load_from_bytes` is
# bound to the per-file budget in `read_snapshot`.
ALLOWED_GLOBALS: Dict[Tuple[str, str], Allowed] = {
    ("collections", "OrderedDict"): Allowed(call=_ordered_dict),
    # protocols 0-3 (Python <= 3.7 wrote protocol 3): sets, bytes and dict subclasses without their opcodes;
    # protocols 0-2 name builtins/copyreg by their Python 2 names
    ("builtins", "set"): Allowed(call=_small_set),
    ("__builtin__", "set"): Allowed(call=_small_set),
    ("builtins", "dict"): Allowed(),
    ("__builtin__", "dict"): Allowed(),
    ("copyreg", "_reconstructor"): Allowed(call=_reconstructor),
    ("copy_reg", "_reconstructor"): Allowed(call=_reconstructor),
    ("_codecs", "encode"): Allowed(call=codecs_encode),
    ("dnnlib.util", "EasyDict"): Allowed(new=EasyDict),
    ("dnnlib", "EasyDict"): Allowed(new=EasyDict),
    ("numpy", "dtype"): Allowed(call=NumpyDType),
    ("torch._utils", "_rebuild_parameter"): Allowed(call=_rebuild_parameter),
    ("torch._utils", "_rebuild_tensor_v2"): Allowed(call=_rebuild_tensor_v2),
    ("torch.storage", "_load_from_bytes"): Allowed(call=load_storage_blob),
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): Allowed(call=_reconstruct_persistent_obj),
}
# numpy objects, only in the exact shapes the StyleGAN2-ADA / StyleGAN3 formats use (io/numpy_objects.py):
# float64 and bool scalars, int64 arrays of shape (2,) (``numpy.ndarray`` is only passed to _reconstruct)
for _np_module in NUMPY_MODULES:
    ALLOWED_GLOBALS[(_np_module, "scalar")] = Allowed(call=strict_numpy_scalar)
    ALLOWED_GLOBALS[(_np_module, "_reconstruct")] = Allowed(call=numpy_reconstruct)
ALLOWED_GLOBALS[("numpy", "ndarray")] = Allowed()
BUILD_HANDLERS = {EasyDict: _easydict_build, NumpyDType: numpy_dtype_build, Int64Pair: int64_pair_build}
DICT_TYPES = (dict, collections.OrderedDict, EasyDict)


# top-level modules only StyleGAN-XL (and Projected GAN) snapshots import: refused with a specific message
STYLEGAN_XL_MODULES = frozenset({"dill", "timm", "pg_modules", "feature_networks"})


def _snapshot_find_class(ctx: BlobContext, module: str, name: str) -> Allowed:
    allowed = ALLOWED_GLOBALS.get((module, name))
    if allowed is not None:
        if allowed.call is load_storage_blob:
            return Allowed(call=functools.partial(load_storage_blob, ctx=ctx))
        return allowed
    if module.startswith("dnnlib.tflib"):
        raise UnsafePickleError(f"this file wants to import {module}.{name}: it is a TensorFlow StyleGAN pickle. "
                                "Convert it to the PyTorch format with NVlabs' legacy.py first; refusing")
    if module.split(".")[0] in STYLEGAN_XL_MODULES:
        raise UnsafePickleError(f"this file wants to import {module}.{name}: it looks like a StyleGAN-XL snapshot, "
                                "which gandistill cannot load safely. StyleGAN-XL pickles are written with dill and "
                                "keep D and its timm feature networks as plain repository classes, not persistent "
                                "records; missing: a safe reader for dill-pickled classes (the stream reaches D "
                                "before G_ema) and a pure-PyTorch StyleGAN-XL generator (class embedding, "
                                "superresolution stages). Refusing; nothing was run")
    raise UnsafePickleError(f"this file wants to import {module}.{name}; refusing (not part of the "
                            "StyleGAN2-ADA snapshot format, nothing was run)")


BIG_BYTES = 1 << 12  # byte strings at least this long (the tensor blobs) are read as views of the file


def read_snapshot(data: Union[bytes, bytearray, "mmap.mmap"]) -> Dict[str, Any]:
    """Unpickle an NVlabs snapshot's bytes safely; returns the top-level dict (networks as ``PersistentRecord``).

    Given a ``bytearray`` (``read_regular_file(..., mutable=True)``), the tensors are views of it (no
    copy; their bytes are moved in place onto aligned addresses); given ``bytes``, they are copies.
    Every failure is an ``SG2LoadError`` (``UnsafePickleError`` for anything outside the format).
    """
    if data[:2] == b"PK":
        raise SG2LoadError("this is a zip archive (torch.save format?), not a StyleGAN2-ADA snapshot pickle")
    if not data or data[:1] not in (b"\x80", b"(", b"}"):  # protocols 2-5 start with PROTO; 0-1 with a dict
        raise SG2LoadError("not a pickle file (no pickle protocol header); is the path right?")
    budget = Budget(len(data), LIMITS)
    ctx = BlobContext(budget)
    try:
        obj = SafeUnpickler(data, find_class=functools.partial(_snapshot_find_class, ctx), budget=budget,
                            limits=LIMITS, build=BUILD_HANDLERS, dict_types=DICT_TYPES, fmt=FORMAT,
                            big_bytes=BIG_BYTES).load()
    except SG2LoadError:
        raise
    except ForbiddenError as e:
        raise UnsafePickleError(str(e)) from None
    except SafeLoadError as e:
        raise SG2LoadError(str(e)) from None
    except Exception as e:  # pragma: no cover - load() converts everything; belt and braces
        raise SG2LoadError(f"the snapshot is corrupt ({brief(e)})") from None
    if not isinstance(obj, dict) or not any(isinstance(obj.get(k), PersistentRecord) for k in ("G", "D", "G_ema")):
        kind = type(obj).__name__
        keys = f" with keys {[summary(k, 30) for k in list(obj)[:8]]}" if isinstance(obj, dict) else ""
        raise SG2LoadError(f"not a StyleGAN2-ADA network snapshot: the pickle holds a {kind}{keys}, "
                           "expected a dict with 'G', 'D' and/or 'G_ema' networks")
    return obj


MAX_MODULE_DEPTH = 64  # SG2 networks nest 4 deep; anything near this is a crafted file
MAX_PLAIN_DEPTH = 64
MAX_PLAIN_NODES = 20_000     # honest kwargs / training_set_kwargs have a few dozen values
MAX_PLAIN_CHARS = 1_000_000


def _state_group(record: PersistentRecord, key: str, prefix: str) -> Dict[Any, Any]:
    group = record.state.get(key) or {}
    if not isinstance(group, dict):
        raise SG2LoadError(f"{key} of {prefix or '<root>'} ({record.class_name}) is not a dict")
    return group


def _child_name(name: Any, prefix: str, record: PersistentRecord, used: set) -> str:
    """A parameter/buffer/submodule name: a non-empty string without dots, used once per module."""
    where = f"{prefix.rstrip('.')[:120] if prefix else '<root>'} ({summary(record.class_name, 60)})"
    if type(name) is not str or not name or "." in name or len(name) > 256:
        raise SG2LoadError(f"{where} has a parameter, buffer or submodule named {summary(name, 60)}; names must "
                           "be short non-empty strings without dots")
    if name in used:
        raise SG2LoadError(f"{where} has two parameters, buffers or submodules named {summary(name, 60)}")
    used.add(name)
    return name


def flatten_state(record: PersistentRecord, prefix: str = "", _seen: Optional[set] = None,
                  classes: Optional[Dict[str, str]] = None) -> Dict[str, torch.Tensor]:
    """Join ``_parameters`` and persistent ``_buffers`` with dotted child names -> a flat state_dict.

    A submodule that contains itself (a cycle built with the pickle memo), appears twice, or nests
    more than ``MAX_MODULE_DEPTH`` deep raises ``SG2LoadError``; so do names that are not plain
    identifiers (a dot would let ``a.b`` overwrite submodule ``a``'s ``b``), a name used twice in one
    module, and tensors that share storage (``check_storage_use``). ``classes`` (if given) receives each
    module's path (``""`` for the root) -> its class name.
    """
    top = _seen is None
    seen = set() if _seen is None else _seen
    if id(record) in seen:
        raise SG2LoadError(f"submodule {prefix.rstrip('.') or '<root>'} ({summary(record.class_name, 60)}) appears "
                           "twice in the module tree (a cycle or a shared submodule); not a StyleGAN2-ADA network")
    if prefix.count(".") >= MAX_MODULE_DEPTH:
        raise SG2LoadError(f"the module tree nests more than {MAX_MODULE_DEPTH} deep; not a StyleGAN2-ADA network")
    seen.add(id(record))
    if classes is not None:
        classes[prefix.rstrip(".")] = record.class_name
    out: Dict[str, torch.Tensor] = {}
    st = record.state
    skip = st.get("_non_persistent_buffers_set") or ()
    if not isinstance(skip, (set, frozenset, list, tuple)):
        raise SG2LoadError(f"_non_persistent_buffers_set of {summary(record.class_name, 60)} is not a set")
    skip = {s for s in skip if isinstance(s, str)}
    used: set = set()
    for group in ("_parameters", "_buffers"):
        for name, t in _state_group(record, group, prefix).items():
            name = _child_name(name, prefix, record, used)
            if t is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(t, torch.Tensor):
                raise SG2LoadError(f"{prefix}{summary(name, 80)} in {summary(record.class_name, 60)} is not a tensor")
            out[f"{prefix}{name}"] = t
    for name, child in _state_group(record, "_modules", prefix).items():
        name = _child_name(name, prefix, record, used)
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise SG2LoadError(f"submodule {prefix}{summary(name, 80)} is not a StyleGAN2-ADA network object")
        out.update(flatten_state(child, f"{prefix}{name}.", seen, classes))
    if top:
        check_storage_use(out)
    return out


def check_storage_use(state: Dict[str, torch.Tensor]) -> None:
    """Refuse tensors that together claim more bytes of one storage than it holds.

    NVlabs snapshots give every tensor its own storage; a crafted file could instead point hundreds of
    parameters at one small storage, so that building the network costs hundreds of times the file.
    """
    used: Dict[Tuple[int, int], int] = {}
    for name, t in state.items():
        s = t.untyped_storage()
        key = (s.data_ptr(), s.nbytes())
        used[key] = used.get(key, 0) + t.numel() * t.element_size()
        if used[key] > key[1]:
            raise SG2LoadError(f"tensor {summary(name, 80)} shares its storage with other tensors (together "
                               f"{used[key]} bytes of a {key[1]}-byte storage); the format gives each tensor "
                               "its own storage")


def plain(obj: Any, finite: bool = False) -> Any:
    """EasyDict/OrderedDict/tuple/numpy stand-ins -> JSON-able plain Python values.

    A container that contains itself, nests deeper than ``MAX_PLAIN_DEPTH``, a structure of more
    than ``MAX_PLAIN_NODES`` values or ``MAX_PLAIN_CHARS`` characters of strings (shared sub-containers
    and strings count each time: the result is a tree) raises ``SG2LoadError``; every container's length
    is charged before it is walked or sorted. ``finite=True`` refuses NaN and infinite numbers, naming them.
    """
    budget = [MAX_PLAIN_NODES, MAX_PLAIN_CHARS]

    def charge(nodes: int, chars: int = 0) -> None:
        budget[0] -= nodes
        budget[1] -= chars
        if budget[0] < 0:
            raise SG2LoadError(f"a value in the snapshot has more than {MAX_PLAIN_NODES} entries; refusing")
        if budget[1] < 0:
            raise SG2LoadError(f"a value in the snapshot holds more than {MAX_PLAIN_CHARS} characters of "
                               "strings; refusing")

    def key(k: Any) -> str:
        k = str(k) if isinstance(k, (str, int, bool)) or k is None else summary(k, 80)
        charge(0, len(k))
        return k

    def walk(o: Any, path: Tuple[int, ...], name: str) -> Any:
        charge(1)
        if isinstance(o, (str, bytes)):
            charge(0, len(o))
        if isinstance(o, (dict, list, tuple, set, frozenset)):
            charge(len(o))  # before walking or sorting it (a large shared container costs its size every time)
        if isinstance(o, (dict, list, tuple)):
            if id(o) in path:
                raise SG2LoadError("a value in the snapshot contains itself (a self-referencing "
                                   "dict/list); refusing")
            if len(path) >= MAX_PLAIN_DEPTH:
                raise SG2LoadError(f"a value in the snapshot nests more than {MAX_PLAIN_DEPTH} deep; refusing")
            inner = path + (id(o),)
            if isinstance(o, dict):
                out = {}
                for k, v in o.items():
                    ks = key(k)
                    out[ks] = walk(v, inner, (f"{name}.{ks}" if name else ks)[:200])
                return out
            return [walk(v, inner, f"{name}[{i}]"[:200]) for i, v in enumerate(o)]
        if type(o) is float and finite and not math.isfinite(o):
            raise SG2LoadError(f"{name[:120] if name else 'a value'} is {o!r}; refusing non-finite kwargs")
        if isinstance(o, (str, int, float, bool)) or o is None:
            return o
        if isinstance(o, (set, frozenset)):  # elements are short strings (the interpreter allows nothing else)
            return [walk(v, path, name) for v in sorted(o, key=lambda v: summary(v, 200))]
        return f"<{type(o).__name__}>"

    return walk(obj, (), "")


def record_kwargs(record: PersistentRecord) -> Dict[str, Any]:
    """The constructor kwargs (``_init_kwargs``) as plain dicts (finite numbers only); positional
    ``_init_args`` are not expected."""
    if record.init_args:
        raise SG2LoadError(f"{summary(record.class_name, 60)} was constructed with positional arguments; unsupported")
    return plain(record.init_kwargs, finite=True)


def describe_record(record: Optional[PersistentRecord]) -> str:
    return "nothing" if record is None else f"a {summary(record.class_name, 60)}"
