"""Plug-ins: modules outside gandistill that register objectives, methods, probes or teachers.

A plug-in is any importable module that registers at import time::

    # theirs.py
    from gandistill.methods import MethodSpec, register_method
    from gandistill.objectives import Objective, register_objective

    @register_objective("mine")
    class Mine(Objective): ...

    register_method(MethodSpec("theirs", "mine", teacher=None, alpha=0.0))

and is named in the environment variable ``GANDISTILL_PLUGINS`` (comma-separated module names,
importable from ``sys.path`` -- the current directory included when running ``python -m``)::

    GANDISTILL_PLUGINS=theirs gandistill fit --method theirs

An installed package can instead declare an entry point in the group ``gandistill.plugins``
(``[project.entry-points."gandistill.plugins"] theirs = "theirs"``). Plug-ins load the first time a
registry is asked for a name or its names (:meth:`gandistill.registry.Registry.get`), so the CLI,
the Python API and the worker processes of ``torchrun`` all see them; :func:`load_plugins` loads them
explicitly.
"""
from __future__ import annotations

import importlib
import os
from importlib import metadata
from typing import List, Optional, Sequence, Set

ENV = "GANDISTILL_PLUGINS"
ENTRY_POINT_GROUP = "gandistill.plugins"

_loaded: Set[str] = set()
_entry_points_done = False


def _entry_point_modules() -> List[str]:
    try:
        return [ep.value.split(":")[0] for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    except Exception:  # pragma: no cover - broken metadata must not stop gandistill
        return []


def load_plugins(modules: Optional[Sequence[str]] = None) -> List[str]:
    """Import the plug-in modules not imported yet: ``modules``, else those of ``GANDISTILL_PLUGINS``
    and of the ``gandistill.plugins`` entry points. Returns the modules imported by this call.

    A module that cannot be imported raises ``ImportError`` naming the variable it came from."""
    global _entry_points_done
    if modules is None:
        names = [m.strip() for m in os.environ.get(ENV, "").split(",") if m.strip()]
        if not _entry_points_done:
            _entry_points_done = True
            names += _entry_point_modules()
    else:
        names = list(modules)
    new = [m for m in names if m not in _loaded]
    _loaded.update(new)          # before importing: a plug-in that looks a name up does not recurse
    for m in new:
        try:
            importlib.import_module(m)
        except ImportError as e:
            _loaded.discard(m)
            raise ImportError(f"gandistill plug-in {m!r} ({ENV} or entry point {ENTRY_POINT_GROUP!r}) "
                              f"cannot be imported: {e}") from e
    return new
