"""One error family for everything gandistill refuses.

Every refusal of bad input (a hostile or corrupt file, a wrong setting) is a :class:`GandistillError`:
one line, bounded length, control characters escaped, naming the file when there is one. The CLI
prints ``str(error)`` verbatim (no markup interpretation) and exits with :attr:`exit_code`.

Exit codes (documented in ``gandistill --help`` and the README):

* 0 -- success;
* 2 -- bad input or usage: a file was refused or a setting is invalid (:class:`GandistillError`);
* 3 -- the run stopped itself (a guard tripped: NaN loss, collapse) -- :class:`TrainingStopped`;
* 4 -- an output could not be written (disk full, read-only folder).
"""
from __future__ import annotations

import os
from typing import Optional, Union

#: the longest message an error will carry (anything longer is cut with an ellipsis)
MAX_MESSAGE = 400
#: the longest rendering of a path inside a message
MAX_PATH = 160

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_STOPPED = 3
EXIT_WRITE = 4


def one_line(text: object, limit: int = MAX_MESSAGE) -> str:
    """``text`` as one printable line of at most ``limit`` characters: control characters (newlines,
    terminal escapes) escaped as ``\\xNN`` / ``\\n``, the middle cut with ``...`` when too long."""
    s = str(text)
    if len(s) > 4 * limit:  # never escape a megabyte to throw most of it away
        s = s[: 2 * limit] + s[-2 * limit:]
    out = []
    for ch in s:
        if ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append(" ")
        elif ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    s = "".join(out)
    if len(s) > limit:
        half = (limit - 3) // 2
        s = s[:half] + "..." + s[len(s) - (limit - 3 - half):]
    return s


def show_path(path: Union[str, "os.PathLike[str]", None], limit: int = MAX_PATH) -> str:
    """A path for a message: escaped, one line, at most ``limit`` characters."""
    if path is None:
        return "<none>"
    try:
        p = os.fsdecode(path)
    except (TypeError, ValueError):
        p = repr(path)
    return one_line(p, limit)


class GandistillError(ValueError):
    """Base of every refusal gandistill makes for bad input. ``str(e)`` is one clean, bounded line.

    ``GandistillError(message, path=None)``: when ``path`` is given and not already named in the message,
    the line starts with it (``"<path>: message"``). A ``ValueError`` so that older ``except ValueError``
    callers keep working.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: object = "", path: Optional[Union[str, "os.PathLike[str]"]] = None) -> None:
        msg = str(message)
        if path is not None:
            shown = show_path(path)
            if shown not in msg:
                msg = f"{shown}: {msg}"
        self.path = None if path is None else os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
        super().__init__(one_line(msg))

    def __str__(self) -> str:  # always the sanitised line, even if args were changed afterwards
        return one_line(self.args[0] if self.args else "")


class UnsafeFileError(GandistillError):
    """A file was refused before or while reading it (not a regular file, too large, hostile, corrupt)."""


class ConfigError(GandistillError):
    """A setting or a config file is invalid (unknown key, wrong type, out of range)."""
