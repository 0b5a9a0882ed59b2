"""Losses: Eq. 9/10/11/12 against independent float64 loop statements, hand cases, gradients, DDP gather."""
from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pytest
import torch

from gandistill.losses import (invariance, mix_losses, squeeze_loss, vicreg_cov, vicreg_loss,
                               vicreg_var)

EPS = 1e-4


# ---- independent re-statements of the paper's formulas (plain Python loops, float64) -------------
def ref_var(z: np.ndarray, eps: float = EPS) -> float:
    n, d = z.shape
    total = 0.0
    for j in range(d):
        col = [float(z[i, j]) for i in range(n)]
        mean = sum(col) / n
        var = sum((c - mean) ** 2 for c in col) / (n - 1)
        total += max(0.0, 1.0 - math.sqrt(var + eps))
    return total / d


def ref_cov(z: np.ndarray) -> float:
    n, d = z.shape
    means = [sum(float(z[i, j]) for i in range(n)) / n for j in range(d)]
    total = 0.0
    for a in range(d):
        for b in range(d):
            if a == b:
                continue
            c = sum((float(z[i, a]) - means[a]) * (float(z[i, b]) - means[b]) for i in range(n)) / (n - 1)
            total += c * c
    return total / d


def ref_mse(a: np.ndarray, b: np.ndarray) -> float:
    n, d = a.shape
    return sum((float(a[i, j]) - float(b[i, j])) ** 2 for i in range(n) for j in range(d)) / (n * d)


def _rand(n, d, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * scale


# ---- equality with the reference -------------------------------------------------------------
@pytest.mark.parametrize("n,d,scale", [(2, 3, 1.0), (7, 5, 0.3), (16, 9, 2.0), (5, 1, 0.5)])
def test_var_cov_match_loop_reference(n, d, scale):
    z = _rand(n, d, seed=n * 100 + d, scale=scale)
    zn = z.double().numpy()
    assert vicreg_var(z).item() == pytest.approx(ref_var(zn), rel=1e-5, abs=1e-6)
    assert vicreg_cov(z).item() == pytest.approx(ref_cov(zn), rel=1e-5, abs=1e-7)
    assert vicreg_var(z.double()).item() == pytest.approx(ref_var(zn), rel=1e-12, abs=1e-12)
    assert vicreg_cov(z.double()).item() == pytest.approx(ref_cov(zn), rel=1e-12, abs=1e-12)


def test_eps_is_used():
    z = _rand(6, 4, seed=1, scale=0.2)
    assert vicreg_var(z, eps=0.5).item() == pytest.approx(ref_var(z.double().numpy(), eps=0.5), rel=1e-5)


def test_invariance_is_mse_over_n_times_d():
    a, b = _rand(5, 3, 2), _rand(5, 3, 3)
    assert invariance(a, b).item() == pytest.approx(ref_mse(a.double().numpy(), b.double().numpy()), rel=1e-5)


# ---- hand-worked tiny cases ---------------------------------------------------------------
def test_hand_worked_two_by_two():
    # columns {0,1} and {0,-1}: unbiased var 0.5 each, covariance -0.5
    z = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    assert vicreg_var(z).item() == pytest.approx(1.0 - math.sqrt(0.5 + EPS), rel=1e-6)
    # C = [[.5,-.5],[-.5,.5]] -> off-diagonal squares 2 * .25, divided by D=2
    assert vicreg_cov(z).item() == pytest.approx(0.25, rel=1e-6)


def test_hand_worked_large_spread_and_constant():
    z = torch.tensor([[0.0, 0.0], [2.0, 2.0]])  # var 2 per column: hinge inactive; cov 2 off-diagonal
    assert vicreg_var(z).item() == 0.0
    assert vicreg_cov(z).item() == pytest.approx(2 * 4.0 / 2, rel=1e-6)
    c = torch.full((4, 3), 3.0)  # collapsed: var term 1 - sqrt(eps), no covariance
    assert vicreg_var(c).item() == pytest.approx(1.0 - math.sqrt(EPS), rel=1e-6)
    assert vicreg_cov(c).item() == 0.0


def test_cov_ignores_diagonal():
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 3.0], [0.0, -3.0]])  # uncorrelated, unequal variances
    assert vicreg_cov(z).item() == pytest.approx(0.0, abs=1e-7)


# ---- combined losses ---------------------------------------------------------------------
def test_vicreg_loss_composition():
    z1, z2 = _rand(8, 6, 4), _rand(8, 6, 5, scale=0.3)
    out = vicreg_loss(z1, z2, sim=2.0, var=3.0, cov=0.5)
    n1, n2 = z1.double().numpy(), z2.double().numpy()
    v = ref_var(n1) + ref_var(n2)
    c = ref_cov(n1) + ref_cov(n2)
    s = ref_mse(n1, n2)
    assert set(out) == {"loss", "sim", "var", "cov"}
    assert out["sim"].item() == pytest.approx(s, rel=1e-5)
    assert out["var"].item() == pytest.approx(v, rel=1e-5)
    assert out["cov"].item() == pytest.approx(c, rel=1e-5)
    assert out["loss"].item() == pytest.approx(2 * s + 3 * v + 0.5 * c, rel=1e-5)


def test_squeeze_loss_student_only_vs_both():
    zs = _rand(8, 6, 6, scale=0.4).requires_grad_()
    zt = _rand(8, 6, 7, scale=0.2).requires_grad_()
    ns, nt = zs.detach().double().numpy(), zt.detach().double().numpy()
    a = squeeze_loss(zs, zt, sim=1.0, var=2.0, cov=3.0)
    assert a["var"].item() == pytest.approx(ref_var(ns), rel=1e-5)
    assert a["cov"].item() == pytest.approx(ref_cov(ns), rel=1e-5)
    assert a["var_target"].item() == pytest.approx(ref_var(nt), rel=1e-5)
    assert a["cov_target"].item() == pytest.approx(ref_cov(nt), rel=1e-5)
    expect = ref_mse(ns, nt) + 2 * ref_var(ns) + 3 * ref_cov(ns)
    assert a["loss"].item() == pytest.approx(expect, rel=1e-5)
    b = squeeze_loss(zs, zt, sim=1.0, var=2.0, cov=3.0, var_cov_on="both")
    expect_b = expect + 2 * ref_var(nt) + 3 * ref_cov(nt)
    assert b["loss"].item() == pytest.approx(expect_b, rel=1e-5)
    # with sim=0 the target only gets gradient when var/cov act on it
    (ga,) = torch.autograd.grad(squeeze_loss(zs, zt, sim=0.0)["loss"], zt, allow_unused=True)
    (gb,) = torch.autograd.grad(squeeze_loss(zs, zt, sim=0.0, var_cov_on="both")["loss"], zt)
    assert ga is None or ga.abs().max().item() == 0.0
    assert gb.abs().max().item() > 0.0
    # the target is not detached: L_RD trains the squeeze module
    (gt,) = torch.autograd.grad(squeeze_loss(zs, zt, var=0.0, cov=0.0)["loss"], zt)
    assert torch.allclose(gt, 25.0 * 2 * (zt - zs).detach() / zt.numel(), rtol=1e-5, atol=1e-7)


def test_zero_weight_terms_are_logged_but_carry_no_gradient():
    zs = _rand(8, 4, 8).requires_grad_()
    zt = _rand(8, 4, 9)
    out = squeeze_loss(zs, zt, sim=1.0, var=0.0, cov=0.0)
    assert out["var"].item() == pytest.approx(ref_var(zs.detach().double().numpy()), rel=1e-5)
    (g,) = torch.autograd.grad(out["loss"], zs)
    assert torch.allclose(g, 2 * (zs - zt).detach() / zs.numel(), rtol=1e-5, atol=1e-7)


def test_mix_losses():
    a, b = torch.tensor(2.0), torch.tensor(4.0)
    assert mix_losses(a, b, 0.25).item() == pytest.approx(0.25 * 2 + 0.75 * 4)
    assert mix_losses(a, None, 1.0) is a
    assert mix_losses(None, b, 0.0) is b
    with pytest.raises(ValueError, match="span"):
        mix_losses(a, None, 0.5)


# ---- gradients -------------------------------------------------------------------------
def test_gradcheck_float64():
    z = _rand(6, 4, 10, scale=0.3).double().requires_grad_()
    z2 = _rand(6, 4, 11, scale=0.3).double().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: vicreg_var(t), (z,))
    assert torch.autograd.gradcheck(lambda t: vicreg_cov(t), (z,))
    assert torch.autograd.gradcheck(lambda a, b: vicreg_loss(a, b)["loss"], (z, z2))
    assert torch.autograd.gradcheck(lambda a, b: squeeze_loss(a, b, var_cov_on="both")["loss"], (z, z2))


def test_sgd_steps_lower_the_loss():
    z1 = _rand(32, 8, 12, scale=0.05).requires_grad_()
    z2 = _rand(32, 8, 13, scale=0.05).requires_grad_()
    opt = torch.optim.SGD([z1, z2], lr=1.0)
    losses = []
    for _ in range(20):
        loss = vicreg_loss(z1, z2)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:]))


# ---- precision ------------------------------------------------------------------------
def test_fp32_under_autocast_and_half_input():
    z = _rand(16, 8, 14)
    ref = vicreg_cov(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = vicreg_cov(z)
        got_var = vicreg_var(z.bfloat16())
    assert got.dtype == torch.float32 and got_var.dtype == torch.float32
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)
    assert got_var.item() == pytest.approx(ref_var(z.bfloat16().double().numpy()), rel=1e-5)


# ---- errors ----------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [vicreg_var, vicreg_cov])
def test_bad_input_errors(fn):
    with pytest.raises(ValueError, match="at least 2 rows"):
        fn(torch.randn(1, 4))
    with pytest.raises(ValueError, match="2-D"):
        fn(torch.randn(4, 2, 3))
    with pytest.raises(ValueError, match="NaN or Inf"):
        fn(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="NaN or Inf"):
        fn(torch.tensor([[1.0, float("inf")], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="floating"):
        fn(torch.ones(4, 3, dtype=torch.long))


def test_combined_loss_errors():
    with pytest.raises(ValueError, match="equal shapes"):
        vicreg_loss(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="var_cov_on"):
        squeeze_loss(torch.randn(4, 3), torch.randn(4, 3), var_cov_on="teacher")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 rows"):
        squeeze_loss(torch.randn(1, 3), torch.randn(1, 3))


def test_gather_is_noop_without_distributed():
    z = _rand(5, 3, 15)
    assert vicreg_var(z, gather=True).item() == vicreg_var(z).item()
    assert vicreg_cov(z, gather=True).item() == vicreg_cov(z).item()


# ---- 2-process gloo: gathered statistics equal the concatenated batch ------------------------
SPLITS = {0: (0, 3), 1: (3, 8)}  # uneven shards: 3 + 5 rows


def _gloo_worker(rank: int, world: int, init_file: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        full = _rand(8, 5, 16).double()
        lo, hi = SPLITS[rank]
        for fn in (vicreg_var, vicreg_cov):
            shard = full[lo:hi].clone().requires_grad_()
            val = fn(shard, gather=True)
            whole = full.clone().requires_grad_()
            ref = fn(whole)
            ref.backward()
            val.backward()
            assert abs(val.item() - ref.item()) < 1e-12, (fn.__name__, val.item(), ref.item())
            # backward sums over ranks: local grad = world * dL/dz_local; DDP averaging divides by world
            assert torch.allclose(shard.grad / world, whole.grad[lo:hi], atol=1e-12), fn.__name__
            assert shard.grad.abs().sum() > 0
        # one local row is fine when the global batch has two or more
        one = full[rank : rank + 1].clone()
        assert abs(vicreg_cov(one, gather=True).item() - vicreg_cov(full[:2]).item()) < 1e-12
    finally:
        dist.destroy_process_group()


def test_gather_two_process_gloo():
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_gloo_worker, args=(2, os.path.join(tmp, "init")), nprocs=2, join=True)
