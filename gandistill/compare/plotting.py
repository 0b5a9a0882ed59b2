"""The one plotting path of the comparisons: matplotlib (the optional extra ``plot``), headless.

``pyplot()`` imports matplotlib on first use, selects the non-interactive Agg backend and returns
``matplotlib.pyplot``; when matplotlib is missing it raises ``MissingPlotExtra``, one line naming the extra.
"""
from __future__ import annotations

from typing import Any

from gandistill.io.errors import GandistillError

PLOT_HINT = "pip install 'gandistill[plot]'"


class MissingPlotExtra(GandistillError):
    """A PNG was asked for but matplotlib (the optional extra ``plot``) is not installed."""


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or ``MissingPlotExtra``."""
    try:
        import matplotlib  # lazy: optional extra 'plot' (only the PNG writers need it)
    except ImportError:
        raise MissingPlotExtra(f"drawing a PNG needs matplotlib: {PLOT_HINT}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: optional extra 'plot'

    return plt


__all__ = ["MissingPlotExtra", "PLOT_HINT", "pyplot"]
