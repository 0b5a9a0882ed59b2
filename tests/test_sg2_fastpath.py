"""The fast G path (Winograd F(4x4,3x3) modulated conv) against the reference maths and the official fixture."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gandistill.teachers.stylegan2 import Generator, load_sg2
from gandistill.teachers.stylegan2.ops import (
    bias_act,
    cached_winograd_weight,
    choose_modconv,
    conv2d_resample,
    modulated_conv2d,
    modulated_conv2d_winograd,
    setup_filter,
    winograd_conv2d,
    winograd_matrices,
    winograd_weight,
)

FIX = Path(__file__).parent / "fixtures"
TOL = 1e-4  # the bound on the fixture, max abs difference to the reference path


def test_winograd_matrices_compute_the_1d_correlation():
    """A^T [(G g) * (B^T d)] = (sum_k d[i+k] g[k])_i for random d, g (float64, exact to rounding)."""
    at, g, bt = winograd_matrices()
    assert at.shape == (4, 6) and g.shape == (6, 3) and bt.shape == (6, 6)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        d = torch.randn(6, dtype=torch.float64, generator=gen)
        k = torch.randn(3, dtype=torch.float64, generator=gen)
        direct = torch.stack([sum(d[i + j] * k[j] for j in range(3)) for i in range(4)])
        assert torch.allclose(at @ ((g @ k) * (bt @ d)), direct, atol=1e-12)
    with pytest.raises(ValueError, match="distinct"):
        winograd_matrices(4, 3, (0.0, 0.0, 1.0, -1.0, 2.0))


@pytest.mark.parametrize("h", [4, 8, 12])
def test_winograd_conv_equals_conv2d_same_padding(h):
    gen = torch.Generator().manual_seed(h)
    x = torch.randn(3, 5, h, h + 4, dtype=torch.float64, generator=gen)
    w = torch.randn(7, 5, 3, 3, dtype=torch.float64, generator=gen)
    y = winograd_conv2d(x, winograd_weight(w).contiguous(), chunk_tiles=4)  # several chunks
    assert y.shape == (3, 7, h, h + 4) and y.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(y, F.conv2d(x, w, padding=1), atol=1e-10)
    # a true convolution (flipped kernel) when flip_weight=False
    yt = winograd_conv2d(x, winograd_weight(w, flip_weight=False).contiguous())
    assert torch.allclose(yt, F.conv2d(x, w.flip([2, 3]), padding=1), atol=1e-10)
    with pytest.raises(ValueError, match="divisible"):
        winograd_conv2d(x[..., :6], winograd_weight(w).contiguous())


def test_winograd_upsampling_conv_equals_transposed_conv_plus_fir():
    """The phase-kernel form of the 2x upsampling layer equals the reference conv2d_resample(up=2)."""
    gen = torch.Generator().manual_seed(1)
    f = setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(2, 4, 8, 4, dtype=torch.float64, generator=gen)
    w = torch.randn(6, 4, 3, 3, dtype=torch.float64, generator=gen)
    ref = conv2d_resample(x, w, f=f, up=2, padding=1, flip_weight=False)
    y = winograd_conv2d(x, winograd_weight(w, up=2, resample_filter=f, flip_weight=False).contiguous(), up=2)
    assert y.shape == ref.shape == (2, 6, 16, 8)
    assert torch.allclose(y, ref, atol=1e-10)


@pytest.mark.parametrize("up", [1, 2])
def test_modulated_winograd_equals_nonfused_then_bias_act(up):
    """conv(x*s, w)*d + noise, then bias, lrelu, gain, clamp -- all of it in the fused epilogue."""
    gen = torch.Generator().manual_seed(2 + up)
    f = setup_filter([1, 3, 3, 1])
    n, c, o, h = 3, 6, 5, 8
    x, w = torch.randn(n, c, h, h, generator=gen), torch.randn(o, c, 3, 3, generator=gen)
    s, b = torch.randn(n, c, generator=gen) + 1, torch.randn(o, generator=gen)
    noise = torch.randn(n, 1, h * up, h * up, generator=gen) * 0.3
    gain, clamp = math.sqrt(2) * 0.7, 1.5
    with torch.no_grad():
        y = modulated_conv2d(x, w, s, noise=noise, up=up, padding=1, resample_filter=f, flip_weight=(up == 1),
                             fused_modconv=False)
        ref = bias_act(y, b, act="lrelu", gain=gain, clamp=clamp)
        fast = modulated_conv2d_winograd(x, w, s, noise=noise, up=up, resample_filter=f, flip_weight=(up == 1),
                                         bias=b, act="lrelu", gain=gain, clamp=clamp)
        assert (fast - ref).abs().max() < 1e-5
        # constant [R, R] noise broadcasts like the reference's
        const = noise[0, 0]
        ref_c = bias_act(modulated_conv2d(x, w, s, noise=const, up=up, padding=1, resample_filter=f,
                                          flip_weight=(up == 1), fused_modconv=True), b, act="lrelu")
        fast_c = modulated_conv2d_winograd(x, w, s, noise=const, up=up, resample_filter=f, flip_weight=(up == 1),
                                           bias=b, act="lrelu")
        assert (fast_c - ref_c).abs().max() < 1e-5


def test_winograd_is_inference_only():
    w = torch.randn(4, 4, 3, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="inference"):
        modulated_conv2d_winograd(torch.randn(2, 4, 4, 4), w, torch.randn(2, 4))


@pytest.fixture(scope="module")
def fixture_G():
    return load_sg2(FIX / "sg2-tiny-uncond.pkl").G_ema


@pytest.fixture(scope="module")
def ref():
    return torch.load(FIX / "sg2-tiny-uncond.ref.pt", weights_only=True)


def test_fixture_winograd_matches_official_outputs_and_reference_path(fixture_G, ref):
    """On the official snapshot the fast path agrees with NVlabs' own outputs and our reference fused path."""
    G = fixture_G
    with torch.no_grad():
        fast, feats = G.synthesis(ref["ws_psi1"], noise_mode="const", fused_modconv="winograd", return_features=True)
        slow = G.synthesis(ref["ws_psi1"], noise_mode="const", fused_modconv=True)
        auto = G.synthesis(ref["ws_psi1"], noise_mode="const")
    assert (fast - slow).abs().max() <= TOL
    assert (fast - ref["img_const"]).abs().max() <= TOL
    assert (auto - ref["img_const"]).abs().max() <= TOL
    for k, v in feats.items():
        assert (v - ref[f"synthesis.{k}.x"]).abs().max() <= TOL, k
    with torch.no_grad():
        psi = G.synthesis(ref["ws_psi0.7"], noise_mode="none", fused_modconv="winograd")
        psi_ref = G.synthesis(ref["ws_psi0.7"], noise_mode="none", fused_modconv=True)
    assert (psi - psi_ref).abs().max() <= TOL


def test_cifar_width_network_fast_path_within_tolerance():
    """512-channel layers (the paper's cifar G, fewer blocks): the error does not grow with width."""
    torch.manual_seed(0)
    G = Generator(z_dim=64, c_dim=0, w_dim=64, img_resolution=8, img_channels=3,
                  mapping_kwargs={"num_layers": 1},
                  synthesis_kwargs={"channel_base": 4096, "channel_max": 512, "conv_clamp": 256}).eval()
    ws = G.mapping(torch.randn(4, 64), None)
    with torch.no_grad():
        a = G.synthesis(ws, noise_mode="const", fused_modconv=True)
        b = G.synthesis(ws, noise_mode="const", fused_modconv="winograd")
    assert (a - b).abs().max() <= TOL


def test_automatic_rule():
    cpu, f32 = torch.device("cpu"), torch.float32
    with torch.no_grad():
        assert choose_modconv(cpu, f32, 16, 512, 512, 16, 3, training=False) == "winograd"
        assert choose_modconv(cpu, f32, 16, 512, 512, 16, 1, training=False) == "fused"       # 1x1: no gain
        assert choose_modconv(cpu, f32, 16, 8, 8, 16, 3, training=False) == "fused"           # narrow layer
        assert choose_modconv(cpu, f32, 16, 512, 512, 6, 3, training=False) == "fused"        # 6 % 4 != 0
        assert choose_modconv(torch.device("cuda"), f32, 16, 512, 512, 16, 3, training=False) == "fused"
    # with autograd on (GAN training, R1): NVlabs' rule
    assert choose_modconv(cpu, f32, 16, 512, 512, 16, 3, training=False) == "fused"
    assert choose_modconv(cpu, f32, 16, 512, 512, 16, 3, training=True) == "nonfused"


def test_synthesis_picks_winograd_in_inference_and_explicit_flag_wins(monkeypatch, fixture_G, ref):
    from gandistill.teachers.stylegan2 import synthesis

    seen = []
    real = synthesis.modulated_conv2d_winograd

    def spy(*args, **kwargs):
        seen.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(synthesis, "modulated_conv2d_winograd", spy)
    with torch.no_grad():
        fixture_G.synthesis(ref["ws_psi1"][:2])
        assert len(seen) == 5  # the 32-channel 3x3 layers of b4..b16; b32 (16 channels) stays on the reference
        seen.clear()
        fixture_G.synthesis(ref["ws_psi1"][:2], fused_modconv=True)
        assert not seen
    with pytest.raises(ValueError, match="fused_modconv"):
        fixture_G.synthesis(ref["ws_psi1"][:2], fused_modconv="fast")


def test_cached_weights_follow_in_place_updates():
    layer = torch.nn.Module()
    w = torch.randn(4, 3, 3, 3)
    u1 = cached_winograd_weight(layer, w)
    assert cached_winograd_weight(layer, w) is u1  # memoised
    with torch.no_grad():
        w.mul_(2)  # bumps the version counter, as load_state_dict's copy_ does
    u2 = cached_winograd_weight(layer, w)
    assert u2 is not u1 and torch.allclose(u2, 2 * u1)
