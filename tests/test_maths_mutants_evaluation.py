"""Evaluation maths where small mutations used to survive (issue 15 item 5).

Each test states the rule independently: closed forms, hand-worked cases, float64 loops, the
documented defaults and boundaries.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gandistill.evaluation.features import EvalDataError
from gandistill.evaluation.knn import (DEFAULT_T, PAPER_K, SMALL_K, SMALL_TRAIN, default_knn_k, knn_features,
                                       knn_predict, resolve_knn_k)
from gandistill.evaluation.mmd import KERNELS, median_bandwidth, mmd2_unbiased


# ------------------------------------------------------------------------------------------- MMD
def test_mmd_closed_form_two_points_each():
    # x = {0, 1}, y = {0, 3} on a line, sigma = 1: k(a, b) = exp(-(a-b)^2 / 2)
    x = torch.tensor([[0.0], [1.0]])
    y = torch.tensor([[0.0], [3.0]])
    k = lambda d: math.exp(-d * d / 2)  # noqa: E731
    sxx = k(1)                       # 1/(2*1) * (k(0,1) + k(1,0))
    syy = k(3)
    sxy = (k(0) + k(3) + k(1) + k(2)) / 4
    res = mmd2_unbiased(x, y, sigma=1.0)
    assert res["mmd2"] == pytest.approx(sxx + syy - 2 * sxy, rel=1e-12)
    assert res == {"mmd2": res["mmd2"], "sigma": 1.0, "m": 2, "n": 2, "kernel": "gaussian"}


def test_median_bandwidth_hand_case_and_degenerate_sample():
    # pooled points 0, 1, 3, 7 on a line: pair distances 1, 3, 7, 2, 6, 4 -> sorted 1 2 3 4 6 7, lower median 3
    x = torch.tensor([[0.0], [1.0]])
    y = torch.tensor([[3.0], [7.0]])
    assert median_bandwidth(x, y) == pytest.approx(3.0, rel=1e-12)
    assert median_bandwidth(x.double() / 10, y.double() / 10) == pytest.approx(0.3, rel=1e-12)   # kept below 1
    same = torch.ones(3, 2)
    assert median_bandwidth(same, same) == 1.0          # all distances 0: fall back to 1
    assert mmd2_unbiased(same, same)["sigma"] == 1.0


def test_mmd_defaults_and_sigma_checks():
    assert KERNELS == ("gaussian", "poly")
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(5, 2, generator=g), torch.randn(4, 2, generator=g)
    assert mmd2_unbiased(x, y)["sigma"] == pytest.approx(median_bandwidth(x, y), rel=1e-12)
    with pytest.raises(ValueError, match=r"sigma must be positive, got -1.0"):
        mmd2_unbiased(x, y, sigma=-1.0)
    with pytest.raises(ValueError, match=r"at least 2 points per sample, got 5 and 1"):
        mmd2_unbiased(x, y[:1])
    with pytest.raises(ValueError, match=r"two \[N, D\] samples"):
        mmd2_unbiased(x[:, 0], y)
    with pytest.raises(ValueError, match=r"two \[N, D\] samples"):
        mmd2_unbiased(x, y[:, 0])
    with pytest.raises(ValueError, match="non-finite"):
        mmd2_unbiased(x, torch.tensor([[0.0, float("inf")], [1.0, 1.0]]))
    assert mmd2_unbiased(x[:2], y[:2], kernel="poly")["m"] == 2       # two points per side are enough


# ------------------------------------------------------------------------------------------- kNN
def test_knn_default_k_rule_boundaries():
    assert (PAPER_K, SMALL_K, SMALL_TRAIN, DEFAULT_T) == (200, 20, 10_000, 0.1)
    assert default_knn_k(9_999) == 20 and default_knn_k(10_000) == 200 and default_knn_k(50_000) == 200
    assert resolve_knn_k(None, 10_000) == 200 and resolve_knn_k(None, 100) == 20
    assert resolve_knn_k(1, 5) == 1 and resolve_knn_k(7.0, 5) == 7
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        resolve_knn_k(0, 5)


def test_knn_weights_votes_by_exp_similarity_over_t():
    # one query, three neighbours: two of class 0 at cosine 0 (weight exp(0)=1 each), one of class 1 at cosine
    # s = 0.5: class 1 wins iff exp(s / t) > 2, i.e. t < s / ln 2 = 0.7213
    train = torch.tensor([[0.0, 1.0], [0.0, -1.0], [math.cos(math.pi / 3), math.sin(math.pi / 3)]])
    labels = torch.tensor([0, 0, 1])
    q = torch.tensor([[1.0, 0.0]])
    assert knn_predict(train, labels, q, k=3, t=0.7).item() == 1
    assert knn_predict(train, labels, q, k=3, t=0.75).item() == 0
    assert knn_predict(train, labels, q, k=3).item() == 1              # t = 0.1 by default
    # k = 1 keeps only the most similar neighbour; k above N is clamped to N
    assert knn_predict(train, labels, q, k=1, t=100.0).item() == 1
    assert knn_predict(train, labels, q, k=50, t=100.0).item() == 0
    # features are normalised: scaling a train row changes nothing
    assert knn_predict(train * torch.tensor([[5.0], [0.1], [3.0]]), labels, q, k=3, t=0.7).item() == 1
    with pytest.raises(ValueError, match="temperature t must be > 0, got 0"):
        knn_predict(train, labels, q, k=3, t=0.0)


def test_knn_chunks_and_empty_queries():
    g = torch.Generator().manual_seed(4)
    train, labels = torch.randn(30, 4, generator=g), torch.randint(0, 3, (30,), generator=g)
    test = torch.randn(11, 4, generator=g)
    whole = knn_predict(train, labels, test, k=5, chunk=512)
    for chunk in (1, 3, 10, 11):
        assert torch.equal(knn_predict(train, labels, test, k=5, chunk=chunk), whole)
    empty = knn_predict(train, labels, test[:0], k=5)
    assert empty.shape == (0,) and empty.dtype == torch.long
    # the default k on a small train set is 20 (clamped to 30 here: 20)
    assert torch.equal(knn_predict(train, labels, test), knn_predict(train, labels, test, k=20))


def test_knn_features_reports_and_checks():
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    y = torch.tensor([0, 0, 1, 1])
    q = torch.tensor([[1.0, 0.05], [0.05, 1.0], [1.0, 0.0]])
    yq = torch.tensor([0, 1, 1])                        # the last one is "wrong": 2 of 3 right
    res = knn_features(x, y, q, yq, k=2)
    assert res["top1"] == pytest.approx(200.0 / 3)
    assert (res["k"], res["k_requested"], res["t"], res["num_train"], res["num_test"], res["feature_dim"]) == \
        (2, 2, 0.1, 4, 3, 2)
    assert knn_features(x, y, q, yq)["k"] == 4         # default 20 clamped to the 4 train items
    assert knn_features(x, y, q, yq, k=9)["k_requested"] == 9
    with pytest.raises(EvalDataError, match="3 test features but 2 labels"):
        knn_features(x, y, q, yq[:2])
    with pytest.raises(EvalDataError, match="4 train features but 3 labels"):
        knn_predict(x, y[:3], q)
    with pytest.raises(EvalDataError, match="feature dims differ: train 2 vs test 3"):
        knn_predict(x, y, torch.zeros(1, 3))
    with pytest.raises(EvalDataError, match="features must be 2-D"):
        knn_predict(x[0], y, q)


# ------------------------------------------------------------------------------------------- LARS
def test_lars_step_with_closure_and_params_without_grad():
    from gandistill.evaluation.lars import LARS

    w = torch.tensor([[3.0, 4.0]], dtype=torch.float64, requires_grad=True)      # ||w|| = 5
    frozen = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)   # never gets a gradient
    opt = LARS([w, frozen], lr=0.5, momentum=0.0, trust_coefficient=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * torch.tensor([[0.0, 2.0]], dtype=torch.float64)).sum()       # grad (0, 2), ||g|| = 2
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(8.0)
    # lambda = 0.1 * 5 / (2 + 1e-8); w -= 0.5 * lambda * g
    lam = 0.1 * 5 / (2 + 1e-8)
    assert torch.allclose(w.detach(), torch.tensor([[3.0, 4.0 - 0.5 * lam * 2]], dtype=torch.float64), rtol=1e-12)
    assert torch.equal(frozen.detach(), torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert opt.step() is None
    assert "momentum_buffer" not in opt.state[w]                                  # no buffer without momentum


def test_lars_refuses_sparse_gradients():
    from gandistill.evaluation.lars import LARS

    w = torch.zeros(3, 2, requires_grad=True)
    w.grad = torch.sparse_coo_tensor([[0], [1]], [1.0], (3, 2))
    with pytest.raises(RuntimeError, match="LARS does not support sparse gradients"):
        LARS([w], lr=0.1).step()


def test_lars_defaults_and_eps_check():
    from gandistill.evaluation.lars import LARS

    w = torch.zeros(2, 2, requires_grad=True)
    d = LARS([w], lr=0.1).defaults
    # SnS's STL-10 probe: trust coefficient 0.001; momentum 0.9 and no weight decay; biases not adapted
    assert (d["trust_coefficient"], d["momentum"], d["weight_decay"], d["eps"], d["exclude_1d"]) == \
        (0.001, 0.9, 0.0, 1e-8, True)
    with pytest.raises(ValueError, match="LARS: eps must be >= 0, got -1.0"):
        LARS([w], lr=0.1, eps=-1.0)
    LARS([w], lr=0.1, eps=0.0)


# ------------------------------------------------------------------------------------------- linear probe parts
def test_standardise_single_row_and_single_column():
    from gandistill.evaluation.linear import standardise

    one = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    test = torch.tensor([[2.0, 2.0, 5.0, 0.0]])
    tr, te = standardise(one, test)                     # one row: no spread to divide by; centred, / sqrt(D)
    assert torch.equal(tr, torch.zeros(1, 4))
    assert torch.allclose(te, (test - one) / 2.0)
    col = torch.tensor([[1.0], [3.0], [5.0]])           # one column: unbiased std 2, sqrt(D) = 1
    (tr,) = standardise(col)
    assert torch.allclose(tr, torch.tensor([[-1.0], [0.0], [1.0]]))


def test_knn_features_checks_labels_against_num_classes():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    with pytest.raises(EvalDataError, match=r"^test set has label 2 but num_classes=2$"):
        knn_features(x, torch.tensor([0, 1, 1]), x, torch.tensor([0, 1, 2]), num_classes=2)
    with pytest.raises(EvalDataError, match=r"^train set has label 2 but num_classes=2$"):
        knn_features(x, torch.tensor([0, 1, 2]), x, torch.tensor([0, 1, 1]), num_classes=2)
    with pytest.raises(EvalDataError, match=r"^test set has label 2 but num_classes=2$"):
        knn_features(x, torch.tensor([0, 1, 1]), x, torch.tensor([0, 1, 2]))     # inferred from the train labels
    with pytest.raises(EvalDataError, match=r"^test set has 1 unlabelled items"):
        knn_features(x, torch.tensor([0, 1, 1]), x, torch.tensor([0, -1, 1]))
    assert knn_features(x, torch.tensor([0, 1, 1]), x, torch.tensor([0, 1, 1]), num_classes=5, k=1)["top1"] == 100.0


def test_fewshot_zscore_keeps_small_spreads():
    from gandistill.evaluation.fewshot import zscore

    train = torch.tensor([[0.0, 5.0, 1.0], [0.5, 5.0, 3.0], [1.0, 5.0, 5.0]], dtype=torch.float64)
    other = torch.tensor([[0.25, 7.0, 2.0]], dtype=torch.float64)
    tr, ot = zscore(train, other)
    sd = np.sqrt(np.array([1 / 6, 0.0, 8 / 3]))                   # biased std of each column; column 1 constant
    want_tr = (train.numpy() - train.numpy().mean(0)) / np.where(sd > 0, sd, np.inf)
    want_ot = (other.numpy() - train.numpy().mean(0)) / np.where(sd > 0, sd, np.inf)
    assert np.allclose(tr.numpy(), want_tr, rtol=1e-12, atol=1e-12)
    assert np.allclose(ot.numpy(), want_ot, rtol=1e-12, atol=1e-12)   # the constant column is 0, not blown up


# ------------------------------------------------------------------------------------------- settings and checks
def test_lbfgs_history_size_rule():
    from gandistill.evaluation.fewshot import history_size

    # max(10, min(wanted, 2^30 // (16 * max(1, n)))): 2 float64 vectors of n entries per pair, 1 GiB in all
    assert history_size(0) == 100 and history_size(1) == 100
    assert history_size(2 ** 22) == 16
    assert history_size(3 * 2 ** 20) == 21                   # integer division: 21.33 -> 21
    assert history_size(2 ** 26) == 10                       # floor of 10 pairs
    assert history_size(1, wanted=10 ** 9) == 2 ** 26
    assert history_size(2 ** 21, wanted=5) == 10


def test_optimizer_settings_reach_the_optimizer():
    from gandistill.evaluation.lars import LARS
    from gandistill.evaluation.linear import _check_hparams, build_optimizer, check_optimizer

    w = [torch.zeros(2, 2, requires_grad=True)]
    sgd = build_optimizer(w, "sgd", lr=0.3, momentum=0.7, wd=0.01)
    assert isinstance(sgd, torch.optim.SGD)
    assert (sgd.defaults["lr"], sgd.defaults["momentum"], sgd.defaults["weight_decay"]) == (0.3, 0.7, 0.01)
    lars = build_optimizer(w, "LARS", lr=0.2, momentum=0.5, wd=0.02, trust_coefficient=0.003)
    assert isinstance(lars, LARS)
    d = lars.defaults
    assert (d["lr"], d["momentum"], d["weight_decay"], d["trust_coefficient"], d["exclude_1d"]) == \
        (0.2, 0.5, 0.02, 0.003, True)
    assert build_optimizer(w, "lars", 0.2, 0.5, 0.0, exclude_1d=False).defaults["exclude_1d"] is False
    with pytest.raises(ValueError, match="unknown probe optimizer 5"):
        check_optimizer(5)                                   # type: ignore[arg-type]
    assert check_optimizer(" Lars ") == "lars"
    # defaults: SGD at the paper's rate 30, momentum 0.9 and no weight decay are valid
    assert _check_hparams(90, 256, None, 5) == ("sgd", 30.0)
    assert _check_hparams(1, 1, 0.5, 1, "LARS") == ("lars", 0.5)
    assert _check_hparams(1, 1, None, 1, "lars", momentum=0.0) == ("lars", 0.1)
    assert _check_hparams(1, 1, 1e-9, 1, momentum=0.0, wd=0.0) == ("sgd", 1e-9)
    for kw in (dict(batch=0), dict(lr=0.0), dict(eval_every=0), dict(epochs=0)):
        args = dict(epochs=1, batch=1, lr=0.1, eval_every=1)
        args.update(kw)
        with pytest.raises(ValueError):
            _check_hparams(args["epochs"], args["batch"], args["lr"], args["eval_every"])
    for mom, wd in ((1.0, 0.0), (-0.1, 0.0), (0.5, -1.0)):
        with pytest.raises(ValueError, match="need 0 <= momentum < 1 and wd >= 0"):
            _check_hparams(1, 1, 0.1, 1, "sgd", momentum=mom, wd=wd)
        with pytest.raises(ValueError, match="LARS: "):
            _check_hparams(1, 1, 0.1, 1, "lars", momentum=mom, wd=wd)


def test_normaliser_checks_and_channels():
    from gandistill.evaluation.features import check_labels, normaliser

    x = torch.rand(2, 3, 4, 4)
    assert normaliser((0.5, 0.5, 0.5), None)(x) is x and normaliser(None, (1.0, 1.0, 1.0))(x) is x
    n = normaliser((0.1, 0.2, 0.3), (0.5, 1.0, 2.0))
    want = (x - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.5, 1.0, 2.0]).view(1, 3, 1, 1)
    assert torch.allclose(n(x), want)
    for bad in ((0.5, 0.0, 1.0), (0.5, -1.0, 1.0)):
        with pytest.raises(ValueError, match="std must be positive"):
            normaliser((0.0, 0.0, 0.0), bad)
    with pytest.raises(EvalDataError, match=r"expected images \[N,3,H,W\] to normalise, got \(3, 4, 4\)"):
        n(x[0])
    with pytest.raises(EvalDataError, match=r"got \(2, 1, 4, 4\)"):
        n(x[:, :1])
    assert check_labels(torch.tensor([2]), None, "x") == 3                # one label is a labelled set
    assert check_labels(torch.tensor([0, 2]), 0, "x") == 3                # 0 classes: inferred
    assert check_labels(torch.tensor([0, 2]), 5, "x") == 5


def test_knn_features_passes_k_and_t_and_times_itself():
    train = torch.tensor([[0.0, 1.0], [0.0, -1.0], [math.cos(math.pi / 3), math.sin(math.pi / 3)]])
    labels = torch.tensor([0, 0, 1])
    q = torch.tensor([[1.0, 0.0]])
    assert knn_features(train, labels, q, torch.tensor([1]), k=1, t=100.0)["top1"] == 100.0
    assert knn_features(train, labels, q, torch.tensor([0]), k=3, t=100.0)["top1"] == 100.0
    res = knn_features(train, labels, q, torch.tensor([1]), k=3, t=0.5)
    assert res["top1"] == 100.0 and 0.0 <= res["time_s"] < 60.0
    # the default k follows the number of train items (not the feature width)
    big = torch.randn(10_000, 2, generator=torch.Generator().manual_seed(0))
    assert knn_features(big, torch.zeros(10_000, dtype=torch.long), big[:2], torch.zeros(2, dtype=torch.long))["k"] == 200


def test_standardise_two_rows():
    from gandistill.evaluation.linear import standardise

    (tr,) = standardise(torch.tensor([[1.0, 10.0], [3.0, 10.0]]))     # std (unbiased) sqrt(2); column 2 constant
    assert torch.allclose(tr, torch.tensor([[-1.0, 0.0], [1.0, 0.0]]) / math.sqrt(2) / math.sqrt(2))


# ------------------------------------------------------------------------------------------- documented defaults
def test_documented_probe_defaults():
    """Module-level settings (mutmut cannot mutate them; scripts/mutate_blind_spots.py does)."""
    from gandistill.evaluation import fewshot, linear

    # few-shot protocol (fewshot.py docstring): k in {1, 10, 100}, 5 seeded draws, l2 = 1e-2, L-BFGS to
    # max|grad| <= 1e-6 or 1000 iterations, 100 history pairs capped at 1 GiB
    assert fewshot.DEFAULT_SHOTS == (1, 10, 100) and fewshot.DEFAULT_DRAWS == 5
    assert (fewshot.DEFAULT_L2, fewshot.DEFAULT_TOL, fewshot.DEFAULT_MAX_ITER) == (1e-2, 1e-6, 1000)
    assert (fewshot.DEFAULT_HISTORY, fewshot.HISTORY_BYTES) == (100, 2 ** 30)
    # linear probe: SGD at lr 30, LARS at 0.1 with trust coefficient 0.001 (both at batch 256)
    assert (linear.PAPER_LR, linear.LARS_LR, linear.LARS_TRUST) == (30.0, 0.1, 0.001)
    assert linear.OPTIMIZERS == ("sgd", "lars") and linear.DEFAULT_LR == {"sgd": 30.0, "lars": 0.1}
    assert linear.LINEAR_VIEWS == {"digits": "linear-digits"}


def test_lars_step_with_weight_decay_one():
    from gandistill.evaluation.lars import LARS

    # wd = 1: d = lambda (g + w), lambda = eta ||w|| / (||g|| + ||w||); w = (3, 4), g = (0, 2), eta = 0.1
    w = torch.tensor([[3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    opt = LARS([w], lr=1.0, momentum=0.0, weight_decay=1.0, trust_coefficient=0.1, eps=0.0)
    w.grad = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    opt.step()
    lam = 0.1 * 5 / (2 + 5)
    assert w.detach().flatten().tolist() == pytest.approx([3.0 - lam * 3.0, 4.0 - lam * 6.0], rel=1e-14)


def test_knn_predict_default_k_follows_the_train_size():
    # 10_000 train items in 2-D: the default k is 200 (from N, not from the width D = 2, which would give 20).
    # 30 items of class 1 at cosine 1 with the query, the rest of class 0 at cosine ~0.99995: the 20 nearest
    # are all class 1, but 200 neighbours are mostly class 0 with nearly the same weight
    train = torch.tensor([1.0, 0.01]).repeat(10_000, 1)
    train[:30] = torch.tensor([1.0, 0.0])
    labels = torch.zeros(10_000, dtype=torch.long)
    labels[:30] = 1
    q = torch.tensor([[1.0, 0.0]])
    assert knn_predict(train, labels, q, k=20).item() == 1 and knn_predict(train, labels, q, k=200).item() == 0
    assert knn_predict(train, labels, q).item() == 0
    assert knn_predict(train[:9_999], labels[:9_999], q).item() == 1          # below 10_000 items: k = 20


def test_probe_accuracy_counts_every_chunk():
    from gandistill.evaluation.linear import accuracy

    # a 1-D feature, two classes: the head predicts class 1 iff x > 0 (logits (0, x))
    head = torch.nn.Linear(1, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[0.0], [1.0]]))
        head.bias.zero_()
    feats = torch.tensor([[1.0], [-1.0], [2.0], [-3.0], [0.5]])     # predictions 1 0 1 0 1
    labels = torch.tensor([1, 0, 0, 0, 0])                          # right: items 0, 1, 3 -> 60 %
    for chunk in (1, 2, 3, 4096):
        assert accuracy(head, feats, labels, chunk=chunk) == pytest.approx(60.0)
    assert accuracy(head, feats[:4], labels[:4], chunk=3) == pytest.approx(75.0)


def test_extract_features_flattens_image_shaped_outputs():
    from gandistill.evaluation.features import extract_features

    x = torch.arange(5 * 3 * 2 * 2, dtype=torch.float32).view(5, 3, 2, 2) / 60.0
    y = torch.tensor([0, 1, 2, 1, 0])
    mean, std = (0.5, 0.25, 0.0), (0.5, 2.0, 1.0)
    want = ((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)).flatten(1)
    f, labels = extract_features(lambda v: v, (x, y), 2, "cpu", mean, std)          # [N, 3, 2, 2] -> [N, 12]
    assert f.shape == (5, 12) and torch.allclose(f, want) and torch.equal(labels, y)
    f, _ = extract_features(lambda v: v[:, 0], (x, y), 3, "cpu", mean, std)         # [N, 2, 2] -> [N, 4]
    assert f.shape == (5, 4) and torch.allclose(f, want[:, :4])
    f, _ = extract_features(lambda v: v.mean((2, 3)), (x, y), 4, "cpu", mean, std)  # already [N, D]
    assert f.shape == (5, 3) and torch.allclose(f, want.view(5, 3, 4).mean(2))
