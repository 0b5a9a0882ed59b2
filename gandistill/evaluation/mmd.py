"""Squared maximum mean discrepancy between two samples of representations (Table 6).

Unbiased estimator (Gretton et al. 2012, Lemma 6; the form Binkowski et al. 2018, "Demystifying
MMD GANs", Eq. 3, use for KID) for X = {x_i}_{i<=m}, Y = {y_j}_{j<=n}:

    MMD^2_u = 1/(m(m-1)) sum_{i != i'} k(x_i, x_i') + 1/(n(n-1)) sum_{j != j'} k(y_j, y_j')
              - 2/(mn) sum_{i,j} k(x_i, y_j)

It can be slightly negative when the two distributions agree. Kernels:

* ``gaussian`` (default): k(a, b) = exp(-||a - b||^2 / (2 sigma^2)). Bandwidth rule (``sigma="median"``):
  sigma = the median Euclidean distance over all pairs of distinct points of the pooled sample
  X u Y (the median heuristic, Gretton et al. 2012), computed once per call; pass a number to fix it.
* ``poly``: k(a, b) = (a.b / d + 1)^3, the KID kernel of Binkowski et al.

Everything runs in float64.
"""
from __future__ import annotations

from typing import Dict, Optional, Union

import torch
from torch import Tensor

KERNELS = ("gaussian", "poly")


def _check(x: Tensor, y: Tensor) -> None:
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"MMD needs two [N, D] samples, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"the samples have different widths: {x.shape[1]} vs {y.shape[1]}")
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 points per sample, got {x.shape[0]} and {y.shape[0]}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("the samples contain non-finite values")


def _sqdist(a: Tensor, b: Tensor) -> Tensor:
    d = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return d.clamp_min_(0.0)


def median_bandwidth(x: Tensor, y: Tensor) -> float:
    """The median pairwise Euclidean distance between distinct points of the pooled sample."""
    z = torch.cat([x, y]).double()
    d = _sqdist(z, z)
    iu = torch.triu_indices(z.shape[0], z.shape[0], offset=1)
    med = float(d[iu[0], iu[1]].median().sqrt())
    return med if med > 0 else 1.0


def _kernel(kind: str, a: Tensor, b: Tensor, sigma: float) -> Tensor:
    if kind == "gaussian":
        return torch.exp(-_sqdist(a, b) / (2.0 * sigma * sigma))
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: Tensor, y: Tensor, kernel: str = "gaussian",
                  sigma: Union[str, float] = "median") -> Dict[str, float]:
    """The unbiased MMD^2 between ``x [m, D]`` and ``y [n, D]``.

    Returns ``{"mmd2", "sigma" (None for poly), "m", "n", "kernel"}``.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    _check(x, y)
    x, y = x.double(), y.double()
    s: Optional[float] = None
    if kernel == "gaussian":
        s = median_bandwidth(x, y) if sigma == "median" else float(sigma)
        if not s > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
    m, n = x.shape[0], y.shape[0]
    kxx, kyy, kxy = _kernel(kernel, x, x, s or 0.0), _kernel(kernel, y, y, s or 0.0), _kernel(kernel, x, y, s or 0.0)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    mmd2 = float(sxx + syy - 2.0 * kxy.mean())
    return {"mmd2": mmd2, "sigma": s, "m": m, "n": n, "kernel": kernel}


__all__ = ["mmd2_unbiased", "median_bandwidth", "KERNELS"]
