"""Typed validation of every JSON gandistill reads: one bounded parser and a tiny schema language.

:func:`load_json` reads a file through :func:`gandistill.io.files.read_bytes` (regular file, size cap),
parses it refusing ``NaN``/``Infinity`` literals, numbers that overflow to infinity, nesting deeper
than :data:`MAX_DEPTH`, more than :data:`MAX_NODES` values, strings over :data:`MAX_STR` and integers
over :data:`MAX_INT_DIGITS` digits, then checks it against a schema. Any failure is one
:class:`~gandistill.io.errors.ConfigError` (or the ``error`` type the caller passes) line naming the file
and the key (``config.student_kwargs.drop_rate``).

Schemas are plain values: :class:`Int`, :class:`Num`, :class:`Str`, :class:`Bool`, :class:`Null`,
:class:`List`, :class:`Obj` (named fields, required or optional, and what to do with other keys),
:class:`Map` (string keys, one value schema), :class:`OneOf`, and :data:`ANY` (any bounded JSON).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple, Type

from gandistill.io.errors import ConfigError, GandistillError, UnsafeFileError, one_line
from gandistill.io.files import PathLike, read_bytes

MAX_DEPTH = 32
MAX_NODES = 200_000
MAX_STR = 65_536
MAX_INT_DIGITS = 40


class SchemaError(Exception):
    """Internal: a value does not fit its schema at ``key``."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


def _show(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return f"a {'JSON object' if isinstance(v, dict) else 'list'} of {len(v)}"
    return one_line(repr(v), 40)


# ------------------------------------------------------------------------------------------------ schemas


class Schema:
    def check(self, v: Any, key: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Schema):
    lo: Optional[int] = None
    hi: Optional[int] = None

    def check(self, v: Any, key: str) -> Any:
        if type(v) is not int:
            raise SchemaError(key, f"must be an integer, got {_show(v)}")
        if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            raise SchemaError(key, f"must be in [{self.lo}, {self.hi}], got {_show(v)}")
        return v


@dataclass(frozen=True)
class Num(Schema):
    lo: Optional[float] = None
    hi: Optional[float] = None

    def check(self, v: Any, key: str) -> Any:
        if type(v) not in (int, float) or not math.isfinite(v):
            raise SchemaError(key, f"must be a finite number, got {_show(v)}")
        if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            raise SchemaError(key, f"must be in [{self.lo}, {self.hi}], got {_show(v)}")
        return v


@dataclass(frozen=True)
class Str(Schema):
    max_len: int = 4096
    choices: Optional[Tuple[str, ...]] = None

    def check(self, v: Any, key: str) -> Any:
        if type(v) is not str:
            raise SchemaError(key, f"must be a string, got {_show(v)}")
        if len(v) > self.max_len:
            raise SchemaError(key, f"must be at most {self.max_len} characters, got {len(v)}")
        if self.choices is not None and v not in self.choices:
            raise SchemaError(key, f"must be one of {', '.join(map(repr, self.choices))}, got {_show(v)}")
        return v


@dataclass(frozen=True)
class Bool(Schema):
    def check(self, v: Any, key: str) -> Any:
        if type(v) is not bool:
            raise SchemaError(key, f"must be true or false, got {_show(v)}")
        return v


@dataclass(frozen=True)
class Null(Schema):
    def check(self, v: Any, key: str) -> Any:
        if v is not None:
            raise SchemaError(key, f"must be null, got {_show(v)}")
        return v


@dataclass(frozen=True)
class OneOf(Schema):
    options: Tuple[Schema, ...]

    def check(self, v: Any, key: str) -> Any:
        errors = []
        for s in self.options:
            try:
                return s.check(v, key)
            except SchemaError as e:  # keep the key of a deeper failure (a field of an object option)
                errors.append(e.message if e.key == key else f"'{e.key}' {e.message}")
        raise SchemaError(key, " or ".join(dict.fromkeys(errors)))


def Opt(s: Schema) -> OneOf:
    """``s`` or null."""
    return OneOf((Null(), s))


@dataclass(frozen=True)
class List(Schema):
    item: Schema
    max_len: int = 4096
    min_len: int = 0
    length: Optional[int] = None

    def check(self, v: Any, key: str) -> Any:
        if type(v) is not list:
            raise SchemaError(key, f"must be a list, got {_show(v)}")
        if len(v) > self.max_len or len(v) < self.min_len or (self.length is not None and len(v) != self.length):
            want = self.length if self.length is not None else f"{self.min_len}..{self.max_len}"
            raise SchemaError(key, f"must have {want} items, got {len(v)}")
        for i, x in enumerate(v):
            self.item.check(x, f"{key}[{i}]")
        return v


class _AnyJSON(Schema):
    """Any JSON value (already bounded by the parser)."""

    def check(self, v: Any, key: str) -> Any:
        return v


ANY = _AnyJSON()


@dataclass(frozen=True)
class Obj(Schema):
    """A JSON object with ``required`` and ``optional`` fields; ``extra``: ``"allow"`` other keys (their
    values any bounded JSON) or ``"refuse"`` them."""

    required: Dict[str, Schema] = field(default_factory=dict)
    optional: Dict[str, Schema] = field(default_factory=dict)
    extra: str = "allow"
    max_keys: int = 4096

    def check(self, v: Any, key: str) -> Any:
        if type(v) is not dict:
            raise SchemaError(key, f"must be a JSON object, got {_show(v)}")
        if len(v) > self.max_keys:
            raise SchemaError(key, f"has {len(v)} keys (at most {self.max_keys})")
        for name, s in self.required.items():
            if name not in v:
                raise SchemaError(_join(key, name), "is missing")
            s.check(v[name], _join(key, name))
        for name, s in self.optional.items():
            if name in v:
                s.check(v[name], _join(key, name))
        if self.extra == "refuse":
            unknown = [k for k in v if k not in self.required and k not in self.optional]
            if unknown:
                raise SchemaError(_join(key, one_line(unknown[0], 60)), "is not a known key "
                                  f"(known: {', '.join(sorted({*self.required, *self.optional}))})")
        return v


@dataclass(frozen=True)
class Map(Schema):
    """A JSON object with any (bounded) string keys and values of one schema."""

    value: Schema
    max_keys: int = 4096

    def check(self, v: Any, key: str) -> Any:
        if type(v) is not dict:
            raise SchemaError(key, f"must be a JSON object, got {_show(v)}")
        if len(v) > self.max_keys:
            raise SchemaError(key, f"has {len(v)} keys (at most {self.max_keys})")
        for k, x in v.items():
            self.value.check(x, _join(key, one_line(k, 60)))
        return v


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


# ------------------------------------------------------------------------------------------------ parsing


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed (numbers must be finite)")


def _parse_int(text: str) -> int:
    digits = len(text) - text.startswith("-")  # the sign is not a digit
    if digits > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > 400:
        raise ValueError(f"a number of {len(text)} characters")
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"the number {one_line(text, 40)} is not finite")
    return v


def _bounds(obj: Any) -> None:
    """Depth, node count and string length of a parsed value (iterative: no recursion)."""
    todo = [(obj, 1)]
    nodes = 0
    while todo:
        v, d = todo.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise ValueError(f"more than {MAX_NODES} values")
        if d > MAX_DEPTH:
            raise ValueError(f"nested more than {MAX_DEPTH} deep")
        if type(v) is dict:
            for k, x in v.items():
                if len(k) > MAX_STR:
                    raise ValueError(f"a key of {len(k)} characters")
                todo.append((x, d + 1))
        elif type(v) is list:
            todo.extend((x, d + 1) for x in v)
        elif type(v) is str and len(v) > MAX_STR:
            raise ValueError(f"a string of {len(v)} characters (at most {MAX_STR})")


def parse_json(raw: bytes) -> Any:
    """Parse bounded JSON (see the module docstring); ``ValueError`` with a short reason otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    # values first, cheaply (C-speed counts): every value but the last is followed by a comma or a colon
    if text.count(",") + text.count(":") + text.count("[") + text.count("{") > 2 * MAX_NODES:
        raise ValueError(f"more than {MAX_NODES} values")
    try:
        obj = json.loads(text, parse_constant=_refuse_constant, parse_int=_parse_int, parse_float=_parse_float)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} deep") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"corrupt JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    _bounds(obj)
    return obj


def check(value: Any, schema: Schema, where: PathLike = "", error: Type[GandistillError] = ConfigError,
          what: str = "JSON") -> Any:
    """``value`` if it fits ``schema``; else one ``error`` line naming ``where`` and the key."""
    try:
        return schema.check(value, "")
    except SchemaError as e:
        at = f"'{e.key}' " if e.key else "the top level "
        raise error(f"{what}: {at}{e.message}", path=where or None) from None


def load_json(path: PathLike, schema: Schema = ANY, *, what: str = "JSON file",
              error: Type[GandistillError] = ConfigError, max_bytes: Optional[int] = None,
              kind: str = "json") -> Any:
    """Read ``path`` (regular file, capped), parse bounded JSON and check it against ``schema``.

    ``FileNotFoundError`` for a missing file; every other failure one ``error`` line.
    """
    try:
        raw = read_bytes(path, what, max_bytes, kind)
    except UnsafeFileError as e:
        if isinstance(e, error):
            raise
        raise error(str(e)) from None
    return check_raw(raw, schema, path, error, what)


def check_raw(raw: bytes, schema: Schema, where: PathLike, error: Type[GandistillError] = ConfigError,
              what: str = "JSON") -> Any:
    """Parse bytes already read (e.g. a bank header) and check them; one ``error`` line on failure."""
    try:
        obj = parse_json(raw)
    except ValueError as e:
        raise error(f"{what}: {e}", path=where) from None
    return check(obj, schema, where, error, what)


def json_bounded(value: Any) -> bool:
    """True when ``value`` passes the parser's bounds (used by writers' self-checks and tests)."""
    try:
        _bounds(value)
        return True
    except ValueError:
        return False


__all__ = ["ANY", "Bool", "Int", "List", "Map", "Null", "Num", "Obj", "OneOf", "Opt", "Schema", "Str", "check",
           "check_raw", "json_bounded", "load_json", "parse_json"]
