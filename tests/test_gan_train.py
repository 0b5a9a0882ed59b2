"""End-to-end GAN trainer on toy networks (8x8 digits, 8 channels): smoke run, exact resume, ADA wiring, CLI."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gandistill.gan import gan_config, sample_grid, train_gan
from gandistill.gan import loop as gan_loop

B = 4
TOY = dict(resolution=8, batch=B, net_overrides=dict(channel_base=64, channel_max=8, z_dim=8, w_dim=8, map_layers=1),
           grid_n=4, threads=1, tick_kimg=B / 1000, progress=False, ema_kimg=0.01)


def toy(out, steps, **kw):
    return gan_config("tiny", out=str(out), kimg=steps * B / 1000, **{**TOY, **kw})


def weights(snap: Path):
    return {net: load_file(str(snap / f"{net}.safetensors")) for net in ("G", "D", "G_ema")}


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_two_step_smoke_run(tmp_path):
    run = train_gan(toy(tmp_path / "run", steps=2, snap_kimg=B / 1000, r1_interval=1, clamp_fakes=True))
    snaps = sorted(run.glob("snapshot-*"))
    assert [s.name for s in snaps] == ["snapshot-000000004", "snapshot-000000008"]
    assert json.loads((run / "latest.json").read_text())["snapshot"] == "snapshot-000000008"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in lines] == [0.004, 0.008]
    for r in lines:
        assert all(k in r for k in ("loss_G", "loss_D", "augment_p", "img_per_s"))
        assert torch.isfinite(torch.tensor([r["loss_G"], r["loss_D"]])).all()
    assert "r1_penalty" in lines[0] and "r1_penalty" in lines[1]  # r1_interval=1: every step
    assert (run / "grid-000000008.png").stat().st_size > 0 and (run / "config.json").is_file()
    w = weights(snaps[-1])
    assert set(w["G"]) == set(w["G_ema"]) and not any(k.startswith(".") for k in w["D"])
    # the networks moved away from their init (G_ema equals G only at step 0: beta = 0 at cur_nimg = 0)
    w0 = weights(snaps[0])
    assert any(not torch.equal(w0["G"][k], w["G"][k]) for k in w["G"])
    assert not list(run.glob(".tmp-*"))  # atomic writes leave no temp folders behind
    # digits are greyscale, so the toRGB outputs are tied (grey=None -> auto) and G_ema draws R = G = B
    from gandistill.teachers.stylegan2.checkpoint import load_sg2

    ck = load_sg2(snaps[-1], nets=("G_ema",))
    assert ck.meta["grey"] is True
    img = ck.G_ema(torch.randn(2, 8), None)
    assert torch.equal(img[:, 0], img[:, 1]) and torch.equal(img[:, 0], img[:, 2])


def test_resume_is_bit_identical(tmp_path):
    kw = dict(snap_kimg=2 * B / 1000, r1_interval=2, augment_p=0.2, ada_interval=1, ada_kimg=0.05,
              style_mixing_prob=0.5, keep_snapshots=0)
    full = train_gan(toy(tmp_path / "full", steps=4, **kw))
    half = train_gan(toy(tmp_path / "half", steps=2, **kw))
    resumed = train_gan(toy(tmp_path / "resumed", steps=4, resume=str(half), **kw))
    a, b = weights(full / "snapshot-000000016"), weights(resumed / "snapshot-000000016")
    for net in a:
        assert a[net].keys() == b[net].keys()
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k} differs after resume"
    sa = torch.load(full / "snapshot-000000016" / "training_state.pt", weights_only=True)
    sb = torch.load(resumed / "snapshot-000000016" / "training_state.pt", weights_only=True)
    assert sa["augment_p"] == sb["augment_p"] and sa["augment_p"] != 0.2  # ADA moved p, identically
    assert torch.equal(sa["rng_cpu"], sb["rng_cpu"])
    ma = json.loads((full / "snapshot-000000016" / "gandistill_sg2.json").read_text())["meta"]
    assert ma["kimg"] == 0.016


def test_resume_with_new_learning_rates_uses_them(tmp_path):
    """The optimiser state saved in a snapshot carries its lr; a resume given other rates must use them
    (a silently kept old lr would make `--resume RUN --glr 0.001` a no-op)."""
    half = train_gan(toy(tmp_path / "half", steps=1, snap_kimg=1.0, r1_interval=4))
    resumed = train_gan(toy(tmp_path / "resumed", steps=2, snap_kimg=1.0, r1_interval=4, resume=str(half),
                            glr=0.0007, dlr=0.0005, betas=(0.1, 0.9)))
    st = torch.load(next(resumed.glob("snapshot-*")) / "training_state.pt", weights_only=True)
    g, d = st["opt_G"]["param_groups"], st["opt_D"]["param_groups"]
    assert all(x["lr"] == 0.0007 and tuple(x["betas"]) == (0.1, 0.9) for x in g)
    ratio = 4 / 5                                             # lazy R1 every 4 steps
    assert all(x["lr"] == pytest.approx(0.0005 * ratio) for x in d)
    assert all(tuple(x["betas"]) == pytest.approx((0.1 ** ratio, 0.9 ** ratio)) for x in d)


@pytest.mark.parametrize("offset,direction", [(+100.0, 1), (-100.0, -1)])
def test_ada_p_follows_an_overfitting_discriminator(tmp_path, monkeypatch, offset, direction):
    """A D that is sure every real is real (logits +100) must get more augmentation; one sure of the
    opposite less. The offset is added to D's output by a forward hook."""
    build = gan_loop.build_networks

    def biased(G_kw, D_kw, device="cpu"):
        G, D = build(G_kw, D_kw, device)
        D.register_forward_hook(lambda mod, inp, out: out + offset)
        return G, D

    monkeypatch.setattr(gan_loop, "build_networks", biased)
    run = train_gan(toy(tmp_path / "ada", steps=3, augment_p=0.5, ada_interval=1, ada_kimg=0.1,
                        ada_target=0.6, snap_kimg=1.0))
    ps = [json.loads(x)["augment_p"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    step = B * 1 / 100  # batch * interval / (ada_kimg * 1000)
    assert ps == pytest.approx([0.5 + direction * step * i for i in (1, 2, 3)])


def test_fixed_and_no_augmentation_keep_p(tmp_path):
    run = train_gan(toy(tmp_path / "fixed", steps=2, augment="fixed", augment_p=0.3, snap_kimg=1.0))
    assert {json.loads(x)["augment_p"] for x in (run / "metrics.jsonl").read_text().splitlines()} == {0.3}


def test_conditional_run_and_sampling(tmp_path):
    run = train_gan(toy(tmp_path / "cond", steps=1, cond=True, snap_kimg=1.0))
    meta = json.loads(next(run.glob("snapshot-*/gandistill_sg2.json")).read_text())
    assert meta["nets"]["G"]["kwargs"]["c_dim"] == 10 and meta["nets"]["D"]["kwargs"]["c_dim"] == 10
    out = sample_grid(run, n=10, out=tmp_path / "g.png")
    from PIL import Image

    im = Image.open(out)
    assert im.size[0] > 8 * 3 and im.mode == "RGB"


def test_pacgan_run_packs_d_inputs_and_its_d_still_serves_as_a_teacher(tmp_path):
    run = train_gan(toy(tmp_path / "pac", steps=2, pack=2, snap_kimg=1.0, r1_interval=1))
    snap = next(run.glob("snapshot-*"))
    meta = json.loads((snap / "gandistill_sg2.json").read_text())
    assert meta["nets"]["D"]["kwargs"]["img_channels"] == 6 and meta["nets"]["G"]["kwargs"]["img_channels"] == 3
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor([r["loss_G"], r["loss_D"], r["r1_penalty"]])).all() for r in lines)
    from gandistill.teachers import create_teacher
    from gandistill.teachers.stylegan2.checkpoint import load_sg2

    t = create_teacher("sg2-discriminator", ckpt=str(snap), mode="single")
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    assert t.img_channels == 3 and t.pack == 2
    D = load_sg2(snap, nets=("D",)).D.float()
    for m in D.modules():                      # the teacher's whole-batch minibatch-std
        if hasattr(m, "group_size") and hasattr(m, "num_channels"):
            m.group_size = None
    _, feats = D(torch.cat([x, x], dim=1), torch.zeros(3, 0), return_features=True)
    assert torch.allclose(t.features(x), feats["b4.fc"], atol=1e-5)   # one row per image: a pack of copies
    with pytest.raises(ValueError, match="pack 2, not 1"):       # resuming with another pack is refused
        train_gan(toy(tmp_path / "pac", steps=3, resume=str(run)))


def test_bad_config_errors(tmp_path):
    with pytest.raises(KeyError, match="unknown GAN config"):
        gan_config("tinyy")
    with pytest.raises(ValueError, match="batch"):
        gan_config("tiny", batch=1)
    with pytest.raises(ValueError, match="path-length"):
        gan_config("tiny", pl_weight=2.0)
    with pytest.raises(ValueError, match="unknown GanConfig"):
        gan_config("tiny", lr=0.1)
    with pytest.raises(ValueError, match="pack must be >= 1 and divide batch 32"):
        gan_config("tiny", pack=3)
    with pytest.raises(ValueError, match="pack must be"):
        gan_config("tiny", pack=0)
    with pytest.raises(ValueError, match="batch / pack must be >= 2"):
        gan_config("tiny", batch=4, pack=4)
    assert gan_config("tiny", batch=4, pack=2).pack == 2
    with pytest.raises(FileNotFoundError, match="resume"):
        train_gan(toy(tmp_path / "r", steps=1, resume=str(tmp_path / "missing")))
    with pytest.raises(ValueError, match="net_overrides"):
        train_gan(toy(tmp_path / "n", steps=1, net_overrides=dict(chanel_base=4)))


def test_cli_train_and_sample(tmp_path):
    from typer.testing import CliRunner

    from gandistill.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["gan", "train", "--data", "digits", "--preset", "tiny", "--kimg", str(B / 1000),
                              "--out", str(tmp_path / "cli"), "--resolution", "8", "--batch", str(B),
                              "--net", "channel_base=64", "--net", "channel_max=8", "--net", "z_dim=8",
                              "--net", "w_dim=8", "--snap-kimg", "1", "--threads", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["gan", "sample", str(tmp_path / "cli"), "--n", "4", "--out", str(tmp_path / "s.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s.png").stat().st_size > 0
