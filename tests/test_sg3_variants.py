"""StyleGAN2 snapshots written by the StyleGAN3 repository (``--cfg=stylegan2``): flat G kwargs, that
repository's class defaults. No official file of this kind is bundled: the StyleGAN2-ADA fixture is
re-written in that layout (same weights), so the outputs must stay the official ones."""
from pathlib import Path

import pytest
import torch

import sg3_resave as R
from gandistill.teachers.stylegan2 import Generator
from gandistill.teachers.stylegan2.checkpoint import load_sg2

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def ref():
    return torch.load(FIX / "sg2-tiny-uncond.ref.pt", weights_only=True)


def _sg3repo_layout(snap, drop_d_defaults=True):
    for name in ("G", "G_ema"):
        kw = snap[name].state["_init_kwargs"]
        syn = kw.pop("synthesis_kwargs")
        for key in ("num_fp16_res", "conv_clamp"):
            assert syn.pop(key) == {"num_fp16_res": 4, "conv_clamp": 256}[key]  # the repository's defaults
        kw.update(syn, fused_modconv_default="inference_only")
    if drop_d_defaults:
        for key in ("num_fp16_res", "conv_clamp"):
            snap["D"].state["_init_kwargs"].pop(key)
    return snap


def test_flat_stylegan2_from_the_stylegan3_repo_loads_with_its_defaults(tmp_path, ref):
    path = R.write(_sg3repo_layout(R.read(FIX / "sg2-tiny-uncond.pkl")), tmp_path / "sg2-sg3repo.pkl")
    ck = load_sg2(path, nets=("G_ema", "D"))
    assert ck.meta["variant"] == "stylegan2-sg3repo" and type(ck.G_ema) is Generator
    syn = ck.kwargs["G_ema"]["synthesis_kwargs"]
    assert syn["num_fp16_res"] == 4 and syn["conv_clamp"] == 256 and "fused_modconv_default" not in syn
    assert ck.kwargs["G_ema"]["mapping_kwargs"] == {"num_layers": 2, "w_avg_beta": 0.998}
    assert ck.kwargs["D"]["num_fp16_res"] == 4 and ck.kwargs["D"]["conv_clamp"] == 256
    with torch.no_grad():
        ws = ck.G_ema.mapping(ref["z"], ref["c"])
        assert (ws - ref["ws_psi1"]).abs().max() < 1e-4
        img = ck.G_ema.synthesis(ws, noise_mode="const")
        assert (img - ref["img_const"]).abs().max() < 1e-4
        assert (ck.D(ref["img_const"], ref["c"]) - ref["D_logits"]).abs().max() < 1e-4


def test_stylegan2_ada_d_keeps_its_own_defaults(tmp_path):
    """The same D kwargs without clamp/fp16 in a StyleGAN2-ADA snapshot: StyleGAN2-ADA's defaults (0, None)."""
    snap = R.read(FIX / "sg2-tiny-uncond.pkl")
    for key in ("num_fp16_res", "conv_clamp"):
        snap["D"].state["_init_kwargs"].pop(key)
    ck = load_sg2(R.write(snap, tmp_path / "ada.pkl"), nets=("D",))
    assert ck.meta["variant"] == "stylegan2-ada"
    assert "conv_clamp" not in ck.kwargs["D"] and ck.D.b32.conv0.conv_clamp is None
