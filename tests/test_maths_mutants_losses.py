"""Loss maths where small mutations used to survive (issue 15 item 5).

References are independent statements: ``numpy.cov`` (its own (N-1) normaliser), float64 loops and
closed forms worked by hand. In particular the N x N Gram-matrix route of the covariance term
(taken when N < D) is checked at N > 2, where a wrong ``(N-1)`` normaliser is no longer 1.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gandistill.losses import squeeze_loss, vicreg_cov, vicreg_loss, vicreg_var
from gandistill.losses.vicreg import DEFAULT_EPS, check_embeddings, covariance_matrix, offdiag_square_sum


def _np_offdiag(z: np.ndarray) -> float:
    c = np.cov(z, rowvar=False, ddof=1).reshape(z.shape[1], z.shape[1])
    return float((c ** 2).sum() - (np.diag(c) ** 2).sum())


def _z(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # unequal column scales and a shared factor: off-diagonal covariance far from 0, diagonal unequal
    base = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(0.5, 2.0, d, dtype=torch.float64)
    return base + 0.7 * torch.randn(n, 1, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("n,d", [(3, 7), (4, 9), (5, 16), (3, 3), (6, 4)])
def test_offdiag_square_sum_both_routes_match_numpy_cov(n, d):
    z = _z(n, d, seed=n * 31 + d)
    want = _np_offdiag(z.numpy())
    assert offdiag_square_sum(z).item() == pytest.approx(want, rel=1e-10)
    assert vicreg_cov(z).item() == pytest.approx(want / d, rel=1e-10)
    assert vicreg_cov(z.float()).item() == pytest.approx(want / d, rel=1e-4)


def test_gram_route_normaliser_closed_form():
    # N = 3 rows, D = 4 columns (Gram route): columns are multiples of one centred vector u = (1, 0, -1),
    # so C_ab = s_a s_b |u|^2 / (N-1) = s_a s_b; off-diagonal sum of squares = (sum s^2)^2 - sum s^4.
    s = torch.tensor([1.0, 2.0, -1.0, 3.0], dtype=torch.float64)
    u = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
    z = u[:, None] * s[None, :] + 5.0
    want = float(s.pow(2).sum() ** 2 - s.pow(4).sum())  # 15^2 - 99 = 126
    assert want == 126.0
    assert offdiag_square_sum(z).item() == pytest.approx(want, rel=1e-12)
    assert vicreg_cov(z).item() == pytest.approx(want / 4, rel=1e-12)


def test_covariance_matrix_is_numpy_cov():
    z = _z(5, 3, seed=3)
    assert np.allclose(covariance_matrix(z).numpy(), np.cov(z.numpy(), rowvar=False, ddof=1), rtol=1e-12, atol=0)


def test_gram_route_gradient_matches_covariance_route():
    # the two routes must agree in value and gradient (float64): compare against an explicit D x D formula
    z = _z(3, 6, seed=4).requires_grad_()
    (g_fast,) = torch.autograd.grad(vicreg_cov(z), z)
    z2 = z.detach().clone().requires_grad_()
    zc = z2 - z2.mean(0, keepdim=True)
    c = zc.T @ zc / 2
    ref = (c.pow(2).sum() - c.diagonal().pow(2).sum()) / 6
    (g_ref,) = torch.autograd.grad(ref, z2)
    assert torch.allclose(g_fast, g_ref, rtol=1e-10, atol=1e-12)


def test_var_term_closed_form_and_default_eps():
    assert DEFAULT_EPS == 1e-4
    # column variances (unbiased) 0.25, 1, 4 -> std ~0.5, 1, 2: hinge 0.5, ~0, 0
    z = torch.tensor([[0.0, 0.0, 0.0], [math.sqrt(0.5), math.sqrt(2.0), math.sqrt(8.0)]], dtype=torch.float64)
    z = torch.cat([z, z[:1]])  # 3 rows: values 0, a, 0 -> var = a^2/3
    a2 = torch.tensor([0.5, 2.0, 8.0], dtype=torch.float64)
    var = a2 / 3
    want = float(torch.relu(1 - torch.sqrt(var + 1e-4)).mean())
    assert vicreg_var(z).item() == pytest.approx(want, rel=1e-12)
    # the hinge is at std 1: a column of std 1.5 contributes nothing, one of std 0.5 contributes 0.5
    assert vicreg_var(z, eps=0.0).item() == pytest.approx(float(torch.relu(1 - var.sqrt()).mean()), rel=1e-12)


def test_var_term_is_a_mean_over_columns_not_a_sum():
    z = torch.zeros(4, 5, dtype=torch.float64)
    z[:, 0] = torch.tensor([1.0, -1.0, 1.0, -1.0]) * 10   # far above the hinge: 0
    assert vicreg_var(z).item() == pytest.approx(4 / 5 * (1 - math.sqrt(1e-4)), rel=1e-12)


def test_loss_weights_multiply_the_right_terms():
    g = torch.Generator().manual_seed(5)
    z1 = torch.randn(6, 3, generator=g, dtype=torch.float64) * 0.3
    z2 = torch.randn(6, 3, generator=g, dtype=torch.float64) * 0.3
    base = vicreg_loss(z1, z2, sim=0.0, var=0.0, cov=0.0)
    for w in [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (2.0, 3.0, 5.0)]:
        out = vicreg_loss(z1, z2, *w)
        want = w[0] * base["sim"] + w[1] * base["var"] + w[2] * base["cov"]
        assert out["loss"].item() == pytest.approx(want.item(), rel=1e-12)
    # defaults are SnS's 25 / 25 / 1
    d = vicreg_loss(z1, z2)
    assert d["loss"].item() == pytest.approx((25 * base["sim"] + 25 * base["var"] + base["cov"]).item(), rel=1e-12)
    sq = squeeze_loss(z1, z2)
    want = 25 * sq["sim"] + 25 * vicreg_var(z1) + vicreg_cov(z1)
    assert sq["loss"].item() == pytest.approx(want.item(), rel=1e-12)


def test_squeeze_loss_passes_eps_to_both_branches():
    z = torch.full((4, 3), 2.0, dtype=torch.float64)
    out = squeeze_loss(z, z.clone(), var_cov_on="both", eps=0.25)
    assert out["var"].item() == pytest.approx(2 * (1 - 0.5), rel=1e-12)
    assert out["var_target"].item() == pytest.approx(0.5, rel=1e-12)
    out = squeeze_loss(z, z.clone(), eps=0.25)
    assert out["var_target"].item() == pytest.approx(0.5, rel=1e-12)
    assert vicreg_loss(z, z.clone(), eps=0.25)["var"].item() == pytest.approx(1.0, rel=1e-12)


def test_check_embeddings_boundaries():
    check_embeddings(torch.zeros(2, 1))                 # smallest valid input
    check_embeddings(torch.zeros(1, 1), min_rows=1)
    with pytest.raises(ValueError, match="at least one feature column"):
        check_embeddings(torch.zeros(3, 0))
    with pytest.raises(ValueError, match="torch.Tensor"):
        check_embeddings([[0.0, 1.0]])                   # type: ignore[arg-type]
    check_embeddings(torch.tensor([[float("nan")], [0.0]]), check_finite=False)
    with pytest.raises(ValueError, match="NaN"):
        vicreg_cov(torch.tensor([[float("nan")], [0.0]]))
    # check_finite=False really skips the check (NaN flows through)
    assert math.isnan(vicreg_cov(torch.tensor([[float("nan"), 1.0], [0.0, 2.0]]), check_finite=False).item())


# ---- the gather's slicing and gradient convention, in-process with a simulated 2-rank world ----------
class _FakeDist:
    """Plays rank ``rank`` of a 2-rank world whose other rank holds ``other`` (rows) and sends ``other_grad``.

    all_gather fills the list in rank order, all_reduce(SUM) adds the other rank's gradient: the
    semantics of torch.distributed's collectives, restated without a process group.
    """

    class ReduceOp:
        SUM = "sum"

    def __init__(self, rank: int, other: torch.Tensor, other_grad: torch.Tensor):
        self.rank, self.other, self.other_grad = rank, other, other_grad
        self.calls = []

    def is_available(self):
        return True

    def is_initialized(self):
        return True

    def get_world_size(self):
        return 2

    def get_rank(self):
        return self.rank

    def all_gather(self, out, t):
        self.calls.append("all_gather")
        if t.dtype == torch.long:                      # the size exchange
            theirs = torch.tensor([self.other.shape[0]])
        else:                                          # the padded rows
            theirs = t.new_zeros(t.shape)
            theirs[: self.other.shape[0]] = self.other
        parts = [t, theirs] if self.rank == 0 else [theirs, t]
        for o, p in zip(out, parts):
            o.copy_(p)

    def all_reduce(self, t, op=None):
        assert op == "sum"
        self.calls.append("all_reduce")
        t.add_(self.other_grad)


@pytest.mark.parametrize("rank,n_mine,n_other", [(0, 3, 5), (1, 5, 3), (1, 2, 2), (0, 4, 1)])
def test_gather_rows_order_padding_and_gradient(monkeypatch, rank, n_mine, n_other):
    from gandistill.losses import gather as gather_mod

    g = torch.Generator().manual_seed(rank * 10 + n_mine)
    mine = torch.randn(n_mine, 3, generator=g, dtype=torch.float64)
    other = torch.randn(n_other, 3, generator=g, dtype=torch.float64)
    n = n_mine + n_other
    other_grad = torch.randn(n, 3, generator=g, dtype=torch.float64)
    fake = _FakeDist(rank, other, other_grad)
    monkeypatch.setattr(gather_mod, "dist", fake)
    assert gather_mod.dist_ready()
    z = mine.clone().requires_grad_()
    out = gather_mod.gather_rows(z)
    want = torch.cat([mine, other]) if rank == 0 else torch.cat([other, mine])
    assert out.shape == (n, 3) and torch.equal(out.detach(), want)
    upstream = torch.randn(n, 3, generator=g, dtype=torch.float64)
    out.backward(upstream)
    total = upstream + other_grad                      # summed over the two ranks
    lo = 0 if rank == 0 else n_other
    assert torch.equal(z.grad, total[lo: lo + n_mine])
    assert fake.calls == ["all_gather", "all_gather", "all_reduce"]


def test_dist_ready_needs_an_initialised_world_of_two(monkeypatch):
    from gandistill.losses import gather as gather_mod

    class D(_FakeDist):
        def __init__(self, avail, init, world):
            self.a, self.i, self.w = avail, init, world

        def is_available(self):
            return self.a

        def is_initialized(self):
            return self.i

        def get_world_size(self):
            return self.w

    for args, want in [((True, True, 2), True), ((True, True, 1), False), ((True, False, 2), False),
                       ((False, True, 2), False), ((True, True, 3), True)]:
        monkeypatch.setattr(gather_mod, "dist", D(*args))
        assert gather_mod.dist_ready() is want, args
    monkeypatch.setattr(gather_mod, "dist", D(True, True, 1))
    z = torch.ones(2, 2)
    assert gather_mod.gather_rows(z) is z


def test_squeeze_loss_gathers_var_cov_over_ranks_but_not_the_invariance(monkeypatch):
    from gandistill.losses import gather as gather_mod

    g = torch.Generator().manual_seed(11)
    zs, zt = (torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(2))
    other = torch.randn(4, 4, generator=g, dtype=torch.float64)
    monkeypatch.setattr(gather_mod, "dist", _FakeDist(0, other, torch.zeros(7, 4, dtype=torch.float64)))
    for on in ("student", "both"):
        out = squeeze_loss(zs, zt, gather=True, var_cov_on=on)
        full_s, full_t = torch.cat([zs, other]), torch.cat([zt, other])
        monkeypatch.setattr(gather_mod, "dist", _FakeDist(0, other, torch.zeros(7, 4, dtype=torch.float64)))
        assert out["sim"].item() == pytest.approx(float(((zs - zt) ** 2).mean()), rel=1e-12)
        v_s, c_s = _ref_var(full_s), _np_offdiag(full_s.numpy()) / 4
        v_t, c_t = _ref_var(full_t), _np_offdiag(full_t.numpy()) / 4
        assert out["var_target"].item() == pytest.approx(v_t, rel=1e-12)
        assert out["cov_target"].item() == pytest.approx(c_t, rel=1e-12)
        both = on == "both"
        assert out["var"].item() == pytest.approx(v_s + (v_t if both else 0.0), rel=1e-12)
        assert out["cov"].item() == pytest.approx(c_s + (c_t if both else 0.0), rel=1e-12)
    out = vicreg_loss(zs, zt, gather=True)
    assert out["var"].item() == pytest.approx(_ref_var(torch.cat([zs, other])) + _ref_var(torch.cat([zt, other])),
                                              rel=1e-12)


def _ref_var(z: torch.Tensor, eps: float = 1e-4) -> float:
    a = z.numpy()
    return float(np.mean(np.maximum(0.0, 1.0 - np.sqrt(a.var(axis=0, ddof=1) + eps))))


def test_zero_weight_terms_build_no_graph_nonzero_ones_do():
    g = torch.Generator().manual_seed(12)
    zs = torch.randn(5, 3, generator=g, dtype=torch.float64).requires_grad_()
    zt = torch.randn(5, 3, generator=g, dtype=torch.float64).requires_grad_()
    for on in ("student", "both"):
        out = squeeze_loss(zs, zt, sim=1.0, var=0.0, cov=0.0, var_cov_on=on)
        assert not out["var"].requires_grad and not out["cov"].requires_grad
        out = squeeze_loss(zs, zt, sim=1.0, var=1.0, cov=1.0, var_cov_on=on)
        assert out["var"].requires_grad and out["cov"].requires_grad
    out = vicreg_loss(zs, zt, var=0.0, cov=0.0)
    assert not out["var"].requires_grad and not out["cov"].requires_grad
    assert vicreg_loss(zs, zt)["cov"].requires_grad


def test_check_finite_flag_reaches_every_term():
    nan = torch.tensor([[float("nan"), 1.0], [0.0, 2.0], [1.0, 0.0]])
    ok = torch.tensor([[0.0, 1.0], [1.0, 2.0], [2.0, 0.0]])
    for a, b in ((nan, ok), (ok, nan)):
        for on in ("student", "both"):
            with pytest.raises(ValueError, match="NaN"):
                squeeze_loss(a, b, var_cov_on=on)
            out = squeeze_loss(a, b, var_cov_on=on, check_finite=False)
            assert math.isnan(out["loss"].item())
        with pytest.raises(ValueError, match="NaN"):
            vicreg_loss(a, b)
        assert math.isnan(vicreg_loss(a, b, check_finite=False)["loss"].item())


def test_squeeze_loss_keys_and_student_branch_eps():
    z = torch.full((4, 3), 2.0, dtype=torch.float64)
    out = squeeze_loss(z, z.clone(), eps=0.25)
    assert set(out) == {"loss", "sim", "var", "cov", "var_target", "cov_target"}
    assert out["var"].item() == pytest.approx(0.5, rel=1e-12)
    assert out["loss"].item() == pytest.approx(25 * 0.5, rel=1e-12)


def test_mix_losses_default_and_bounds():
    from gandistill.losses import mix_losses

    a, b = torch.tensor(2.0), torch.tensor(6.0)
    assert mix_losses(a, b).item() == pytest.approx(4.0)          # alpha = 0.5 by default
    assert mix_losses(a, b, 1.0).item() == pytest.approx(2.0)
    assert mix_losses(a, b, 0.0).item() == pytest.approx(6.0)
    for bad in (1.01, 1.5, -0.01):
        with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
            mix_losses(a, b, bad)
    for alpha in (0.5, 0.01, 1.0):
        with pytest.raises(ValueError, match="needs a squeeze loss"):
            mix_losses(None, b, alpha)
    for alpha in (0.5, 0.99, 0.0):
        with pytest.raises(ValueError, match="needs a span loss"):
            mix_losses(a, None, alpha)


def test_messages_name_the_argument_and_the_row_count():
    from gandistill.losses import invariance

    with pytest.raises(ValueError, match=r"^z must be 2-D"):
        check_embeddings(torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match=r"^z must be a torch.Tensor of shape \[N, D\], got list$"):
        check_embeddings([[0.0]])                                   # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^z must be a torch.Tensor of shape \[N, D\], got list$"):
        vicreg_var([[0.0, 1.0], [1.0, 0.0]])                        # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^z needs at least 2 rows \(batch size N >= 2\) for batch statistics, got N=1$"):
        vicreg_cov(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"^z needs at least 2 rows"):
        check_embeddings(torch.zeros(1, 4))
    ok = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"^a contains NaN"):
        invariance(torch.full((3, 2), float("nan")), ok)
    with pytest.raises(ValueError, match=r"^b contains NaN"):
        invariance(ok, torch.full((3, 2), float("nan")))
    with pytest.raises(ValueError, match=r"^b must be 2-D"):
        invariance(ok, torch.zeros(3, 2, 1))
    assert math.isnan(invariance(ok, torch.full((3, 2), float("nan")), check_finite=False).item())


def test_invariance_accepts_a_single_row():
    from gandistill.losses import invariance

    a, b = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.0, 2.0, 5.0]])
    assert invariance(a, b).item() == pytest.approx((1 + 0 + 4) / 3)


def test_one_local_row_is_enough_when_the_gathered_batch_has_two(monkeypatch):
    from gandistill.losses import gather as gather_mod

    mine = torch.tensor([[1.0, 2.0, 0.0]], dtype=torch.float64)
    other = torch.tensor([[0.0, 1.0, 3.0]], dtype=torch.float64)
    monkeypatch.setattr(gather_mod, "dist", _FakeDist(1, other, torch.zeros(2, 3, dtype=torch.float64)))
    full = torch.cat([other, mine])
    assert vicreg_cov(mine, gather=True).item() == pytest.approx(_np_offdiag(full.numpy()) / 3, rel=1e-12)
    assert vicreg_var(mine, gather=True).item() == pytest.approx(_ref_var(full), rel=1e-12)


def test_nothing_is_gathered_unless_asked(monkeypatch):
    from gandistill.losses import gather as gather_mod

    g = torch.Generator().manual_seed(13)
    zs, zt = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(2))
    fake = _FakeDist(0, torch.randn(5, 3, generator=g, dtype=torch.float64), torch.zeros(9, 3, dtype=torch.float64))
    monkeypatch.setattr(gather_mod, "dist", fake)
    assert vicreg_var(zs).item() == pytest.approx(_ref_var(zs), rel=1e-12)
    assert vicreg_cov(zs).item() == pytest.approx(_np_offdiag(zs.numpy()) / 3, rel=1e-12)
    out = squeeze_loss(zs, zt)
    assert out["var"].item() == pytest.approx(_ref_var(zs), rel=1e-12)
    assert out["cov_target"].item() == pytest.approx(_np_offdiag(zt.numpy()) / 3, rel=1e-12)
    assert vicreg_loss(zs, zt)["var"].item() == pytest.approx(_ref_var(zs) + _ref_var(zt), rel=1e-12)
    assert fake.calls == []


def test_full_messages_of_check_embeddings():
    with pytest.raises(ValueError) as e:
        check_embeddings(torch.zeros(2, 2, 2))
    assert str(e.value) == "z must be 2-D [N, D] (batch, dim), got shape (2, 2, 2); flatten extra dimensions first"
    with pytest.raises(ValueError) as e:
        check_embeddings(torch.zeros(1, 4))
    assert str(e.value) == "z needs at least 2 rows (batch size N >= 2) for batch statistics, got N=1"
    with pytest.raises(ValueError) as e:
        check_embeddings(torch.full((3, 2), float("inf")), name="zz")
    assert str(e.value) == ("zz contains NaN or Inf values (shape (3, 2)); "
                            "check the learning rate / precision upstream")


def test_the_first_non_finite_input_is_named_by_the_invariance_term():
    nan, ok = torch.full((3, 2), float("nan")), torch.zeros(3, 2)
    for fn in (vicreg_loss, squeeze_loss):
        with pytest.raises(ValueError, match=r"^a contains NaN"):
            fn(nan, ok)
        with pytest.raises(ValueError, match=r"^b contains NaN"):
            fn(ok, nan)


def test_zero_weight_terms_still_use_eps():
    z = torch.full((4, 3), 2.0, dtype=torch.float64)
    out = vicreg_loss(z, z.clone(), var=0.0, eps=0.25)
    assert out["var"].item() == pytest.approx(2 * 0.5, rel=1e-12)
    out = squeeze_loss(z, z.clone(), var=0.0, eps=0.25, var_cov_on="both")
    assert out["var"].item() == pytest.approx(2 * 0.5, rel=1e-12)
