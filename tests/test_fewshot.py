"""Tests for the few-shot probe: the L-BFGS fit against an independent Newton solve of the same
regularised objective (gradient and Hessian written out by hand), sampling, standardisation,
the span reduction, skipping, and accuracy on separable blobs. Tiny data, CPU, seconds."""
from __future__ import annotations

import math

import pytest
import torch

from gandistill.evaluation.features import EvalDataError
from gandistill.evaluation.fewshot import (
    DEFAULT_L2,
    fewshot_probe,
    fit_logreg,
    sample_shots,
    span_basis,
    zscore,
)


def blobs(n_per, num_classes, dim, sep=8.0, seed=0, noise=1.0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=g, dtype=torch.float64) * sep
    y = torch.arange(num_classes).repeat_interleave(n_per)
    return centres[y] + noise * torch.randn(len(y), dim, generator=g, dtype=torch.float64), y


def newton_logreg(x, y, num_classes, l2, iters=50):
    """Independent solve of J(W,b) = mean_i CE + l2/2 ||W||^2 by damped Newton steps with the
    gradient and Hessian of multinomial logistic regression written out (no autograd)."""
    n, d = x.shape
    xt = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], 1)          # [n, d+1], last column = bias
    C, P = num_classes, d + 1
    theta = torch.zeros(C, P, dtype=x.dtype)
    Y = torch.nn.functional.one_hot(y, C).to(x.dtype)
    reg = torch.ones(C, P, dtype=x.dtype)
    reg[:, -1] = 0.0                                                  # bias not penalised

    def obj(th):
        z = xt @ th.T
        return float((torch.logsumexp(z, 1) - (z * Y).sum(1)).mean() + 0.5 * l2 * (th[:, :-1] ** 2).sum())

    for _ in range(iters):
        z = xt @ theta.T
        p = torch.softmax(z, 1)
        grad = ((p - Y).T @ xt) / n + l2 * reg * theta                  # [C, P]
        H = torch.zeros(C * P, C * P, dtype=x.dtype)
        for i in range(n):
            S = torch.diag(p[i]) - torch.outer(p[i], p[i])               # [C, C]
            H += torch.kron(S, torch.outer(xt[i], xt[i])) / n
        H += torch.diag((l2 * reg).flatten())
        H += 1e-10 * torch.eye(C * P, dtype=x.dtype)                     # the softmax's constant-shift null space
        step = torch.linalg.lstsq(H, grad.flatten().unsqueeze(1)).solution.view(C, P)
        t, f0 = 1.0, obj(theta)
        while obj(theta - t * step) > f0 and t > 1e-8:
            t *= 0.5
        theta = theta - t * step
        if grad.abs().max() < 1e-12:
            break
    return theta[:, :-1], theta[:, -1], obj(theta)


@pytest.mark.parametrize("l2", [1e-2, 0.3])
def test_lbfgs_solution_matches_newton(l2):
    x, y = blobs(6, 3, 4, sep=1.0, seed=1)                 # overlapping: a genuinely regularised optimum
    W, b, info = fit_logreg(x, y, 3, l2=l2, tol=1e-8)
    Wn, bn, loss_n = newton_logreg(x, y, 3, l2)
    assert info["converged"] and info["grad_max"] <= 1e-8
    assert info["loss"] == pytest.approx(loss_n, rel=1e-9, abs=1e-12)
    assert torch.allclose(W, Wn, atol=1e-6)
    # b is fixed only up to a shared constant (softmax); the class probabilities are unique
    q = torch.randn(7, 4, dtype=torch.float64)
    assert torch.allclose(torch.softmax(q @ W.T + b, 1), torch.softmax(q @ Wn.T + bn, 1), atol=1e-7)


def test_regulariser_shrinks_weights():
    x, y = blobs(5, 3, 6, seed=2)
    norms = [float(fit_logreg(x, y, 3, l2=l2)[0].norm()) for l2 in (1e-3, 1e-2, 1e-1, 1.0)]
    assert all(a > b for a, b in zip(norms, norms[1:]))


def test_one_shot_on_separated_blobs_is_perfect():
    xtr, ytr = blobs(20, 5, 16, seed=3)
    xte, yte = blobs(30, 5, 16, seed=3)                     # same centres, fresh noise
    res = fewshot_probe(xtr, ytr, xte, yte, shots=(1, 5), draws=3)
    for k in (1, 5):
        r = res["shots"][k]
        assert r["top1"] == [100.0, 100.0, 100.0] and r["mean"] == 100.0 and r["std"] == 0.0 and r["converged"]
        assert r["num_labelled"] == 5 * k
    assert res["num_classes"] == 5 and res["feature_dim"] == 16 and res["l2"] == DEFAULT_L2


def test_no_signal_stays_near_chance():
    g = torch.Generator().manual_seed(0)
    xtr, xte = torch.randn(200, 8, generator=g), torch.randn(400, 8, generator=g)
    ytr, yte = torch.randint(0, 4, (200,), generator=g), torch.randint(0, 4, (400,), generator=g)
    res = fewshot_probe(xtr, ytr, xte, yte, shots=(10,), draws=3)
    assert 10.0 < res["shots"][10]["mean"] < 45.0


def test_mean_std_over_draws_and_seeding():
    xtr, ytr = blobs(30, 4, 10, sep=1.2, seed=4)
    xte, yte = blobs(40, 4, 10, sep=1.2, seed=4)
    a = fewshot_probe(xtr, ytr, xte, yte, shots=(2,), draws=4, seed=7)
    b = fewshot_probe(xtr, ytr, xte, yte, shots=(2,), draws=4, seed=7)
    c = fewshot_probe(xtr, ytr, xte, yte, shots=(2,), draws=4, seed=8)
    r = a["shots"][2]
    assert r["top1"] == b["shots"][2]["top1"] and r["top1"] != c["shots"][2]["top1"]
    vals = r["top1"]
    mean = sum(vals) / 4
    assert r["mean"] == pytest.approx(mean)
    assert r["std"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in vals) / 3))   # sample std


def test_draw_matches_a_hand_fit():
    """One draw restated: the sampled subset, z-scored with its own stats, fitted, scored on test."""
    xtr, ytr = blobs(10, 3, 5, sep=1.5, seed=5)
    xte, yte = blobs(10, 3, 5, sep=1.5, seed=6)
    res = fewshot_probe(xtr, ytr, xte, yte, shots=(3,), draws=1, seed=2, l2=0.05)
    idx = sample_shots(ytr, 3, 3, torch.Generator().manual_seed(2 * 1_000_003 + 0))
    sub = xtr[idx]
    mu, sd = sub.mean(0), sub.std(0, unbiased=False)
    W, b, _ = newton_logreg((sub - mu) / sd, ytr[idx], 3, 0.05)
    pred = (((xte - mu) / sd) @ W.T + b).argmax(1)
    assert res["shots"][3]["top1"] == [pytest.approx(100.0 * float((pred == yte).double().mean()))]


def test_sampling_is_per_class_without_replacement_and_nested():
    y = torch.tensor([0] * 7 + [1] * 5 + [2] * 9)
    idx1 = sample_shots(y, 1, 3, torch.Generator().manual_seed(3))
    idx4 = sample_shots(y, 4, 3, torch.Generator().manual_seed(3))
    assert torch.equal(torch.bincount(y[idx4], minlength=3), torch.tensor([4, 4, 4]))
    assert len(set(idx4.tolist())) == 12
    assert set(idx1.tolist()) <= set(idx4.tolist())          # a draw's 1-shot items are among its 4-shot items
    with pytest.raises(EvalDataError, match="fewer than k=6"):
        sample_shots(y, 6, 3, torch.Generator().manual_seed(0))


def test_shots_above_the_smallest_class_are_skipped_with_a_note():
    x, y = blobs(4, 3, 5, seed=6)
    y = y.clone()
    y[:2] = 1                                                  # class 0 keeps 2 items
    res = fewshot_probe(x, y, x, y, shots=(1, 2, 3), draws=2)
    assert sorted(res["shots"]) == [1, 2] and list(res["skipped"]) == [3]
    assert "class 0 has only 2" in res["skipped"][3] and res["skipped"][3] in res["notes"]


def test_zscore_and_constant_dimensions():
    a = torch.randn(9, 3, dtype=torch.float64) * torch.tensor([2.0, 0.0, 5.0], dtype=torch.float64) + 1.0
    b = torch.randn(4, 3, dtype=torch.float64)
    za, zb = zscore(a, b)
    for j in (0, 2):
        m, s = a[:, j].mean(), a[:, j].std(unbiased=False)
        assert torch.allclose(za[:, j], (a[:, j] - m) / s) and torch.allclose(zb[:, j], (b[:, j] - m) / s)
    assert torch.all(za[:, 1] == 0) and torch.all(zb[:, 1] == 0)


def test_span_reduction_gives_the_same_classifier():
    xtr, ytr = blobs(8, 4, 40, sep=0.8, seed=7)                 # 2-shot: n = 8 < D = 40
    xte, yte = blobs(25, 4, 40, sep=0.8, seed=8)
    a = fewshot_probe(xtr, ytr, xte, yte, shots=(2,), draws=3, reduce=True, tol=1e-10)
    b = fewshot_probe(xtr, ytr, xte, yte, shots=(2,), draws=3, reduce=False, tol=1e-10)
    assert a["shots"][2]["top1"] == b["shots"][2]["top1"]
    assert a["shots"][2]["train_loss"] == pytest.approx(b["shots"][2]["train_loss"], rel=1e-8)
    x = torch.randn(5, 12, dtype=torch.float64)
    V = span_basis(x)
    assert V.shape == (12, 5) and torch.allclose(V.T @ V, torch.eye(5, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(x @ V @ V.T, x, atol=1e-10) and span_basis(x.T) is None


def test_errors():
    x, y = blobs(3, 2, 4)
    with pytest.raises(EvalDataError, match="dims differ"):
        fewshot_probe(x, y, torch.randn(2, 5), y[:2])
    with pytest.raises(EvalDataError, match="expected features"):
        fewshot_probe(x, y[:3], x, y)
    with pytest.raises(ValueError, match="draws"):
        fewshot_probe(x, y, x, y, draws=0)
    with pytest.raises(ValueError, match="shots"):
        fewshot_probe(x, y, x, y, shots=(0, 1))
    with pytest.raises(EvalDataError, match="unlabelled"):
        fewshot_probe(x, torch.full_like(y, -1), x, y)
    with pytest.raises(ValueError, match="l2"):
        fit_logreg(x, y, 2, l2=-1.0)
