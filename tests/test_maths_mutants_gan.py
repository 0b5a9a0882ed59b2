"""GAN objective and FD/KID maths where small mutations used to survive (issue 15 item 5)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gandistill.gan import score as score_mod
from gandistill.gan.loss import StyleGAN2Loss, ema_beta, generate
from gandistill.gan.score import ScoreError, frechet_distance, gaussian_stats, kid, mmd2_unbiased_poly


# ------------------------------------------------------------------------------------------- FD / KID
def test_gaussian_stats_is_mean_and_unbiased_covariance():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(5, 3, generator=g)
    mu, s = gaussian_stats(f)
    assert mu.dtype == torch.float64 and s.dtype == torch.float64
    assert np.allclose(mu.numpy(), f.double().numpy().mean(0), rtol=1e-12, atol=0)
    assert np.allclose(s.numpy(), np.cov(f.double().numpy(), rowvar=False, ddof=1), rtol=1e-12, atol=0)
    gaussian_stats(f[:2])                                            # two samples are enough
    with pytest.raises(ScoreError, match="need at least 2 samples for a covariance, got 1"):
        gaussian_stats(f[:1])


def test_fd_of_commuting_covariances_closed_form():
    # S1 = diag(1, 4), S2 = diag(9, 1): tr sqrt(S1^1/2 S2 S1^1/2) = sqrt(9) + sqrt(4) = 5
    s1, s2 = torch.diag(torch.tensor([1.0, 4.0])), torch.diag(torch.tensor([9.0, 1.0]))
    mu1, mu2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(5 + 5 + 10 - 2 * 5, abs=1e-9)
    # a rotated, non-diagonal pair: S2 = R diag(4, 1) R^T with S1 = I -> tr sqrt(S2) = 3
    c, s = np.cos(0.3), np.sin(0.3)
    r = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    s2r = r @ torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64)) @ r.T
    eye = torch.eye(2, dtype=torch.float64)
    assert frechet_distance(mu1, eye, mu1, s2r) == pytest.approx(2 + 5 - 2 * 3, abs=1e-9)


def test_fd_of_a_singular_covariance_is_finite():
    # rank-deficient S1 (eigenvalues of S1^1/2 S2 S1^1/2 are ~0): the clamp keeps the sqrt real
    s1 = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    s2 = torch.eye(2, dtype=torch.float64)
    z = torch.zeros(2, dtype=torch.float64)
    # S1^1/2 = S1 / sqrt(2); S1^1/2 S2 S1^1/2 = S1^2 / 2 = S1: eigenvalues 2, 0 -> tr sqrt = sqrt(2)
    assert frechet_distance(z, s1, z, s2) == pytest.approx(2 + 2 - 2 * np.sqrt(2), abs=1e-9)


def test_poly_mmd_needs_two_per_side_and_uses_d():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    k = lambda a, b: (float(a @ b) / 2 + 1) ** 3  # noqa: E731
    want = 2 * k(x[0], x[1]) / 2 + 2 * k(y[0], y[1]) / 2 - 2 * sum(k(a, b) for a in x for b in y) / 4
    assert mmd2_unbiased_poly(x, y) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ScoreError, match="KID needs at least 2 samples per side"):
        mmd2_unbiased_poly(x[:1], y)
    with pytest.raises(ScoreError, match="KID needs at least 2 samples per side"):
        mmd2_unbiased_poly(x, y[:1])


@pytest.mark.parametrize("n_real,n_fake,size,want", [(10, 6, 100, 3), (10, 6, 2, 2), (3, 3, 1000, 2),
                                                      (100, 100, 10, 10), (40, 90, 1000, 20)])
def test_kid_subset_sizes_count_and_statistics(monkeypatch, n_real, n_fake, size, want):
    calls = []

    def spy(x, y):
        calls.append((len(x), len(y), len(set(map(tuple, x.tolist()))), len(set(map(tuple, y.tolist())))))
        return float(len(calls))                      # 1, 2, 3, ...

    monkeypatch.setattr(score_mod, "mmd2_unbiased_poly", spy)
    real = torch.arange(n_real, dtype=torch.float64)[:, None].repeat(1, 2)
    fake = -torch.arange(n_fake, dtype=torch.float64)[:, None].repeat(1, 2)
    mean, std = kid(real, fake, subsets=4, subset_size=size)
    assert [c[:2] for c in calls] == [(want, want)] * 4
    assert all(c[2] == want and c[3] == want for c in calls)      # without replacement
    assert mean == pytest.approx(2.5) and std == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    calls.clear()
    mean, std = kid(real, fake, subsets=1, subset_size=size)
    assert (mean, std) == (1.0, 0.0)


def test_kid_defaults_are_50_subsets_of_1000(monkeypatch):
    calls = []
    monkeypatch.setattr(score_mod, "mmd2_unbiased_poly", lambda x, y: calls.append(len(x)) or 0.0)
    kid(torch.zeros(2400, 1), torch.zeros(2100, 1))
    assert calls == [1000] * 50


def test_kid_draws_differ_between_subsets_and_follow_the_seed(monkeypatch):
    seen = []
    monkeypatch.setattr(score_mod, "mmd2_unbiased_poly", lambda x, y: seen.append((x[:, 0].tolist(), y[:, 0].tolist())) or 0.0)
    real, fake = torch.arange(20.0)[:, None], -torch.arange(20.0)[:, None]
    kid(real, fake, subsets=3, subset_size=5, seed=7)
    first = list(seen)
    assert first[0] != first[1] and first[0][0] != first[0][1]   # real and fake indices drawn separately
    seen.clear()
    kid(real, fake, subsets=3, subset_size=5, seed=7)
    assert seen == first
    seen.clear()
    kid(real, fake, subsets=3, subset_size=5, seed=8)
    assert seen != first


# ------------------------------------------------------------------------------------------- G / D loss
class RecMapping(nn.Module):
    num_ws = 3

    def __init__(self, log):
        super().__init__()
        self.log = log

    def forward(self, z, c, update_emas=False):
        self.log.append(("mapping", update_emas))
        return z.unsqueeze(1).repeat(1, self.num_ws, 1)


class RecSynthesis(nn.Module):
    def __init__(self, log):
        super().__init__()
        self.log = log

    def forward(self, ws, noise_mode="const", force_fp32=False, update_emas=False):
        self.log.append(("synthesis", noise_mode, force_fp32, update_emas))
        return ws.unsqueeze(1) * 3.0                   # [N, 1, num_ws, z]


class RecG(nn.Module):
    def __init__(self):
        super().__init__()
        self.log = []
        self.mapping, self.synthesis = RecMapping(self.log), RecSynthesis(self.log)


class SumD(nn.Module):
    def forward(self, x, c):
        return x.flatten(1).sum(1, keepdim=True) * 0.1


def test_generate_and_losses_pass_the_training_flags():
    G = RecG()
    z, c = torch.ones(2, 4), torch.zeros(2, 0)
    generate(G, z, c)
    assert G.log == [("mapping", False), ("synthesis", "random", True, False)]
    G.log.clear()
    generate(G, z, c, update_emas=True)
    assert G.log == [("mapping", True), ("synthesis", "random", True, True)]
    loss = StyleGAN2Loss(G, SumD(), augment=lambda x: x)
    G.log.clear()
    loss.g_main(z, c)
    assert G.log == [("mapping", False), ("synthesis", "random", True, False)]
    G.log.clear()
    loss.d_main(z, c, torch.zeros(2, 1, 3, 4), c)
    assert G.log == [("mapping", True), ("synthesis", "random", True, True)]     # D step updates G's averages
    G.log.clear()
    StyleGAN2Loss(G, SumD(), augment=lambda x: x, style_mixing_prob=0.5).g_main(z, c)
    assert G.log == [("mapping", False), ("mapping", False), ("synthesis", "random", True, False)]


def test_loss_defaults_and_logged_values():
    G, D = RecG(), SumD()
    loss = StyleGAN2Loss(G, D, augment=lambda x: x)
    assert (loss.r1_gamma, loss.style_mixing_prob, loss.clamp_fakes, loss.range_weight, loss.range_margin) == \
        (0.05, 0.0, False, 0.0, 4.0)
    z, c = torch.ones(2, 4), torch.zeros(2, 0)      # fake image = 3 everywhere, 12 pixels: D = 3.6
    lg, logs = loss.g_main(z, c)
    sp = lambda t: float(torch.nn.functional.softplus(torch.tensor(t)))  # noqa: E731
    assert logs == {"loss_G": pytest.approx(sp(-3.6)), "score_fake_G": pytest.approx(3.6)}
    real = torch.full((2, 1, 3, 4), -1.0)             # D(real) = -1.2
    ld, logs, real_logits = loss.d_main(z, c, real, c)
    assert logs == {"loss_D": pytest.approx(sp(3.6) + sp(1.2)), "score_real": pytest.approx(-1.2),
                    "score_fake": pytest.approx(3.6)}
    assert ld.item() == pytest.approx(sp(3.6) + sp(1.2), rel=1e-6)
    assert torch.allclose(real_logits, torch.full((2, 1), -1.2))
    # R1 of D(x) = 0.1 * sum(x): ||grad||^2 = 12 * 0.01 per sample
    lr1, logs = loss.d_reg(real, c, gain=4)
    assert logs == {"r1_penalty": pytest.approx(0.12)}
    assert lr1.item() == pytest.approx(0.12 * 0.05 / 2 * 4, rel=1e-6)


def test_range_excess_is_a_per_sample_sum_averaged_over_the_batch():
    G, D = RecG(), SumD()
    loss = StyleGAN2Loss(G, D, augment=lambda x: x, clamp_fakes=True, range_weight=2.0, range_margin=1.0)
    z = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])   # images 3 (excess 2 x 12) and 0 (none)
    lg, logs = loss.g_main(z, torch.zeros(2, 0))
    assert logs["range_excess"] == pytest.approx(12.0)
    # D sees clamp(3) = 1 for the first (12 pixels -> 1.2) and 0 for the second
    sp = torch.nn.functional.softplus
    want = float((sp(torch.tensor(-1.2)) + sp(torch.tensor(0.0))) / 2) + 2.0 * 12.0
    assert lg.item() == pytest.approx(want, rel=1e-6)


def test_ema_beta_uses_the_smaller_horizon():
    # min(ema_kimg * 1000, cur_nimg * rampup): 1000 * 0.5 = 500 < 2000
    assert ema_beta(10, 1000, 2.0, 0.5) == pytest.approx(0.5 ** (10 / 500))
    assert ema_beta(10, 10 ** 6, 2.0, 0.5) == pytest.approx(0.5 ** (10 / 2000))
    assert ema_beta(10, 10 ** 6, 2.0, None) == pytest.approx(0.5 ** (10 / 2000))


# ------------------------------------------------------------------------------------------- ADA controller
def test_ada_controller_defaults_are_the_ada_papers():
    from gandistill.gan.ada import AdaAugment, AdaController

    ctl = AdaController(AdaAugment(p=0.0))
    # Karras et al. 2020: target r_t = 0.6, adjust every 4 steps, p can traverse [0, 1] in 500k images
    assert (ctl.target, ctl.interval, ctl.ada_kimg) == (0.6, 4, 500.0)
    assert ctl.state_dict() == {"sign_sum": 0.0, "count": 0, "steps": 0, "last_rt": None}


def test_ada_controller_interval_counting_and_one_logit():
    from gandistill.gan.ada import AdaAugment, AdaController

    aug = AdaAugment(p=0.5)
    ctl = AdaController(aug, target=0.6, interval=3, ada_kimg=1.0)
    for i in range(1, 7):
        ctl.accumulate(torch.tensor([[2.0]]))            # one logit per step, positive: r_t = 1
        ctl.step(batch=10)
        assert ctl.steps == i
        want = 0.5 + (i // 3) * (10 * 3 / 1000)
        assert float(aug.p) == pytest.approx(want)
        assert ctl.count == (i % 3)                        # reset after each adjustment
    assert ctl.last_rt == 1.0
    # an adjustment step with nothing accumulated leaves p alone (no division by zero)
    ctl2 = AdaController(AdaAugment(p=0.5), interval=1)
    ctl2.step(batch=10)
    assert float(ctl2.aug.p) == 0.5 and ctl2.last_rt is None
    # exactly one logit is enough at an adjustment step
    ctl2.accumulate(torch.tensor([[-1.0]]))
    ctl2.step(batch=10)
    assert float(ctl2.aug.p) < 0.5 and ctl2.last_rt == -1.0


def test_ada_controller_state_carries_last_rt():
    from gandistill.gan.ada import AdaAugment, AdaController

    ctl = AdaController(AdaAugment(p=0.3), interval=1)
    ctl.accumulate(torch.tensor([[1.0], [-1.0], [1.0], [1.0]]))
    ctl.step(4)
    sd = ctl.state_dict()
    assert sd == {"sign_sum": 0.0, "count": 0, "steps": 1, "last_rt": 0.5}
    other = AdaController(AdaAugment(p=0.3), interval=1)
    other.load_state_dict(sd)
    assert other.last_rt == 0.5 and other.steps == 1
    other.load_state_dict({"sign_sum": 2.0, "count": 3, "steps": 5})   # older states have no last_rt
    assert other.last_rt is None and (other.sign_sum, other.count, other.steps) == (2.0, 3, 5)


def test_ada_augment_repr():
    from gandistill.gan.ada import AdaAugment

    assert AdaAugment(ops=("xflip",), p=0.25).extra_repr() == "ops=('xflip',), p=0.250"


# ------------------------------------------------------------------------------------------- conditioning labels
class CondMapping(nn.Module):
    num_ws = 2

    def forward(self, z, c, update_emas=False):
        return (z + c.sum(1, keepdim=True)).unsqueeze(1).repeat(1, self.num_ws, 1)


class CondG(nn.Module):
    def __init__(self):
        super().__init__()
        self.mapping, self.synthesis = CondMapping(), RecSynthesis([])


class CondD(nn.Module):
    def forward(self, x, c):
        return x.flatten(1).sum(1, keepdim=True) * 0.1 + c @ torch.tensor([[1.0], [-2.0]])


def test_every_pass_uses_its_own_labels():
    from gandistill.gan.loss import r1_penalty

    sp = lambda t: torch.nn.functional.softplus(t)  # noqa: E731
    loss = StyleGAN2Loss(CondG(), CondD(), augment=lambda x: x)
    z = torch.zeros(2, 3)
    gen_c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])        # G adds 1 to z; D adds +1 / -2
    real_c = torch.tensor([[0.0, 1.0], [1.0, 1.0]])       # D adds -2 / -1
    # fake image = 3 * (z + sum c) over 2 x 3 pixels = 18 * 0.1 = 1.8, plus D's label term
    fake_logits = torch.tensor([[1.8 + 1.0], [1.8 - 2.0]])
    lg, _ = loss.g_main(z, gen_c)
    assert lg.item() == pytest.approx(float(sp(-fake_logits).mean()), rel=1e-6)
    real = torch.ones(2, 1, 2, 3)                          # 0.6 + label term
    real_logits = torch.tensor([[0.6 - 2.0], [0.6 - 1.0]])
    ld, _, got_real = loss.d_main(z, gen_c, real, real_c)
    assert torch.allclose(got_real, real_logits)
    assert ld.item() == pytest.approx(float(sp(fake_logits).mean() + sp(-real_logits).mean()), rel=1e-6)
    pen, logits = r1_penalty(CondD(), real, real_c, lambda x: x)
    assert torch.allclose(logits, real_logits)
    _, logs = loss.d_reg(real, real_c, gain=1)
    assert logs["r1_penalty"] == pytest.approx(6 * 0.01)


# ------------------------------------------------------------------------------------------- ADA ops
def _aug(ops, p=1.0, **kw):
    from gandistill.gan.ada import AdaAugment

    return AdaAugment(ops, p=p, **kw)


def test_xflip_flips_whole_samples_with_probability_p():
    x = torch.rand(64, 2, 3, 5) * 2 - 1
    torch.manual_seed(0)
    assert torch.equal(_aug(["xflip"])(x), x.flip(3))
    y = _aug(["xflip"], p=0.5)(x)
    flipped = [torch.equal(y[i], x[i].flip(2)) for i in range(64)]
    kept = [torch.equal(y[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 16 < sum(flipped) < 48


def _shift_of(y, x, max_dx, max_dy):
    """(dx, dy) such that y is x shifted with reflect padding, found by search."""
    pad = torch.nn.functional.pad(x[None], (max_dx, max_dx, max_dy, max_dy), mode="reflect")[0]
    h, w = x.shape[-2:]
    for dx in range(-max_dx, max_dx + 1):
        for dy in range(-max_dy, max_dy + 1):
            if torch.equal(y, pad[:, max_dy - dy:max_dy - dy + h, max_dx - dx:max_dx - dx + w]):
                return dx, dy
    return None


def test_translate_range_is_a_fraction_of_each_side():
    torch.manual_seed(2)
    x = torch.arange(2 * 8 * 16, dtype=torch.float32).view(1, 2, 8, 16).repeat(200, 1, 1, 1)
    y = _aug(["translate"], translate_frac=0.25)(x)          # |dx| <= 4 (width 16), |dy| <= 2 (height 8)
    shifts = [_shift_of(y[i], x[i], 6, 6) for i in range(200)]
    assert None not in shifts
    dxs, dys = {s[0] for s in shifts}, {s[1] for s in shifts}
    assert dxs == set(range(-4, 5)) and dys == set(range(-2, 3))
    y = _aug(["translate"], p=0.5, translate_frac=0.25)(x)
    unshifted = sum(torch.equal(y[i], x[i]) for i in range(200))
    assert 60 < unshifted < 160                               # half untouched, plus the zero shifts


def test_cutout_square_has_the_given_side():
    torch.manual_seed(3)
    x = torch.ones(300, 1, 16, 16)
    y = _aug(["cutout"], cutout_frac=0.5)(x)
    rows = (y[:, 0] == 0).any(2).sum(1)
    cols = (y[:, 0] == 0).any(1).sum(1)
    assert rows.max() == 8 and cols.max() == 8              # side 0.5 * 16 when fully inside
    assert (rows >= 1).all() and (cols >= 1).all()           # the centre is always inside the image
    assert ((rows == 8) & (cols == 8)).float().mean() > 0.2
    y = _aug(["cutout"], p=0.5, cutout_frac=0.25)(x)
    cut = (y == 0).flatten(1).any(1)
    assert 100 < int(cut.sum()) < 200
    assert (y == 0).flatten(1).sum(1).max() <= 16            # 4 x 4


def test_colour_op_strengths():
    torch.manual_seed(4)
    n = 4000
    x = torch.rand(n, 3, 1, 2) * 0.5 + 0.25
    b = (_aug(["brightness"])(x) - x)[:, 0, 0, 0]
    assert abs(float(b.std()) - 0.2) < 0.02 and abs(float(b.mean())) < 0.02
    c = torch.log2(_aug(["contrast"])(x) / x)[:, 0, 0, 0]
    assert abs(float(c.std()) - 0.5) < 0.05 and abs(float(c.mean())) < 0.05
    luma = x.mean(1, keepdim=True)
    s = torch.log2((_aug(["saturation"])(x) - luma) / (x - luma))[:, 0, 0, 0]
    assert abs(float(s.std()) - 1.0) < 0.1 and abs(float(s.mean())) < 0.1
    # with probability p, each op independently: about half the samples keep their colours
    for op in ("brightness", "contrast", "saturation"):
        y = _aug([op], p=0.5)(x)
        same = (y == x).flatten(1).all(1).float().mean()
        assert 0.4 < float(same) < 0.6, op


def test_ops_run_in_order_each_with_its_own_draw():
    torch.manual_seed(5)
    x = torch.rand(2000, 1, 1, 1)
    y = _aug(["brightness", "brightness"], p=0.5)(x)
    moved = (y != x).flatten().float().mean()
    assert abs(float(moved) - 0.75) < 0.04                   # 1 - (1 - p)^2 with independent masks


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_every_op_keeps_the_input_dtype(dtype):
    torch.manual_seed(6)
    x = (torch.rand(4, 3, 8, 8) * 2 - 1).to(dtype)
    for op in ("xflip", "translate", "cutout", "brightness", "contrast", "saturation"):
        assert _aug([op])(x).dtype == dtype, op


def test_cutout_centre_is_uniform_and_independent_per_axis():
    torch.manual_seed(7)
    n = 3000
    zero = (_aug(["cutout"], cutout_frac=0.5)(torch.ones(n, 1, 16, 16))[:, 0] == 0)
    cols = zero.any(1).float().mean(0)                        # how often each column is (partly) cut
    rows = zero.any(2).float().mean(0)
    # uniform centre, pixel centres at (i + 0.5) / 16: column 0 is cut iff centre < 0.25 + 1/32
    assert float(cols[0]) == pytest.approx(0.28125, abs=0.03) and float(cols[15]) == pytest.approx(0.28125, abs=0.03)
    assert float(rows[0]) == pytest.approx(0.28125, abs=0.03) and float(rows[15]) == pytest.approx(0.28125, abs=0.03)
    assert torch.allclose(cols, cols.flip(0), atol=0.04) and torch.allclose(rows, rows.flip(0), atol=0.04)
    idx = torch.arange(16.0)
    cx = (zero.any(1).float() * idx).sum(1) / zero.any(1).sum(1)
    cy = (zero.any(2).float() * idx).sum(1) / zero.any(2).sum(1)
    corr = torch.corrcoef(torch.stack([cx, cy]))[0, 1]
    assert abs(float(corr)) < 0.1                             # x and y centres drawn independently


def test_ada_augment_defaults_and_saturation_strength():
    from gandistill.gan.ada import AdaAugment

    a = AdaAugment()
    assert (float(a.p), a.translate_frac, a.cutout_frac, a.brightness_std, a.contrast_std, a.saturation_std) == \
        (0.0, 0.125, 0.5, 0.2, 0.5, 1.0)
    torch.manual_seed(8)
    x = torch.rand(4000, 3, 1, 2) * 0.5 + 0.25
    luma = x.mean(1, keepdim=True)
    s = torch.log2((_aug(["saturation"], saturation_std=0.5)(x) - luma) / (x - luma))[:, 0, 0, 0]
    assert abs(float(s.std()) - 0.5) < 0.05


def test_kid_statistics_in_float64_and_two_subsets(monkeypatch):
    vals = iter([1e8, 1e8 + 1, 3.0, 5.0])
    monkeypatch.setattr(score_mod, "mmd2_unbiased_poly", lambda x, y: next(vals))
    mean, std = kid(torch.zeros(8, 1), torch.zeros(8, 1), subsets=2, subset_size=2)
    assert mean == 1e8 + 0.5 and std == pytest.approx(np.sqrt(0.5), rel=1e-9)
    mean, std = kid(torch.zeros(8, 1), torch.zeros(8, 1), subsets=2, subset_size=2)
    assert (mean, std) == (4.0, pytest.approx(np.sqrt(2.0)))


def test_style_mixing_cutoff_covers_every_layer_and_keeps_the_labels():
    G = RecG()
    z = torch.ones(2, 4)
    torch.manual_seed(9)
    cuts = set()
    for _ in range(40):
        ws = generate(G, z, torch.zeros(2, 0), style_mixing_prob=1.0)[:, 0, :, 0] / 3.0     # [N, num_ws]
        cuts.add(int((ws == 1.0).all(0).sum()))
    assert cuts == {1, 2}                                        # cut-off uniform in [1, num_ws) = {1, 2}
    Gc = CondG()
    c = torch.tensor([[2.0, 3.0], [1.0, 1.0]])
    torch.manual_seed(10)
    ws = generate(Gc, torch.zeros(2, 4), c, style_mixing_prob=1.0)[:, 0] / 3.0             # [N, num_ws, z]
    # both latents are mapped with the same labels: the mixed suffix is randn + sum(c), the prefix sum(c)
    assert torch.allclose(ws[:, 0], c.sum(1, keepdim=True).expand(2, 4))
    assert not torch.allclose(ws[:, 1], c.sum(1, keepdim=True).expand(2, 4))
