"""``simsiam``: SimSiam (Chen & He 2021) -- predictor MLP, symmetric negative cosine with stop-gradient."""
from __future__ import annotations

from typing import Dict, Optional

from torch import Tensor, nn
from torch.nn import functional as F

from gandistill.objectives.base import Head, LossWeights, Objective, register_objective
from gandistill.objectives.vicreg import two_passes, two_views


class SimSiamPredictor(nn.Module):
    """SimSiam's predictor h: Linear(dim, hidden, no bias)-BN-ReLU-Linear(hidden, dim)."""

    def __init__(self, dim: int = 2048, hidden: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, dim))
        self.out_dim = dim

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """D(p, z) = -cos(p, stopgrad(z)), averaged over the batch (in fp32)."""
    return -F.cosine_similarity(p.float(), z.detach().float(), dim=1).mean()


def simsiam_loss(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor) -> Dict[str, Tensor]:
    """L = D(p1, z2)/2 + D(p2, z1)/2 (symmetric, stop-gradient on z)."""
    loss = 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)
    return {"loss": loss, "sim": loss.detach()}


@register_objective("simsiam")
class SimSiam(Objective):
    """SimSiam: predictor MLP, symmetric negative cosine with stop-gradient"""

    embedding_keys = ("z1",)

    def build_head(self, plan, teacher) -> Head:
        return Head(SimSiamPredictor(plan.dim), "predictor", plan.dim)

    def inputs(self, plan, parts, syn, x_real, cl):
        return two_views(parts, syn, x_real, cl), {}

    def forward(self, student: nn.Module, head: Optional[nn.Module], v1: Tensor = None, v2: Tensor = None):
        out = two_passes(student, v1, v2)
        out["p1"], out["p2"] = head(out["z1"]), head(out["z2"])
        return out

    def loss(self, w: LossWeights, out, teacher=None, batch=None) -> Dict[str, Tensor]:
        d = simsiam_loss(out["p1"], out["p2"], out["z1"], out["z2"])
        return {"loss": d["loss"]}
