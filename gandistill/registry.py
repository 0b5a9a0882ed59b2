"""One small generic registry: register by name, create by name, list names.

Unknown names raise a ``KeyError`` that lists the closest known names (timm style). Looking a name
up (or listing the names) first loads the plug-ins named in ``GANDISTILL_PLUGINS``
(:mod:`gandistill.plugins`), so a registry always includes what plug-ins registered.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, Generic, List, Optional, TypeVar

from gandistill.plugins import load_plugins

T = TypeVar("T")


def close_matches(name: str, choices, n: int = 5) -> List[str]:
    """Names in ``choices`` that look like ``name`` (fuzzy, then prefix/substring)."""
    choices = list(choices)
    found = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    for c in choices:
        if len(found) >= n:
            break
        if c not in found and (name.lower() in c.lower() or c.lower().startswith(name.lower()[:4])):
            found.append(c)
    return found


class Registry(Generic[T]):
    """A named table of factories.

    >>> r = Registry("colour")
    >>> @r.register("red")
    ... def red(): return "#f00"
    >>> r.create("red")
    '#f00'
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, Callable[..., T]] = {}
        self._help: Dict[str, str] = {}

    def register(self, name: Optional[str] = None, *, help: str = "", overwrite: bool = False):
        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            key = name or getattr(fn, "__name__", None)
            if not key:
                raise ValueError(f"cannot infer a {self.kind} name for {fn!r}")
            if key in self._entries and not overwrite:
                raise KeyError(f"{self.kind} '{key}' is already registered (pass overwrite=True to replace it)")
            self._entries[key] = fn
            doc = help or (fn.__doc__ or "").strip().splitlines()[0:1]
            self._help[key] = doc if isinstance(doc, str) else (doc[0] if doc else "")
            return fn

        return deco

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a plug-in's tests clean up after themselves); unknown names are ignored."""
        self._entries.pop(name, None)
        self._help.pop(name, None)

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._entries:
            load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            hint = close_matches(name, self._entries)
            msg = f"unknown {self.kind} '{name}'."
            if hint:
                msg += f" Did you mean: {', '.join(hint)}?"
            msg += f" Known {self.kind}s: {', '.join(sorted(self._entries)) or '(none)'}"
            raise KeyError(msg) from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        return self.get(name)(*args, **kwargs)

    def names(self) -> List[str]:
        load_plugins()
        return sorted(self._entries)

    def describe(self, name: str) -> str:
        return self._help.get(name, "")

    def __contains__(self, name: str) -> bool:
        if name not in self._entries:
            load_plugins()
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
