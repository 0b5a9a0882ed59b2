"""The ``gandistill`` command line: a thin Typer shell over the Python API.

One module per command group, each with one ``register(app)`` that adds its commands (a command or a
sub-app) to :data:`app`; this file only assembles them and holds :func:`main`. All output goes through
:data:`gandistill.cli.console.console`.
"""
from __future__ import annotations

import os
import sys

import typer

from gandistill.cli import bank, compare, doctor, eval, export, fit, gan, plot, sg2, transfer
from gandistill.cli.console import console

EXIT_CODES_HELP = ("Exit codes: 0 success; 2 bad input or usage (a refused file, an invalid setting); "
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
    """Console-script entry point: clear one-line errors for user mistakes, no tracebacks."""
    debug = os.environ.get("GANDISTILL_DEBUG")
    try:
        app()
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        if debug:
            raise
        msg = e.args[0] if getattr(e, "args", None) else str(e)
        console.print(f"[red]error:[/red] {msg}", soft_wrap=True)
        sys.exit(2)


__all__ = ["app", "main", "EXIT_CODES_HELP"]
