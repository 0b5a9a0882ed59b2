"""Distillation losses: the squeeze loss (paper Eq. 11) and the squeeze/span mix.

Notation: Z_s = S_theta(a[G(w)]) the student's projected representation of an augmented
synthetic image (the paper's Z_f in Eq. 11), Z_g = T_phi(h^g(w)) the squeezed teacher target.

    L_squeeze = lambda * L_RD(Z_s, Z_g) + mu * L_var(.) + nu * L_cov(.)

Which branches the var/cov regularisers see is a choice:

* ``var_cov_on="student"`` (default) follows yangyu12/squeeze-and-span: var/cov on Z_s only;
  the teacher's var/cov are computed without gradient and only reported (``var_target``,
  ``cov_target``).
* ``var_cov_on="both"`` is Eq. 11 as printed: mu*[L_var(Z_s) + L_var(Z_g)] + nu*[L_cov(Z_s) + L_cov(Z_g)].

Z_g is *not* detached: the squeeze module T_phi learns through the L_RD term (as in SnS).
Vanilla distillation (Eq. 5/6) is ``squeeze_loss(..., sim=1, var=0, cov=0)``.
"""
from __future__ import annotations

from typing import Dict, Literal

import torch

from .vicreg import DEFAULT_EPS, _weighted_term, invariance, vicreg_cov, vicreg_var

VarCovOn = Literal["student", "both"]


def squeeze_loss(z_student: torch.Tensor, z_target: torch.Tensor, sim: float = 25.0, var: float = 25.0,
                 cov: float = 1.0, var_cov_on: VarCovOn = "student", gather: bool = False, *,
                 eps: float = DEFAULT_EPS, check_finite: bool = True) -> Dict[str, torch.Tensor]:
    """Squeeze loss (Eq. 11) between student ``z_student`` and squeezed target ``z_target`` ([N, D]).

    Returns:
        dict with ``loss`` (weighted total), the unweighted terms ``sim``, ``var``, ``cov`` (var/cov
        over the regularised branches, see module doc) and, for logging, ``var_target`` and
        ``cov_target`` (the target branch's terms; detached when ``var_cov_on="student"``).
    """
    if var_cov_on not in ("student", "both"):
        raise ValueError(f"var_cov_on must be 'student' or 'both', got {var_cov_on!r}")
    kw = dict(gather=gather, check_finite=check_finite)
    l_sim = invariance(z_student, z_target, check_finite=check_finite)
    var_s = _weighted_term(vicreg_var, z_student, var, eps=eps, **kw)
    cov_s = _weighted_term(vicreg_cov, z_student, cov, **kw)
    if var_cov_on == "both":
        var_t = _weighted_term(vicreg_var, z_target, var, eps=eps, **kw)
        cov_t = _weighted_term(vicreg_cov, z_target, cov, **kw)
        l_var, l_cov = var_s + var_t, cov_s + cov_t
    else:
        with torch.no_grad():
            var_t = vicreg_var(z_target, eps=eps, **kw)
            cov_t = vicreg_cov(z_target, **kw)
        l_var, l_cov = var_s, cov_s
    loss = sim * l_sim + var * l_var + cov * l_cov
    return {"loss": loss, "sim": l_sim, "var": l_var, "cov": l_cov,
            "var_target": var_t.detach(), "cov_target": cov_t.detach()}


def mix_losses(squeeze: torch.Tensor | None, span: torch.Tensor | None, alpha: float = 0.5) -> torch.Tensor:
    """L_total = alpha * L_squeeze + (1 - alpha) * L_span (alpha = synthetic share of the batch).

    A missing term (``None``) must have weight 0 (alpha == 0 or alpha == 1).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if squeeze is None and alpha > 0:
        raise ValueError(f"alpha={alpha} > 0 needs a squeeze loss")
    if span is None and alpha < 1:
        raise ValueError(f"alpha={alpha} < 1 needs a span loss")
    if squeeze is None:
        return span  # type: ignore[return-value]
    if span is None:
        return squeeze
    return alpha * squeeze + (1.0 - alpha) * span


__all__ = ["VarCovOn", "squeeze_loss", "mix_losses"]
