"""Configs as files: read a YAML / JSON config into a typed dataclass's fields, and write a complete,
commented YAML of every field and its default (``--config FILE`` and ``--print-config``).

A file holds the dataclass's fields as top-level keys. A run's own ``config.json`` (which nests the
fields under ``"config"`` next to ``"resolved"``) is read as its ``"config"`` part, so re-running from it
gives the very same config. Unknown keys and values of the wrong type are a :class:`ConfigError` naming
the key (and the closest known ones).
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Type, Union

import yaml

from gandistill.io.errors import ConfigError, show_path
from gandistill.registry import close_matches

#: config files larger than this are refused before parsing
MAX_CONFIG_BYTES = 1 << 20


def field_docs(cls: type) -> Dict[str, str]:
    """Each field's documentation, taken from the class source: the trailing ``# ...`` comment on the
    field's line, or ``#: ...`` lines right after it."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    docs: Dict[str, str] = {}
    last: Optional[str] = None
    for line in lines:
        m = re.match(r"\s+(\w+)\s*:\s*[^=#]+(?:=.*?)?(?:\s#:?\s*(.*))?$", line)
        if m and m.group(1) in names:
            last = m.group(1)
            if m.group(2):
                docs[last] = m.group(2).strip()
            continue
        c = re.match(r"\s+#:\s*(.*)$", line)
        if c and last is not None:
            docs[last] = (docs.get(last, "") + " " + c.group(1).strip()).strip()
        elif line.strip():
            last = None
    return docs


def field_default(f: dataclasses.Field) -> Any:
    """A field's default value (calling its ``default_factory``)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _plain(v: Any) -> Any:
    """YAML-friendly value: tuples as lists, everything else JSON-able."""
    return json.loads(json.dumps(v, default=str))


def config_yaml(cls: type, values: Optional[Mapping[str, Any]] = None,
                extra_docs: Optional[Mapping[str, str]] = None, title: str = "") -> str:
    """Every field of ``cls`` as ``key: value  # doc`` YAML lines (``values`` over the defaults).
    The docs come from the class (:func:`field_docs`), else from ``extra_docs`` (e.g. the CLI's help)."""
    docs = {**(extra_docs or {}), **field_docs(cls)}
    out = [f"# {title}" if title else f"# {cls.__name__}: every field and its default",
           "# pass it back with --config FILE; command-line flags override the file", ""]
    for f in dataclasses.fields(cls):
        v = (values or {}).get(f.name, field_default(f))
        text = yaml.safe_dump({f.name: _plain(v)}, default_flow_style=True, sort_keys=False, width=10 ** 6).strip()
        text = text[1:-1] if text.startswith("{") else text
        doc = docs.get(f.name, "")
        out.append(f"{text}  # {doc}" if doc else text)
    return "\n".join(out) + "\n"


def _type_ok(value: Any, tp: Any) -> bool:
    """Does a value read from a file fit the annotation ``tp`` (ints are floats; lists are tuples)?"""
    if tp is Any:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union or origin is types.UnionType:   # Optional[int] and int | None
        return any(_type_ok(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if tp is bool:
        return isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (dict, Dict) or tp is dict:
        return isinstance(value, dict)
    if origin in (tuple, list) or tp in (tuple, list):
        return isinstance(value, (list, tuple))
    return True


def check_fields(cls: type, d: Mapping[str, Any], where: str = "config") -> Dict[str, Any]:
    """``d`` restricted to known fields of the right type; a :class:`ConfigError` for anything else."""
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = str(k).replace("-", "_")
        if key not in known:
            hint = close_matches(key, known, n=3)
            raise ConfigError(f"{where}: unknown key {str(k)!r} for {cls.__name__}"
                              + (f" (closest: {', '.join(hint)})" if hint else f"; known: {', '.join(known)}"))
        if not _type_ok(v, hints.get(key, Any)):
            raise ConfigError(f"{where}: {key} = {v!r} is not of type {_type_name(hints.get(key, Any))}")
        out[key] = tuple(v) if isinstance(v, list) and "Tuple" in repr(hints.get(key)) else v
    return out


def _type_name(tp: Any) -> str:
    """``int``, ``Optional[int]``, ``Tuple[str, ...]``: the annotation as written."""
    return getattr(tp, "__name__", None) if isinstance(tp, type) else repr(tp).replace("typing.", "").replace(
        "NoneType", "None")


def read_config_file(path: Union[str, Path], cls: type) -> Dict[str, Any]:
    """The fields a YAML / JSON file sets for ``cls`` (a run's config.json: its ``"config"`` part)."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file larger than {MAX_CONFIG_BYTES} bytes", path=p)
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the config file ({type(e).__name__})", path=p) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"not valid YAML/JSON{where}", path=p) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("a config file must hold a mapping of field: value", path=p)
    if isinstance(data.get("config"), dict) and ("resolved" in data or "versions" in data or "kimg_done" in data):
        data = data["config"]          # a run's own record: the config it was started with
    return check_fields(cls, data, where=show_path(p))


def merge_config(cls: Type[Any], file: Optional[Union[str, Path]], flags: Mapping[str, Any],
                 base: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Field values: ``base`` (e.g. a preset), then the file, then the flags that were given (not None)."""
    values: Dict[str, Any] = dict(base or {})
    if file:
        values.update(read_config_file(file, cls))
    values.update(check_fields(cls, {k: v for k, v in flags.items() if v is not None}, where="command line"))
    return values


__all__ = ["config_yaml", "field_docs", "field_default", "check_fields", "read_config_file", "merge_config",
           "MAX_CONFIG_BYTES"]
