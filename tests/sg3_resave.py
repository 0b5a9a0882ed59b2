"""Test helper: re-write a (trusted) NVlabs snapshot fixture with changes, in the NVlabs pickle format.

The fixture is unpickled with a permissive unpickler (test data only: persistent records become
``Persistent`` stand-ins, numpy objects real numpy ones), edited in Python, then pickled again; the
records pickle as ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` and numpy objects by
numpy itself (numpy 2 names them ``numpy._core.multiarray.*``), as the official code would.
"""
from __future__ import annotations

import io
import pickle
import sys
import types
from pathlib import Path
from typing import Any, Callable, Optional

_MOD = types.ModuleType("torch_utils.persistence")
_PKG = types.ModuleType("torch_utils")


def _reconstruct_persistent_obj(meta):  # pragma: no cover - the safe loader never calls it
    raise AssertionError("the real reconstruct hook must not run")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
_reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
_MOD._reconstruct_persistent_obj = _reconstruct_persistent_obj
_PKG.persistence = _MOD


class Persistent:
    """A persistent record: ``meta`` (type, version, module_src, class_name, state)."""

    def __init__(self, meta: dict):
        self.meta = meta

    @property
    def state(self) -> dict:
        return self.meta["state"]

    def child(self, *names: str) -> "Persistent":
        rec = self
        for n in names:
            rec = rec.state["_modules"][n]
        return rec

    def __reduce__(self):
        return (_MOD._reconstruct_persistent_obj, (self.meta,))


class _Reader(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return Persistent
        if (module, name) == ("dnnlib.util", "EasyDict"):
            return dict
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def read(path: Path) -> dict:
    return _Reader(io.BytesIO(Path(path).read_bytes())).load()


def write(snap: dict, path: Path, protocol: int = 4, reducer_override: Optional[Callable] = None) -> Path:
    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    sys.modules["torch_utils"], sys.modules["torch_utils.persistence"] = _PKG, _MOD
    try:
        buf = io.BytesIO()
        p = pickle.Pickler(buf, protocol=protocol)
        if reducer_override is not None:
            p.reducer_override = reducer_override
        p.dump(snap)
        Path(path).write_bytes(buf.getvalue())
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return Path(path)


def walk_records(obj: Any, fn: Callable[[Persistent], None], seen: Optional[set] = None) -> None:
    """Call ``fn`` on every persistent record reachable from ``obj`` (each once)."""
    seen = set() if seen is None else seen
    if isinstance(obj, Persistent):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        fn(obj)
        for child in (obj.state.get("_modules") or {}).values():
            walk_records(child, fn, seen)
    elif isinstance(obj, dict):
        for v in obj.values():
            walk_records(v, fn, seen)
