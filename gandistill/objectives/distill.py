"""``distill``: Squeeze and Span (paper §4).

    z_s  = S(aug(x_syn));   z_t = T_phi(h)          # squeeze: squeeze_loss(z_s, z_t)      (Eq. 11)
    z_r1 = S(aug(x_real));  z_r2 = S(aug(x_real))   # span: vicreg_loss(z_r1, z_r2)       (Eq. 12)
    L = alpha * L_squeeze + (1 - alpha) * L_span

Three student passes, as SnS does, so each gets its own BN statistics -- run as one batched forward
with per-pass BatchNorm statistics when the student has ``forward_groups``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from torch import Tensor, nn

from gandistill.losses import mix_losses, squeeze_loss, vicreg_loss
from gandistill.objectives.base import Head, LossWeights, Objective, register_objective
from gandistill.squeeze import SqueezeModule


@register_objective("distill")
class Distill(Objective):
    """squeeze (Eq. 11) on synthetic images vs T_phi(teacher targets), plus span (Eq. 12) when alpha < 1"""

    needs_synthetic = True
    embedding_keys = ("z_syn", "z_real1")

    def build_head(self, plan: Any, teacher: Any) -> Head:
        head = SqueezeModule(teacher.target_dims, dim=plan.dim, hidden=plan.squeeze_hidden, depth=plan.depth)
        return Head(head, "squeeze", head.out_dim)

    def inputs(self, plan, parts, syn, x_real, cl):
        inputs: Dict[str, Any] = {}
        if syn is not None:
            inputs["x_syn"] = cl(parts.aug_syn(syn.images))
            inputs["targets"] = [t.float() for t in syn.targets]
        if x_real is not None:
            inputs["v1"], inputs["v2"] = cl(parts.aug_real(x_real)), cl(parts.aug_real(x_real))
        return inputs, {}

    def forward(self, student: nn.Module, head: Optional[nn.Module], x_syn: Optional[Tensor] = None,
                targets=None, v1: Optional[Tensor] = None, v2: Optional[Tensor] = None) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        # Student.forward_groups: the passes as ONE batched forward, each BatchNorm normalising every
        # group with its own statistics (the same maths as separate passes, fewer kernel launches)
        fg = getattr(student, "forward_groups", None)
        if x_syn is not None and v1 is not None and fg is not None and x_syn.shape[1:] == v1.shape[1:]:
            out["z_syn"], out["z_real1"], out["z_real2"] = fg([x_syn, v1, v2])
            out["z_target"] = head(targets)
            return out
        if x_syn is not None:
            out["z_syn"] = student(x_syn)
            out["z_target"] = head(targets)
        if v1 is not None:
            out["z_real1"], out["z_real2"] = student(v1), student(v2)
        return out

    def loss(self, w: LossWeights, out, teacher=None, batch=None) -> Dict[str, Tensor]:
        logs: Dict[str, Tensor] = {}
        sq = sp = None
        if "z_syn" in out:
            d = squeeze_loss(out["z_syn"], out["z_target"], w.sim, w.var, w.cov, var_cov_on=w.var_cov_on,
                             gather=w.gather)
            sq = d["loss"]
            logs.update({f"squeeze/{k}": v.detach() for k, v in d.items()})
        if "z_real1" in out:
            d = vicreg_loss(out["z_real1"], out["z_real2"], w.sim, w.var, w.cov, gather=w.gather)
            sp = d["loss"]
            logs.update({f"span/{k}": v.detach() for k, v in d.items()})
        logs["loss"] = mix_losses(sq, sp, w.alpha)
        return logs
