"""How command-line flags map onto the typed config dataclasses, so that each default lives once.

Every flag that sets a config field defaults to ``None``, meaning "the file's value, else the dataclass
default"; :func:`opt` writes that default into the flag's help text from the dataclass itself. Closed
choices are ``Literal`` types (listed by ``--help``, refused at parse time); choices that live in a
registry use :func:`registry_choice`, checked against the registry when the value is parsed.
"""
from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import typing
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import typer

from gandistill.cli.console import say
from gandistill.engine.config import LOGGERS
from gandistill.io.config_file import config_yaml, field_default
from gandistill.registry import close_matches


#: ``--logger`` values of fit, compare and gan train (repeatable; jsonl is always on)
Logger = enum.Enum("Logger", {n: n for n in LOGGERS}, type=str)  # type: ignore[misc]


def logger_names(values: Optional[List[Any]]) -> Optional[Tuple[str, ...]]:
    """``--logger`` values as the config's ``loggers`` tuple (jsonl left out: always on); None when not given."""
    if values is None:
        return None
    return tuple(v.value for v in values if v.value != "jsonl") or None


def default_text(cls: type, name: str) -> str:
    """``[default: X]`` for field ``name`` of ``cls`` (``None`` shown as its documented meaning)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    v = field_default(f)
    return "" if v is None or v in ({}, ()) else f"[default: {v}]"


def opt(cls: type, name: str, help: str, *decls: str, **kw: Any) -> Any:
    """A ``typer.Option`` for field ``name`` of ``cls``: default ``None`` (= the file's value, else the
    dataclass default), the dataclass default written into the help."""
    return typer.Option(None, *decls, help=f"{help} {default_text(cls, name)}".strip(), show_default=False, **kw)


def registry_choice(what: str, names: Callable[[], Iterable[str]]) -> Callable[[str], str]:
    """A parser that accepts a name ``names()`` holds *when the flag is parsed* (plug-ins registered by
    then count), and fails at parse time with the closest names otherwise."""
    def parse(value: str) -> str:
        known = list(names())
        if value not in known:
            hint = close_matches(value, known, n=3)
            raise typer.BadParameter(f"unknown {what} {value!r}; "
                                     + (f"did you mean {', '.join(hint)}?" if hint else f"one of {', '.join(known)}"))
        return value
    return parse


def comma_choice(what: str, choices: Union[Iterable[str], Callable[[], Iterable[str]]]) -> Callable[[str], str]:
    """A parser for a comma-separated list whose items must all be in ``choices`` (a callable is asked at
    parse time, so names registered by plug-ins count)."""

    def parse(value: str) -> str:
        allowed = list(choices() if callable(choices) else choices)
        bad = [v for v in value.replace(" ", "").split(",") if v and v not in allowed]
        if bad:
            raise typer.BadParameter(f"unknown {what} {', '.join(map(repr, bad))}; choose from {', '.join(allowed)}")
        return value
    return parse


def parse_value(v: str) -> Any:
    """``KEY=VALUE`` values: true/false and none/null (any case), else JSON (numbers, lists, quoted
    strings), else the text itself."""
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return json.loads(v)
    except ValueError:
        return v


def parse_kv(items: Optional[List[str]], what: str) -> Dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (dashes in keys become underscores)."""
    out: Dict[str, Any] = {}
    for it in items or []:
        if "=" not in it:
            raise typer.BadParameter(f"{what} expects KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip().replace("-", "_")] = parse_value(v.strip())
    return out


def given(values: Mapping[str, Any], cls: type, rename: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """The flags that set a field of ``cls`` and were given (not ``None``), under the field's name."""
    names = {f.name for f in dataclasses.fields(cls)}
    rename = rename or {}
    out = {}
    for k, v in values.items():
        field_name = rename.get(k, k)
        if field_name in names and v is not None:
            out[field_name] = list(v) if isinstance(v, tuple) else v
    return out


def print_config(cls: type, values: Mapping[str, Any], command: Any, title: str,
                 fields_of: Optional[Mapping[str, str]] = None) -> None:
    """``--print-config``: the full commented YAML (the CLI's help texts stand in for undocumented fields;
    ``fields_of`` maps a flag's name to its field where they differ)."""
    fields_of = fields_of or {}
    docs = {fields_of.get(p.name, p.name): (p.help or "").split(" [default:")[0]
            for p in getattr(command, "params", [])}
    say(config_yaml(cls, values, extra_docs=docs, title=title).rstrip("\n"))




@dataclasses.dataclass(frozen=True)
class Flag:
    """One command-line flag that sets one dataclass field (``field`` when the names differ)."""

    help: str
    type: Any = None                      # default: the field's annotation
    decls: Tuple[str, ...] = ()           # e.g. ("--teacher-ckpt",) or ("--eval-fast/--eval-full",)
    kw: Mapping[str, Any] = dataclasses.field(default_factory=dict)   # extra typer.Option kwargs (parser=...)
    field: Optional[str] = None


def with_field_flags(cls: type, flags: Mapping[str, Flag]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command ``def cmd(own params..., **fields)`` one option per entry of ``flags``, each
    defaulting to ``None`` with the dataclass default in its help; Typer reads the built signature."""
    hints = typing.get_type_hints(cls)

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.kind != p.VAR_KEYWORD]
        made = []
        for name, f in flags.items():
            fname = f.field or name
            tp = f.type if f.type is not None else hints[fname]
            made.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[tp],
                                          default=opt(cls, fname, f.help, *f.decls, **dict(f.kw))))
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + made
        fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        fn.__annotations__ = {p.name: p.annotation for p in params}
        fn.field_flags = {name: (f.field or name) for name, f in flags.items()}  # type: ignore[attr-defined]
        return fn
    return deco


__all__ = ["opt", "default_text", "registry_choice", "comma_choice", "parse_value", "parse_kv", "given",
           "print_config", "Flag", "with_field_flags", "Logger", "logger_names"]
