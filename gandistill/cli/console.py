"""The one rich Console every ``gandistill`` command prints through (tests swap its file via CliRunner)."""
from __future__ import annotations

from rich.console import Console

console = Console()


def say(text: object) -> None:
    """Print a plain line: no markup, no highlighting, no wrapping (paths and numbers stay intact);
    a line starting ``warning: `` (e.g. a label-conditioned teacher) gets a yellow prefix."""
    s = str(text)
    if s.startswith("warning: "):
        console.print("[bold yellow]warning:[/bold yellow] ", end="")
        s = s[len("warning: "):]
    console.print(s, markup=False, highlight=False, soft_wrap=True)


__all__ = ["console", "say"]
