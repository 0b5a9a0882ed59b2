"""Augment presets: ranges, normalisation, per-sample vs shared parameters, torchvision semantics."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gandistill import augment_ops as O
from gandistill.augment import PRESETS, AugmentPreset, build_augment, list_augmentations

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
BACKENDS = ["torch", "kornia"]


def _img(n=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


def _denorm(y):
    return y * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)


def test_preset_names():
    assert list_augmentations() == sorted(["ssl-cifar", "ssl-stl", "linear", "none"])
    assert PRESETS["ssl-cifar"].jitter == (0.4, 0.4, 0.4, 0.1) and PRESETS["ssl-cifar"].crop_scale == (0.2, 1.0)
    assert PRESETS["ssl-stl"].blur_p == 0.5 and PRESETS["linear"].crop_scale == (0.08, 1.0)
    with pytest.raises(KeyError, match="ssl-cifar"):
        build_augment("ssl-cifr", 32, MEAN, STD)


def test_none_is_exact_normalisation_and_gan_range():
    x = _img()
    y = build_augment("none", 32, MEAN, STD)(x)
    assert torch.allclose(y, (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1))
    g = x * 2 - 1  # generator output range
    assert torch.allclose(build_augment("none", 32, MEAN, STD, input_range="gan")(g), y, atol=1e-6)
    # out-of-range generator values are clamped to [0, 1] before normalising
    yc = build_augment("none", 32, (0.0,) * 3, (1.0,) * 3, input_range="gan")(torch.full((1, 3, 4, 4), 3.0))
    assert torch.all(yc == 1.0)


def test_none_resizes_and_center_crops():
    x = _img(2, 64)
    y = build_augment("none", 32, (0.0,) * 3, (1.0,) * 3)(x)
    ref = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    assert y.shape == (2, 3, 32, 32) and torch.allclose(y, ref, atol=1e-6)
    wide = torch.rand(1, 3, 32, 48)
    assert torch.equal(build_augment("none", 32, (0.0,) * 3, (1.0,) * 3)(wide), wide[..., 8:40])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("preset", ["ssl-cifar", "ssl-stl", "linear"])
def test_output_shape_dtype_range(preset, backend):
    torch.manual_seed(0)
    x = _img(8, 40) * 2 - 1
    y = build_augment(preset, 32, MEAN, STD, input_range="gan", backend=backend)(x)
    assert y.shape == (8, 3, 32, 32) and y.dtype == torch.float32 and y.device == x.device
    u = _denorm(y)
    assert u.min() >= -1e-5 and u.max() <= 1 + 1e-5  # normalised from a [0, 1] image
    yd = build_augment(preset, 32, MEAN, STD, input_range="gan", backend=backend)(x.double())
    assert yd.dtype == torch.float64


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("preset", ["ssl-cifar", "ssl-stl", "linear"])
def test_per_sample_vs_shared(preset, backend):
    torch.manual_seed(1)
    one = _img(1, 32, seed=3).expand(16, 3, 32, 32).contiguous()
    shared = build_augment(preset, 32, MEAN, STD, shared=True, backend=backend)(one)
    assert torch.allclose(shared, shared[:1].expand_as(shared), atol=1e-6)
    per = build_augment(preset, 32, MEAN, STD, backend=backend)(one)
    diffs = (per - per[:1]).flatten(1).abs().amax(dim=1)
    assert (diffs > 1e-3).sum() >= 12  # nearly every copy got its own crop/jitter/flip
    # shared mode still differs from call to call
    again = build_augment(preset, 32, MEAN, STD, shared=True, backend=backend)(one)
    assert not torch.allclose(again, shared)


def test_seeded_calls_repeat():
    aug = build_augment("ssl-cifar", 32, MEAN, STD)
    x = _img()
    torch.manual_seed(5)
    a = aug(x)
    torch.manual_seed(5)
    assert torch.equal(a, aug(x))


# ---- torchvision semantics of the ops -------------------------------------------------
@pytest.mark.parametrize("step,factor", [(0, 1.3), (0, 0.6), (1, 0.7), (1, 1.4), (2, 1.35), (2, 0.6),
                                         (3, 0.08), (3, -0.1), (3, 0.5)])
def test_jitter_steps_match_torchvision(step, factor):
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    ref_fn = [tvf.adjust_brightness, tvf.adjust_contrast, tvf.adjust_saturation, tvf.adjust_hue][step]
    x = _img(4, 16, seed=7)
    factors = torch.tensor([list(O.NEUTRAL)] * 4)
    factors[:, step] = factor
    ours = O.color_jitter(x, factors, torch.ones(4, dtype=torch.bool), (step,))
    ref = torch.stack([ref_fn(xi, factor) for xi in x])
    assert torch.allclose(ours, ref, atol=1e-5)
    # unselected samples pass through unchanged
    keep = O.color_jitter(x, factors, torch.tensor([True, False, True, False]), (step,))
    assert torch.equal(keep[1], x[1]) and torch.allclose(keep[0], ref[0], atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kornia_and_torch_jitter_draw_torchvision_ranges(backend):
    # brightness only at a fixed factor: a multiplicative 1.3 as in torchvision
    p = AugmentPreset("b", jitter=(0.0, 0.0, 0.0, 0.0), jitter_p=1.0)
    x = torch.full((2, 3, 8, 8), 0.5)
    assert torch.allclose(build_augment(p, 8, (0.0,) * 3, (1.0,) * 3, backend=backend)(x), x)
    p = AugmentPreset("b", jitter=(0.4, 0.0, 0.0, 0.0), jitter_p=1.0)
    torch.manual_seed(2)
    y = build_augment(p, 8, (0.0,) * 3, (1.0,) * 3, backend=backend)(torch.full((4000, 3, 1, 1), 0.5))
    f = y[:, 0, 0, 0] / 0.5  # brightness factor per sample
    assert f.min() >= 0.6 - 1e-5 and f.max() <= 1.4 + 1e-5
    assert f.min() < 0.62 and f.max() > 1.38 and abs(f.mean().item() - 1.0) < 0.02


def test_crop_matches_crop_then_interpolate():
    x = _img(3, 32, seed=9)
    for top, left, h, w in [(4, 6, 16, 16), (0, 0, 20, 13), (3, 9, 29, 23), (0, 0, 32, 32)]:
        box = torch.tensor([[top, left, h, w]], dtype=torch.float32)
        ref = F.interpolate(x[:, :, top:top + h, left:left + w], size=32, mode="bilinear", align_corners=False)
        assert torch.allclose(O.crop_flip_resize(x, box, None, 32), ref, atol=1e-5)
        assert torch.allclose(O.crop_flip_resize(x, box, torch.tensor([True]), 32), ref.flip(-1), atol=1e-5)


def test_crop_sampler_statistics():
    torch.manual_seed(3)
    b = O.sample_crop_boxes(20000, 32, 32, (0.2, 1.0), (3 / 4, 4 / 3))
    top, left, h, w = b.unbind(1)
    assert torch.all((top >= 0) & (left >= 0) & (top + h <= 32) & (left + w <= 32) & (h >= 1) & (w >= 1))
    area = h * w / 1024
    assert area.min() > 0.15 and area.max() <= 1.0
    assert abs(area.mean().item() - 0.6) < 0.05  # U(0.2, 1) up to rounding and rejected draws
    ratio = w / h
    assert ratio.min() > 0.6 and ratio.max() < 1.7


def test_grayscale_and_blur():
    x = _img(3, 16, seed=4)
    g = O.random_grayscale(x, torch.tensor([True, False, True]))
    assert torch.allclose(g[0, 0], 0.2989 * x[0, 0] + 0.587 * x[0, 1] + 0.114 * x[0, 2], atol=1e-6)
    assert torch.equal(g[0, 0], g[0, 2]) and torch.equal(g[1], x[1])
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    b = O.gaussian_blur(x, torch.tensor([0.5, 1.0, 2.0]), 5, torch.tensor([True, True, False]))
    for i, s in enumerate([0.5, 1.0]):
        assert torch.allclose(b[i], tvf.gaussian_blur(x[i], [5, 5], [s, s]), atol=1e-5)
    assert torch.equal(b[2], x[2])


def test_bad_inputs():
    aug = build_augment("ssl-cifar", 32, MEAN, STD)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        aug(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="float"):
        aug(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="input_range"):
        build_augment("none", 32, MEAN, STD, input_range="0-255")
    with pytest.raises(ValueError, match="std"):
        build_augment("none", 32, MEAN, (0.2, 0.0, 0.2))
