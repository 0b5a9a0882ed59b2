"""StyleGAN3 teachers by name, and the commands that take a teacher checkpoint (fit, convert, gan sample, bank)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gandistill.cli import app
from gandistill.teachers import create_teacher, list_teachers
from gandistill.teachers.stylegan2.checkpoint import available_nets, load_sg2
from gandistill.teachers.stylegan3 import SG3Generator

FIX = Path(__file__).parent / "fixtures"
SG3T, SG3R, COND = (FIX / "sg3" / f"{n}.pkl" for n in ("sg3t-tiny-uncond", "sg3r-tiny-uncond", "sg3t-tiny-cond10"))
runner = CliRunner()


def _ref(pkl: Path) -> dict:
    return torch.load(pkl.with_suffix(".ref.pt"), weights_only=True)


def _with_ws(teacher, ws):
    """Make the teacher's next sample use the reference latents (sampling itself is random)."""
    teacher._latents = lambda n, generator: (ws, None, None)
    return teacher


@pytest.mark.parametrize("margin, key", [(False, "feats_nomargin"), (True, "feats")])
def test_generator_teacher_pools_every_synthesis_layer(margin, key):
    ref = _ref(SG3R)
    t = create_teacher("sg3-generator", ckpt=str(SG3R), margin=margin)
    assert t.target_names == tuple(ref["layer_names"]) and len(t.target_names) == 15
    assert t.target_dims == tuple(ref[key][n].shape[1] for n in ref["layer_names"])
    s = _with_ws(t, ref["ws"]).sample(8)
    for name, got in zip(t.target_names, s.targets):
        assert (got - ref[key][name]).abs().max() < 1e-4, name
    assert (s.images - ref["img"].clamp(-1, 1)).abs().max() < 1e-4
    # sg2-generator given a StyleGAN3 snapshot computes the same targets
    t2 = _with_ws(create_teacher("sg2-generator", ckpt=str(SG3R), margin=margin), ref["ws"])
    assert all(torch.equal(a, b) for a, b in zip(t2.sample(8).targets, s.targets))


def test_layer_choice_by_index_or_name_and_wrong_family():
    t = create_teacher("sg3-generator", ckpt=str(SG3T), blocks="12, L13_32_16")
    assert t.target_names == ("L12_52_16", "L13_32_16") and t.target_dims == (16, 16)
    assert create_teacher("sg3-generator", ckpt=str(SG3T), blocks=14).target_names == ("L14_32_3",)
    with pytest.raises(ValueError, match="unknown generator block"):
        create_teacher("sg3-generator", ckpt=str(SG3T), blocks="L99_1_1")
    with pytest.raises(ValueError, match="StyleGAN2 generator, not a StyleGAN3 one: use --teacher sg2-generator"):
        create_teacher("sg3-generator", ckpt=str(FIX / "sg2-tiny-uncond.pkl"))
    assert {"sg3-generator", "sg3-latent", "sg3-discriminator"} <= set(list_teachers())


def test_latent_and_discriminator_teachers():
    ref = _ref(COND)
    lat = create_teacher("sg3-latent", ckpt=str(COND))
    s = lat.sample(10)
    assert s.targets[0].shape == (10, 64) and sorted(s.labels.tolist()) == list(range(10))  # class-balanced
    assert torch.equal(s.targets[0], s.ws[:, 0])
    d = create_teacher("sg3-discriminator", ckpt=str(COND))
    assert d.target_names == ("b32", "b16", "b8", "b4.fc")
    f = d.features(ref["img"])
    assert f.shape == (8, 128)
    # block features do not depend on the minibatch-std grouping (only b4 does): they match the reference
    want = torch.cat([ref["feats_D"][b] for b in ("b32", "b16", "b8")], 1)
    assert (f[:, :96] - want).abs().max() < 1e-4


def _tiny_imagefolder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_fit_trains_a_student_from_a_stylegan3_teacher(tmp_path):
    data = _tiny_imagefolder(tmp_path / "data")
    res = runner.invoke(app, ["fit", "--teacher", "sg3-generator", "--teacher-ckpt", str(SG3T), "--student",
                              "resnet10t", "--dataset", "imagefolder", "--data-root", str(data), "--img-size", "32",
                              "--batch", "8", "--steps", "2", "--eval", "none", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["teacher"]["ckpt"] == str(SG3T) and cfg["teacher"]["family"] == "stylegan3"
    assert cfg["teacher"]["target_dims"] == [32] * 9 + [27, 23, 19, 16, 16, 3]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 2


def test_convert_and_sample_a_stylegan3_snapshot(tmp_path):
    ref = _ref(SG3R)
    res = runner.invoke(app, ["convert", str(SG3R), str(tmp_path / "conv")])
    assert res.exit_code == 0, res.output
    assert available_nets(tmp_path / "conv") == ("G_ema", "G", "D")
    ck = load_sg2(tmp_path / "conv", nets=("G_ema", "D"))
    assert type(ck.G_ema) is SG3Generator and ck.meta["variant"] == "stylegan3"
    with torch.no_grad():
        assert (ck.G_ema(ref["z"], ref["c"]) - ref["img"]).abs().max() < 1e-4
        assert (ck.D(ref["img"], ref["c"]) - ref["logits"]).abs().max() < 1e-4
    for src in (SG3R, tmp_path / "conv"):
        out = tmp_path / f"grid-{src.name}.png"
        res = runner.invoke(app, ["gan", "sample", str(src), "--n", "4", "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert out.stat().st_size > 100


def test_bank_build_from_a_stylegan3_teacher(tmp_path):
    res = runner.invoke(app, ["bank", "build", "--teacher", "sg3-generator", "--teacher-ckpt", str(SG3T), "--n", "8",
                              "--out", str(tmp_path / "bank")])
    assert res.exit_code == 0, res.output
    info = runner.invoke(app, ["bank", "info", str(tmp_path / "bank")])
    assert info.exit_code == 0 and "L13_32_16" in info.output, info.output


def test_plot_embed_on_a_conditional_stylegan3_snapshot(tmp_path):
    pytest.importorskip("matplotlib")
    from gandistill.compare.embed import plot_embed

    out = plot_embed(str(COND), str(tmp_path / "embed.png"), n=20, reducer="pca")
    assert out["panels"] == ["(a) discriminator feature h^d", "(b) latent variable w", "(c) generator feature h^g"]
    assert out["labels"] == "classes requested from the conditional G" and (tmp_path / "embed.png").stat().st_size > 0
