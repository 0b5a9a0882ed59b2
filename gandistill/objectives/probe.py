"""``probe``: no training -- a linear probe on the frozen teacher's features (``d-direct``, the
discriminator's direct use of Table 1; :func:`gandistill.engine.probe.probe_only` runs it)."""
from __future__ import annotations

from gandistill.objectives.base import Objective, register_objective


@register_objective("probe")
class DirectProbe(Objective):
    """no training: a linear probe on the frozen discriminator's features"""

    trains = False
