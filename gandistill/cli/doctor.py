"""``gandistill doctor`` (versions, devices, assets) and ``gandistill list KIND`` (selectable names)."""
from __future__ import annotations

import typer
from rich.table import Table

from gandistill.cli.console import console
from gandistill.cli.facts import LIST_KINDS, collect_facts, list_names
from gandistill.io.errors import EXIT_BAD_INPUT


def doctor_cmd() -> None:
    """Print versions, device, threads, offline status and where bundled assets live."""
    table = Table(title="gandistill doctor", show_header=False)
    for key, value in collect_facts():
        table.add_row(key, str(value))
    console.print(table)


def list_cmd(
    kind: str = typer.Argument(..., help=f"one of: {', '.join(LIST_KINDS)}"),
    pattern: str = typer.Option("*", help="fnmatch filter (students only: timm names)"),
) -> None:
    """List the names that can be selected on the command line."""
    try:
        names = list_names(kind, pattern)
    except KeyError as e:
        console.print(f"[red]{e.args[0]}[/red]")
        raise typer.Exit(EXIT_BAD_INPUT)
    for name, desc in names:
        console.print(f"{name:28s} {desc}" if desc else name, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``doctor`` and ``list``."""
    app.command("doctor")(doctor_cmd)
    app.command("list")(list_cmd)
