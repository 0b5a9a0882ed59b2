"""``vicreg``: VICReg between two augmented views of real / synthetic / mixed images (Table 2)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch
from torch import Tensor, nn

from gandistill.losses import vicreg_loss
from gandistill.objectives.base import LossWeights, Objective, register_objective


def two_views(parts: Any, syn: Any, x_real: Optional[Tensor], cl) -> Dict[str, Any]:
    """Two augmented views of the batch: the synthetic images first, then the real ones."""
    v1: List[Tensor] = []
    v2: List[Tensor] = []
    if syn is not None:
        v1.append(parts.aug_syn(syn.images))
        v2.append(parts.aug_syn(syn.images))
    if x_real is not None:
        v1.append(parts.aug_real(x_real))
        v2.append(parts.aug_real(x_real))
    return {"v1": cl(torch.cat(v1)), "v2": cl(torch.cat(v2))}


def two_passes(student: nn.Module, v1: Tensor, v2: Tensor) -> Dict[str, Tensor]:
    """``z1, z2``: the student on both views (one batched forward when it has ``forward_groups``)."""
    fg = getattr(student, "forward_groups", None)
    z1, z2 = fg([v1, v2]) if fg is not None else (student(v1), student(v2))
    return {"z1": z1, "z2": z2}


@register_objective("vicreg")
class VICReg(Objective):
    """VICReg between two augmented views of real / synthetic / mixed images"""

    embedding_keys = ("z1",)

    def inputs(self, plan, parts, syn, x_real, cl):
        return two_views(parts, syn, x_real, cl), {}

    def forward(self, student: nn.Module, head: Optional[nn.Module], v1: Tensor = None, v2: Tensor = None):
        return two_passes(student, v1, v2)

    def loss(self, w: LossWeights, out, teacher=None, batch=None) -> Dict[str, Tensor]:
        d = vicreg_loss(out["z1"], out["z2"], w.sim, w.var, w.cov, gather=w.gather)
        logs = {k: v.detach() for k, v in d.items() if k != "loss"}
        logs["loss"] = d["loss"]
        return logs
