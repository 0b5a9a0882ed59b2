"""Parity with the official StyleGAN3 code on the three tiny snapshot fixtures (T, R, T with 10 classes).

The reference outputs (``fixtures/sg3/<name>.ref.pt``) were computed by NVlabs' StyleGAN3 code on CPU
(reference ops, fp32); see ``fixtures/sg3/README.md``. Our networks are our own, loaded safely.
"""
import json
from pathlib import Path

import pytest
import torch

from gandistill.teachers.stylegan2 import Discriminator
from gandistill.teachers.stylegan2.checkpoint import load_sg2
from gandistill.teachers.stylegan3 import SG3Generator
from gandistill.teachers.stylegan3.filters import lowpass_filter

FIX = Path(__file__).parent / "fixtures" / "sg3"
NAMES = ("sg3t-tiny-uncond", "sg3r-tiny-uncond", "sg3t-tiny-cond10")
TOL = 1e-4


@pytest.fixture(scope="module", params=NAMES)
def case(request):
    name = request.param
    ref = torch.load(FIX / f"{name}.ref.pt", weights_only=True)
    info = json.loads((FIX / f"{name}.json").read_text())
    ck = load_sg2(FIX / f"{name}.pkl", nets=("G_ema", "G", "D"))
    return name, ref, info, ck


def close(a, b, tol=TOL):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a.float() - b.float()).abs().max().item()
    assert err <= tol, f"max abs error {err:.3g} > {tol}"


def test_recognised_by_structure_with_official_state_dict(case):
    name, ref, info, ck = case
    assert ck.meta["variant"] == "stylegan3"
    assert type(ck.G_ema) is SG3Generator and type(ck.G) is SG3Generator and type(ck.D) is Discriminator
    for net_name, net in (("G_ema", ck.G_ema), ("D", ck.D)):
        shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
        assert shapes == info["state_dict_shapes"][net_name]
        assert list(shapes) == list(info["state_dict_shapes"][net_name])  # same order too
    assert ck.G_ema.synthesis.layer_names == ref["layer_names"]
    assert ck.G_ema.num_ws == 16 and ck.c_dim == ref["c"].shape[1]
    # D: the StyleGAN3 repository's defaults, not StyleGAN2-ADA's (0 fp16 resolutions, no clamp)
    assert ck.kwargs["D"]["num_fp16_res"] == 4 and ck.kwargs["D"]["conv_clamp"] == 256
    assert ck.D.b32.conv0.conv_clamp == 256 and ck.D.b32.use_fp16


def test_mapping_and_truncation(case):
    _, ref, _, ck = case
    with torch.no_grad():
        close(ck.G_ema.mapping(ref["z"], ref["c"]), ref["ws"])
        close(ck.G_ema.mapping(ref["z"], ref["c"])[:, 0], ref["w"])
        close(ck.G.mapping(ref["z"], ref["c"]), ref["ws_G"])
        close(ck.G_ema.mapping(ref["z"], ref["c"], truncation_psi=0.7), ref["ws_trunc07"])


def test_images_and_every_layer(case):
    _, ref, _, ck = case
    syn = ck.G_ema.synthesis
    with torch.no_grad():
        close(syn.input.affine(ref["ws"][:, 0]), ref["input_affine"])
        x0 = syn.input(ref["ws"][:, 0])
        close(x0[:1], ref["input_full0"])
        close(x0.mean(dim=(2, 3)), ref["feats_input"]["input"])
        img, feats = syn(ref["ws"], noise_mode="const", return_features=True)
        close(img, ref["img"])
        assert list(feats) == ref["layer_names"]
        for layer, x in feats.items():
            close(x.mean(dim=(2, 3)), ref["feats"][layer])
            close(syn.crop_margin(layer, x).mean(dim=(2, 3)), ref["feats_nomargin"][layer])
        close(ck.G.synthesis(ref["ws_G"]), ref["img_G"])
        # the full G call (z, c -> image) is mapping then synthesis
        close(ck.G_ema(ref["z"], ref["c"]), ref["img"])


def test_discriminator_logits_and_features(case):
    _, ref, _, ck = case
    with torch.no_grad():
        logits, feats = ck.D(ref["img"], ref["c"], return_features=True)
        close(logits, ref["logits"])
        for b in ("b32", "b16", "b8"):
            close(feats[b].mean(dim=(2, 3)), ref["feats_D"][b])
        close(ck.D.b4.out(feats["b4.fc"]), ref["feats_D"]["b4.out"])
        close(feats["b4"], ref["feats_D"]["b4"])
        if "mapping" in ref["feats_D"]:
            close(ck.D.mapping(None, ref["c"]), ref["feats_D"]["mapping"])


def test_filters_designed_without_scipy_equal_the_stored_ones(case):
    """A freshly built generator (same kwargs, our defaults) designs the stored filters, pads and sizes."""
    _, _, _, ck = case
    fresh = SG3Generator(**ck.kwargs["G_ema"]).synthesis
    loaded = ck.G_ema.synthesis
    assert fresh.layer_names == loaded.layer_names
    for name in loaded.layer_names:
        a, b = getattr(fresh, name), getattr(loaded, name)
        assert a.padding == b.padding and a.in_size == b.in_size and a.down_radial == b.down_radial
        for buf in ("up_filter", "down_filter"):
            fa, fb = getattr(a, buf), getattr(b, buf)
            assert (fa is None) == (fb is None)
            if fa is not None:
                close(fa, fb, tol=1e-6)
    assert lowpass_filter(1, 16, 4, 32) is None


def test_fresh_generator_runs_and_keeps_shapes():
    G = SG3Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=256,
                     channel_max=16, num_layers=6, mapping_kwargs=dict(num_layers=1))
    img, feats = G(torch.randn(2, 8), torch.zeros(2, 0), return_features=True)
    assert img.shape == (2, 3, 16, 16) and len(feats) == 7
    assert list(G.feature_channels().values()) == [f.shape[1] for f in feats.values()]


@pytest.mark.parametrize("up, pads", [(2, (9, 8, 9, 8)), (4, (-6, -9, -6, -9)), (2, (-11, -12, 3, 0)),
                                      (2, (0, 0, 0, 0))])
def test_fast_upsampling_equals_zero_insertion(up, pads):
    """The transposed-convolution upsampling computes exactly the literal zero-insert/pad/filter definition."""
    from gandistill.teachers.stylegan3.ops import upfirdn2d

    g = torch.Generator().manual_seed(up)
    x = torch.randn(2, 3, 20, 18, generator=g, dtype=torch.float64)
    f = torch.randn(6 * up, generator=g, dtype=torch.float64)
    fast = upfirdn2d(x, f, up=up, padding=pads, gain=up ** 2)
    slow = upfirdn2d(x, f, up=up, padding=pads, gain=up ** 2, fast=False)
    # the definition, written out: zeros inserted, padded/cropped, one 2-D conv with the flipped outer product
    z = torch.zeros(2, 3, 20 * up, 18 * up, dtype=torch.float64)
    z[:, :, ::up, ::up] = x
    x0, x1, y0, y1 = pads
    z = torch.nn.functional.pad(z, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    z = z[:, :, max(-y0, 0): z.shape[2] - max(-y1, 0), max(-x0, 0): z.shape[3] - max(-x1, 0)]
    k = torch.outer(f, f).flip([0, 1]) * up ** 2
    want = torch.nn.functional.conv2d(z, k[None, None].expand(3, 1, *k.shape), groups=3)
    assert fast.shape == slow.shape == want.shape
    assert (fast - want).abs().max() < 1e-10 and (slow - want).abs().max() < 1e-10
