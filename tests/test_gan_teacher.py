"""The bundled default teacher (gandistill/assets/digits-sg2): present, small, loads, generates digits-shaped images."""
import json

import pytest
import torch

from gandistill.gan import bundled_teacher_path, generate_images

ASSET = bundled_teacher_path()
pytestmark = pytest.mark.skipif(not (ASSET / "gandistill_sg2.json").is_file(),
                                reason=f"bundled teacher asset missing at {ASSET} (run scripts/export_digits_teacher.py)")


def test_asset_files_and_size():
    info = json.loads((ASSET / "gandistill_sg2.json").read_text())
    assert "G_ema" in info["nets"] and set(info["nets"]) <= {"G_ema", "D"}
    assert all(v["dtype"] == "float16" for v in info["nets"].values())
    assert info["meta"]["dataset"] == "digits" and info["meta"]["split"] == "train"
    assert sum(p.stat().st_size for p in ASSET.iterdir()) < 4 * 2 ** 20  # a few MB at most
    assert (ASSET / "MODEL_CARD.md").is_file() and (ASSET / "samples.png").is_file()


def test_bundled_teacher_generates_32px_images_in_range():
    from gandistill.teachers.stylegan2.checkpoint import load_sg2

    torch.set_num_threads(1)
    ck = load_sg2(ASSET, nets=("G_ema",))
    G = ck.G_ema
    assert (G.img_resolution, G.img_channels) == (32, 3) and G.c_dim == 0  # unconditional: no labels leak
    assert next(G.parameters()).dtype == torch.float32  # fp16 on disk, fp32 in memory
    z = torch.randn(8, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        c = torch.nn.functional.one_hot(torch.arange(8) % G.c_dim, G.c_dim).float() if G.c_dim else torch.zeros(8, 0)
        img = G(z, c, noise_mode="const", force_fp32=True)
    assert img.shape == (8, 3, 32, 32) and torch.isfinite(img).all()
    # raw outputs stay bounded (trained with a free overshoot up to +-4, consumers clamp to [-1, 1]);
    # the clamped image is a dark background with bright strokes, like the digits data
    assert img.abs().quantile(0.99) < 5.0
    img = img.clamp(-1, 1)
    assert (img < -0.5).float().mean() > 0.5 and (img > 0.3).float().mean() > 0.03
    # different latents give different digits; the same latent gives the same image
    assert (img[0] - img[1]).abs().mean() > 0.05
    again = generate_images(G, 8, seed=0, c_dim=G.c_dim)
    assert torch.allclose(again, img.clamp(-1, 1))


def test_default_teacher_is_unconditional_and_conditional_one_is_kept_labelled():
    from gandistill.gan.sample import bundled_conditional_teacher_path

    info = json.loads((ASSET / "gandistill_sg2.json").read_text())
    assert info["nets"]["G_ema"]["kwargs"]["c_dim"] == 0
    cond = bundled_conditional_teacher_path()
    info_c = json.loads((cond / "gandistill_sg2.json").read_text())
    assert info_c["nets"]["G_ema"]["kwargs"]["c_dim"] == 10
    assert "not self-supervised" in (cond / "MODEL_CARD.md").read_text()


def test_model_card_publishes_coverage_and_score():
    card = (ASSET / "MODEL_CARD.md").read_text()
    assert "Frechet distance" in card and "KID" in card and "Class histogram" in card
    assert "smallest class share" in card
