"""The ``gandistill`` command line: a thin Typer shell over the Python API.

One module per command group, each with one ``register(app)`` that adds its commands (a command or a
sub-app) to :data:`app`; this file only assembles them and holds :func:`main`. All output goes through
:data:`gandistill.cli.console.console`.
"""
from __future__ import annotations

import errno
import os
import sys

import typer
from rich.console import Console
from rich.text import Text

from gandistill.cli import bank, compare, doctor, eval, export, fit, gan, plot, sg2, transfer
from gandistill.io.errors import EXIT_BAD_INPUT, EXIT_WRITE, GandistillError, one_line, show_path

EXIT_CODES_HELP = ("Exit codes: 0 success; 2 bad input or usage (a refused file, an invalid setting: one line "
                   "on stderr, no traceback; GANDISTILL_DEBUG=1 shows it); "
                   "3 the run stopped itself (a guard tripped: non-finite loss, collapse); "
                   "4 an output could not be written.")

app = typer.Typer(
    name="gandistill",
    help="Distil representations from pretrained GANs into ordinary backbones (Squeeze and Span).\n\n"
         + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _group in (doctor, fit, eval, compare, transfer, plot, bank, gan, sg2, export):
    _group.register(app)


def main() -> None:
    """Console-script entry point: every refusal of bad input is one plain line on stderr and exit code 2.

    The line is printed without rich markup interpretation (a path holding ``[/]`` is printed as is),
    with control characters escaped and its length bounded (:func:`gandistill.io.errors.one_line`).
    """
    debug = os.environ.get("GANDISTILL_DEBUG")
    try:
        app()
    except GandistillError as e:
        if debug:
            raise
        _fail(str(e), e.exit_code)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError, OSError, RecursionError, OverflowError) as e:
        if debug:
            raise
        write_failed = isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT)
        code = EXIT_WRITE if write_failed else EXIT_BAD_INPUT
        if e.args and isinstance(e.args[0], str):
            msg = e.args[0]
        elif isinstance(e, OSError) and e.strerror:
            msg = f"{e.strerror}: {show_path(e.filename)}" if e.filename is not None else e.strerror
        else:
            msg = str(e)
        _fail(msg or type(e).__name__, code)


def _fail(message: str, code: int) -> None:
    """Print ``error: <message>`` as one line on stderr, markup never interpreted; exit with ``code``."""
    err = Console(stderr=True, soft_wrap=True)
    line = Text("error: ", style="red")
    line.append(one_line(message))
    err.print(line, markup=False, highlight=False, emoji=False)
    sys.exit(code)


__all__ = ["app", "main", "EXIT_CODES_HELP"]
