"""LARS: layer-wise adaptive rate scaling (You, Gitman, Ginsburg 2017, arXiv:1708.03888).

SnS's STL-10 linear probe (reference §1.7) trains its head with LARS at batch 4096, lr 0.1 scaled
to ``0.1 * 4096 / 256 = 1.6``, trust coefficient ``eta = 0.001``, 90 epochs. The reference states
nothing else about the optimiser; the choices below fill the gaps and say where they come from:

- Update, per parameter ``w`` with gradient ``g`` (weight decay ``beta``, momentum ``mu``, global
  rate ``gamma``)::

      lambda = eta * ||w|| / (||g|| + beta * ||w|| + eps)     (lambda = 1 if ||w|| = 0 or ||g|| = 0)
      d      = lambda * (g + beta * w)
      v      = mu * v + d                                    (v = d on the first step)
      w      = w - gamma * v

  i.e. the trust ratio rescales the decayed gradient and plain momentum SGD (PyTorch convention:
  the global rate multiplies the buffer) takes the step. You et al.'s Alg. 1 puts ``gamma`` inside
  the buffer instead; the two agree while ``gamma`` is constant (the probes change it once per epoch).
  The ratio falls back to 1 when either norm is zero (a zero-initialised bias, a zero gradient), so
  the step is always finite; ``eps`` (default 1e-8) is the usual guard, not from the reference.
- Which parameters are adapted: the reference is silent. Following You et al. 2017, whose local
  rate is defined per layer for the layer's weights (the paper says nothing of biases), and the
  common LARS practice of leaving biases and normalisation parameters alone, parameters with
  ``ndim <= 1`` (biases, BN/LN affine, scalars) are excluded by default (``exclude_1d=True``): they
  take the plain momentum-SGD step ``d = g + beta * w``. ``exclude_1d=False`` adapts every
  parameter, which is what SnS's code does (it wraps ``torch.optim.SGD`` in apex's ``LARC``, which
  adapts ``fc.bias`` too; read from its ``eval_classification.py``, not in the reference).
- Momentum and weight decay: the reference gives none for the STL-10 probe; the probes default to
  the CIFAR probe's SGD settings, momentum 0.9 and weight decay 0 (also SnS's argparse defaults).
- No clipping of ``lambda * gamma`` (the "scaling" variant; SnS passes ``clip=False``).
- One small departure from apex's LARC: when ``||g|| = 0`` apex drops the weight-decay term for
  that step, here ``d = beta * w`` is still applied (identical at the probes' ``beta = 0``).
"""
from __future__ import annotations

from typing import Iterable, Optional, Union

import torch
from torch import Tensor
from torch.optim import Optimizer

ParamsT = Union[Iterable[Tensor], Iterable[dict]]


def trust_ratio(w: Tensor, g: Tensor, eta: float, weight_decay: float, eps: float) -> Tensor:
    """``eta * ||w|| / (||g|| + wd * ||w|| + eps)``, or 1 when ``||w||`` or ``||g||`` is 0 (a 0-d tensor)."""
    w_norm = torch.linalg.vector_norm(w)
    g_norm = torch.linalg.vector_norm(g)
    ratio = eta * w_norm / (g_norm + weight_decay * w_norm + eps)
    return torch.where((w_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio))


class LARS(Optimizer):
    """Momentum SGD with a per-parameter trust ratio (see the module docstring for the update).

    ``lr``: global rate ``gamma``; ``trust_coefficient``: ``eta``; ``exclude_1d``: leave parameters
    with ``ndim <= 1`` un-adapted (plain momentum SGD with weight decay). Options may be set per
    parameter group, like any ``torch.optim`` optimiser.
    """

    def __init__(self, params: ParamsT, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, eps: float = 1e-8, exclude_1d: bool = True) -> None:
        check_lars_hparams(lr, momentum, weight_decay, trust_coefficient, eps)
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient,
                        eps=eps, exclude_1d=exclude_1d)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Optional[callable] = None) -> Optional[Tensor]:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            eta, eps, exclude = group["trust_coefficient"], group["eps"], group["exclude_1d"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LARS does not support sparse gradients")
                g = p.grad
                d = g.add(p, alpha=wd) if wd != 0 else g.clone()
                if not (exclude and p.ndim <= 1):
                    d.mul_(trust_ratio(p, g, eta, wd, eps).to(d.dtype))
                if mu != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        state["momentum_buffer"] = buf = d
                    else:
                        buf.mul_(mu).add_(d)
                    d = buf
                p.add_(d, alpha=-lr)
        return loss


def check_lars_hparams(lr: float, momentum: float, weight_decay: float, trust_coefficient: float,
                       eps: float = 1e-8) -> None:
    """Clear errors for LARS settings that cannot work."""
    if not lr > 0:
        raise ValueError(f"LARS: lr must be > 0, got {lr}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"LARS: momentum must lie in [0, 1), got {momentum}")
    if not weight_decay >= 0:
        raise ValueError(f"LARS: weight_decay must be >= 0, got {weight_decay}")
    if not trust_coefficient > 0:
        raise ValueError(f"LARS: trust_coefficient must be > 0, got {trust_coefficient}")
    if not eps >= 0:
        raise ValueError(f"LARS: eps must be >= 0, got {eps}")
