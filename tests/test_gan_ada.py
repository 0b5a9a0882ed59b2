"""ADA: the p update rule, the controller, and the differentiable per-sample ops."""
import pytest
import torch
import torch.nn.functional as F

from gandistill.gan.ada import AdaAugment, AdaController, ada_adjust


def test_ada_adjust_rule():
    # independent statement: p + sign(rt - target) * batch * interval / (ada_kimg * 1000), clipped to [0, 1]
    step = 32 * 4 / (500 * 1000)
    assert ada_adjust(0.3, rt=0.9, target=0.6, batch=32, interval=4, ada_kimg=500) == pytest.approx(0.3 + step)
    assert ada_adjust(0.3, rt=0.1, target=0.6, batch=32, interval=4, ada_kimg=500) == pytest.approx(0.3 - step)
    assert ada_adjust(0.3, rt=0.6, target=0.6, batch=32, interval=4, ada_kimg=500) == 0.3
    assert ada_adjust(0.0, rt=-1.0, target=0.6, batch=32, interval=4, ada_kimg=500) == 0.0
    assert ada_adjust(0.9999, rt=1.0, target=0.6, batch=32, interval=4, ada_kimg=500) == 1.0
    # p can go 0 -> 1 in ada_kimg thousand images
    p, shown = 0.0, 0
    while p < 1.0 - 1e-9:  # (float steps of 0.1)
        p = ada_adjust(p, 1.0, 0.6, batch=50, interval=4, ada_kimg=2)
        shown += 50 * 4
    assert shown == 2000
    with pytest.raises(ValueError):
        ada_adjust(0.1, 1.0, 0.6, 32, 4, 0)


@pytest.mark.parametrize("sign,expect_up", [(+1.0, True), (-1.0, False)])
def test_controller_moves_p_with_overfitting(sign, expect_up):
    aug = AdaAugment(p=0.5)
    ctl = AdaController(aug, target=0.6, interval=4, ada_kimg=1.0)
    for i in range(1, 9):
        ctl.accumulate(sign * (torch.rand(16, 1) + 0.1))  # overfit D: every real logit positive
        ctl.step(batch=16)
        if i % 4:  # p only moves every `interval` steps
            assert float(aug.p) == pytest.approx(0.5 + (i // 4) * (0.064 if expect_up else -0.064))
    expected = 0.5 + 2 * (16 * 4 / 1000) * (1 if expect_up else -1)
    assert float(aug.p) == pytest.approx(expected)
    assert ctl.last_rt == pytest.approx(sign)


def test_controller_state_roundtrip():
    aug = AdaAugment(p=0.2)
    ctl = AdaController(aug, interval=3)
    ctl.accumulate(torch.tensor([[1.0], [-1.0], [2.0]]))
    ctl.step(8)
    ctl2 = AdaController(AdaAugment(p=0.2), interval=3)
    ctl2.load_state_dict(ctl.state_dict())
    assert ctl2.state_dict() == ctl.state_dict()


def _batch(n=6, c=3, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g) * 2 - 1


def test_p_zero_is_identity_and_draws_nothing():
    x = _batch()
    aug = AdaAugment(p=0.0)
    state = torch.get_rng_state()
    assert torch.equal(aug(x), x)
    assert torch.equal(torch.get_rng_state(), state)


def test_translate_is_a_reflect_shift():
    x = _batch(n=8)
    aug = AdaAugment(["translate"], p=1.0, translate_frac=0.25)
    torch.manual_seed(1)
    y = aug(x)
    pad = F.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(len(x)):
        hits = [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3)
                if torch.equal(y[i], pad[i, :, 2 - dy:10 - dy, 2 - dx:10 - dx])]
        assert hits, f"sample {i} is not a reflect-padded shift of at most 2 px"


def test_cutout_zeroes_one_square():
    x = _batch(n=8, h=16, w=16) * 0.5 + 0.6  # strictly positive so zeros mark the cut-out
    y = AdaAugment(["cutout"], p=1.0, cutout_frac=0.5)(x)
    for i in range(len(x)):
        zero = (y[i] == 0).all(0)
        assert torch.equal(y[i][:, ~zero], x[i][:, ~zero])
        rows, cols = zero.any(1).nonzero(), zero.any(0).nonzero()
        assert 1 <= len(rows) <= 8 and 1 <= len(cols) <= 8
        assert zero.sum() == len(rows) * len(cols)  # a rectangle (clipped at the border)


def test_colour_ops_per_sample_structure():
    x = _batch(n=8)
    torch.manual_seed(0)
    d = AdaAugment(["brightness"], p=1.0)(x) - x
    assert torch.allclose(d, d[:, :1, :1, :1].expand_as(d), atol=1e-6)      # one offset per sample
    r = AdaAugment(["contrast"], p=1.0)(x) / x
    assert torch.allclose(r, r[:, :1, :1, :1].expand_as(r), atol=1e-4)      # one scale per sample
    y = AdaAugment(["saturation"], p=1.0)(x)
    assert torch.allclose(y.mean(1), x.mean(1), atol=1e-6)                   # luma (channel mean) kept
    assert not torch.allclose(y, x)


def test_ops_apply_per_sample_with_probability_p():
    x = _batch(n=400, h=4, w=4)
    torch.manual_seed(0)
    y = AdaAugment(["brightness"], p=0.3)(x)
    changed = (y != x).flatten(1).any(1).float().mean().item()
    assert 0.2 < changed < 0.4


def test_twice_differentiable_for_r1():
    x = _batch(n=4).requires_grad_(True)
    aug = AdaAugment(p=1.0)
    torch.manual_seed(0)
    (g,) = torch.autograd.grad(aug(x).pow(3).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), x)
    assert torch.isfinite(gg).all() and gg.abs().sum() > 0


def test_bad_input():
    with pytest.raises(ValueError, match="unknown augment op"):
        AdaAugment(["rotate"])
    with pytest.raises(ValueError, match="N,C,H,W"):
        AdaAugment(p=0.5)(torch.zeros(3, 8, 8))
