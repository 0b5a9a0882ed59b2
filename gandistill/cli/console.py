"""The one rich Console every ``gandistill`` command prints through (tests swap its file via CliRunner)."""
from __future__ import annotations

import sys

from rich.console import Console

#: on a terminal rich follows its width; in a log file or pipe 120 columns, so the closing probe table
#: (five columns of "56.2 ± 5.1") is not folded into two lines per cell as at rich's default 80
console = Console(width=None if sys.stdout.isatty() else 120)


def say(text: object) -> None:
    """Print a plain line: no markup, no highlighting, no wrapping (paths and numbers stay intact);
    a line starting ``warning: `` (e.g. a label-conditioned teacher) gets a yellow prefix."""
    s = str(text)
    if s.startswith("warning: "):
        console.print("[bold yellow]warning:[/bold yellow] ", end="")
        s = s[len("warning: "):]
    console.print(s, markup=False, highlight=False, soft_wrap=True)


__all__ = ["console", "say"]
