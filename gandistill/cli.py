"""The ``gandistill`` command line: a thin Typer shell over the Python API.

Each area registers its own commands (``register(app)``) from the module that owns the API,
so this file only assembles them and holds the cross-cutting ``doctor`` and ``list``.
"""
from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="gandistill",
    help="Distil representations from pretrained GANs into ordinary backbones (Squeeze and Span).",
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
    """Console-script entry point: clear one-line errors for user mistakes, no tracebacks."""
    debug = os.environ.get("GANDISTILL_DEBUG")
    try:
        app()
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        if debug:
            raise
        msg = e.args[0] if getattr(e, "args", None) else str(e)
        console.print(f"[red]error:[/red] {msg}")
        sys.exit(2)
