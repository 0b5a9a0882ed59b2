"""Load and save StyleGAN2-ADA networks: NVlabs snapshot pickles (safely) and gandistill's own format.

gandistill's format is a folder holding ``<net>.safetensors`` (weights) per network and
``gandistill_sg2.json`` (constructor kwargs, dtype, metadata). NVlabs ``.pkl`` snapshots are read with
the restricted unpickler of ``nvlabs_pickle``: nothing from the file is imported or executed.

Every file is opened with ``io.safe_pickle.read_regular_file`` (regular files only, under a size cap, a
FIFO cannot block); a snapshot is read once into anonymous memory whose tensors the networks adopt without
copies (pages no built network uses are given back). Weights files named by the JSON must resolve inside
the checkpoint folder. Any failure
while reading a checkpoint is an ``SG2LoadError`` (``UnsafePickleError`` for a hostile pickle) whose
message starts with the file's path; a missing path is ``FileNotFoundError``.
"""
from __future__ import annotations

import json
import math
import mmap
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Sequence, Union

import torch
from safetensors.torch import load, save_file
from torch import nn
from torch.overrides import TorchFunctionMode

from gandistill.io.safe_pickle import ForbiddenError, SafeLoadError, brief, read_regular_file, resolve_inside, summary
from gandistill.io.tensors import mismatch_report

from gandistill.teachers.stylegan3.networks import SG3Generator
from gandistill.teachers.stylegan3.snapshot import check_stored_settings, network_plan, snapshot_variant

from .networks import Discriminator, Generator
from .nvlabs_pickle import (
    PersistentRecord,
    SG2LoadError,
    UnsafePickleError,
    flatten_state,
    plain,
    read_snapshot,
)

__all__ = ["SG2Checkpoint", "load_sg2", "save_sg2", "convert", "SG2LoadError", "UnsafePickleError",
           "FORMAT_NAME", "JSON_NAME", "available_nets"]

FORMAT_NAME = "gandistill-sg2"
FORMAT_VERSION = 1
JSON_NAME = "gandistill_sg2.json"
NET_NAMES = ("G_ema", "G", "D")
NET_CLASSES = {"G_ema": Generator, "G": Generator, "D": Discriminator}
# the classes our own format may name per network (StyleGAN3 generators convert too)
OUR_CLASSES = {"G_ema": {"Generator": Generator, "SG3Generator": SG3Generator},
               "G": {"Generator": Generator, "SG3Generator": SG3Generator}, "D": {"Discriminator": Discriminator}}
PathLike = Union[str, os.PathLike]


@dataclass
class SG2Checkpoint:
    """Networks read from a checkpoint (``None`` where not requested), their kwargs and metadata."""

    G_ema: Optional[Generator] = None
    G: Optional[Generator] = None
    D: Optional[Discriminator] = None
    kwargs: Dict[str, dict] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)
    source: str = "gandistill"

    def _gen_kwargs(self) -> dict:
        for name in ("G_ema", "G"):
            if name in self.kwargs:
                return self.kwargs[name]
        if "D" in self.kwargs:
            return self.kwargs["D"]
        raise SG2LoadError("checkpoint holds no networks")

    @property
    def generator(self) -> Optional[Generator]:
        """G_ema if loaded, else G."""
        return self.G_ema if self.G_ema is not None else self.G

    @property
    def c_dim(self) -> int:
        return int(self._gen_kwargs()["c_dim"])

    @property
    def z_dim(self) -> Optional[int]:
        return self._gen_kwargs().get("z_dim")

    @property
    def w_dim(self) -> Optional[int]:
        return self._gen_kwargs().get("w_dim")

    @property
    def img_resolution(self) -> int:
        return int(self._gen_kwargs()["img_resolution"])

    @property
    def img_channels(self) -> int:
        return int(self._gen_kwargs()["img_channels"])


def _check_nets(nets: Union[str, Iterable[str]]) -> tuple:
    nets = (nets,) if isinstance(nets, str) else tuple(nets)
    bad = [n for n in nets if n not in NET_NAMES]
    if bad or not nets:
        raise ValueError(f"nets must be a non-empty subset of {NET_NAMES}, got {nets}")
    return nets


MAX_SNAPSHOT_BYTES = 2 ** 30   # NVlabs' largest StyleGAN2-ADA pickles (1024 px, G+D+G_ema) are ~380 MB
MAX_WEIGHTS_BYTES = 2 ** 30
MAX_JSON_BYTES = 16 * 2 ** 20
MAX_IMG_RESOLUTION = 2 ** 14
MAX_MAPPING_LAYERS = 64
MAX_INT_KWARG = 2 ** 24
MAX_LIST_KWARG = 64      # e.g. resample_filter=[1, 3, 3, 1]
BUILD_SLACK = 1 << 22    # elements a network may allocate beyond twice its stored tensors while being built
_BUILD_ERRORS = (TypeError, ValueError, KeyError, AttributeError, RuntimeError, MemoryError, ArithmeticError,
                 RecursionError, IndexError)


def _check_kwargs(name: str, kwargs: Any, where: str) -> None:
    """Reject constructor kwargs whose very construction would be absurd (before building anything)."""
    if not isinstance(kwargs, dict):
        raise SG2LoadError(f"{where}: the kwargs of {name} are a {type(kwargs).__name__}, expected a dict")

    def walk(d: dict, path: str, depth: int) -> None:
        if depth > 4:
            raise SG2LoadError(f"{where}: {name} kwargs nest too deep at {path}")
        for k, v in d.items():
            if not isinstance(k, str):
                raise SG2LoadError(f"{where}: {name} kwargs have a non-string key {summary(k)}")
            key = f"{path}{k}"
            if isinstance(v, dict):
                walk(v, key + ".", depth + 1)
            elif isinstance(v, (list, tuple)) and len(v) > MAX_LIST_KWARG:
                raise SG2LoadError(f"{where}: cannot build {name}: {key} is a list of {len(v)} values "
                                   f"(at most {MAX_LIST_KWARG})")
            elif isinstance(v, int) and not isinstance(v, bool):
                limit = {"img_resolution": MAX_IMG_RESOLUTION, "num_layers": MAX_MAPPING_LAYERS}.get(k, MAX_INT_KWARG)
                if abs(v) > limit:
                    raise SG2LoadError(f"{where}: cannot build {name}: {key}={v} is out of range (|value| <= {limit})")

    walk(kwargs, "", 0)


_RANDOM = frozenset({torch.randn, torch.rand})  # (size..., generator=...) -> same arguments as torch.empty
_SIZED = _RANDOM | {torch.zeros, torch.ones, torch.full, torch.empty}


def _numel_of(args: tuple, kwargs: dict) -> int:
    """The element count a factory call (``torch.randn([o, i])``, ``torch.zeros(3, 4)``) asks for."""
    first = kwargs.get("size", args[0] if args else ())
    dims = first if isinstance(first, (list, tuple, torch.Size)) else [a for a in args if type(a) is int]
    n = 1
    for d in dims:
        if type(d) is not int or d < 0:
            return 0  # let the factory itself raise
        n *= d
    return n


class _LeanInit(TorchFunctionMode):
    """Builds a network to be overwritten by stored weights: random factories return uninitialised memory
    (no RNG time), and all factories together may allocate at most ``cap`` elements (checked before each
    allocation, so absurd kwargs are refused before they cost memory). No meta device: its first use imports
    torch._dynamo and sympy (~1 s)."""

    def __init__(self, cap: int):
        super().__init__()
        self.left = cap

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SIZED:
            self.left -= _numel_of(args, kwargs)
            if self.left < 0:
                raise MemoryError("the network these kwargs describe is far larger than the stored weights")
            if func in _RANDOM:
                return torch.empty(*args, **{k: v for k, v in kwargs.items() if k != "generator"})
        return func(*args, **kwargs)


def _construct(name: str, kwargs: dict, where: str, cap: Optional[int] = None,
               cls: Optional[type] = None) -> nn.Module:
    cls = cls or NET_CLASSES[name]
    try:
        if cap is None:
            return cls(**kwargs)
        with _LeanInit(cap):
            return cls(**kwargs)
    except _BUILD_ERRORS as e:
        raise SG2LoadError(f"{where}: cannot build {name} ({cls.__name__}) from its kwargs {summary(kwargs, 400)}: "
                           f"{brief(e)}") from None


def _check_classes(name: str, net: nn.Module, classes: Dict[str, str], where: str) -> None:
    """Every module of the file's tree is the class our network has at that path (and no module is extra)."""
    # a class of ours may stand for an NVlabs class of another name (StyleGAN3's Generator: SG3Generator)
    ours = {path: getattr(type(m), "NVLABS_CLASS", type(m).__name__) for path, m in net.named_modules()}
    for path, cls_name in classes.items():
        want = ours.get(path)
        if want is None:
            raise SG2LoadError(f"{where}: {name} has a submodule {path[:120]} ({summary(cls_name, 60)}) that "
                               f"a StyleGAN2-ADA {type(net).__name__} built from its kwargs does not have")
        if cls_name != want:
            raise SG2LoadError(f"{where}: {name}{'.' + path[:120] if path else ''} is a {summary(cls_name, 60)}, "
                               f"expected a {want}")
    missing = [p for p in ours if p not in classes]
    if missing:
        raise SG2LoadError(f"{where}: {name} lacks the submodule {missing[0]} ({ours[missing[0]]})")


def _checked_tensor(name: str, key: str, t: torch.Tensor, like: torch.Tensor, where: str) -> torch.Tensor:
    """``t`` as ``like``'s dtype: floating weights may change precision (fp16 snapshots); anything else must
    match exactly (a uint8 or int storage is never read as a float parameter); NaN/inf are refused."""
    if t.dtype != like.dtype:
        if not (t.is_floating_point() and like.is_floating_point()):
            raise SG2LoadError(f"{where}: {name} {key} is stored as {str(t.dtype)[6:]}, expected "
                               f"{str(like.dtype)[6:]}; refusing to reinterpret it")
    if t.is_floating_point() and t.numel() and not all(map(math.isfinite, map(float, torch.aminmax(t)))):
        raise SG2LoadError(f"{where}: {name} {key} holds NaN or infinite values")
    return t if t.dtype == like.dtype else t.to(like.dtype)


def _build(name: str, kwargs: dict, state: Dict[str, torch.Tensor], where: str,
           classes: Optional[Dict[str, str]] = None, cls: Optional[type] = None) -> nn.Module:
    """Check ``kwargs``, build lean (bounded by the stored tensors' size), compare shapes, dtypes, values and
    (for NVlabs files) every submodule's class with ``state``; then adopt the stored tensors (no copy)."""
    cls = cls or NET_CLASSES[name]
    _check_kwargs(name, kwargs, where)
    cap = 2 * sum(t.numel() for t in state.values()) + BUILD_SLACK
    net = _construct(name, kwargs, where, cap, cls=cls)
    own = net.state_dict()
    report = mismatch_report(own, state)
    if report:
        raise SG2LoadError(f"{where}: {name} weights do not fit a StyleGAN2-ADA {cls.__name__} "
                           f"(not an SG2-ADA network?): {report}")
    if classes is not None:
        _check_classes(name, net, classes, where)
    checked = {k: _checked_tensor(name, k, state[k], v, where) for k, v in own.items()}
    del own
    net.load_state_dict(checked, assign=True)
    return net.eval().requires_grad_(False)


def _as_load_error(path: Union[str, Path], e: BaseException) -> SG2LoadError:
    """Any failure while reading ``path`` -> an ``SG2LoadError`` whose one-line message starts with the path."""
    if isinstance(e, UnsafePickleError) or isinstance(e, ForbiddenError):
        cls, msg = UnsafePickleError, str(e)
    elif isinstance(e, SafeLoadError):  # a specific SG2LoadError subclass (e.g. SG3LoadError) is kept
        cls, msg = (type(e) if isinstance(e, SG2LoadError) else SG2LoadError), str(e)
    elif isinstance(e, RecursionError):
        cls, msg = SG2LoadError, "the file nests too deep to read"
    elif isinstance(e, MemoryError):
        cls, msg = SG2LoadError, "ran out of memory reading the file"
    else:
        cls, msg = SG2LoadError, f"cannot read the checkpoint ({brief(e)})"
    msg = " ".join(msg.split())  # one line
    where = str(path)
    return cls(msg if msg.startswith(where) else f"{where}: {msg}")


def _guarded(path: Union[str, Path], fn: Any, *args: Any) -> Any:
    """``fn(*args)`` with every exception except ``FileNotFoundError`` turned into a clean ``SG2LoadError``."""
    try:
        return fn(*args)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise _as_load_error(path, e) from None


# The last snapshot parsed by `available_nets`, kept for the `load_sg2` that usually follows it (fit, bank build,
# convert and the teachers ask which networks a file holds, then load them): one entry, keyed by the file's
# identity; the parsed snapshot is handed over once, the list of networks stays.
_PARSED: Dict[tuple, list] = {}


def _identity(p: Path) -> tuple:
    st = os.stat(p)
    return (os.fspath(p.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _snapshot_nets(snap: Dict[str, Any]) -> tuple:
    return tuple(n for n in NET_NAMES
                 if isinstance(snap.get(n), PersistentRecord) and snap[n].class_name == NET_CLASSES[n].__name__)


def _remember(ident: tuple, snap: Optional[Dict[str, Any]], buf: Any) -> None:
    _PARSED.clear()
    _PARSED[ident] = [_snapshot_nets(snap) if snap is not None else None, snap, buf]


# ------------------------------------------------------------------------------------------------ NVlabs pickles


def _release_unused(ckpt: SG2Checkpoint, buf: Any) -> None:
    """Give the pages of the file's buffer that no built network views back to the system (the networks not
    requested, the pickle's opcodes): loading G_ema from a G+D+G_ema snapshot keeps ~1/3 of the file, with
    no copy. Only for the anonymous memory ``read_regular_file(mutable=True)`` returns."""
    if not isinstance(buf, mmap.mmap) or not hasattr(buf, "madvise") or not len(buf):
        return
    probe = torch.frombuffer(buf, dtype=torch.uint8)
    base, size = probe.data_ptr(), len(buf)
    del probe
    used = []
    for name in NET_NAMES:
        net = getattr(ckpt, name)
        for t in () if net is None else (*net.parameters(), *net.buffers()):
            s = t.untyped_storage()
            if base <= s.data_ptr() < base + size:
                used.append((s.data_ptr() - base, s.data_ptr() - base + s.nbytes()))
    page = mmap.PAGESIZE
    pos = 0
    for start, end in sorted(used) + [(size, size)]:
        lo, hi = -(-pos // page) * page, (start // page) * page  # whole pages strictly between views
        if hi > lo:
            buf.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
        pos = max(pos, end)


def _load_nvlabs(path: Path, snap: Dict[str, Any], nets: tuple, buf: Any = None) -> SG2Checkpoint:
    """Build ``nets`` (on the CPU) from an unpickled snapshot (``read_snapshot``)."""
    ckpt = SG2Checkpoint(source="nvlabs-pkl")
    variant = snapshot_variant(snap)  # StyleGAN2-ADA, StyleGAN3, or StyleGAN2 from the StyleGAN3 repository
    for name in nets:
        rec = snap.get(name)
        want = NET_CLASSES[name].__name__
        if rec is None:
            have = [k for k in NET_NAMES if isinstance(snap.get(k), PersistentRecord)]
            raise SG2LoadError(f"{path}: the snapshot has no '{name}' (it has {', '.join(have)})")
        if not isinstance(rec, PersistentRecord) or rec.class_name != want:
            got = f"a {summary(rec.class_name, 60)}" if isinstance(rec, PersistentRecord) else type(rec).__name__
            raise SG2LoadError(f"{path}: '{name}' is {got}, expected a StyleGAN2-ADA '{want}'")
        cls, kwargs = network_plan(name, rec, variant)
        classes: Dict[str, str] = {}
        state = flatten_state(rec, classes=classes)
        net = _build(name, kwargs, state, str(path), classes, cls=cls)
        del state
        check_stored_settings(net, rec, str(path), name)
        for attr in ("num_ws", "z_dim", "w_dim", "c_dim", "img_resolution"):
            stored = rec.state.get(attr)
            if type(stored) is int and hasattr(net, attr) and stored != getattr(net, attr):
                raise SG2LoadError(f"{path}: {name}.{attr} is {summary(stored)} in the file but the rebuilt "
                                   f"network has {getattr(net, attr)}")
        setattr(ckpt, name, net)
        ckpt.kwargs[name] = kwargs
    for name in NET_NAMES:  # record every network's kwargs even if not built
        rec = snap.get(name)
        right_kind = isinstance(rec, PersistentRecord) and rec.class_name == NET_CLASSES[name].__name__
        if name not in ckpt.kwargs and right_kind:
            try:
                ckpt.kwargs[name] = network_plan(name, rec, variant)[1]
            except SG2LoadError:
                pass
    ckpt.meta = {
        "path": str(path),
        "training_set_kwargs": plain(snap.get("training_set_kwargs")) if isinstance(snap.get("training_set_kwargs"),
                                                                                    dict) else None,
        "variant": variant,
        "networks": [k for k in NET_NAMES if isinstance(snap.get(k), PersistentRecord)],
        "has_augment_pipe": isinstance(snap.get("augment_pipe"), PersistentRecord),
        "extra_keys": [summary(k, 80).strip("'") if not isinstance(k, str) else k[:80] for k in list(snap)[:64]
                       if k not in NET_NAMES + ("training_set_kwargs", "augment_pipe")],
    }
    snap.clear()  # the records not built (and their views of `buf`) go now; their pages are released next
    _release_unused(ckpt, buf)
    return ckpt


# ------------------------------------------------------------------------------------------------ our format


def _read_info(jpath: Path) -> Dict[str, Any]:
    """Read and validate ``gandistill_sg2.json``: format, integer version, and every net entry's fields.

    Each entry needs ``class`` (str), ``kwargs`` (dict) and ``file``: a bare file name inside the folder
    (no directories, no ``..``, not absolute), defaulting to ``<net>.safetensors``.
    """
    raw = read_regular_file(jpath, MAX_JSON_BYTES, what="checkpoint JSON")
    try:
        info = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # incl. JSONDecodeError, int too large
        raise SG2LoadError(f"{jpath}: corrupt JSON ({brief(e)})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT_NAME:
        raise SG2LoadError(f"{jpath}: not a {FORMAT_NAME} checkpoint (format field is {summary(info.get('format'))})"
                           if isinstance(info, dict) else f"{jpath}: not a {FORMAT_NAME} checkpoint")
    version = info.get("version")
    if type(version) is not int or version < 1:
        raise SG2LoadError(f"{jpath}: format version must be a positive integer, got {summary(version, 40)}")
    if version > FORMAT_VERSION:
        raise SG2LoadError(f"{jpath}: format version {version} is newer than this gandistill "
                           f"understands ({FORMAT_VERSION}); upgrade gandistill")
    entries = info.get("nets")
    if not isinstance(entries, dict):
        raise SG2LoadError(f"{jpath}: 'nets' must be an object mapping network names to entries")
    if not isinstance(info.get("meta", {}), dict):
        raise SG2LoadError(f"{jpath}: 'meta' must be an object")
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise SG2LoadError(f"{jpath}: the entry for {summary(name)} must be an object, got {type(entry).__name__}")
        if not isinstance(entry.get("kwargs"), dict):
            raise SG2LoadError(f"{jpath}: the entry for {summary(name)} has no constructor 'kwargs' object")
        fname = entry.setdefault("file", f"{name}.safetensors")
        if (not isinstance(fname, str) or fname in ("", ".", "..") or "/" in fname or "\\" in fname
                or "\0" in fname or Path(fname).name != fname or Path(fname).is_absolute()):
            raise SG2LoadError(f"{jpath}: the weights file of {summary(name)} must be a bare file name inside the "
                               f"checkpoint folder, got {summary(fname, 80)}")
    return {"nets": entries, "meta": info.get("meta") or {}, "version": version}


def _resolve_ours(path: Path) -> Path:
    """The JSON of a checkpoint folder (it must resolve inside the folder), or the JSON path given."""
    if path.is_dir():
        if not os.path.lexists(path / JSON_NAME):
            raise FileNotFoundError(f"no {JSON_NAME} in {path}: not a gandistill StyleGAN2 checkpoint folder")
        return resolve_inside(path, JSON_NAME, what="checkpoint JSON")
    if not path.exists():
        raise FileNotFoundError(f"no {JSON_NAME} in {path.parent}: not a gandistill StyleGAN2 checkpoint folder")
    return path.resolve()  # weights are looked up next to the real JSON


def _read_weights(jpath: Path, fname: str) -> Dict[str, torch.Tensor]:
    """A network's safetensors file: a regular file inside the checkpoint folder, read under a size cap."""
    wfile = jpath.parent / fname
    target = resolve_inside(jpath.parent, fname, what="weights file")
    try:
        data = read_regular_file(target, MAX_WEIGHTS_BYTES, what="weights file", follow_symlinks=False)
    except FileNotFoundError:  # no such file, or a link to nothing: the checkpoint's fault, not a missing path
        raise SG2LoadError(f"{jpath}: weights file {fname} is missing") from None
    try:
        state = load(data)
    except Exception as e:  # SafetensorError, or anything else from a hostile header
        raise SG2LoadError(f"{wfile}: corrupt or truncated safetensors file ({brief(e)})") from None
    del data
    return state


def _load_ours(path: Path, nets: tuple) -> SG2Checkpoint:
    """Build ``nets`` (on the CPU) from a gandistill checkpoint folder or its JSON."""
    jpath = _resolve_ours(path)
    info = _read_info(jpath)
    entries = info["nets"]
    ckpt = SG2Checkpoint(source="gandistill", meta=dict(info["meta"]))
    for name in nets:
        if name not in entries:
            raise SG2LoadError(f"{jpath}: the checkpoint has no '{name}' (it has {', '.join(entries) or 'nothing'})")
        entry = entries[name]
        cls = OUR_CLASSES[name].get(entry.get("class"))  # type: ignore[arg-type]
        if cls is None:
            raise SG2LoadError(f"{jpath}: '{name}' is a {summary(entry.get('class'))}, expected "
                               f"{' or '.join(repr(k) for k in OUR_CLASSES[name])}")
        state = _read_weights(jpath, entry["file"])
        net = _build(name, entry["kwargs"], state, str(jpath.parent / entry["file"]), cls=cls)
        setattr(ckpt, name, net)
    ckpt.kwargs = {k: v["kwargs"] for k, v in entries.items() if isinstance(v, dict) and "kwargs" in v}
    ckpt.meta["path"] = str(jpath.parent)
    return ckpt


# ------------------------------------------------------------------------------------------------ public API


def load_sg2(path: PathLike, nets: Union[str, Sequence[str]] = ("G_ema",),
             device: Union[str, torch.device] = "cpu") -> SG2Checkpoint:
    """Load StyleGAN2-ADA networks from an NVlabs ``.pkl`` snapshot or a gandistill checkpoint folder/JSON.

    Snapshots of NVlabs' StyleGAN3 repository load too (``gandistill.teachers.stylegan3.snapshot``): a
    StyleGAN3 G comes back as an ``SG3Generator``; ``ckpt.meta["variant"]`` says which family the file is.

    ``nets`` picks which of ``G_ema``, ``G``, ``D`` to build. Networks come back in ``eval()`` mode with
    ``requires_grad=False`` and fp32 weights (call ``.train().requires_grad_(True)`` to fine-tune).
    Raises ``FileNotFoundError`` for a missing path, ``UnsafePickleError`` for a pickle that wants
    anything outside the StyleGAN2-ADA format, ``SG2LoadError`` for everything else about the file
    (corrupt, truncated, not a regular file, over ``MAX_SNAPSHOT_BYTES``, a weights file linked out of
    its folder, wrong kinds of file or network); those messages are one line starting with the path.
    """
    nets = _check_nets(nets)
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"no such StyleGAN2 checkpoint: {p}")
    ckpt = _guarded(p, _load_any, p, nets)
    for name in NET_NAMES:  # outside the guard: a bad device is the caller's error, not the file's
        net = getattr(ckpt, name)
        if net is not None:
            setattr(ckpt, name, net.to(device))
    return ckpt


def _load_any(p: Path, nets: tuple) -> SG2Checkpoint:
    if p.is_dir() or p.suffix == ".json":
        return _load_ours(p, nets)
    if p.suffix == ".safetensors" and (p.parent / JSON_NAME).is_file():
        return _load_ours(p.parent, nets)
    ident = _identity(p)
    hit = _PARSED.get(ident)
    if hit is not None and hit[1] is not None:  # parsed by available_nets just before: hand it over once
        snap, buf, hit[1], hit[2] = hit[1], hit[2], None, None
        return _load_nvlabs(p, snap, nets, buf)
    data = read_regular_file(p, MAX_SNAPSHOT_BYTES, what="checkpoint", mutable=True)
    if data[:2] == b"PK":
        raise SG2LoadError(f"{p}: this is a zip archive (a torch.save file?), not a StyleGAN2-ADA snapshot pickle; "
                           "gandistill never unpickles torch.save files")
    if data[:1] in (b"\x80", b"(", b"}") or p.suffix == ".pkl":
        snap = read_snapshot(data)
        _remember(ident, None, None)
        _PARSED[ident][0] = _snapshot_nets(snap)
        return _load_nvlabs(p, snap, nets, data)  # the tensors view `data`; unused pages are released
    raise SG2LoadError(f"{p}: unrecognised checkpoint (expected an NVlabs .pkl snapshot or a folder with {JSON_NAME})")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: repr(o)))


def save_sg2(out_dir: PathLike, *, G_ema: Optional[Generator] = None, G: Optional[Generator] = None,
             D: Optional[Discriminator] = None, meta: Optional[dict] = None, half: bool = False) -> Path:
    """Write ``<net>.safetensors`` + ``gandistill_sg2.json`` into ``out_dir`` atomically; returns ``out_dir``.

    ``half=True`` stores floating tensors as fp16 (loading casts back to fp32). The JSON is written last,
    so a folder with a JSON is always complete.
    """
    nets = {"G_ema": G_ema, "G": G, "D": D}
    nets = {k: v for k, v in nets.items() if v is not None}
    if not nets:
        raise ValueError("save_sg2 needs at least one of G_ema, G, D")
    for name, net in nets.items():
        want = tuple(OUR_CLASSES[name].values())
        if not isinstance(net, want) or not hasattr(net, "init_kwargs"):
            raise ValueError(f"{name} must be a gandistill {' or '.join(c.__name__ for c in want)}, "
                             f"got {type(net).__name__}")
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".sg2-tmp-", dir=out))
    try:
        entries = {}
        for name, net in nets.items():
            state = {}
            for k, v in net.state_dict().items():
                v = v.detach().to("cpu")
                if half and v.is_floating_point():
                    v = v.to(torch.float16)
                state[k] = v.contiguous().clone()
            fname = f"{name}.safetensors"
            save_file(state, str(tmp / fname), metadata={"format": FORMAT_NAME, "net": name})
            os.chmod(tmp / fname, 0o644)
            entries[name] = {"class": type(net).__name__, "file": fname, "kwargs": _jsonable(net.init_kwargs),
                             "dtype": "float16" if half else "float32"}
        info = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "nets": entries, "meta": _jsonable(meta or {})}
        (tmp / JSON_NAME).write_text(json.dumps(info, indent=1))
        if (out / JSON_NAME).exists():  # the old JSON goes first so a crash never pairs it with new weights
            os.replace(out / JSON_NAME, tmp / f"old-{uuid.uuid4().hex}.json")
        for name in nets:
            os.replace(tmp / f"{name}.safetensors", out / f"{name}.safetensors")
        for stale in set(NET_NAMES) - set(nets):
            (out / f"{stale}.safetensors").unlink(missing_ok=True)
        os.replace(tmp / JSON_NAME, out / JSON_NAME)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def available_nets(path: PathLike) -> tuple:
    """Which of ``G_ema``, ``G``, ``D`` a checkpoint holds (errors as ``load_sg2``)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"no such StyleGAN2 checkpoint: {p}")
    if p.is_dir() or p.suffix == ".json":
        entries = _guarded(p, lambda: _read_info(_resolve_ours(p))["nets"])
        return tuple(n for n in NET_NAMES if n in entries)
    ident = _guarded(p, _identity, p)
    hit = _PARSED.get(ident)
    if hit is not None and hit[0] is not None:
        return hit[0]
    buf = _guarded(p, lambda: read_regular_file(p, MAX_SNAPSHOT_BYTES, what="snapshot", mutable=True))
    snap = _guarded(p, read_snapshot, buf)
    _remember(ident, snap, buf)
    return _PARSED[ident][0]


def convert(src: PathLike, out_dir: PathLike, nets: Union[str, Sequence[str], None] = None,
            half: bool = False) -> Path:
    """Convert an NVlabs snapshot (or one of our checkpoints) to gandistill's format in ``out_dir``.

    ``nets=None`` converts every network the snapshot holds (G_ema, G, D).
    """
    p = Path(src).expanduser()
    if nets is None:
        nets = available_nets(p)
        if not nets:
            raise SG2LoadError(f"{p}: holds no StyleGAN2-ADA Generator or Discriminator")
    ckpt = load_sg2(p, nets=nets)
    meta = dict(ckpt.meta)
    meta["converted_from"] = str(p)
    meta["source"] = ckpt.source
    meta.pop("path", None)
    return save_sg2(out_dir, G_ema=ckpt.G_ema, G=ckpt.G, D=ckpt.D, meta=meta, half=half)
