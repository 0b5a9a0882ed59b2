"""One helper: turn configs (dicts, tuples, numbers, strings) into JSON-ready values."""
from __future__ import annotations

from typing import Any


def jsonable(v: Any, sort_keys: bool = False) -> Any:
    """Lists for tuples, ``str`` keys, ``"<TypeName>"`` for anything not JSON (e.g. an in-memory G);
    ``sort_keys`` orders dict keys (for fingerprints that must not depend on insertion order)."""
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [jsonable(x, sort_keys) for x in v]
    if isinstance(v, dict):
        items = sorted(v.items()) if sort_keys else v.items()
        return {str(k): jsonable(x, sort_keys) for k, x in items}
    return f"<{type(v).__name__}>"
