"""Our own writer of StyleGAN2-ADA (NVlabs, PyTorch) snapshot pickles, for tests and benchmarks only.

Written from the format's description (``tests/fixtures/README.md``)
and the fixture's opcode stream; no NVlabs code. A snapshot is a plain ``pickle.dump`` of a dict whose
networks are *persistent records*: ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with
``meta = {type, version, module_src, class_name, state}`` and ``state`` the module's attribute dict, nested
records under ``_modules``. Tensors are pickled by torch itself (``_rebuild_parameter`` /
``_rebuild_tensor_v2`` / ``torch.storage._load_from_bytes`` of a legacy ``torch.save`` blob), as in the
fixture. ``dnnlib.util.EasyDict`` holds nested kwargs. Gains are numpy float64 scalars.

The global names the format uses are made picklable by name while writing (``fake_modules``): plain
functions and a dict subclass registered under NVlabs' module names, removed afterwards.

    snap = snapshot(G=G, D=D, G_ema=G_ema)
    write_snapshot(path, snap, protocol=3)     # any protocol 0-5
"""
from __future__ import annotations

import collections
import contextlib
import copy
import io
import pickle
import sys
import types
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

import numpy as np
import torch
from torch import nn

PERSISTENCE = "torch_utils.persistence"
MODULE_SRC = "<source removed>"


def _reconstruct_persistent_obj(meta):  # pragma: no cover - never called: only its name is pickled
    raise AssertionError("the writer's stand-in is never called")


class EasyDict(dict):
    """Pickles as ``dnnlib.util.EasyDict`` (a dict subclass: NEWOBJ + SETITEMS, or copyreg at protocols 0-1)."""


@contextlib.contextmanager
def fake_modules() -> Iterator[None]:
    """Register ``torch_utils.persistence`` and ``dnnlib.util`` (name-only stand-ins) while pickling."""
    mods = {name: types.ModuleType(name) for name in ("torch_utils", PERSISTENCE, "dnnlib", "dnnlib.util")}
    _reconstruct_persistent_obj.__module__ = PERSISTENCE
    mods[PERSISTENCE]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    mods["dnnlib.util"].EasyDict = EasyDict
    mods["torch_utils"].persistence, mods["dnnlib"].util = mods[PERSISTENCE], mods["dnnlib.util"]
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class Record:
    """One persistent object: pickles as ``_reconstruct_persistent_obj(meta)``."""

    def __init__(self, class_name: str, state: Dict[str, Any], module_src: str = MODULE_SRC):
        self.meta = dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state)

    @property
    def state(self) -> Dict[str, Any]:
        return self.meta["state"]

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))

    def __deepcopy__(self, memo):
        return Record(self.meta["class_name"], copy.deepcopy(self.meta["state"], memo), self.meta["module_src"])


def easy(obj: Any) -> Any:
    """Nested dicts -> EasyDict (as ``train.py`` builds kwargs)."""
    if isinstance(obj, dict):
        return EasyDict({k: easy(v) for k, v in obj.items()})
    return obj


_PLAIN = (bool, int, str, type(None))


def _attribute(v: Any) -> Any:
    """A module attribute as NVlabs' modules hold it: floats as numpy float64 (like ``weight_gain``)."""
    if type(v) is float:
        return np.float64(v)
    if isinstance(v, _PLAIN):
        return v
    if isinstance(v, (list, tuple)) and all(isinstance(x, (*_PLAIN, float)) for x in v):
        return list(v)
    return _SKIP


_SKIP = object()
TensorFn = Callable[[str, torch.Tensor], Any]


def record_of(module: nn.Module, init_kwargs: Optional[dict] = None, path: str = "",
              tensor_fn: Optional[TensorFn] = None) -> Record:
    """``module`` (one of our StyleGAN2 networks) as a tree of persistent records, with its state dict's
    exact names. ``tensor_fn(dotted_name, tensor)`` may replace what is pickled for a tensor."""
    state: Dict[str, Any] = {}
    for k, v in module.__dict__.items():
        if k == "_parameters":
            state[k] = collections.OrderedDict(
                (n, None if p is None else (tensor_fn(path + n, p) if tensor_fn else p)) for n, p in v.items())
        elif k == "_buffers":
            state[k] = collections.OrderedDict(
                (n, None if b is None else (tensor_fn(path + n, b) if tensor_fn else b)) for n, b in v.items())
        elif k == "_non_persistent_buffers_set":
            state[k] = set(v)
        elif k == "_modules":
            state[k] = collections.OrderedDict(
                (n, None if c is None else record_of(c, None, f"{path}{n}.", tensor_fn)) for n, c in v.items())
        elif k.startswith("_") and isinstance(v, (dict, collections.OrderedDict)):
            state[k] = collections.OrderedDict()  # the (empty) hook dicts
        elif k in ("init_kwargs",):
            continue
        else:
            a = _attribute(v)
            if a is not _SKIP:
                state[k] = a
    state["_init_args"] = ()
    state["_init_kwargs"] = easy(dict(init_kwargs or {}))
    return Record(type(module).__name__, state)


def snapshot(G: Optional[nn.Module] = None, D: Optional[nn.Module] = None, G_ema: Optional[nn.Module] = None,
             augment_p: Optional[float] = 0.25, training_set_kwargs: Optional[dict] = None,
             tensor_fn: Optional[TensorFn] = None) -> Dict[str, Any]:
    """The snapshot dict the training loop writes (key order as in the fixture)."""
    snap: Dict[str, Any] = {"training_set_kwargs": easy(training_set_kwargs if training_set_kwargs is not None else
                                                        dict(class_name="training.dataset.ImageFolderDataset",
                                                             path="data.zip", use_labels=False, max_size=50000,
                                                             xflip=False, resolution=32))}
    for name, net in (("G", G), ("D", D), ("G_ema", G_ema)):
        if net is not None:
            snap[name] = record_of(net, copy.deepcopy(getattr(net, "init_kwargs", {})), "", tensor_fn)
    if augment_p is not None:
        pipe = nn.Module()
        pipe.register_buffer("p", torch.tensor(float(augment_p)))
        rec = record_of(pipe)
        rec.meta["class_name"] = "AugmentPipe"
        rec.state.update(xflip=np.float64(1.0), rotate90=np.float64(1.0), xint=np.float64(1.0))
        snap["augment_pipe"] = rec
    else:
        snap["augment_pipe"] = None
    return snap


def dumps(snap: Dict[str, Any], protocol: int = 4) -> bytes:
    """The snapshot's bytes at pickle ``protocol`` (0-5)."""
    buf = io.BytesIO()
    write_to(buf, snap, protocol)
    return buf.getvalue()


def write_to(f: Any, snap: Dict[str, Any], protocol: int = 4) -> None:
    with fake_modules(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage deprecation warnings from torch's own reducers
        pickle.dump(snap, f, protocol=protocol)


def write_snapshot(path: Path, snap: Dict[str, Any], protocol: int = 4) -> Path:
    path = Path(path)
    with open(path, "wb") as f:
        write_to(f, snap, protocol)
    return path
