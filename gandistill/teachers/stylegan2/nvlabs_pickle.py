"""A restricted unpickler for official StyleGAN2-ADA (NVlabs, PyTorch) network snapshots.

Nothing from the file is imported or executed: ``find_class`` returns our own stand-ins for an
allow-list of globals the format uses, and refuses everything else with ``UnsafePickleError``.

* ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` -> a ``PersistentRecord`` holding
  ``class_name``, ``state`` and ``_init_kwargs``. The embedded ``module_src`` is dropped unread: it is
  never executed nor compiled.
* ``torch.storage._load_from_bytes(blob)`` -> a flat tensor, parsed from the legacy (non-zip) torch
  serialization by a second restricted unpickler that only knows ``torch.<Type>Storage`` names.
* ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` -> views of those storages (checked bounds).
* ``numpy.dtype`` / ``numpy.core.multiarray.scalar`` -> Python numbers (no numpy import).
* ``dnnlib.util.EasyDict`` -> a plain ``dict`` subclass; ``collections.OrderedDict`` as is.

Opcodes that act on already-built objects are restricted too (the unpickler is the pure-Python
``pickle._Unpickler`` with its dispatch table overridden): ``BUILD`` (``__setstate__``) only on the
EasyDict and numpy-dtype stand-ins, ``SETITEM(S)`` only on dicts, so a file cannot, e.g., call
``Tensor.__setstate__`` (which would resize a storage and expose uninitialised memory). Calls made by
``REDUCE`` are charged against a budget proportional to the file size, so a small file cannot make the
loader copy a memoised object over and over (a memory bomb).
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch


class SG2LoadError(ValueError):
    """A StyleGAN2 checkpoint could not be read (corrupt, truncated, wrong kind of file or network)."""


class UnsafePickleError(SG2LoadError):
    """A pickle asked for a global outside the StyleGAN2-ADA allow-list; nothing was imported or run."""


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

    def __setstate__(self, state: Any) -> None:  # BUILD with an (empty) attribute dict
        if isinstance(state, dict):
            self.update(state)


PERSISTENCE_VERSION = 6  # what NVlabs' torch_utils.persistence writes (and asserts on load)


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or not isinstance(meta.get("class_name"), str):
        raise SG2LoadError("malformed persistent object in the snapshot (expected a meta dict with a class_name)")
    if meta.get("type") != "class":
        raise SG2LoadError(f"persistent object '{meta['class_name']}' has type {str(meta.get('type'))[:40]!r}; "
                           "only persistent classes (type 'class') are supported")
    version = meta.get("version")
    if type(version) is not int or version != PERSISTENCE_VERSION:
        raise SG2LoadError(f"persistent object '{meta['class_name']}' has persistence version "
                           f"{repr(version)[:40]}; only version {PERSISTENCE_VERSION} (StyleGAN2-ADA PyTorch "
                           "snapshots) is supported")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise SG2LoadError(f"persistent object '{meta['class_name']}' has no state dict")
    # meta["module_src"] is deliberately never looked at beyond this point.
    init_args = state.get("_init_args", ()) or ()
    init_kwargs = state.get("_init_kwargs", {}) or {}
    if not isinstance(init_kwargs, dict) or not isinstance(init_args, (tuple, list)):
        raise SG2LoadError(f"persistent object '{meta['class_name']}' has malformed _init_args/_init_kwargs")
    return PersistentRecord(class_name=meta["class_name"], state=state, version=version,
                            init_args=tuple(init_args), init_kwargs=dict(init_kwargs))


# ------------------------------------------------------------------------------------------------ numpy scalars

_NP_CODES = {"f8": "d", "f4": "f", "f2": "e", "i8": "q", "i4": "i", "i2": "h", "i1": "b", "u8": "Q", "u4": "I",
             "u2": "H", "u1": "B", "b1": "?"}


class _NumpyDType:
    """Stand-in for ``numpy.dtype('f8', False, True)`` followed by ``BUILD`` with numpy's state tuple."""

    def __init__(self, code: Any, align: Any = False, copy: Any = True):
        if not isinstance(code, str) or code.lstrip("<>|=") not in _NP_CODES:
            raise UnsafePickleError(f"unsupported numpy dtype {code!r} in the snapshot")
        self.code = code.lstrip("<>|=")
        self.byteorder = "<"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.byteorder = "<" if state[1] in ("|", "=") else state[1]


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, _NumpyDType) or not isinstance(data, (bytes, bytearray)):
        raise SG2LoadError("malformed numpy scalar in the snapshot")
    fmt = dtype.byteorder + _NP_CODES[dtype.code]
    if struct.calcsize(fmt) != len(data):
        raise SG2LoadError(f"numpy scalar of type {dtype.code} has {len(data)} bytes")
    return struct.unpack(fmt, bytes(data))[0]


def _codecs_encode(obj: Any, encoding: str = "utf-8") -> bytes:
    """Protocol-2 pickles spell ``bytes`` as ``_codecs.encode(str, 'latin1')``."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("refusing _codecs.encode with unexpected arguments")
    return obj.encode("latin1")


# ------------------------------------------------------------------------------------------------ tensors

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> torch.dtype:
        return _STORAGE_DTYPES[self.name]


class _RestrictedUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """Pure-Python unpickler whose object-mutating opcodes are limited to what the format needs.

    * ``BUILD`` (``__setstate__`` / ``__dict__`` update) only on instances of ``BUILD_TYPES``;
    * ``SETITEM`` / ``SETITEMS`` only on dicts;
    * every ``REDUCE`` call (and protocol-0 ``INST``/``OBJ``) is charged ``len`` of its container/bytes
      arguments against ``budget``, so memoised objects cannot be copied over and over.
    """

    BUILD_TYPES: Tuple[type, ...] = ()
    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, f: io.BytesIO, budget: int):
        super().__init__(f)
        self.budget = budget

    def _charge(self, args: Any) -> None:
        cost = 1
        for a in args if isinstance(args, tuple) else ():
            if isinstance(a, (bytes, bytearray, str, list, tuple, dict, set, frozenset)):
                cost += len(a)
        self.budget -= cost
        if self.budget < 0:
            raise SG2LoadError("the pickle asks for far more work than its size justifies (a memory bomb?); "
                               "refusing")

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) not in self.BUILD_TYPES:
            raise UnsafePickleError(f"this file wants to set the state of a {type(inst).__name__} object "
                                    "(pickle BUILD); refusing (not part of the StyleGAN2-ADA snapshot format)")
        inst.__setstate__(state)

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._dict_target()[key] = value

    def load_setitems(self) -> None:
        items = self.pop_mark()
        target = self._dict_target()
        for i in range(0, len(items) - 1, 2):
            target[items[i]] = items[i + 1]

    def _dict_target(self) -> dict:
        target = self.stack[-1]
        if not isinstance(target, dict):
            raise UnsafePickleError(f"this file wants to set items of a {type(target).__name__} object; refusing")
        return target

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        self._charge(args)
        self.stack[-1] = func(*args)

    def _instantiate(self, klass: Any, args: Any) -> None:
        self._charge(tuple(args))
        super()._instantiate(klass, args)

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.REDUCE[0]] = load_reduce


class _BlobUnpickler(_RestrictedUnpickler):
    """Inner unpickler for one legacy storage blob: only ``torch.<Type>Storage`` names, storage persistent ids."""

    def __init__(self, f: io.BytesIO, storages: Dict[str, Any]):
        super().__init__(f, budget=4 * len(f.getbuffer()) + 4096)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafePickleError(f"a tensor blob in this file wants to import {module}.{name}; refusing")

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or len(pid) != 6 or pid[0] != "storage":
            raise SG2LoadError(f"unexpected persistent id in a tensor blob: {str(pid)[:80]}")
        _, stype, key, _location, numel, view = pid
        if not isinstance(stype, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise SG2LoadError("malformed storage record in a tensor blob")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = [stype.dtype, numel, None]
        if view is not None:
            view_key, offset, size = view
            return ("view", key, int(offset), int(size))
        return ("root", key)


def load_storage_blob(blob: Any) -> torch.Tensor:
    """Parse a legacy ``torch.save`` byte string holding one storage into a flat tensor (no ``torch.load``)."""
    if not isinstance(blob, (bytes, bytearray)):
        raise SG2LoadError("tensor blob is not a byte string")
    f = io.BytesIO(bytes(blob))
    storages: Dict[str, List[Any]] = {}
    try:
        if _BlobUnpickler(f, storages).load() != _LEGACY_MAGIC:
            raise SG2LoadError("tensor blob has a wrong magic number (not legacy torch serialization)")
        if _BlobUnpickler(f, storages).load() != _LEGACY_PROTOCOL:
            raise SG2LoadError("tensor blob has an unsupported serialization protocol")
        info = _BlobUnpickler(f, storages).load()
        if not isinstance(info, dict) or not info.get("little_endian", True):
            raise SG2LoadError("big-endian tensor blobs are not supported")
        obj = _BlobUnpickler(f, storages).load()
        keys = _BlobUnpickler(f, storages).load()
        if not isinstance(keys, list):
            raise SG2LoadError("tensor blob has no storage key list")
        for key in keys:
            key = str(key)
            if key not in storages:
                raise SG2LoadError(f"tensor blob lists an unknown storage key {key!r}")
            dtype, numel, _ = storages[key]
            head = f.read(8)
            if len(head) != 8:
                raise SG2LoadError("tensor blob is truncated")
            count = struct.unpack("<q", head)[0]
            if count != numel:
                raise SG2LoadError(f"tensor blob element count {count} != declared {numel}")
            nbytes = numel * torch.empty((), dtype=dtype).element_size()
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise SG2LoadError("tensor blob is truncated")
            storages[key][2] = torch.frombuffer(bytearray(raw), dtype=dtype) if numel else torch.empty(0, dtype=dtype)
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError, IndexError) as e:
        if isinstance(e, SG2LoadError):
            raise
        raise SG2LoadError(f"corrupt tensor blob in the snapshot: {e}") from None
    if not isinstance(obj, tuple):
        raise SG2LoadError("tensor blob does not hold a storage")
    root = storages[obj[1]][2]
    if root is None:
        raise SG2LoadError("tensor blob storage has no data")
    if obj[0] == "view":
        _, _, offset, size = obj
        if offset < 0 or offset + size > root.numel():
            raise SG2LoadError("tensor blob storage view is out of bounds")
        return root[offset: offset + size]
    return root


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor) or storage.ndim != 1:
        raise SG2LoadError("tensor record does not reference a storage")
    if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)) or type(offset) is not int:
        raise SG2LoadError("malformed tensor record (size/stride must be tuples, offset an int)")
    if not all(type(s) is int for s in (*size, *stride)):
        raise SG2LoadError("malformed tensor record (size/stride entries must be ints)")
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise SG2LoadError(f"malformed tensor record (size {size}, stride {stride}, offset {offset})")
    numel = 1
    for n in size:
        numel *= n
    if numel > storage.numel():  # e.g. a zero stride repeating 1 element a billion times
        raise SG2LoadError(f"tensor record of {numel} elements is larger than its storage ({storage.numel()})")
    if numel > 0:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel():
            raise SG2LoadError("tensor record reaches past the end of its storage")
    return storage.as_strided(size, stride, offset)  # a view: no copy, so repeated records cost nothing


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise SG2LoadError("parameter record does not hold a tensor")
    return data


# ------------------------------------------------------------------------------------------------ outer unpickler

ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _NumpyDType,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch.storage", "_load_from_bytes"): load_storage_blob,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("_codecs", "encode"): _codecs_encode,
    ("builtins", "set"): set,
}


class SnapshotUnpickler(_RestrictedUnpickler):
    """Unpickler that resolves only ``ALLOWED_GLOBALS`` (to our stand-ins) and refuses everything else.

    ``BUILD`` is allowed only on the EasyDict and numpy-dtype stand-ins (see ``_RestrictedUnpickler``).
    """

    BUILD_TYPES = (EasyDict, _NumpyDType)

    def __init__(self, f: io.BytesIO):
        super().__init__(f, budget=4 * len(f.getbuffer()) + 1_000_000)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            pass
        if module.startswith("dnnlib.tflib"):
            raise UnsafePickleError(f"this file wants to import {module}.{name}: it is a TensorFlow StyleGAN pickle. "
                                    "Convert it to the PyTorch format with NVlabs' legacy.py first; refusing")
        raise UnsafePickleError(f"this file wants to import {module}.{name}; refusing (not part of the "
                                "StyleGAN2-ADA snapshot format, nothing was run)")

    def persistent_load(self, pid: Any) -> Any:
        raise SG2LoadError("this pickle uses persistent ids (a torch.save file?), not an NVlabs snapshot")


def read_snapshot(data: bytes) -> Dict[str, Any]:
    """Unpickle an NVlabs snapshot's bytes safely; returns the top-level dict (networks as ``PersistentRecord``)."""
    if data[:2] == b"PK":
        raise SG2LoadError("this is a zip archive (torch.save format?), not a StyleGAN2-ADA snapshot pickle")
    if not data or data[:1] != b"\x80":
        raise SG2LoadError("not a pickle file (no pickle protocol header); is the path right?")
    try:
        obj = SnapshotUnpickler(io.BytesIO(data)).load()
    except SG2LoadError:
        raise
    except (EOFError, pickle.UnpicklingError) as e:
        raise SG2LoadError(f"the snapshot is truncated or corrupt ({type(e).__name__}: {e})") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, struct.error, RuntimeError,
            MemoryError, OverflowError, UnicodeDecodeError) as e:
        raise SG2LoadError(f"the snapshot is corrupt ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict) or not any(isinstance(obj.get(k), PersistentRecord) for k in ("G", "D", "G_ema")):
        kind = type(obj).__name__
        keys = f" with keys {list(obj)[:8]}" if isinstance(obj, dict) else ""
        raise SG2LoadError(f"not a StyleGAN2-ADA network snapshot: the pickle holds a {kind}{keys}, "
                           "expected a dict with 'G', 'D' and/or 'G_ema' networks")
    return obj


MAX_MODULE_DEPTH = 64  # SG2 networks nest 4 deep; anything near this is a crafted file
MAX_PLAIN_DEPTH = 64
MAX_PLAIN_NODES = 100_000


def _state_group(record: PersistentRecord, key: str, prefix: str) -> Dict[Any, Any]:
    group = record.state.get(key) or {}
    if not isinstance(group, dict):
        raise SG2LoadError(f"{key} of {prefix or '<root>'} ({record.class_name}) is not a dict")
    return group


def flatten_state(record: PersistentRecord, prefix: str = "", _seen: Optional[set] = None
                  ) -> Dict[str, torch.Tensor]:
    """Join ``_parameters`` and persistent ``_buffers`` with dotted child names -> a flat state_dict.

    A submodule that contains itself (a cycle built with the pickle memo), appears twice, or nests
    more than ``MAX_MODULE_DEPTH`` deep raises ``SG2LoadError``.
    """
    seen = set() if _seen is None else _seen
    if id(record) in seen:
        raise SG2LoadError(f"submodule {prefix.rstrip('.') or '<root>'} ({record.class_name}) appears twice in "
                           "the module tree (a cycle or a shared submodule); not a StyleGAN2-ADA network")
    if prefix.count(".") >= MAX_MODULE_DEPTH:
        raise SG2LoadError(f"the module tree nests more than {MAX_MODULE_DEPTH} deep; not a StyleGAN2-ADA network")
    seen.add(id(record))
    out: Dict[str, torch.Tensor] = {}
    st = record.state
    skip = st.get("_non_persistent_buffers_set") or ()
    if not isinstance(skip, (set, frozenset, list, tuple)):
        raise SG2LoadError(f"_non_persistent_buffers_set of {record.class_name} is not a set")
    skip = {s for s in skip if isinstance(s, str)}
    for group in ("_parameters", "_buffers"):
        for name, t in _state_group(record, group, prefix).items():
            if t is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(t, torch.Tensor):
                raise SG2LoadError(f"{prefix}{name} in {record.class_name} is not a tensor")
            out[f"{prefix}{name}"] = t
    for name, child in _state_group(record, "_modules", prefix).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise SG2LoadError(f"submodule {prefix}{name} is not a StyleGAN2-ADA network object")
        out.update(flatten_state(child, f"{prefix}{name}.", seen))
    return out


def plain(obj: Any) -> Any:
    """EasyDict/OrderedDict/tuple/numpy stand-ins -> JSON-able plain Python values.

    A container that contains itself, nests deeper than ``MAX_PLAIN_DEPTH`` or a structure of more
    than ``MAX_PLAIN_NODES`` values (shared sub-containers count each time) raises ``SG2LoadError``.
    """
    budget = [MAX_PLAIN_NODES]

    def walk(o: Any, path: Tuple[int, ...]) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise SG2LoadError(f"a value in the snapshot has more than {MAX_PLAIN_NODES} entries; refusing")
        if isinstance(o, (dict, list, tuple)):
            if id(o) in path:
                raise SG2LoadError("a value in the snapshot contains itself (a self-referencing "
                                   "dict/list); refusing")
            if len(path) >= MAX_PLAIN_DEPTH:
                raise SG2LoadError(f"a value in the snapshot nests more than {MAX_PLAIN_DEPTH} deep; refusing")
            inner = path + (id(o),)
            if isinstance(o, dict):
                return {str(k) if isinstance(k, (str, int, float, bool)) or k is None else repr(k)[:80]:
                        walk(v, inner) for k, v in o.items()}
            return [walk(v, inner) for v in o]
        if isinstance(o, (str, int, float, bool)) or o is None:
            return o
        if isinstance(o, (set, frozenset)):  # elements are hashable, so never containers that could cycle
            return [walk(v, path) for v in sorted(o, key=repr)]
        return f"<{type(o).__name__}>"

    return walk(obj, ())


def record_kwargs(record: PersistentRecord) -> Dict[str, Any]:
    """The constructor kwargs (``_init_kwargs``) as plain dicts; positional ``_init_args`` are not expected."""
    if record.init_args:
        raise SG2LoadError(f"{record.class_name} was constructed with positional arguments; unsupported")
    return plain(record.init_kwargs)


def describe_record(record: Optional[PersistentRecord]) -> str:
    return "nothing" if record is None else f"a '{record.class_name}'"
