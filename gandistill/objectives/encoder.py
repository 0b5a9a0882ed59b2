"""``encoder``: the post-hoc encoder of Eq. 3 against the frozen generator,
``L = L1 + perceptual + lambda * MSE(E(x), w+)`` (the ``sg2-encoder`` teacher computes it)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from torch import Tensor, nn

from gandistill.augment import resize_center
from gandistill.losses import mix_losses
from gandistill.objectives.base import Head, LossWeights, Objective, register_objective


@register_objective("encoder")
class Encoder(Objective):
    """post-hoc encoder E against frozen G (Eq. 3)"""

    bank_refusal = "the encoder method needs the generator itself (reconstruction loss); drop --bank"
    embedding_keys = ("e_syn", "e_real")

    def check_teacher(self, spec, teacher_name, teacher) -> None:
        if not callable(getattr(teacher, "loss", None)):
            raise ValueError(f"method '{spec.name}' needs the sg2-encoder teacher (got '{teacher_name}')")

    def build_head(self, plan, teacher) -> Head:
        return Head(None, None, int(teacher.target_dims[0]))

    def inputs(self, plan, parts, syn, x_real, cl):
        # "normalised": E sees dataset-normalised images (as the linear probe will); "raw": E sees
        # images in G's range [-1, 1] (SnS's encode.py). G reconstructs in [-1, 1] either way.
        raw = plan.encoder_input == "raw"
        inputs: Dict[str, Any] = {}
        batch: Dict[str, Tensor] = {}
        if syn is not None:
            inputs["x_syn"] = cl(resize_center(syn.images, plan.img_size) if raw else parts.aug_syn(syn.images))
            batch["x_syn"], batch["ws"] = syn.images, syn.ws
        if x_real is not None:
            inputs["x_real"] = cl(resize_center(x_real * 2.0 - 1.0, plan.img_size) if raw else parts.norm_real(x_real))
            batch["x_real"] = x_real * 2.0 - 1.0
        return inputs, batch

    def forward(self, student: nn.Module, head: Optional[nn.Module], x_syn: Optional[Tensor] = None,
                x_real: Optional[Tensor] = None) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        if x_syn is not None:
            out["e_syn"] = student(x_syn)
        if x_real is not None:
            out["e_real"] = student(x_real)
        return out

    def loss(self, w: LossWeights, out, teacher=None, batch=None) -> Dict[str, Tensor]:
        if teacher is None or batch is None:
            raise ValueError("the encoder objective needs the sg2-encoder teacher and the batch images")
        logs: Dict[str, Tensor] = {}
        syn = real = None
        if "e_syn" in out:
            d = teacher.loss(out["e_syn"], batch["x_syn"], batch["ws"])
            syn = d["loss"]
            logs.update({f"syn/{k}": v.detach() for k, v in d.items()})
        if "e_real" in out:
            d = teacher.loss(out["e_real"], batch["x_real"])
            real = d["loss"]
            logs.update({f"real/{k}": v.detach() for k, v in d.items()})
        logs["loss"] = mix_losses(syn, real, w.alpha)
        return logs
