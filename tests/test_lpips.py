"""LPIPS-alex v0.1 from local files: the formula, the two weight layouts, bad files, and the encoder teacher."""
import json
from types import SimpleNamespace

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from gandistill.losses.lpips import CHANNELS, LPIPS, LPIPSWeightsError, combine_weights, load_lpips_weights
from gandistill.teachers import create_teacher
from gandistill.teachers.stylegan2 import Discriminator, Generator

CONVS = (0, 3, 6, 8, 10)      # torchvision alexnet.features conv indices
RELUS = (1, 4, 7, 9, 11)      # relu1..relu5


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Random torchvision AlexNet + random non-negative lin weights, saved in every accepted layout."""
    d = tmp_path_factory.mktemp("lpips")
    torch.manual_seed(0)
    tv = torchvision.models.alexnet(weights=None).features.eval()
    with torch.no_grad():
        for i in CONVS:
            tv[i].bias.uniform_(-0.1, 0.1)
    backbone = {f"features.{k}": v.clone() for k, v in tv.state_dict().items()}
    lins = [torch.rand(1, c, 1, 1) for c in CHANNELS]
    p = SimpleNamespace(dir=d, tv=tv, lins=lins)
    p.alex_pth, p.alex_st = d / "alexnet.pth", d / "alexnet.safetensors"
    torch.save({**backbone, "classifier.6.bias": torch.zeros(1000)}, p.alex_pth)   # classifier.* is ignored
    save_file(backbone, str(p.alex_st))
    p.lin_pth, p.lin_st = d / "alex.pth", d / "lin.safetensors"
    torch.save({f"lin{l}.model.1.weight": w for l, w in enumerate(lins)}, p.lin_pth)  # lpips package layout
    save_file({f"lin{l}.weight": w for l, w in enumerate(lins)}, str(p.lin_st))
    p.combined = combine_weights(p.lin_pth, p.alex_pth, d / "combined.safetensors")
    module_layout = {f"net.slice{s}.{i}.{part}": tv[i].state_dict()[part]           # LPIPS().state_dict() keys
                     for s, i in enumerate(CONVS, 1) for part in ("weight", "bias")}
    module_layout.update({f"lin{l}.model.1.weight": w for l, w in enumerate(lins)})
    module_layout["scaling_layer.shift"] = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    p.module_pth = d / "lpips_module.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in module_layout.items()}}, p.module_pth)
    return p


def reference_lpips(tv, lins, x, x0):
    """The published formula, written out: scale, AlexNet relu1..5, unit-normalise, weight, average, sum."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def relus(img):
        h, out = (img - shift) / scale, []
        for i, layer in enumerate(tv):
            h = layer(h)
            if i in RELUS:
                out.append(h.clone())
            if i == RELUS[-1]:
                break
        return out

    total = torch.zeros(x.shape[0])
    for f, f0, w in zip(relus(x), relus(x0), lins):
        u = f / (torch.sqrt((f ** 2).sum(dim=1, keepdim=True)) + 1e-10)
        u0 = f0 / (torch.sqrt((f0 ** 2).sum(dim=1, keepdim=True)) + 1e-10)
        per_pos = ((u - u0) ** 2 * w.view(1, -1, 1, 1)).sum(dim=1)       # [N, H, W]
        total = total + per_pos.mean(dim=(1, 2))
    return total


def images(n=2, size=(64, 64), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, *size, generator=g) * 2 - 1


def test_identity_symmetry_and_the_formula(files):
    m = LPIPS.from_files(files.combined)
    x, y = images(3, seed=1), images(3, seed=2)
    assert torch.equal(m(x, x), torch.zeros(3))
    dxy, dyx = m(x, y), m(y, x)
    assert dxy.shape == (3,) and (dxy > 0).all()
    torch.testing.assert_close(dxy, dyx)
    with torch.no_grad():
        torch.testing.assert_close(dxy, reference_lpips(files.tv, files.lins, x, y))
        for size in ((31, 31), (48, 40)):                        # AlexNet's smallest input; non-square
            a, b = images(2, size, 3), images(2, size, 4)
            torch.testing.assert_close(m(a, b), reference_lpips(files.tv, files.lins, a, b))


@pytest.mark.parametrize("lin,alex", [("lin_pth", "alex_pth"), ("lin_st", "alex_st"), ("module_pth", None),
                                      ("combined", None), ("combined", "alex_st")])
def test_every_layout_gives_the_same_distance(files, lin, alex):
    x, y = images(2, seed=5), images(2, seed=6)
    want = reference_lpips(files.tv, files.lins, x, y)
    m = LPIPS.from_files(getattr(files, lin), getattr(files, alex) if alex else None)
    torch.testing.assert_close(m(x, y), want)


def test_gradients_reach_the_input_not_the_weights(files):
    m = LPIPS.from_files(files.lin_pth, files.alex_pth)
    m.train()                                                     # stays the evaluation network
    assert not m.training and not any(p.requires_grad for p in m.parameters())
    x = images(2, seed=7).requires_grad_(True)
    m(x, images(2, seed=8)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in m.parameters())


def test_bad_inputs(files):
    m = LPIPS.from_files(files.combined)
    with pytest.raises(ValueError, match="at least 31"):
        m(images(1, (30, 64)), images(1, (30, 64)))
    with pytest.raises(ValueError, match="differ in shape"):
        m(images(1), images(2))
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        m(torch.zeros(1, 4, 64, 64), torch.zeros(1, 4, 64, 64))
    g = images(2)[:, :1]                                          # grayscale: repeated to 3 channels
    torch.testing.assert_close(m(g, -g), m(g.expand(-1, 3, -1, -1), -g.expand(-1, 3, -1, -1)))


def test_bad_files_say_which_file_and_why(files):
    d, alex = files.dir, files.alex_pth
    sd = torch.load(files.lin_pth, weights_only=True)
    with pytest.raises(LPIPSWeightsError, match=r"nope\.pth: LPIPS weights file not found"):
        load_lpips_weights(d / "nope.pth", alex)
    with pytest.raises(LPIPSWeightsError, match=r"gone\.pth: AlexNet weights file not found"):
        load_lpips_weights(files.lin_pth, d / "gone.pth")
    assert issubclass(LPIPSWeightsError, ValueError)

    def bad(name, obj):
        p = d / name
        torch.save(obj, p) if not name.endswith(".safetensors") else save_file(obj, str(p))
        return p

    wrong_lin = bad("wrong_keys.pth", {"conv.weight": torch.ones(1, 64, 1, 1)})
    with pytest.raises(LPIPSWeightsError, match=r"wrong_keys\.pth: no LPIPS linear layer lin0\.model\.1\.weight"):
        load_lpips_weights(wrong_lin, alex)
    wrong_alex = bad("vgg.safetensors", {"features.0.weight": torch.ones(64, 3, 3, 3),
                                         "features.0.bias": torch.ones(64)})
    with pytest.raises(LPIPSWeightsError, match=r"vgg\.safetensors: features\.0\.weight has shape \[64, 3, 3, 3\]"):
        load_lpips_weights(files.lin_pth, wrong_alex)
    no_alex = bad("no_alex.pth", {"classifier.1.weight": torch.ones(2, 2)})
    with pytest.raises(LPIPSWeightsError, match=r"no_alex\.pth: no AlexNet weight features\.0\.weight"):
        load_lpips_weights(files.lin_pth, no_alex)
    shape = bad("shape.pth", {**sd, "lin2.model.1.weight": torch.ones(1, 383, 1, 1)})
    with pytest.raises(LPIPSWeightsError, match=r"shape\.pth: lin2\.model\.1\.weight has shape \[1, 383, 1, 1\], "
                                                r"expected \[1, 384, 1, 1\]"):
        load_lpips_weights(shape, alex)
    neg = bad("neg.pth", {**sd, "lin4.model.1.weight": -torch.ones(1, 256, 1, 1)})
    with pytest.raises(LPIPSWeightsError, match=r"neg\.pth: lin4.*non-negative"):
        load_lpips_weights(neg, alex)
    with pytest.raises(LPIPSWeightsError, match=r"alex\.pth: holds only the LPIPS linear layers"):
        load_lpips_weights(files.lin_pth)
    with pytest.raises(LPIPSWeightsError, match=r"list\.pth: .*not a state dict"):
        load_lpips_weights(bad("list.pth", [torch.ones(1)]), alex)
    junk = d / "junk.safetensors"
    junk.write_bytes(b"not a weights file")
    with pytest.raises(LPIPSWeightsError, match=r"junk\.safetensors: cannot read"):
        load_lpips_weights(junk, alex)
    with pytest.raises(LPIPSWeightsError, match="not found|directory"):
        load_lpips_weights(d, alex)


def test_combine_cli(files, capsys):
    from gandistill.losses.lpips import main

    out = files.dir / "cli.pth"
    assert main([str(files.lin_st), str(files.alex_st), str(out)]) == 0
    assert torch.equal(LPIPS.from_files(out)(images(1, seed=9), images(1, seed=10)),
                       LPIPS.from_files(files.combined)(images(1, seed=9), images(1, seed=10)))
    assert main([str(files.lin_st), str(files.dir / "none.pth"), str(out)]) == 1
    assert "none.pth" in capsys.readouterr().err


# --- the encoder teacher -------------------------------------------------------------------------

def G32(seed=0):
    torch.manual_seed(seed)
    return Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
                     mapping_kwargs={"num_layers": 1}, synthesis_kwargs={"channel_base": 128, "channel_max": 16})


def D32(seed=1):
    torch.manual_seed(seed)
    return Discriminator(c_dim=0, img_resolution=32, img_channels=3, architecture="orig", channel_base=128,
                         channel_max=16, epilogue_kwargs={"mbstd_group_size": 2})


def test_encoder_with_lpips_weights_uses_the_papers_loss(files):
    t = create_teacher("sg2-encoder", G=G32(), D=D32(), lpips_weights=str(files.lin_pth),
                       alexnet_weights=str(files.alex_st), noise_mode="const")
    assert t.perceptual_name == "lpips-alex" and t.describe()["perceptual"] == "lpips-alex"
    assert create_teacher("sg2-encoder", G=G32(), perceptual="lpips",
                          lpips_weights=str(files.combined)).perceptual_name == "lpips-alex"
    s = t.sample(2, generator=torch.Generator().manual_seed(0))
    e = (s.ws.flatten(1) + 0.05).requires_grad_(True)
    d = t.loss(e, s.images, s.ws)
    recon = t.reconstruct(e).detach()
    torch.testing.assert_close(d["percep"], reference_lpips(files.tv, files.lins, recon, s.images).mean())
    want = (recon - s.images).abs().mean() + d["percep"] + ((e.detach() - s.ws.flatten(1)) ** 2).mean()
    torch.testing.assert_close(d["loss"].detach(), want)          # Eq. 3 with weights 1 / 1 / 1 (SnS)
    d["loss"].backward()
    assert torch.isfinite(e.grad).all() and e.grad.abs().sum() > 0


def test_encoder_without_lpips_weights_names_its_stand_in(files):
    assert create_teacher("sg2-encoder", G=G32(), D=D32()).perceptual_name == "d-features"
    assert create_teacher("sg2-encoder", G=G32()).perceptual_name == "random-conv"
    with pytest.raises(ValueError, match="lpips_weights=PATH"):
        create_teacher("sg2-encoder", G=G32(), perceptual="lpips")
    with pytest.raises(ValueError, match="perceptual='d-features'"):
        create_teacher("sg2-encoder", G=G32(), D=D32(), perceptual="d-features", lpips_weights=str(files.combined))
    with pytest.raises(LPIPSWeightsError, match="missing.pth"):
        create_teacher("sg2-encoder", G=G32(), lpips_weights=str(files.dir / "missing.pth"))
    tiny = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, mapping_kwargs={"num_layers": 1},
                     synthesis_kwargs={"channel_base": 128, "channel_max": 16})
    with pytest.raises(ValueError, match="at least 31 px"):
        create_teacher("sg2-encoder", G=tiny, lpips_weights=str(files.combined))


def test_compare_passes_the_path_and_labels_only_stand_ins(files, tmp_path):
    from gandistill.compare import get_preset, resolve
    from gandistill.compare.runner import _run_notes
    from gandistill.compare.tables import RUNS

    run = next(r for r in RUNS.values() if r.method.startswith("encoder"))
    plan = resolve(run, get_preset("digits"), lpips_weights=str(files.combined))
    assert plan.fit["teacher_kwargs"]["lpips_weights"] == str(files.combined)
    assert not any("ignored" in n or "stand-in" in n for n in plan.notes)
    for name, labelled in (("lpips-alex", False), ("d-features", True), ("random-conv", True)):
        (tmp_path / "config.json").write_text(json.dumps({"resolved": {"perceptual": name}}))
        notes = _run_notes(tmp_path, plan)
        assert any("not LPIPS" in n for n in notes) == labelled, (name, notes)


def test_compare_encoder_row_trains_with_lpips_from_the_flag(files, tmp_path):
    from gandistill.compare import CompareConfig, compare

    tiny = dict(student="test_resnet", img_size=16, batch=8, steps=2, dim=32, proj_hidden=16, log_every=1)
    cfg = CompareConfig(table=1, rows="enc-syn", out=str(tmp_path), probe_epochs=1, probe_max_train=60,
                        probe_max_test=30, fit_overrides=tiny, device="cpu", baselines=False,
                        lpips_weights=str(files.combined))
    row = compare(cfg, log=lambda s: None).rows[0]
    assert row.status == "ok", row.notes
    assert not any("LPIPS" in n for n in row.notes)
    rec = json.loads((tmp_path / "runs" / "enc-syn" / "config.json").read_text())
    assert rec["resolved"]["perceptual"] == "lpips-alex"
