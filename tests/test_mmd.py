"""Squared MMD (Table 6) against an independent loop statement of the unbiased estimator."""
import math

import pytest
import torch

from gandistill.evaluation.mmd import median_bandwidth, mmd2_unbiased


def loop_mmd2(x, y, k):
    """Gretton et al. 2012, Lemma 6, written as plain loops over Python floats."""
    x, y = x.tolist(), y.tolist()
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(a, b) for a in x for b in y) / (m * n)
    return sxx + syy - 2 * sxy


def gauss(sigma):
    return lambda a, b: math.exp(-sum((u - v) ** 2 for u, v in zip(a, b)) / (2 * sigma ** 2))


def poly(d):
    return lambda a, b: (sum(u * v for u, v in zip(a, b)) / d + 1) ** 3


def loop_median(x, y):
    z = torch.cat([x, y]).tolist()
    d = sorted(math.dist(z[i], z[j]) for i in range(len(z)) for j in range(i + 1, len(z)))
    mid = len(d) // 2
    return d[mid] if len(d) % 2 else d[mid - 1]   # torch.median returns the lower middle value


def test_gaussian_mmd_equals_the_loop_with_fixed_and_median_bandwidth():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=g)
    y = torch.randn(9, 3, generator=g) * 1.5 + 0.7
    for sigma in (0.5, 2.0):
        res = mmd2_unbiased(x, y, sigma=sigma)
        assert res["mmd2"] == pytest.approx(loop_mmd2(x.double(), y.double(), gauss(sigma)), rel=1e-10, abs=1e-12)
    med = loop_median(x.double(), y.double())
    assert median_bandwidth(x, y) == pytest.approx(med, rel=1e-9)
    res = mmd2_unbiased(x, y)
    assert res["sigma"] == pytest.approx(med, rel=1e-9)
    assert res["mmd2"] == pytest.approx(loop_mmd2(x.double(), y.double(), gauss(med)), rel=1e-9)
    assert (res["m"], res["n"], res["kernel"]) == (7, 9, "gaussian")


def test_poly_kernel_is_the_kid_kernel():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 4, generator=g), torch.randn(5, 4, generator=g) + 0.3
    res = mmd2_unbiased(x, y, kernel="poly")
    assert res["mmd2"] == pytest.approx(loop_mmd2(x.double(), y.double(), poly(4)), rel=1e-10)
    assert res["sigma"] is None


def test_mmd_separates_shifted_samples_and_is_symmetric():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(200, 5, generator=g), torch.randn(200, 5, generator=g)
    shifted = torch.randn(200, 5, generator=g) + 1.0
    same, diff = mmd2_unbiased(a, b, sigma=2.0)["mmd2"], mmd2_unbiased(a, shifted, sigma=2.0)["mmd2"]
    assert abs(same) < 0.02 < diff
    assert mmd2_unbiased(shifted, a, sigma=2.0)["mmd2"] == pytest.approx(diff, rel=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="widths"):
        mmd2_unbiased(torch.randn(4, 2), torch.randn(4, 3))
    with pytest.raises(ValueError, match="at least 2"):
        mmd2_unbiased(torch.randn(1, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="kernel"):
        mmd2_unbiased(torch.randn(4, 2), torch.randn(4, 2), kernel="laplace")
    with pytest.raises(ValueError, match="non-finite"):
        mmd2_unbiased(torch.tensor([[0.0], [float("nan")]]), torch.randn(3, 1))
    with pytest.raises(ValueError, match="positive"):
        mmd2_unbiased(torch.randn(4, 2), torch.randn(4, 2), sigma=0.0)
