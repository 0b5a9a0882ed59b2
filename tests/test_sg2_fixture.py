"""Parity with the official StyleGAN2-ADA code on the bundled snapshot fixture (fp32, CPU).

The reference outputs in ``sg2-tiny-uncond.ref.pt`` were produced by NVlabs' own code on the
unstripped networks; see ``tests/fixtures/README.md``.
"""
from pathlib import Path

import pytest
import torch

from gandistill.teachers.stylegan2 import Discriminator, Generator, load_sg2
from gandistill.teachers.stylegan2.nvlabs_pickle import flatten_state, read_snapshot, record_kwargs


FIX = Path(__file__).parent / "fixtures"
PKL = FIX / "sg2-tiny-uncond.pkl"
TOL = 1e-4


@pytest.fixture(scope="module")
def ref():
    return torch.load(FIX / "sg2-tiny-uncond.ref.pt", weights_only=True)


@pytest.fixture(scope="module")
def ckpt():
    return load_sg2(PKL, nets=("G_ema", "G", "D"))


def close(a, b, tol=TOL):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a - b).abs().max().item()
    assert err < tol, f"max abs error {err:.3g} >= {tol}"


def test_state_dict_keys_and_shapes_match_official(ref, ckpt):
    for name, net in (("G_ema", ckpt.G_ema), ("D", ckpt.D)):
        sd = net.state_dict()
        assert list(sd) == ref[f"{name}.state_dict_keys"]
        assert {k: list(v.shape) for k, v in sd.items()} == ref[f"{name}.state_dict_shapes"]
        assert [n for n, _ in net.named_parameters()] == ref[f"{name}.param_names"]
        assert [n for n, _ in net.named_buffers()] == ref[f"{name}.buffer_names"]
    assert ckpt.G_ema.synthesis.block_resolutions == ref["G_ema.block_resolutions"]
    assert ckpt.D.block_resolutions == ref["D.block_resolutions"]
    assert ckpt.G_ema.num_ws == ref["G_ema.num_ws"]


def test_same_kwargs_rebuild_same_keys(ref):
    """A fresh network from the pickle's ``_init_kwargs`` has exactly the official keys (no loading)."""
    snap = read_snapshot(PKL.read_bytes())
    G = Generator(**record_kwargs(snap["G_ema"]))
    D = Discriminator(**record_kwargs(snap["D"]))
    assert list(G.state_dict()) == ref["G_ema.state_dict_keys"]
    assert list(D.state_dict()) == ref["D.state_dict_keys"]
    # and the weights we load are the pickle's tensors, bit for bit
    flat = flatten_state(snap["G_ema"])
    assert torch.equal(load_sg2(PKL).G_ema.state_dict()["mapping.w_avg"], flat["mapping.w_avg"])


def test_metadata_exposed(ckpt):
    assert (ckpt.c_dim, ckpt.z_dim, ckpt.w_dim, ckpt.img_resolution) == (0, 64, 64, 32)
    assert ckpt.source == "nvlabs-pkl"
    assert ckpt.meta["training_set_kwargs"]["resolution"] == 32
    assert not ckpt.G_ema.training and not any(p.requires_grad for p in ckpt.G_ema.parameters())
    # G and G_ema are different networks in the fixture
    assert not torch.equal(ckpt.G.synthesis.b4.const, ckpt.G_ema.synthesis.b4.const)


def test_mapping_and_truncation(ref, ckpt):
    G = ckpt.G_ema
    with torch.no_grad():
        close(G.mapping(ref["z"], ref["c"]), ref["ws_psi1"])
        close(G.mapping(ref["z"], ref["c"], truncation_psi=0.7), ref["ws_psi0.7"])
        # sub-layer outputs: fc0 on the 2nd-moment normalised z, then fc1
        z = ref["z"] * (ref["z"].square().mean(1, keepdim=True) + 1e-8).rsqrt()
        h = G.mapping.fc0(z)
        close(h, ref["mapping.fc0"])
        close(G.mapping.fc1(h), ref["mapping.fc1"])


@pytest.mark.parametrize("fused", [True, False])
def test_images_and_block_features(ref, ckpt, fused):
    G = ckpt.G_ema
    with torch.no_grad():
        img, feats = G.synthesis(ref["ws_psi1"], noise_mode="const", fused_modconv=fused, return_features=True)
        close(img, ref["img_const"])
        assert list(feats) == [f"b{r}" for r in ref["G_ema.block_resolutions"]]
        for k, v in feats.items():
            close(v, ref[f"synthesis.{k}.x"])
        close(G.synthesis(ref["ws_psi1"], noise_mode="none", fused_modconv=fused), ref["img_none"])
        close(G.synthesis(ref["ws_psi0.7"], noise_mode="const", fused_modconv=fused), ref["img_const_psi0.7"])


def test_full_generator_call_and_per_block_images(ref, ckpt):
    G = ckpt.G_ema
    with torch.no_grad():
        close(G(ref["z"], ref["c"], truncation_psi=0.7, noise_mode="const"), ref["img_const_psi0.7"])
        close(G(ref["z"], None), ref["img_const"])  # c may be None for an unconditional G
        # the (x, img) pair of each block, stepping through the blocks by hand
        ws, x, img, idx = ref["ws_psi1"], None, None, 0
        for res in G.synthesis.block_resolutions:
            block = getattr(G.synthesis, f"b{res}")
            x, img = block(x, img, ws.narrow(1, idx, block.num_conv + block.num_torgb), noise_mode="const")
            idx += block.num_conv
            close(x, ref[f"synthesis.b{res}.x"])
            close(img, ref[f"synthesis.b{res}.img"])


def test_random_noise_changes_images(ref, ckpt):
    G = ckpt.G_ema
    with torch.no_grad():
        a = G.synthesis(ref["ws_psi1"], noise_mode="random")
    assert (a - ref["img_const"]).abs().max() > 1e-3  # noise strengths are non-zero in the fixture


def test_discriminator_logits_and_features(ref, ckpt):
    D = ckpt.D
    with torch.no_grad():
        logits, feats = D(ref["img_const"], ref["c"], return_features=True)
        close(logits, ref["D_logits"])
        for res in ref["D.block_resolutions"]:
            close(feats[f"b{res}"], ref[f"D.b{res}.x"])
        close(feats["b4.fc"], ref["D.b4.fc"])
        close(feats["b4"], ref["D.b4"])
        close(D.b4.mbstd(ref["D.b8.x"]), ref["D.b4.mbstd"])
        close(D.b4.conv(ref["D.b4.mbstd"]), ref["D.b4.conv"])
        close(D.b4.out(ref["D.b4.fc"]), ref["D.b4.out"])
        close(D(ref["img_const"], None), ref["D_logits"])
    assert set(D.feature_channels()) == {"b32", "b16", "b8", "b4.fc", "b4"}
    assert D.feature_channels()["b4.fc"] == feats["b4.fc"].shape[1]
