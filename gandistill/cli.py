"""The ``gandistill`` command line: a thin Typer shell over the Python API.

Each area registers its own commands (``register(app)``) from the module that owns the API,
so this file only assembles them and holds the cross-cutting ``doctor`` and ``list``.
"""
from __future__ import annotations

import errno
import os
import sys

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gandistill.io.errors import EXIT_BAD_INPUT, EXIT_WRITE, GandistillError, one_line, show_path

app = typer.Typer(
    name="gandistill",
    help="Distil representations from pretrained GANs into ordinary backbones (Squeeze and Span).\n\n"
         "Exit codes: 0 success; 2 bad input or usage (a file was refused or a setting is invalid: one "
         "line on stderr, no traceback; GANDISTILL_DEBUG=1 shows it); 3 the run stopped itself (a guard "
         "tripped); 4 an output could not be written.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


@app.command()
def doctor() -> None:
    """Print versions, device, threads, offline status and where bundled assets live."""
    from gandistill.doctor import collect_facts

    table = Table(title="gandistill doctor", show_header=False)
    for key, value in collect_facts():
        table.add_row(key, str(value))
    console.print(table)


LIST_KINDS = ("teachers", "students", "methods", "datasets", "augmentations", "sg2-configs")


@app.command("list")
def list_cmd(
    kind: str = typer.Argument(..., help=f"one of: {', '.join(LIST_KINDS)}"),
    pattern: str = typer.Option("*", help="fnmatch filter (students only: timm names)"),
) -> None:
    """List the names that can be selected on the command line."""
    from gandistill.doctor import list_names

    try:
        names = list_names(kind, pattern)
    except KeyError as e:
        console.print(f"[red]{e.args[0]}[/red]")
        raise typer.Exit(2)
    for name, desc in names:
        console.print(f"{name:28s} {desc}" if desc else name)


def _register_all() -> None:
    from gandistill.teachers.stylegan2 import cli as sg2_cli
    from gandistill.gan import cli as gan_cli
    from gandistill import cli_eval, cli_fit

    sg2_cli.register(app)
    gan_cli.register(app)
    cli_fit.register(app)
    cli_eval.register(app)
    __import__("gandistill.cli_bank").cli_bank.register(app)  # gandistill bank build|info
    __import__("gandistill.export").export.register(app)
    __import__("gandistill.cli_compare").cli_compare.register(app)
    __import__("gandistill.cli_plot").cli_plot.register(app)


_register_all()


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
