"""Teachers: sampling (h^g, w), discriminator features, the encoder objective, registry and freezing."""
import pytest
import torch
from torch import nn

from gandistill.teachers import TEACHERS, Teacher, TeacherSample, create_teacher, list_teachers, register_teacher
from gandistill.teachers.discriminator import default_blocks
from gandistill.teachers.stylegan2 import Generator
from conftest import builtin, tiny_D, tiny_G, tiny_teacher_kwargs


@pytest.mark.parametrize("name", builtin(TEACHERS))         # every built-in teacher, new ones included
def test_each_teacher_samples_or_extracts(name):
    t = create_teacher(name, **tiny_teacher_kwargs(name))
    assert not any(p.requires_grad for p in t.parameters()) and not t.training          # frozen
    if t.can_sample:
        s = t.sample(3, generator=torch.Generator().manual_seed(0))
        res = t.img_resolution if hasattr(t, "img_resolution") else 16
        assert s.images.shape == (3, 3, res, res) and float(s.images.abs().max()) <= 1.0
        assert [tuple(x.shape) for x in s.targets] == [(3, int(d)) for d in t.target_dims]
    else:
        res = getattr(t, "img_resolution", 16)
        f = t.features(torch.rand(3, 3, res, res) * 2 - 1)
        assert f.shape == (3, t.num_features) and bool(torch.isfinite(f).all())


def test_builtin_names_and_unknown_name():
    assert {"sg2-generator", "sg2-latent", "sg2-discriminator", "sg2-encoder"} <= set(list_teachers())
    with pytest.raises(KeyError, match="sg2-generator"):
        create_teacher("sg2-generatr", G=tiny_G())


def test_generator_targets_are_pooled_block_outputs():
    G = tiny_G()
    t = create_teacher("sg2-generator", G=G, noise_mode="const")
    assert t.target_names == ("b4", "b8", "b16")
    assert t.target_dims == tuple(G.feature_channels()[b] for b in t.target_names)
    s = t.sample(5, generator=torch.Generator().manual_seed(3))
    # independent recomputation: same z, mapping with psi=1, synthesis, global average pooling
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ws = G.mapping(z, torch.zeros(5, 0), truncation_psi=1)
        img, feats = G.synthesis(ws, noise_mode="const", force_fp32=True, return_features=True)
    assert torch.equal(ws[:, 0], ws[:, -1])                      # one w broadcast, no mixing
    torch.testing.assert_close(s.ws, ws)
    torch.testing.assert_close(s.images, img.clamp(-1, 1))
    assert float(s.images.abs().max()) <= 1.0
    for got, b in zip(s.targets, t.target_names):
        torch.testing.assert_close(got, feats[b].mean(dim=(2, 3)))
    assert s.labels is None


def test_generator_block_selection_and_errors():
    t = create_teacher("sg2-generator", G=tiny_G(), blocks="b8,16")
    assert t.target_names == ("b8", "b16")
    with pytest.raises(ValueError, match="unknown generator block"):
        create_teacher("sg2-generator", G=tiny_G(), blocks="b64")
    with pytest.raises(ValueError, match="noise_mode"):
        create_teacher("sg2-generator", G=tiny_G(), noise_mode="loud")


def test_latent_target_is_w():
    G = tiny_G()
    t = create_teacher("sg2-latent", G=G)
    assert t.target_dims == (16,)
    s = t.sample(4, generator=torch.Generator().manual_seed(0))
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        w = G.mapping(z, None)[:, 0]
    torch.testing.assert_close(s.targets[0], w)
    assert s.images.shape == (4, 3, 16, 16)


def test_conditional_generator_gets_class_balanced_labels():
    t = create_teacher("sg2-generator", G=tiny_G(c_dim=3))
    s = t.sample(9, generator=torch.Generator().manual_seed(0))
    assert sorted(torch.bincount(s.labels, minlength=3).tolist()) == [3, 3, 3]


def test_teacher_is_frozen_and_stays_in_eval():
    t = create_teacher("sg2-generator", G=tiny_G())
    assert not any(p.requires_grad for p in t.parameters())
    t.train()
    assert not t.training and not any(m.training for m in t.modules())


def test_discriminator_single_and_multi_features():
    D = tiny_D()
    single = create_teacher("sg2-discriminator", D=D, mode="single")
    assert single.target_names == ("b4.fc",)
    multi = create_teacher("sg2-discriminator", D=tiny_D(), mode="multi")
    assert multi.target_names == ("b16", "b8", "b4.fc")                      # 16 px: every block + b4.fc
    assert default_blocks([32, 16, 8], 32, "multi") == ("b32", "b16", "b8", "b4.fc")   # SnS at 32 px
    assert default_blocks([64, 32, 16, 8], 64, "multi") == ("b32", "b16", "b8", "b4.fc")
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    f = multi.features(x)
    assert f.shape == (6, multi.num_features) == (6, sum(multi.target_dims))
    # independent: D taps with the minibatch-std group = the whole batch
    ref = tiny_D()
    ref.b4.mbstd.group_size = None
    with torch.no_grad():
        _, taps = ref(x, None, return_features=True)
    want = torch.cat([taps["b16"].mean(dim=(2, 3)), taps["b8"].mean(dim=(2, 3)), taps["b4.fc"]], 1)
    torch.testing.assert_close(f, want)
    assert multi.D.b4.mbstd.group_size is None
    with pytest.raises(ValueError, match="mode"):
        create_teacher("sg2-discriminator", D=tiny_D(), mode="all")
    with pytest.raises(NotImplementedError):
        multi.sample(2)


def test_encoder_loss_is_eq3_and_trains_e_through_frozen_G():
    G = tiny_G()
    t = create_teacher("sg2-encoder", G=G, perceptual="random-conv", noise_mode="const")
    assert t.perceptual_name == "random-conv"
    assert t.target_dims == (G.num_ws * 16,)
    s = t.sample(3, generator=torch.Generator().manual_seed(0))
    e = s.ws.flatten(1).clone().requires_grad_(True)
    d = t.loss(e, s.images, s.ws)
    assert float(d["latent"]) == 0.0
    d["loss"].backward()
    assert e.grad is not None and torch.isfinite(e.grad).all()
    assert all(p.grad is None for p in t.parameters())
    # Eq. 3 written out with the same pieces
    e2 = (s.ws.flatten(1) + 0.1).requires_grad_(True)
    recon = t.reconstruct(e2)
    want = (recon - s.images).abs().mean() + t.perceptual(recon, s.images) + ((e2 - s.ws.flatten(1)) ** 2).mean()
    d2 = t.loss(e2, s.images, s.ws)
    torch.testing.assert_close(d2["latent"], ((e2 - s.ws.flatten(1)) ** 2).mean().detach())
    torch.testing.assert_close(d2["loss"], want)
    assert float(d2["l1"]) > 0 and float(d2["percep"]) > 0
    with pytest.raises(ValueError, match="num_ws"):
        t.reconstruct(torch.zeros(2, 5))


def test_encoder_perceptual_fallbacks():
    t = create_teacher("sg2-encoder", G=tiny_G(), D=tiny_D(), perceptual="auto")
    assert t.perceptual_name in ("lpips", "d-features")
    t2 = create_teacher("sg2-encoder", G=tiny_G(), perceptual="d-features", D=tiny_D())
    a, b = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    assert float(t2.perceptual(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(t2.perceptual(a, b)) > 0
    with pytest.raises(ValueError, match="contains D"):
        create_teacher("sg2-encoder", G=tiny_G(), perceptual="d-features")


def test_register_teacher_plugs_in_any_generator():
    class Const(Teacher):
        def __init__(self, ckpt=None, device="cpu", width=4):
            super().__init__()
            self.lin = nn.Linear(2, width)
            self.target_dims, self.target_names, self.img_resolution = (width,), ("h",), 8

        @torch.no_grad()
        def sample(self, n, generator=None):
            z = torch.randn(n, 2, generator=generator)
            return TeacherSample(images=torch.tanh(z.sum(1)).view(n, 1, 1, 1).expand(n, 3, 8, 8), targets=[self.lin(z)])

    register_teacher("test-const", help="test teacher", overwrite=True)(Const)
    t = create_teacher("test-const", width=6)
    assert "test-const" in list_teachers()
    assert t.sample(3).targets[0].shape == (3, 6)
    assert not any(p.requires_grad for p in t.parameters())


def test_missing_checkpoint_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        create_teacher("sg2-generator", ckpt=str(tmp_path / "nope.pkl"))


# --- checkpoints: our format, NVlabs pickles, the bundled default -----------------------------------

FIXTURE_PKL = __import__("pathlib").Path(__file__).parent / "fixtures" / "sg2-tiny-uncond.pkl"


def test_teachers_load_our_checkpoint_format(tmp_path):
    from gandistill.teachers.stylegan2.checkpoint import save_sg2

    G, D = tiny_G(), tiny_D()
    save_sg2(tmp_path / "ck", G_ema=G, D=D)
    g = create_teacher("sg2-generator", ckpt=str(tmp_path / "ck"), noise_mode="const")
    ref = create_teacher("sg2-generator", G=G, noise_mode="const")
    a, b = g.sample(3, torch.Generator().manual_seed(1)), ref.sample(3, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a.images, b.images)
    assert g.describe()["ckpt"].endswith("ck")
    d = create_teacher("sg2-discriminator", ckpt=str(tmp_path / "ck"), mode="single")
    assert d.features(torch.zeros(4, 3, 16, 16)).shape == (4, 16)
    e = create_teacher("sg2-encoder", ckpt=str(tmp_path / "ck"))
    assert e.perceptual_name in ("lpips", "d-features")          # the checkpoint has D


def test_discriminator_teacher_needs_a_checkpoint_with_D(tmp_path):
    from gandistill.teachers.stylegan2.checkpoint import save_sg2

    save_sg2(tmp_path / "g", G_ema=tiny_G())
    with pytest.raises(ValueError, match="no discriminator"):
        create_teacher("sg2-discriminator", ckpt=str(tmp_path / "g"))


@pytest.mark.skipif(not FIXTURE_PKL.exists(), reason="NVlabs fixture missing")
def test_teachers_read_an_nvlabs_pickle():
    g = create_teacher("sg2-generator", ckpt=str(FIXTURE_PKL))
    assert g.target_names == ("b4", "b8", "b16", "b32") and g.target_dims == (32, 32, 32, 16)
    s = g.sample(2)
    assert s.images.shape == (2, 3, 32, 32) and float(s.images.abs().max()) <= 1.0
    d = create_teacher("sg2-discriminator", ckpt=str(FIXTURE_PKL))
    assert d.target_names == ("b32", "b16", "b8", "b4.fc")
    assert d.features(s.images).shape == (2, 32 * 4)


def test_default_checkpoint_is_the_bundled_teacher():
    from gandistill.gan import bundled_teacher_path

    if not (bundled_teacher_path() / "gandistill_sg2.json").exists():
        pytest.skip("bundled teacher not built yet")
    t = create_teacher("sg2-generator")
    assert t.img_resolution == 32 and t.ckpt_path == str(bundled_teacher_path())
    assert t.sample(2).images.shape == (2, 3, 32, 32)


def test_d_on_g_targets_are_d_features_of_g_samples():
    G, D = tiny_G(), tiny_D()
    t = create_teacher("sg2-d-on-g", G=G, D=D, mode="multi", noise_mode="const")
    assert t.target_names == ("b16", "b8", "b4.fc") and t.can_sample
    s = t.sample(5, generator=torch.Generator().manual_seed(4))
    # independent recomputation: the same z through G (psi 1, const noise), then D with one mbstd group
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(4))
    ref_d = tiny_D()
    ref_d.load_state_dict(D.state_dict())
    ref_d.b4.mbstd.group_size = None
    with torch.no_grad():
        img = G.synthesis(G.mapping(z, None), noise_mode="const").clamp(-1, 1)
        _, taps = ref_d(img, None, return_features=True)
    torch.testing.assert_close(s.images, img)
    want = [taps["b16"].mean(dim=(2, 3)), taps["b8"].mean(dim=(2, 3)), taps["b4.fc"]]
    for got, ref in zip(s.targets, want):
        torch.testing.assert_close(got, ref)
    assert [x.shape[1] for x in s.targets] == list(t.target_dims)
    single = create_teacher("sg2-d-on-g", G=G, D=D, mode="single")
    assert single.target_names == ("b4.fc",) and single.describe()["mode"] == "single"


def test_d_on_g_loads_both_nets_and_needs_d(tmp_path):
    from gandistill.teachers.stylegan2.checkpoint import save_sg2

    G, D = tiny_G(), tiny_D()
    save_sg2(tmp_path / "ck", G_ema=G, D=D)
    t = create_teacher("sg2-d-on-g", ckpt=str(tmp_path / "ck"), noise_mode="const")
    ref = create_teacher("sg2-discriminator", D=D, mode="multi")
    s = t.sample(3, torch.Generator().manual_seed(2))
    torch.testing.assert_close(torch.cat(s.targets, 1), ref.features(s.images))
    assert t.describe()["ckpt"].endswith("ck")
    save_sg2(tmp_path / "g", G_ema=tiny_G())
    with pytest.raises(ValueError, match="no discriminator D.*sg2-d-on-g"):
        create_teacher("sg2-d-on-g", ckpt=str(tmp_path / "g"))
    save_sg2(tmp_path / "d", D=tiny_D())                # D alone: refused, not filled with the bundled G
    with pytest.raises(ValueError, match="has no generator"):
        create_teacher("sg2-d-on-g", ckpt=str(tmp_path / "d"))


def test_d_on_g_takes_g_ema_given_nets_and_options(tmp_path):
    from gandistill.teachers.stylegan2.checkpoint import save_sg2

    def images(t, seed=5):
        return t.sample(2, torch.Generator().manual_seed(seed)).images

    G_ema, G_raw, D, D2 = tiny_G(), tiny_G(seed=7), tiny_D(), tiny_D(seed=8)
    save_sg2(tmp_path / "ck", G_ema=G_ema, G=G_raw, D=D)
    gen = create_teacher("sg2-generator", G=G_ema, noise_mode="const")
    t = create_teacher("sg2-d-on-g", ckpt=str(tmp_path / "ck"), noise_mode="const")     # G_ema, not G
    assert t.noise_mode == "const"
    torch.testing.assert_close(images(t), images(gen))
    assert not torch.allclose(images(t), images(create_teacher("sg2-generator", G=G_raw, noise_mode="const")))
    save_sg2(tmp_path / "g-only", G=G_raw, D=D)                                            # no G_ema: G
    t_raw = create_teacher("sg2-d-on-g", ckpt=str(tmp_path / "g-only"), noise_mode="const")
    torch.testing.assert_close(images(t_raw), images(create_teacher("sg2-generator", G=G_raw, noise_mode="const")))
    # a network passed in wins over the checkpoint's; the other one comes from the checkpoint
    mixed = create_teacher("sg2-d-on-g", ckpt=str(tmp_path / "ck"), G=G_raw, noise_mode="const")
    torch.testing.assert_close(images(mixed), images(t_raw))
    own_d = create_teacher("sg2-d-on-g", ckpt=str(tmp_path / "ck"), D=D2, noise_mode="const")
    s = own_d.sample(2, torch.Generator().manual_seed(5))
    torch.testing.assert_close(s.images, images(gen))
    torch.testing.assert_close(torch.cat(s.targets, 1), create_teacher("sg2-discriminator", D=D2).features(s.images))
    assert not torch.allclose(torch.cat(s.targets, 1), create_teacher("sg2-discriminator", D=D).features(s.images))
    assert own_d.describe()["ckpt"].endswith("ck")
    on_meta = create_teacher("sg2-d-on-g", G=tiny_G(), D=tiny_D(), device="meta")     # both nets follow device
    assert {p.device.type for p in on_meta.parameters()} == {"meta"}
    from gandistill.teachers.d_on_g import DiscriminatorOnSamplesTeacher

    assert {p.device.type for p in DiscriminatorOnSamplesTeacher(G=tiny_G(), D=tiny_D()).parameters()} == {"cpu"}
    given = create_teacher("sg2-d-on-g", G=G_ema, D=D, blocks="b8,b4.fc")
    assert given.describe()["ckpt"] is None and given.target_names == ("b8", "b4.fc")
    assert [x.shape[1] for x in given.sample(2).targets] == list(given.target_dims)
