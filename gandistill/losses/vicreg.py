"""VICReg terms as pure functions of one embedding batch (paper Eq. 9, 10 and the MSE term).

Notation (paper Sec. 4.1): a mini-batch of N representations of dimension D (the paper's M),
``Z in R^{N x D}`` with rows ``z_i`` and columns ``z^j``.

* ``vicreg_var``  (Eq. 9):  L_var(Z) = 1/D sum_j max(0, 1 - sqrt(Var(z^j) + eps)), unbiased Var.
* ``vicreg_cov``  (Eq. 10): L_cov(Z) = 1/D sum_{i != j} C(Z)_ij^2,
  with C(Z) = 1/(N-1) sum_i (z_i - z_bar)(z_i - z_bar)^T.
* ``invariance``  (L_RD):   mean squared error averaged over the N*D entries.
* ``vicreg_loss`` (Eq. 12, the span loss): lambda*L_RD + mu*[L_var(Z1)+L_var(Z2)] + nu*[L_cov(Z1)+L_cov(Z2)].

These match yangyu12/squeeze-and-span (one tensor per call); the official VICReg averages the two
variance terms (``/2``), SnS and Eq. 12 sum them. Every term is computed in float32 (float64 stays
float64) with autocast disabled, whatever the input dtype.

``gather=True`` first all-gathers the rows of every ``torch.distributed`` rank (with gradients,
see :mod:`gandistill.losses.gather`) so the statistics are those of the global batch; it is a
no-op when torch.distributed is not initialised.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Dict

import torch
import torch.nn.functional as F

from .gather import gather_rows

DEFAULT_EPS = 1e-4


def _no_autocast(t: torch.Tensor):
    """Context that turns autocast off for ``t``'s device type (when autocast exists there)."""
    device = getattr(t, "device", None)
    if device is None:
        return nullcontext()
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # device type without autocast support
        return nullcontext()


def _as_float(t: torch.Tensor) -> torch.Tensor:
    """float32 copy of low-precision tensors; float64 is kept (used by gradcheck)."""
    return t if t.dtype == torch.float64 else t.float()


def check_embeddings(z: torch.Tensor, name: str = "z", min_rows: int = 2, check_finite: bool = True) -> None:
    """Raise ``ValueError`` unless ``z`` is a finite 2-D ``[N, D]`` tensor with N >= min_rows, D >= 1."""
    if not isinstance(z, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [N, D], got {type(z).__name__}")
    if z.dim() != 2:
        raise ValueError(f"{name} must be 2-D [N, D] (batch, dim), got shape {tuple(z.shape)}; "
                         "flatten extra dimensions first")
    if not z.is_floating_point():
        raise ValueError(f"{name} must be a real floating-point tensor, got dtype {z.dtype}")
    if z.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (batch size N >= {min_rows}) for batch "
                         f"statistics, got N={z.shape[0]}")
    if z.shape[1] < 1:
        raise ValueError(f"{name} needs at least one feature column, got shape {tuple(z.shape)}")
    if check_finite and not bool(torch.isfinite(z).all()):
        raise ValueError(f"{name} contains NaN or Inf values (shape {tuple(z.shape)}); "
                         "check the learning rate / precision upstream")


def _prepare(z: torch.Tensor, gather: bool, check_finite: bool, name: str = "z") -> torch.Tensor:
    check_embeddings(z, name, min_rows=1, check_finite=check_finite)
    z = _as_float(z)
    if gather:
        z = gather_rows(z)
    if z.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows (batch size N >= 2) for batch statistics, "
                         f"got N={z.shape[0]}")
    return z


def vicreg_var(z: torch.Tensor, eps: float = DEFAULT_EPS, gather: bool = False, *,
               check_finite: bool = True) -> torch.Tensor:
    """Eq. 9: ``mean_j relu(1 - sqrt(Var(z^j) + eps))`` with the unbiased (N-1) variance.

    Args:
        z: ``[N, D]`` embeddings (N >= 2).
        eps: added to the variance before the square root (1e-4 as in VICReg / SnS).
        gather: compute over the rows of all distributed ranks.
        check_finite: raise on NaN/Inf input (one host sync; turn off in hot loops if needed).
    Returns:
        0-dim float32 tensor.
    """
    with _no_autocast(z):
        z = _prepare(z, gather, check_finite)
        std = torch.sqrt(z.var(dim=0, unbiased=True) + eps)
        return F.relu(1.0 - std).mean()


def covariance_matrix(z: torch.Tensor) -> torch.Tensor:
    """C(Z) = 1/(N-1) sum_i (z_i - z_bar)(z_i - z_bar)^T as a ``[D, D]`` matrix (no checks)."""
    zc = z - z.mean(dim=0, keepdim=True)
    return zc.T @ zc / (z.shape[0] - 1)


def vicreg_cov(z: torch.Tensor, gather: bool = False, *, check_finite: bool = True) -> torch.Tensor:
    """Eq. 10: sum of squared off-diagonal entries of the (N-1)-normalised covariance, divided by D.

    Args:
        z: ``[N, D]`` embeddings (N >= 2).
        gather: compute over the rows of all distributed ranks.
        check_finite: raise on NaN/Inf input.
    Returns:
        0-dim float32 tensor.
    """
    with _no_autocast(z):
        z = _prepare(z, gather, check_finite)
        return offdiag_square_sum(z) / z.shape[1]


def offdiag_square_sum(z: torch.Tensor) -> torch.Tensor:
    """sum_{i != j} C(Z)_ij^2 for ``z`` [N, D], without the D x D matrix when N < D.

    ||C||_F^2 = ||Zc^T Zc||_F^2 / (N-1)^2 = ||Zc Zc^T||_F^2 / (N-1)^2 (the two Gram matrices share their
    non-zero eigenvalues), and diag(C)_j = sum_i Zc_ij^2 / (N-1). With the usual N << D (a batch of 32
    against 2048 dims) the N x N Gram matrix costs N/D of the covariance's FLOPs and memory, forward
    and backward; the value is the same sum (float rounding aside).
    """
    n, d = z.shape
    zc = z - z.mean(dim=0, keepdim=True)
    if n >= d:
        c = zc.T @ zc / (n - 1)
        return c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    gram = zc @ zc.T
    diag = zc.pow(2).sum(dim=0)
    return (gram.pow(2).sum() - diag.pow(2).sum()) / (n - 1) ** 2


def invariance(a: torch.Tensor, b: torch.Tensor, *, check_finite: bool = True) -> torch.Tensor:
    """L_RD: mean squared error ``1/(N*D) sum_ij (a_ij - b_ij)^2`` (F.mse_loss, in float32)."""
    for name, t in (("a", a), ("b", b)):
        check_embeddings(t, name, min_rows=1, check_finite=check_finite)
    if a.shape != b.shape:
        raise ValueError(f"invariance needs equal shapes, got a {tuple(a.shape)} and b {tuple(b.shape)}")
    with _no_autocast(a):
        return F.mse_loss(_as_float(a), _as_float(b))


def _weighted_term(fn, z: torch.Tensor, weight: float, **kw) -> torch.Tensor:
    """Evaluate a regulariser; with weight 0 it is only logged (no graph is built)."""
    if weight == 0:
        with torch.no_grad():
            return fn(z, **kw)
    return fn(z, **kw)


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, sim: float = 25.0, var: float = 25.0, cov: float = 1.0,
                gather: bool = False, *, eps: float = DEFAULT_EPS, check_finite: bool = True) -> Dict[str, torch.Tensor]:
    """Span loss (Eq. 12, VICReg as SnS computes it) between two views ``z1``, ``z2`` ([N, D] each).

    ``loss = sim * invariance(z1, z2) + var * (L_var(z1) + L_var(z2)) + cov * (L_cov(z1) + L_cov(z2))``.
    The invariance term stays local (under DDP its gradient average equals the global MSE); the
    var/cov terms use the global batch when ``gather=True``.

    Returns:
        dict with ``loss`` (weighted total) and the *unweighted* terms ``sim``, ``var``, ``cov``
        (var/cov summed over both branches).
    """
    kw = dict(gather=gather, check_finite=check_finite)
    l_sim = invariance(z1, z2, check_finite=check_finite)
    l_var = _weighted_term(vicreg_var, z1, var, eps=eps, **kw) + _weighted_term(vicreg_var, z2, var, eps=eps, **kw)
    l_cov = _weighted_term(vicreg_cov, z1, cov, **kw) + _weighted_term(vicreg_cov, z2, cov, **kw)
    loss = sim * l_sim + var * l_var + cov * l_cov
    return {"loss": loss, "sim": l_sim, "var": l_var, "cov": l_cov}


span_loss = vicreg_loss  # the paper's name for VICReg on two real views (Eq. 12)

__all__ = ["DEFAULT_EPS", "check_embeddings", "covariance_matrix", "offdiag_square_sum", "vicreg_var", "vicreg_cov",
           "invariance", "vicreg_loss", "span_loss"]
