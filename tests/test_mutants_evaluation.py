"""Fast, deterministic checks of the evaluation maths for mutation testing (issue 15, item 5).

The `evaluation` mutation group (scripts/mutation_groups/evaluation.txt) runs this file with
test_mmd.py and test_maths_mutants_evaluation.py instead of the probe-training tests, so every
mutant of the few-shot fit, the linear probe's parts and LARS's ratio is judged in well under a
second. Each expectation is stated independently of the code: numpy float64 gradients and a
Newton solve of the regularised logistic objective, values worked by hand, the documented settings.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gandistill.evaluation import fewshot
from gandistill.evaluation.features import EvalDataError
from gandistill.evaluation.fewshot import (
    _draw_generator,
    fit_logreg,
    history_size,
    logreg_objective,
    sample_shots,
    span_basis,
)
from gandistill.evaluation.lars import LARS, check_lars_hparams, trust_ratio
from gandistill.evaluation.linear import (
    DEFAULT_LR,
    LARS_LR,
    LARS_TRUST,
    OPTIMIZERS,
    PAPER_LR,
    _check_hparams,
    build_optimizer,
    check_optimizer,
    cosine_lr,
    new_head,
)


# ------------------------------------------------------------------------------------------- helpers
def twelve_points():
    """12 points in 2-D, 3 overlapping classes (a regularised optimum that is not at infinity)."""
    x = np.array([[0.0, 0.0], [1.0, 0.2], [0.3, 1.1], [-0.4, 0.5],
                  [2.0, 1.0], [1.4, 2.2], [0.2, 0.4], [1.9, 0.1],
                  [-1.0, 2.0], [-0.5, 1.6], [0.8, 1.5], [-1.3, 0.9]])
    y = np.array([0, 0, 1, 0, 1, 1, 2, 1, 2, 2, 0, 2])
    return x, y


def np_objective_and_grad(W, b, x, y, l2):
    """J = mean_i [logsumexp(z_i) - z_{i,y_i}] + l2/2 ||W||^2 and its gradient, z = x W^T + b (numpy)."""
    n, c = x.shape[0], W.shape[0]
    z = x @ W.T + b
    zmax = z.max(1, keepdims=True)
    lse = np.log(np.exp(z - zmax).sum(1)) + zmax[:, 0]
    J = float((lse - z[np.arange(n), y]).mean() + 0.5 * l2 * (W * W).sum())
    p = np.exp(z - lse[:, None])
    Y = np.eye(c)[y]
    gW = (p - Y).T @ x / n + l2 * W
    gb = (p - Y).mean(0)
    return J, gW, gb


def np_newton(x, y, c, l2, iters=60):
    """Independent minimiser of J: Newton steps with the multinomial Hessian written out, in float64."""
    n, d = x.shape
    xt = np.concatenate([x, np.ones((n, 1))], 1)
    theta = np.zeros((c, d + 1))
    reg = np.ones((c, d + 1))
    reg[:, -1] = 0.0
    for _ in range(iters):
        J, gW, gb = np_objective_and_grad(theta[:, :-1], theta[:, -1], x, y, l2)
        g = np.concatenate([gW, gb[:, None]], 1)
        z = xt @ theta.T
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        H = sum(np.kron(np.diag(p[i]) - np.outer(p[i], p[i]), np.outer(xt[i], xt[i])) for i in range(n)) / n
        H = H + np.diag((l2 * reg).ravel()) + 1e-12 * np.eye(c * (d + 1))
        theta = theta - np.linalg.lstsq(H, g.ravel(), rcond=None)[0].reshape(c, d + 1)
        if np.abs(g).max() < 1e-13:
            break
    return theta[:, :-1], theta[:, -1]


class SpyLBFGS(torch.optim.LBFGS):
    """torch's L-BFGS that records its settings and counts the closure's calls."""
    seen: list = []

    def __init__(self, params, **kw):
        super().__init__(params, **kw)
        SpyLBFGS.seen.append(dict(kw=kw, calls=0, n_params=[p.numel() for p in self._params]))

    def step(self, closure):
        rec = SpyLBFGS.seen[-1]

        def counted():
            rec["calls"] += 1
            return closure()

        out = super().step(counted)
        rec["n_iter"] = self.state[self._params[0]]["n_iter"]
        return out


@pytest.fixture
def spy(monkeypatch):
    SpyLBFGS.seen = []
    monkeypatch.setattr(torch.optim, "LBFGS", SpyLBFGS)
    return SpyLBFGS.seen


# ------------------------------------------------------------------------------------------- fit_logreg
@pytest.mark.parametrize("l2", [0.1, 1e-2])
def test_fit_logreg_reaches_the_newton_optimum(l2):
    x, y = twelve_points()
    W, b, info = fit_logreg(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int32), 3,
                            l2=l2, tol=1e-9)
    assert W.dtype == b.dtype == torch.float64 and W.shape == (3, 2) and b.shape == (3,)
    x = x.astype(np.float32).astype(np.float64)                 # the data the fit saw
    Wn, bn = np_newton(x, y, 3, l2)
    Jn = np_objective_and_grad(Wn, bn, x, y, l2)[0]
    assert np.allclose(W.numpy(), Wn, atol=1e-6)
    # the bias is fixed up to a constant shared by the classes (softmax): compare centred
    assert np.allclose(b.numpy() - b.numpy().mean(), bn - bn.mean(), atol=1e-6)
    assert info["loss"] == pytest.approx(Jn, rel=1e-10)
    assert info["converged"] is True and info["grad_max"] <= 1e-9
    assert info["iters"] >= 3 and info["evals"] >= info["iters"]


def test_fit_logreg_reports_the_loss_and_gradient_where_it_stopped():
    # one L-BFGS iteration: far from the optimum, so the report must describe the returned point
    x, y = twelve_points()
    W, b, info = fit_logreg(torch.tensor(x), torch.tensor(y), 3, l2=0.3, max_iter=1)
    J, gW, gb = np_objective_and_grad(W.numpy(), b.numpy(), x, y, 0.3)
    assert info["loss"] == pytest.approx(J, rel=1e-12)
    assert info["grad_max"] == pytest.approx(max(np.abs(gW).max(), np.abs(gb).max()), rel=1e-10)
    assert info["iters"] == 1 and info["converged"] is False
    assert set(info) == {"loss", "grad_max", "iters", "evals", "converged"}


def test_fit_logreg_grad_max_takes_the_larger_of_weights_and_bias():
    # at W = b = 0 (tol large enough to stop at once) the gradient is known in closed form:
    # dJ/db_c = 1/C - freq_c, dJ/dW = (1/C - Y)^T x / n
    x = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 1])
    # bias gradient (0.5 - 0.25, 0.5 - 0.75) = (0.25, -0.25); W gradient ((0.5 - 1) * 1 / 4, ...) = 0.125
    W, b, info = fit_logreg(x, y, 2, tol=0.25)
    assert torch.equal(W, torch.zeros(2, 2, dtype=torch.float64)) and torch.equal(b, torch.zeros(2, dtype=torch.float64))
    assert info["grad_max"] == 0.25 and info["iters"] == 0 and info["converged"] is True     # max|g| <= tol
    assert info["loss"] == pytest.approx(math.log(2), rel=1e-15)
    # now the W gradient is the larger one: x scaled by 8 -> 8 * 0.125 = 1.0 > 0.25
    _, _, info = fit_logreg(x * 8, y, 2, tol=1.0)
    assert info["grad_max"] == 1.0 and info["converged"] is True and info["iters"] == 0


def test_fit_logreg_stops_at_the_gradient_tolerance():
    x, y = twelve_points()
    _, _, loose = fit_logreg(torch.tensor(x), torch.tensor(y), 3, l2=0.1, tol=1e-2)
    _, _, tight = fit_logreg(torch.tensor(x), torch.tensor(y), 3, l2=0.1, tol=1e-8)
    assert loose["converged"] and loose["grad_max"] <= 1e-2 and loose["grad_max"] > 1e-6
    assert tight["converged"] and tight["grad_max"] <= 1e-8
    assert loose["iters"] < tight["iters"]


def test_fit_logreg_lbfgs_settings(spy):
    x, y = twelve_points()
    fit_logreg(torch.tensor(x), torch.tensor(y), 3, l2=0.1, max_iter=7, tol=3e-5)
    (rec,) = spy
    assert rec["kw"] == dict(lr=1.0, max_iter=7, max_eval=14, tolerance_grad=3e-5, tolerance_change=0.0,
                             history_size=100, line_search_fn="strong_wolfe")
    assert rec["n_params"] == [6, 3]                          # W [3, 2] then b [3]
    _, _, info = fit_logreg(torch.tensor(x), torch.tensor(y), 3, l2=0.1, max_iter=7, tol=3e-5)
    assert info["evals"] == spy[-1]["calls"] + 1               # the optimiser's evaluations and the final one
    assert info["iters"] == spy[-1]["n_iter"] and info["iters"] >= 1


def test_fit_logreg_history_follows_the_parameter_count(spy, monkeypatch):
    # history_size(C * D + C) pairs: the rule at a tiny scale, HISTORY_BYTES = 16 * 8 * 20 -> with
    # C = 2, D = 3 (8 parameters) 20 pairs (6 weights alone would give 26, 4 = C*D - C would give 40)
    monkeypatch.setattr(fewshot, "HISTORY_BYTES", 16 * 8 * 20)
    x = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.5, 1.0]], dtype=torch.float64)
    fit_logreg(x, torch.tensor([0, 1, 0, 1]), 2, max_iter=1)
    assert spy[-1]["kw"]["history_size"] == 20


def test_fit_logreg_l2_penalises_the_weights_only():
    # separable 1-D data: without the penalty the weights would grow without bound; with it they stop,
    # and a larger l2 gives smaller weights; the bias is free (unpenalised)
    x = torch.tensor([[-1.0], [-2.0], [1.0], [2.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    norms = []
    for l2 in (0.5, 0.05, 0.005):
        W, b, info = fit_logreg(x, y, 2, l2=l2, tol=1e-8)
        assert info["converged"]
        Wn, bn = np_newton(x.numpy(), y.numpy(), 2, l2)
        assert np.allclose(W.numpy(), Wn, atol=1e-7)
        norms.append(float(W.norm()))
    assert norms[0] < norms[1] < norms[2]
    # an unpenalised bias: with all points at x = 0 the fit is the class frequencies, p = softmax(b)
    W, b, _ = fit_logreg(torch.zeros(4, 1, dtype=torch.float64), torch.tensor([0, 1, 1, 1]), 2, l2=10.0, tol=1e-8)
    assert torch.softmax(b, 0).tolist() == pytest.approx([0.25, 0.75], abs=1e-10)


def test_fit_logreg_checks_its_settings():
    x, y = torch.tensor(twelve_points()[0]), torch.tensor(twelve_points()[1])
    for l2 in (-1e-12, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"^l2 must be a finite value >= 0, got"):
            fit_logreg(x, y, 3, l2=l2)
    for kw in (dict(max_iter=0), dict(tol=0.0), dict(tol=-1.0)):
        with pytest.raises(ValueError, match=r"^need max_iter >= 1 and tol > 0"):
            fit_logreg(x, y, 3, **kw)
    assert fit_logreg(x, y, 3, l2=0.0, max_iter=1, tol=1e-300)[2]["iters"] == 1     # the boundaries are valid


def test_logreg_objective_by_hand():
    W = torch.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=torch.float64)
    b = torch.tensor([0.3, -0.1], dtype=torch.float64)
    x = torch.tensor([[1.0, 1.0], [0.0, 2.0], [-1.0, 0.5]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    # logits: [-0.7, 0.4], [-3.7, -0.1], [-1.7, -0.6]
    ce = [math.log(math.exp(-0.7) + math.exp(0.4)) + 0.7, math.log(math.exp(-3.7) + math.exp(-0.1)) + 0.1,
          math.log(math.exp(-1.7) + math.exp(-0.6)) + 0.6]
    want = sum(ce) / 3 + 0.5 * 0.2 * (1 + 4 + 0.25)
    assert float(logreg_objective(W, b, x, y, 0.2)) == pytest.approx(want, rel=1e-14)


# ------------------------------------------------------------------------------------------- few-shot parts
def test_span_basis_only_when_fewer_rows_than_columns():
    assert span_basis(torch.randn(3, 3, dtype=torch.float64)) is None      # n = D: documented None
    assert span_basis(torch.randn(4, 3, dtype=torch.float64)) is None
    x = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    V = span_basis(x)
    assert V.shape == (4, 2) and torch.allclose(V.T @ V, torch.eye(2, dtype=torch.float64), atol=1e-14)
    # the span of the rows is the first two coordinate axes
    assert torch.allclose(V[2:], torch.zeros(2, 2, dtype=torch.float64)) and torch.allclose(x @ V @ V.T, x)


def test_sample_shots_k_per_class_in_class_order():
    labels = torch.tensor([2, 0, 1, 0, 2, 1, 0, 2, 1, 1])
    g = torch.Generator().manual_seed(5)
    idx = sample_shots(labels, 2, 3, g)
    assert idx.shape == (6,) and labels[idx].tolist() == [0, 0, 1, 1, 2, 2]
    assert len(set(idx.tolist())) == 6
    # k equal to the smallest class takes all of it (class 0 and 2 have 3 items)
    idx = sample_shots(labels, 3, 3, torch.Generator().manual_seed(1))
    assert sorted(idx[:3].tolist()) == [1, 3, 6] and sorted(idx[6:].tolist()) == [0, 4, 7]
    with pytest.raises(EvalDataError, match=r"^class 0 has 3 train items, fewer than k=4$"):
        sample_shots(labels, 4, 3, torch.Generator().manual_seed(1))
    with pytest.raises(EvalDataError, match=r"^class 3 has 0 train items, fewer than k=1$"):
        sample_shots(labels, 1, 4, torch.Generator().manual_seed(1))
    # the draw is the generator's: a shuffle of every member of the class, not always the first k ...
    firsts = {tuple(sample_shots(labels, 1, 3, torch.Generator().manual_seed(s)).tolist()) for s in range(12)}
    assert len(firsts) > 3
    # ... and only the generator's: the same seed gives the same draw, the global RNG is not used
    state = torch.get_rng_state()
    a = [sample_shots(labels, 2, 3, torch.Generator().manual_seed(9)).tolist() for _ in range(2)]
    torch.manual_seed(123)
    b = sample_shots(labels, 2, 3, torch.Generator().manual_seed(9)).tolist()
    torch.manual_seed(456)
    c = sample_shots(labels, 2, 3, torch.Generator().manual_seed(9)).tolist()
    assert a[0] == a[1] == b == c
    torch.set_rng_state(state)


def test_draw_generators_differ_by_seed_and_draw():
    first = lambda s, r: torch.randint(0, 2 ** 62, (1,), generator=_draw_generator(s, r)).item()  # noqa: E731
    draws = {first(s, r) for s in range(3) for r in range(4)}
    assert len(draws) == 12
    assert first(2, 1) == first(2, 1) and first(2.0, 1) == first(2, 1)


# ------------------------------------------------------------------------------------------- linear probe parts
def test_cosine_lr_by_hand():
    assert cosine_lr(10.0, 0, 3) == 10.0
    assert cosine_lr(10.0, 1, 3) == pytest.approx(7.5, rel=1e-14)          # 5 (1 + cos 60 deg)
    assert cosine_lr(10.0, 2, 3) == pytest.approx(2.5, rel=1e-14)
    assert cosine_lr(10.0, 3, 3) == pytest.approx(0.0, abs=1e-14)
    assert cosine_lr(4.0, 1, 4) == pytest.approx(2.0 * (1.0 + math.sqrt(0.5)), rel=1e-14)


def test_new_head_init_from_the_generator_only():
    state = torch.get_rng_state()
    head = new_head(5, 3, torch.Generator().manual_seed(11))
    assert torch.equal(torch.get_rng_state(), state)                        # the global RNG is not drawn from
    assert (head.in_features, head.out_features) == (5, 3)
    want = torch.randn(3, 5, generator=torch.Generator().manual_seed(11)) * 0.01
    assert torch.allclose(head.weight, want, rtol=0, atol=1e-9) and torch.equal(head.bias, torch.zeros(3))
    big = new_head(400, 50, torch.Generator().manual_seed(0)).weight.detach()
    assert abs(float(big.std()) - 0.01) < 3e-4 and abs(float(big.mean())) < 3e-4


def test_probe_optimizer_names_and_defaults():
    assert OPTIMIZERS == ("sgd", "lars") and DEFAULT_LR == {"sgd": 30.0, "lars": 0.1}
    assert (PAPER_LR, LARS_LR, LARS_TRUST) == (30.0, 0.1, 0.001)
    assert check_optimizer("sgd") == "sgd" and check_optimizer(" SGD\n") == "sgd" and check_optimizer("LARS") == "lars"
    with pytest.raises(ValueError, match=r"^unknown probe optimizer 'adam'; choose one of: sgd, lars$"):
        check_optimizer("adam")
    w = [torch.zeros(2, 2, requires_grad=True)]
    lars = build_optimizer(w, "lars", 0.2, 0.5, 0.0)
    assert lars.defaults["trust_coefficient"] == 0.001 and lars.defaults["exclude_1d"] is True
    assert type(build_optimizer(w, "SGD", 0.2, 0.5, 0.0)) is torch.optim.SGD
    assert _check_hparams(2, 3, None, 4, "lars") == ("lars", 0.1)
    assert _check_hparams(1, 1, None, 1, "sgd", momentum=0.0, wd=0.0) == ("sgd", 30.0)
    with pytest.raises(ValueError, match="trust_coefficient"):
        _check_hparams(1, 1, None, 1, "lars", trust_coefficient=0.0)
    with pytest.raises(ValueError, match=r"^need batch >= 1, lr > 0 and eval_every >= 1 \(got 1, nan, 1\)$"):
        _check_hparams(1, 1, float("nan"), 1)
    with pytest.raises(ValueError, match=r"^epochs must be >= 1, got 0$"):
        _check_hparams(0, 1, 0.1, 1)
    with pytest.raises(ValueError, match=r"^need 0 <= momentum < 1 and wd >= 0 \(got 0.5, nan\)$"):
        _check_hparams(1, 1, 0.1, 1, "sgd", momentum=0.5, wd=float("nan"))


def test_standardise_small_spreads_and_the_constant_threshold():
    from gandistill.evaluation.linear import standardise

    # column 0: unbiased std 0.5 (below 1, divided by, not clamped); column 1: std exactly 1e-6 = constant
    train = torch.tensor([[0.0, -1e-6], [0.5, 0.0], [1.0, 1e-6]], dtype=torch.float64)
    (tr,) = standardise(train)
    want = torch.tensor([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]], dtype=torch.float64) / math.sqrt(2)
    assert torch.allclose(tr, want, rtol=1e-14, atol=0)
    # just above the threshold the column is kept: std 2e-6 -> values -1, 0, 1 (/ sqrt(2))
    (tr,) = standardise(train * torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert torch.allclose(tr[:, 1], torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64) / math.sqrt(2), rtol=1e-9)


def test_zscore_constant_threshold():
    from gandistill.evaluation.fewshot import zscore

    # biased std exactly 1e-8 counts as constant (-> 0); 2e-8 is a spread (-> -1, 1)
    t = torch.tensor([[-1e-8, -2e-8], [1e-8, 2e-8]], dtype=torch.float64)
    (z,) = zscore(t)
    assert torch.equal(z[:, 0], torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(z[:, 1], torch.tensor([-1.0, 1.0], dtype=torch.float64), rtol=1e-12)


def test_normaliser_keeps_float32_whatever_the_statistics_type():
    from gandistill.evaluation.features import check_labels, normaliser

    x = torch.rand(2, 3, 2, 2)
    for mean, std in ((np.array([0.5, 0.25, 0.0]), np.array([0.5, 2.0, 1.0])),
                      (torch.tensor([0.5, 0.25, 0.0], dtype=torch.float64), (0.5, 2.0, 1.0)),
                      ((0.5, 0.25, 0.0), torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64))):
        out = normaliser(mean, std)(x)
        assert out.dtype == torch.float32
        want = (x.double() - torch.tensor([0.5, 0.25, 0.0], dtype=torch.float64).view(1, 3, 1, 1)) / \
            torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64).view(1, 3, 1, 1)
        assert torch.allclose(out.double(), want, atol=1e-6)
    # one class is a class count like any other: a label 1 does not fit num_classes=1
    assert check_labels(torch.tensor([0, 0]), 1, "x") == 1
    with pytest.raises(EvalDataError, match=r"^x has label 1 but num_classes=1$"):
        check_labels(torch.tensor([0, 1]), 1, "x")


# ------------------------------------------------------------------------------------------- LARS parts
def test_trust_ratio_by_hand():
    w = torch.tensor([3.0, 4.0], dtype=torch.float64)                       # ||w|| = 5
    g = torch.tensor([0.0, 2.0], dtype=torch.float64)                       # ||g|| = 2
    assert float(trust_ratio(w, g, 0.1, 0.5, 1e-3)) == pytest.approx(0.1 * 5 / (2 + 0.5 * 5 + 1e-3), rel=1e-14)
    assert float(trust_ratio(w, g, 0.1, 0.0, 0.0)) == pytest.approx(0.25, rel=1e-14)
    # either norm zero: 1 (not 0, not a division by zero)
    assert float(trust_ratio(torch.zeros(2), g.float(), 0.1, 0.5, 1e-3)) == 1.0
    assert float(trust_ratio(w, torch.zeros(2, dtype=torch.float64), 0.1, 0.5, 1e-3)) == 1.0
    # norms below 1 are norms like any other: (0.3, 0.4) has 0.5, (0.6, 0) has 0.6
    small_w, small_g = torch.tensor([0.3, 0.4], dtype=torch.float64), torch.tensor([0.6, 0.0], dtype=torch.float64)
    assert float(trust_ratio(small_w, g, 0.1, 0.0, 0.0)) == pytest.approx(0.1 * 0.5 / 2, rel=1e-14)
    assert float(trust_ratio(w, small_g, 0.1, 0.0, 0.0)) == pytest.approx(0.1 * 5 / 0.6, rel=1e-14)
    r = trust_ratio(w.view(1, 2), g.view(1, 2), 0.1, 0.0, 0.0)
    assert r.shape == () and r.dtype == torch.float64


def test_lars_settings_and_checks():
    w = torch.zeros(2, 2, requires_grad=True)
    opt = LARS([w], lr=0.3, momentum=0.5, weight_decay=0.2, trust_coefficient=0.05, eps=1e-4, exclude_1d=False)
    assert opt.defaults == dict(lr=0.3, momentum=0.5, weight_decay=0.2, trust_coefficient=0.05, eps=1e-4,
                                exclude_1d=False)
    assert opt.param_groups[0]["params"] == [w]
    check_lars_hparams(1e-9, 0.0, 0.0, 1e-9, 0.0)                            # every boundary that is valid
    check_lars_hparams(1.0, 0.999, 0.0, 1.0)
    bad = [((0.0, 0.9, 0.0, 0.1), r"^LARS: lr must be > 0, got 0.0$"),
           ((float("nan"), 0.9, 0.0, 0.1), "lr must be > 0"),
           ((0.1, 1.0, 0.0, 0.1), r"^LARS: momentum must lie in \[0, 1\), got 1.0$"),
           ((0.1, -1e-9, 0.0, 0.1), "momentum must lie in"),
           ((0.1, float("nan"), 0.0, 0.1), "momentum must lie in"),
           ((0.1, 0.9, -1e-9, 0.1), r"^LARS: weight_decay must be >= 0, got -1e-09$"),
           ((0.1, 0.9, float("nan"), 0.1), "weight_decay must be >= 0"),
           ((0.1, 0.9, 0.0, 0.0), r"^LARS: trust_coefficient must be > 0, got 0.0$"),
           ((0.1, 0.9, 0.0, float("nan")), "trust_coefficient must be > 0")]
    for args, msg in bad:
        with pytest.raises(ValueError, match=msg):
            check_lars_hparams(*args)
    for eps in (-1e-12, float("nan")):
        with pytest.raises(ValueError, match=r"^LARS: eps must be >= 0, got"):
            check_lars_hparams(0.1, 0.9, 0.0, 0.1, eps)
        with pytest.raises(ValueError, match=r"^LARS: eps must be >= 0"):
            LARS([w], lr=0.1, eps=eps)
    for kw, msg in ((dict(momentum=1.0), "momentum"), (dict(weight_decay=-1.0), "weight_decay"),
                    (dict(trust_coefficient=0.0), "trust_coefficient"), (dict(lr=0.0), "lr must")):
        args = dict(lr=0.1)
        args.update(kw)
        with pytest.raises(ValueError, match=msg):
            LARS([w], **args)


def test_lars_first_step_by_hand():
    # w = (3, 4), g = (0, 2), wd = 0.5: d = lambda (g + wd w), lambda = eta ||w|| / (||g|| + wd ||w|| + eps)
    w = torch.tensor([[3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    opt = LARS([w], lr=0.5, momentum=0.9, weight_decay=0.5, trust_coefficient=0.1, eps=0.0)
    w.grad = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    opt.step()
    lam = 0.1 * 5 / (2 + 2.5)
    want = [3.0 - 0.5 * lam * 1.5, 4.0 - 0.5 * lam * 4.0]
    assert w.detach().flatten().tolist() == pytest.approx(want, rel=1e-14)


def test_history_size_is_used_with_the_documented_floor():
    # the rule itself is in test_maths_mutants_evaluation.py; here: the documented defaults
    assert (fewshot.DEFAULT_HISTORY, fewshot.HISTORY_BYTES) == (100, 2 ** 30)
    assert history_size(2 ** 30) == 10
