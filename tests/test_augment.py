"""Augment presets (Kornia): ranges, normalisation, per-sample vs shared parameters, torchvision semantics."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gandistill.augment import PRESETS, AugmentPreset, build_augment, kornia_ops, list_augmentations

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
PRESET_NAMES = ["ssl-cifar", "ssl-stl", "ssl-digits", "linear", "linear-digits"]


def _img(n=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


def _denorm(y):
    return y * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)


def test_preset_names():
    assert list_augmentations() == sorted(["ssl-cifar", "ssl-stl", "ssl-digits", "linear", "linear-digits", "none"])
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


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_output_shape_dtype_range(preset):
    torch.manual_seed(0)
    x = _img(8, 40) * 2 - 1
    y = build_augment(preset, 32, MEAN, STD, input_range="gan")(x)
    assert y.shape == (8, 3, 32, 32) and y.dtype == torch.float32 and y.device == x.device
    u = _denorm(y)
    assert u.min() >= -1e-5 and u.max() <= 1 + 1e-5  # normalised from a [0, 1] image
    yd = build_augment(preset, 32, MEAN, STD, input_range="gan")(x.double())
    assert yd.dtype == torch.float64


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_per_sample_vs_shared(preset):
    torch.manual_seed(1)
    one = _img(1, 32, seed=3).expand(16, 3, 32, 32).contiguous()
    shared = build_augment(preset, 32, MEAN, STD, shared=True)(one)
    assert torch.allclose(shared, shared[:1].expand_as(shared), atol=1e-6)
    per = build_augment(preset, 32, MEAN, STD)(one)
    diffs = (per - per[:1]).flatten(1).abs().amax(dim=1)
    assert (diffs > 1e-3).sum() >= 12  # nearly every copy got its own crop/jitter/flip
    # shared mode still differs from call to call
    again = build_augment(preset, 32, MEAN, STD, shared=True)(one)
    assert not torch.allclose(again, shared)


def test_seeded_calls_repeat():
    aug = build_augment("ssl-cifar", 32, MEAN, STD)
    x = _img()
    torch.manual_seed(5)
    a = aug(x)
    torch.manual_seed(5)
    assert torch.equal(a, aug(x))


# ---- torchvision semantics of the presets ------------------------------------------------
def _gray(x):
    return (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


@pytest.mark.parametrize("step,factor", [(0, 1.3), (0, 0.6), (1, 0.7), (1, 1.4), (2, 1.35), (2, 0.6)])
def test_jitter_steps_follow_torchvision_formulas(step, factor):
    """Each jitter step at a fixed factor: brightness f*x, contrast f*x + (1-f)*mean(gray), saturation
    f*x + (1-f)*gray, all clamped to [0, 1] (torchvision's definitions, written out here)."""
    ranges = [(1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (0.0, 0.0)]
    ranges[step] = (factor, factor)
    import kornia.augmentation as K

    op = K.ColorJitter(*ranges, p=1.0)
    x = _img(4, 16, seed=7)
    if step == 0:
        ref = factor * x
    elif step == 1:
        ref = factor * x + (1 - factor) * _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    else:
        ref = factor * x + (1 - factor) * _gray(x)
    # Kornia's luma weights are ITU-R 601's 0.299/0.587/0.114 (torchvision: 0.2989): ~1e-4 apart
    assert torch.allclose(op(x), ref.clamp(0, 1), atol=2e-4)


def test_hue_shift_matches_torchvision():
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    import kornia.augmentation as K

    x = _img(4, 16, seed=8)
    for h in (0.08, -0.1):
        ref = torch.stack([tvf.adjust_hue(xi, h) for xi in x])
        assert torch.allclose(K.ColorJitter(hue=(h, h), p=1.0)(x), ref, atol=1e-4)


def test_preset_scalars_become_torchvision_ranges():
    ops = kornia_ops(PRESETS["ssl-cifar"], 32)
    jit = next(o for o in ops if type(o).__name__ == "ColorJitter")
    gen = jit._param_generator  # Kornia keeps the validated ranges on its parameter generator
    got = [tuple(round(float(v), 6) for v in getattr(gen, k)) for k in ("brightness", "contrast", "saturation", "hue")]
    assert got == [(0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1)]


def test_brightness_factors_drawn_from_the_torchvision_range():
    # brightness only at a fixed factor: a multiplicative 1.3 as in torchvision
    p = AugmentPreset("b", jitter=(0.0, 0.0, 0.0, 0.0), jitter_p=1.0)
    x = torch.full((2, 3, 8, 8), 0.5)
    assert torch.allclose(build_augment(p, 8, (0.0,) * 3, (1.0,) * 3)(x), x)
    p = AugmentPreset("b", jitter=(0.4, 0.0, 0.0, 0.0), jitter_p=1.0)
    torch.manual_seed(2)
    y = build_augment(p, 8, (0.0,) * 3, (1.0,) * 3)(torch.full((4000, 3, 1, 1), 0.5))
    f = y[:, 0, 0, 0] / 0.5  # brightness factor per sample
    assert f.min() >= 0.6 - 1e-5 and f.max() <= 1.4 + 1e-5
    assert f.min() < 0.62 and f.max() > 1.38 and abs(f.mean().item() - 1.0) < 0.02


def test_crop_area_statistics():
    """RandomResizedCrop keeps an area fraction ~ U(scale): a constant-1 square in a 0 image shrinks or grows
    by the crop; with a full-size crop of a 1-image nothing changes. Checked through the identity on ones."""
    torch.manual_seed(3)
    x = torch.ones(64, 3, 32, 32)
    y = build_augment(AugmentPreset("c", crop_scale=(0.2, 1.0)), 32, (0.0,) * 3, (1.0,) * 3)(x)
    assert torch.allclose(y, x, atol=1e-5)  # a crop of a constant image is that constant (no padding leaks in)


def test_ssl_digits_is_label_preserving():
    """No mirror images and no small fragments: a left-heavy image stays left-heavy in every view and most
    of its mass survives, while ssl-cifar mirrors about half of the views."""
    d = PRESETS["ssl-digits"]
    assert d.flip_p == 0 and d.crop_scale[0] >= 0.5 and d.rotate <= 20 and d.gray_p == 0
    assert PRESETS["linear-digits"].flip_p == 0 and PRESETS["linear-digits"].crop_scale[0] >= 0.5
    assert d.jitter[2] == 0 and d.jitter[3] == 0  # saturation/hue: no-ops on grey digits
    x = torch.zeros(400, 3, 32, 32)
    x[:, :, 6:26, 6:14] = 1.0  # a bar on the left half
    torch.manual_seed(4)
    y = _denorm(build_augment("ssl-digits", 32, MEAN, STD)(x))
    left, right = y[..., :16].sum(dim=(1, 2, 3)), y[..., 16:].sum(dim=(1, 2, 3))
    assert bool((left > right).all())
    assert (y.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))).min() > 0.4
    torch.manual_seed(4)
    c = _denorm(build_augment("ssl-cifar", 32, MEAN, STD)(x))
    flipped = (c[..., 16:].sum(dim=(1, 2, 3)) > c[..., :16].sum(dim=(1, 2, 3))).float().mean()
    assert 0.35 < flipped < 0.65


def test_grayscale_and_blur_are_kornia_ops():
    names = [type(o).__name__ for o in kornia_ops(PRESETS["ssl-stl"], 32)]
    assert names == ["RandomResizedCrop", "ColorJitter", "RandomGrayscale", "RandomGaussianBlur",
                     "RandomHorizontalFlip"]
    names = [type(o).__name__ for o in kornia_ops(PRESETS["ssl-digits"], 32)]
    assert names == ["RandomResizedCrop", "RandomAffine", "ColorJitter", "RandomGaussianBlur"]


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
