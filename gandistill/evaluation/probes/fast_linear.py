"""``fast``: the cached-feature linear probe (the paper's head, optimiser (SGD or LARS) and schedule on
features extracted once, no augmentation; :func:`gandistill.evaluation.linear.probe_features`)."""
from __future__ import annotations

from typing import List, Optional, Tuple

from gandistill.evaluation.linear import probe_features
from gandistill.evaluation.probes.base import Probe, ProbeInput, Result, register_probe


@register_probe("fast")
class FastLinear(Probe):
    """linear probe on cached features (paper head and schedule, no augmentation)"""

    header = "linear (fast)"
    caption_text = "linear (fast): on cached features"
    order = 2
    default = True
    headline = 1
    paper_twin = "linear"

    def run(self, data: ProbeInput) -> Tuple[Optional[Result], List[str]]:
        cfg = data.config
        res = probe_features(data.train_feats, data.train_labels, data.test_feats, data.test_labels,
                             epochs=cfg.fast_epochs, batch=cfg.batch, lr=cfg.lr, optimizer=cfg.optimizer,
                             device=cfg.device, seed=cfg.seed, num_classes=data.num_classes, progress=data.progress)
        res.pop("history", None)
        return res, []
