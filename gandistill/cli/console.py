"""The one rich Console every ``gandistill`` command prints through (tests swap its file via CliRunner)."""
from __future__ import annotations

from rich.console import Console

console = Console()


def say(text: object) -> None:
    """Print a plain line: no markup, no highlighting, no wrapping (paths and numbers stay intact)."""
    console.print(str(text), markup=False, highlight=False, soft_wrap=True)


__all__ = ["console", "say"]
