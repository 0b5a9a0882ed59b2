"""``linear``: the paper's linear protocol (90 epochs of SGD -- or LARS, SnS's STL-10 protocol -- on
augmented views through the frozen model; :func:`gandistill.evaluation.linear.linear_probe`).
Needs a model: precomputed features are skipped with a note."""
from __future__ import annotations

from typing import List, Optional, Tuple

from gandistill.evaluation.linear import linear_probe
from gandistill.evaluation.probes.base import Probe, ProbeInput, Result, register_probe


@register_probe("linear")
class PaperLinear(Probe):
    """the paper's linear protocol on augmented views (needs a model)"""

    header = "linear (paper)"
    caption_text = "linear (paper): the paper's protocol"
    order = 3
    headline = 0
    fast_twin = "fast"

    def run(self, data: ProbeInput) -> Tuple[Optional[Result], List[str]]:
        if data.model is None:
            return None, ["linear (paper protocol) skipped: precomputed features have no model to augment through"]
        cfg = data.config
        res = linear_probe(data.model, data.train, data.test, epochs=cfg.linear_epochs, batch=cfg.batch, lr=cfg.lr,
                           optimizer=cfg.optimizer, fast=False, device=cfg.device, seed=cfg.seed,
                           num_classes=data.num_classes, progress=data.progress)
        res.pop("history", None)
        return res, []
