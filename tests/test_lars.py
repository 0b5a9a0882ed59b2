"""Tests for LARS (gandistill.evaluation.lars) and the probes' ``optimizer`` option: the update
against a hand restatement in float64, bias / 1-d exclusion, zero-norm safety, LARS probes on
separable blobs, option threading (suite, evaluate, CLI, compare) and errors. CPU, seconds."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gandistill.evaluation.lars import LARS, trust_ratio
from gandistill.evaluation.linear import OPTIMIZERS, linear_probe, probe_features
from gandistill.evaluation.suite import Precomputed, ProbeConfig, probe_suite


# ----------------------------------------------------------------------------- helpers
def norm(v):
    return math.sqrt(sum(a * a for a in v))


def hand_lars(ws, grads, lrs, mu, wd, eta, eps, adapt):
    """An independent restatement of the update on flat Python lists, one parameter.

    lambda = eta ||w|| / (||g|| + wd ||w|| + eps) (1 if a norm is 0 or the parameter is not adapted);
    d = lambda (g + wd w); v = mu v + d (v = d first); w -= lr v.
    """
    w, v = list(ws), None
    for g, lr in zip(grads, lrs):
        wn, gn = norm(w), norm(g)
        lam = eta * wn / (gn + wd * wn + eps) if (adapt and wn > 0 and gn > 0) else 1.0
        d = [lam * (gi + wd * wi) for gi, wi in zip(g, w)]
        v = d if v is None else [mu * vi + di for vi, di in zip(v, d)]
        w = [wi - lr * vi for wi, vi in zip(w, v)]
    return w


def run_lars(params, grads, lrs, **kw):
    """Apply LARS to float64 tensors with the given gradient sequence and per-step lr."""
    opt = LARS(params, lr=lrs[0], **kw)
    for step_grads, lr in zip(grads, lrs):
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
    return opt


def blobs(n_train, n_test, num_classes, dim, sep=6.0, seed=0):
    """Gaussian blobs around well-separated random centres (separable w.h.p.): train and test sets."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=g) * sep
    out = []
    for n in (n_train, n_test):
        y = torch.arange(num_classes).repeat_interleave(n)
        out += [centres[y] + torch.randn(len(y), dim, generator=g), y]
    return out


# ----------------------------------------------------------------------------- the update
@pytest.mark.parametrize("exclude_1d", [True, False])
@pytest.mark.parametrize("mu,wd", [(0.9, 0.0), (0.9, 5e-2), (0.0, 1e-2)])
def test_lars_matches_hand_restatement(exclude_1d, mu, wd):
    g = torch.Generator().manual_seed(3)
    w0 = torch.randn(2, 3, generator=g, dtype=torch.float64)
    b0 = torch.randn(2, generator=g, dtype=torch.float64) * 0.1
    steps = 4
    gw = [torch.randn(2, 3, generator=g, dtype=torch.float64) for _ in range(steps)]
    gb = [torch.randn(2, generator=g, dtype=torch.float64) for _ in range(steps)]
    lrs = [1.6, 1.6, 0.8, 0.2]                          # the rate changes between steps, as with the cosine
    eta, eps = 0.02, 1e-8
    w, b = w0.clone(), b0.clone()
    run_lars([w, b], list(zip(gw, gb)), lrs, momentum=mu, weight_decay=wd, trust_coefficient=eta, eps=eps,
             exclude_1d=exclude_1d)
    want_w = hand_lars(w0.flatten().tolist(), [x.flatten().tolist() for x in gw], lrs, mu, wd, eta, eps, True)
    want_b = hand_lars(b0.tolist(), [x.tolist() for x in gb], lrs, mu, wd, eta, eps, not exclude_1d)
    assert w.flatten().tolist() == pytest.approx(want_w, rel=1e-12, abs=1e-14)
    assert b.tolist() == pytest.approx(want_b, rel=1e-12, abs=1e-14)
    assert not torch.equal(w, w0) and not torch.equal(b, b0)


def test_first_step_moves_weights_by_lr_eta_norm():
    """Without weight decay the first LARS step has length lr * eta * ||w||, whatever ||g|| is."""
    for scale in (1e-6, 1.0, 1e6):
        w = torch.tensor([[3.0, 4.0]], dtype=torch.float64)          # ||w|| = 5
        w0 = w.clone()
        run_lars([w], [[torch.tensor([[1.0, -2.0]], dtype=torch.float64) * scale]], [2.0],
                 momentum=0.9, trust_coefficient=1e-3, eps=0.0)
        assert float((w - w0).norm()) == pytest.approx(2.0 * 1e-3 * 5.0, rel=1e-12)


def test_biases_and_1d_params_are_plain_momentum_sgd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    with torch.no_grad():
        model[1].weight.mul_(0.5)                                    # BN weight != 1 so a ratio would show
    ref = [p.detach().clone().requires_grad_() for p in model.parameters()]
    opt = LARS(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3, trust_coefficient=1e-3)
    sgd = torch.optim.SGD(ref, lr=0.5, momentum=0.9, weight_decay=1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):                                               # the same gradients for both
        for p, q in zip(model.parameters(), ref):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        opt.step()
        sgd.step()
    for (name, p), q in zip(model.named_parameters(), ref):
        if p.ndim <= 1:      # 0.bias, 1.weight, 1.bias: exactly what SGD does
            assert torch.allclose(p, q, rtol=0, atol=1e-6), name
        else:                # 0.weight is adapted: a far smaller step than SGD's
            assert not torch.allclose(p, q, atol=1e-3), name
    # exclude_1d=False adapts the 1-d parameters too
    b = torch.tensor([1.0, -1.0], dtype=torch.float64)
    run_lars([b], [[torch.tensor([0.5, 0.5], dtype=torch.float64)]], [1.0], momentum=0.0,
             trust_coefficient=0.1, exclude_1d=False)
    lam = 0.1 * math.sqrt(2) / math.sqrt(0.5) / (1 + 1e-8 / math.sqrt(0.5))
    assert b.tolist() == pytest.approx([1.0 - lam * 0.5, -1.0 - lam * 0.5], rel=1e-12)


# ----------------------------------------------------------------------------- zero norms
def test_zero_weight_or_zero_grad_is_finite():
    w_zero = torch.zeros(3, 2, dtype=torch.float64)               # ||w|| = 0: the ratio falls back to 1
    g = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]], dtype=torch.float64)
    run_lars([w_zero], [[g]], [0.1], momentum=0.9, weight_decay=1e-2)
    assert torch.allclose(w_zero, -0.1 * g, rtol=1e-12)           # a plain SGD step, not 0 or NaN
    w = torch.tensor([[1.0, -2.0]], dtype=torch.float64)          # ||g|| = 0
    run_lars([w], [[torch.zeros(1, 2, dtype=torch.float64)]] * 2, [1.0, 1.0], momentum=0.9, weight_decay=0.0)
    assert torch.equal(w, torch.tensor([[1.0, -2.0]], dtype=torch.float64))
    w2 = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    run_lars([w2], [[torch.zeros(1, 2, dtype=torch.float64)]], [1.0], momentum=0.0, weight_decay=0.1)
    assert torch.isfinite(w2).all() and w2.flatten().tolist() == pytest.approx([0.9, -1.8])   # d = wd * w
    both = torch.zeros(4)                                         # ||w|| = ||g|| = 0
    run_lars([both], [[torch.zeros(4)]], [1.0], exclude_1d=False, eps=0.0)
    assert torch.equal(both, torch.zeros(4))
    assert float(trust_ratio(torch.zeros(2), torch.zeros(2), 1e-3, 0.0, 0.0)) == 1.0
    # a parameter without a gradient is skipped
    p, q = torch.ones(2, 2, requires_grad=True), torch.ones(2, 2, requires_grad=True)
    opt = LARS([p, q], lr=1.0)
    p.grad = torch.ones(2, 2)
    opt.step()
    assert torch.equal(q.detach(), torch.ones(2, 2)) and not torch.equal(p.detach(), torch.ones(2, 2))


# ----------------------------------------------------------------------------- the probes
def test_lars_fast_probe_reaches_high_accuracy_on_blobs():
    xtr, ytr, xte, yte = blobs(40, 20, 5, 16, seed=1)
    # LARS moves w by lr * eta * ||w|| per step (before momentum): with eta = 1e-3 and only ~360 steps
    # the probe needs a larger lr than SnS's 0.1 (which is meant for many more steps)
    res = probe_features(xtr, ytr, xte, yte, epochs=90, batch=64, lr=10.0, optimizer="lars")
    assert res["top1"] >= 95.0 and res["optimizer"] == "lars"
    assert res["trust_coefficient"] == 1e-3 and res["exclude_1d"] is True
    assert res["lr"] == pytest.approx(10.0 * 64 / 256)
    default = probe_features(xtr, ytr, xte, yte, epochs=1, batch=64, optimizer="lars")
    assert default["lr"] == pytest.approx(0.1 * 64 / 256)          # lr=None: SnS's LARS rate, 0.1 at 256
    sgd = probe_features(xtr, ytr, xte, yte, epochs=1, batch=64)
    assert sgd["lr"] == pytest.approx(30.0 * 64 / 256) and sgd["optimizer"] == "sgd"


def test_lars_full_protocol_learns_and_uses_lars(monkeypatch):
    calls = []
    real_step = LARS.step

    def counting_step(self, closure=None):
        calls.append(1)
        return real_step(self, closure)

    monkeypatch.setattr(LARS, "step", counting_step)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(30)
    x = torch.rand(len(y), 3, 8, 8, generator=g) * 0.3
    x[torch.arange(len(y)), y] += 0.6
    res = linear_probe(nn.Flatten(), (x, y), (x, y), epochs=15, batch=32, lr=20.0, optimizer="lars",
                       mean=(0.5,) * 3, std=(0.25,) * 3)
    assert res["protocol"] == "linear" and res["optimizer"] == "lars" and res["top1"] >= 90.0
    assert len(calls) == 15 * 3


def test_suite_passes_the_optimizer_on():
    xtr, ytr, xte, yte = blobs(20, 10, 3, 8, seed=4)
    cfg = ProbeConfig(probes=("fast",), fast_epochs=3, batch=32, optimizer="LARS")
    assert cfg.optimizer == "lars" and cfg.lr is None
    table = probe_suite({"rep": Precomputed(xtr, xte, ytr, yte)}, (xtr, ytr), (xte, yte), cfg)
    direct = probe_features(xtr, ytr, xte, yte, epochs=3, batch=32, optimizer="lars")
    assert table.rows[0].fast["optimizer"] == "lars" and table.rows[0].fast["top1"] == direct["top1"]
    assert ProbeConfig().optimizer == "sgd"


# ----------------------------------------------------------------------------- errors
def test_bad_optimizer_and_settings_raise():
    x, y, _, _ = blobs(4, 1, 2, 3)
    for call in (lambda: probe_features(x, y, x, y, optimizer="adam"),
                 lambda: linear_probe(nn.Flatten(), (x, y), (x, y), optimizer="adam"),
                 lambda: ProbeConfig(optimizer="adam")):
        with pytest.raises(ValueError) as e:
            call()
        assert "adam" in str(e.value) and all(o in str(e.value) for o in OPTIMIZERS)
    with pytest.raises(ValueError, match="trust_coefficient"):
        probe_features(x, y, x, y, optimizer="lars", trust_coefficient=0.0)
    with pytest.raises(ValueError, match="momentum"):
        probe_features(x, y, x, y, optimizer="lars", momentum=1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        LARS([torch.zeros(2, requires_grad=True)], lr=1.0, weight_decay=-1.0)
    with pytest.raises(ValueError, match="lr"):
        LARS([torch.zeros(2, requires_grad=True)], lr=0.0)


# ----------------------------------------------------------------------------- threading
def test_evaluate_cli_and_compare_pass_the_optimizer(monkeypatch):
    import gandistill.evaluate as ev
    from gandistill.compare import probing
    from gandistill.compare.presets import ProbeSpec

    seen = {}

    class Stop(Exception):
        pass

    def fake_evaluate(*args, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(ev, "evaluate", fake_evaluate)
    import gandistill.cli.eval as eval_cli

    monkeypatch.setattr(eval_cli, "evaluate", fake_evaluate)     # the CLI imported it at module top
    from typer.testing import CliRunner

    from gandistill.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["eval", "random:resnet10t", "--optimizer", "lars"])
    assert isinstance(out.exception, Stop) and seen["optimizer"] == "lars"
    bad = runner.invoke(app, ["eval", "random:resnet10t", "--optimizer", "adam"])
    assert bad.exit_code == 2 and "sgd" in bad.output and "lars" in bad.output

    seen.clear()
    monkeypatch.setattr(probing, "evaluate", lambda *a, **kw: (seen.update(kw), {"top1": 12.5})[1])
    m, notes = probing.probe_student("run", ProbeSpec(batch=4096, base_lr=0.1, optimizer="lars"), dataset="stl10",
                                     data_root=None, device="cpu")
    assert seen["optimizer"] == "lars" and seen["batch"] == 4096 and seen["lr"] == 0.1
    assert m == {"top1": 12.5} and not any("SGD" in n for n in notes)

    # evaluate() itself hands the optimizer to the suite
    cfgs = []

    def fake_suite(reps, train, test, cfg, **kw):
        cfgs.append(cfg)
        raise Stop

    monkeypatch.undo()
    monkeypatch.setattr(ev, "probe_suite", fake_suite)
    monkeypatch.setattr(ev, "load_eval_splits", lambda *a, **k: (None, None))
    with pytest.raises(Stop):
        ev.evaluate("random:resnet10t", dataset="digits", protocol="fast", optimizer="lars")
    assert cfgs[0].optimizer == "lars" and cfgs[0].lr is None
