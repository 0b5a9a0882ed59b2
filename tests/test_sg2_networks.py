"""StyleGAN2 ops and networks against independent statements of the formulas; architectures; gradients."""
import math

import pytest
import torch
import torch.nn.functional as F

from gandistill.teachers.stylegan2 import SG2_CONFIGS, Discriminator, Generator, list_sg2_configs, sg2_kwargs
from gandistill.teachers.stylegan2.ops import (
    bias_act,
    conv2d_resample,
    downsample2d,
    modulated_conv2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)


gen = torch.Generator().manual_seed(0)


def rnd(*shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


def naive_upfirdn(x, f, up=1, down=1, pad=(0, 0, 0, 0)):
    """Zero-insert, pad, then true convolution ``y[i, j] = sum_ab xp[i + a, j + b] f[kh-1-a, kw-1-b]`` by taps."""
    n, c, h, w = x.shape
    xu = torch.zeros(n, c, h * up, w * up, dtype=x.dtype)
    xu[:, :, ::up, ::up] = x
    x0, x1, y0, y1 = pad
    xp = F.pad(xu, [x0, x1, y0, y1])
    kh, kw = f.shape
    oh, ow = xp.shape[2] - kh + 1, xp.shape[3] - kw + 1
    out = torch.zeros(n, c, oh, ow, dtype=x.dtype)
    for a in range(kh):
        for b in range(kw):
            out += xp[:, :, a: a + oh, b: b + ow] * f[kh - 1 - a, kw - 1 - b]
    return out[:, :, ::down, ::down]


def test_setup_filter_and_bias_act():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and abs(f.sum().item() - 1) < 1e-7 and f[1, 1] == 9 / 64
    x, b = rnd(2, 5, 3, 3), rnd(5)
    y = bias_act(x, b, act="lrelu", clamp=0.5)
    z = x + b[None, :, None, None]
    ref = torch.where(z >= 0, z, 0.2 * z) * math.sqrt(2)
    assert torch.allclose(y, ref.clamp(-0.5, 0.5))
    assert torch.allclose(bias_act(x, None, act="linear", gain=3.0), 3 * x)
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act(x, act="gelu-ish")


def test_upfirdn_matches_naive_taps():
    f = setup_filter([1, 3, 3, 1]).double() * torch.tensor([[1.0, 2, 3, 4]]).double()  # asymmetric: checks flip
    x = rnd(2, 3, 6, 6)
    for up, down, pad in [(1, 1, (2, 1, 2, 1)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)), (2, 2, (1, 2, 0, 3))]:
        assert torch.allclose(upfirdn2d(x, f, up=up, down=down, padding=pad), naive_upfirdn(x, f, up, down, pad))
    fs = setup_filter([1, 3, 3, 1]).double()
    up = upsample2d(x, fs)
    assert up.shape == (2, 3, 12, 12)
    assert torch.allclose(up, naive_upfirdn(x, fs * 4, 2, 1, (2, 1, 2, 1)))
    assert torch.allclose(up.mean(), x.mean(), atol=0.05)  # gain up^2 keeps the DC level (up to borders)
    dn = downsample2d(x, fs)
    assert dn.shape == (2, 3, 3, 3)
    assert torch.allclose(dn, naive_upfirdn(x, fs, 1, 2, (1, 1, 1, 1)))


@pytest.mark.parametrize("up,down,k", [(1, 1, 3), (2, 1, 3), (1, 2, 3), (2, 1, 1), (1, 2, 1)])
def test_conv2d_resample_equals_upsample_conv_downsample(up, down, k):
    """The fast paths equal: FIR-upsample (gain up^2), pad, conv (true convolution for up>1), FIR-downsample."""
    f = setup_filter([1, 3, 3, 1]).double()
    x, w = rnd(2, 4, 8, 8), rnd(5, 4, k, k)
    flip = up == 1  # the networks use correlation except for upsampling layers
    y = conv2d_resample(x, w, f=f, up=up, down=down, padding=k // 2, flip_weight=flip)
    p = k // 2
    if up > 1:
        ref = naive_upfirdn(x, f * up * up, up, 1, (p + 2, p + 1, p + 2, p + 1))
    elif down > 1:
        ref = naive_upfirdn(x, f, 1, 1, (p + 1, p + 1, p + 1, p + 1))
    else:
        ref = F.pad(x, [p] * 4)
    ref = F.conv2d(ref, w if flip else w.flip([2, 3]))
    if down > 1:
        ref = ref[:, :, ::down, ::down]
    assert y.shape == ref.shape == (2, 5, 8 * up // down, 8 * up // down)
    assert torch.allclose(y, ref, atol=1e-10)


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_fused_and_non_fused_equal_per_sample_formula(up, demodulate):
    f = setup_filter([1, 3, 3, 1]).double()
    x, w, s, noise = rnd(3, 4, 5, 5), rnd(6, 4, 3, 3), rnd(3, 4), rnd(3, 1, 5 * up, 5 * up)
    refs = []
    for n in range(3):
        wn = w * s[n][None, :, None, None]
        if demodulate:
            wn = wn / torch.sqrt(wn.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        if up == 1:
            refs.append(F.conv2d(x[n: n + 1], wn, padding=1))
        else:
            xu = naive_upfirdn(x[n: n + 1], f * 4, 2, 1, (3, 2, 3, 2))
            refs.append(F.conv2d(xu, wn.flip([2, 3])))
    ref = torch.cat(refs) + noise
    for fused in (True, False):
        y = modulated_conv2d(x, w, s, noise=noise, up=up, padding=1, resample_filter=f, demodulate=demodulate,
                             flip_weight=(up == 1), fused_modconv=fused)
        assert torch.allclose(y, ref, atol=1e-9), fused


def small_G(arch="skip", c_dim=0, res=16, **kw):
    return Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=res, img_channels=3,
                     mapping_kwargs=dict(num_layers=2),
                     synthesis_kwargs=dict(channel_base=64, channel_max=16, architecture=arch, conv_clamp=256, **kw))


def small_D(arch="resnet", c_dim=0, res=16):
    return Discriminator(c_dim=c_dim, img_resolution=res, img_channels=3, architecture=arch, channel_base=64,
                         channel_max=16, conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=2))


@pytest.mark.parametrize("g_arch,d_arch,c_dim", [("orig", "skip", 0), ("resnet", "resnet", 10), ("skip", "orig", 10)])
def test_architectures_forward_backward_and_r1(g_arch, d_arch, c_dim):
    torch.manual_seed(0)
    G, D = small_G(g_arch, c_dim).train(), small_D(d_arch, c_dim).train()
    z = torch.randn(4, 16)
    c = F.one_hot(torch.arange(4) % 10, 10).float() if c_dim else None
    img, feats = G(z, c, noise_mode="random", return_features=True)
    assert img.shape == (4, 3, 16, 16)
    assert {k: v.shape[1] for k, v in feats.items()} == G.feature_channels() == {"b4": 16, "b8": 8, "b16": 4}
    logits, dfeats = D(img, c, return_features=True)
    assert logits.shape == (4, 1) and dfeats["b4.fc"].shape == (4, 16)
    assert {k: v.shape[1] for k, v in dfeats.items()} == D.feature_channels()
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters())
    # R1: gradient penalty on real images needs the gradient of the gradient through D
    D.zero_grad()
    real = torch.randn(4, 3, 16, 16, requires_grad=True)
    (g,) = torch.autograd.grad(D(real, c).sum(), real, create_graph=True)
    g.square().sum().backward()
    # every weight influences dD/dx (the final bias cannot, so it has no grad)
    grads = {n: p.grad for n, p in D.named_parameters() if n.endswith("weight")}
    assert all(gr is not None and gr.abs().sum() > 0 for gr in grads.values()), \
        [n for n, g in grads.items() if g is None]
    assert D.b4.out.bias.grad is None
    if c_dim:
        assert "mapping.embed.weight" in G.state_dict() and "mapping.embed.weight" in D.state_dict()
        assert G.mapping.fc0.weight.shape[1] == 32  # z and embedded c are concatenated


def test_architecture_specific_state_dict_names():
    assert "synthesis.b8.skip.weight" in small_G("resnet").state_dict()
    orig = small_G("orig").state_dict()
    assert "synthesis.b8.torgb.weight" not in orig and "synthesis.b16.torgb.weight" in orig
    assert "b16.fromrgb.weight" in small_D("orig").state_dict() and "b8.fromrgb.weight" in small_D("skip").state_dict()
    assert "b4.fromrgb.weight" in small_D("skip").state_dict() and "b8.skip.weight" in small_D("resnet").state_dict()
    with pytest.raises(ValueError, match="unknown architecture"):
        small_G("bogus")


def test_mapping_truncation_cutoff_and_w_avg_update():
    G = small_G().eval()
    torch.nn.init.normal_(G.mapping.w_avg)
    z = torch.randn(3, 16)
    ws = G.mapping(z, None)
    assert ws.shape == (3, G.num_ws, 16) and torch.equal(ws[:, 0], ws[:, -1])
    t = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(t[:, :2], G.mapping.w_avg + 0.5 * (ws[:, :2] - G.mapping.w_avg))
    assert torch.equal(t[:, 2:], ws[:, 2:])
    before = G.mapping.w_avg.clone()
    G.mapping(z, None)
    assert torch.equal(G.mapping.w_avg, before)  # only updated on request
    G.mapping(z, None, update_emas=True)
    assert torch.allclose(G.mapping.w_avg, ws[:, 0].mean(0) + 0.995 * (before - ws[:, 0].mean(0)))
    with pytest.raises(ValueError, match="z must be"):
        G.mapping(torch.randn(3, 5), None)
    with pytest.raises(ValueError, match="c must be"):
        small_G(c_dim=10).mapping(z, None)


def test_minibatch_std_formula():
    D = small_D("orig")
    x = torch.randn(4, 16, 4, 4)
    y = D.b4.mbstd(x)
    # groups of 2: sample i is grouped with sample i + 2
    for i in range(2):
        grp = torch.stack([x[i], x[i + 2]])
        sd = grp.std(dim=0, unbiased=False).mean()  # sqrt(var + 1e-8) ~ std for these values
        assert torch.allclose(y[i, -1], sd.expand(4, 4), atol=1e-5) and torch.allclose(y[i + 2, -1], y[i, -1])
    with pytest.raises(ValueError, match="not divisible"):
        D.b4.mbstd(torch.randn(3, 16, 4, 4))


def test_noise_modes_and_fused_default():
    G = small_G().eval()
    ws = G.mapping(torch.randn(2, 16), None)
    for p in G.synthesis.parameters():
        if p.ndim == 0:
            p.data.fill_(0.5)
    a, b = G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const")
    assert torch.equal(a, b)
    assert not torch.allclose(G.synthesis(ws, noise_mode="random"), a)
    assert not torch.allclose(G.synthesis(ws, noise_mode="none"), a)
    assert torch.allclose(G.synthesis(ws, fused_modconv=False), a, atol=1e-5)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="loud")
    with pytest.raises(ValueError, match="ws must be"):
        G.synthesis(ws[:, :2])


def test_configs():
    names = [n for n, _ in list_sg2_configs()]
    assert names == ["tiny", "cifar", "stl", "paper256"] and all(d for _, d in list_sg2_configs())
    gk, dk = sg2_kwargs("cifar")
    assert gk["mapping_kwargs"] == {"num_layers": 2} and dk["architecture"] == "orig"
    assert dk["epilogue_kwargs"]["mbstd_group_size"] == 32 and SG2_CONFIGS["cifar"].channels() == {
        4: 512, 8: 512, 16: 512, 32: 512}
    G, D = Generator(**gk), Discriminator(**dk)  # the paper's cifar networks: NVlabs' parameter counts
    assert sum(p.numel() for p in G.parameters()) == 19_947_539
    assert sum(p.numel() for p in D.parameters()) == 20_720_641
    gk, dk = sg2_kwargs("tiny", c_dim=10, img_resolution=16)
    G, D = Generator(**gk), Discriminator(**dk)
    assert G.c_dim == D.c_dim == 10 and G.img_resolution == 16
    with pytest.raises(KeyError, match="Did you mean: cifar"):
        sg2_kwargs("cifr")
    with pytest.raises(ValueError, match="power of two"):
        sg2_kwargs("tiny", img_resolution=48)


@pytest.mark.parametrize("fused", [True, False])
def test_fp16_modulated_conv_does_not_overflow(fused):
    """fp16 pre-normalises weights and styles (the scale cancels in demodulation) so large styles stay finite."""
    g = torch.Generator().manual_seed(3)
    x, w = torch.randn(2, 8, 6, 6, generator=g), torch.randn(4, 8, 3, 3, generator=g) * 100
    s = torch.randn(2, 8, generator=g) * 1000  # (s w)^2 ~ 1e10 would overflow fp16 (max 65504)
    ref = modulated_conv2d(x, w, s, padding=1, fused_modconv=fused)
    y = modulated_conv2d(x.half(), w.half(), s.half(), padding=1, fused_modconv=fused)
    assert y.dtype == torch.float16 and torch.isfinite(y).all()
    assert (y.float() - ref).abs().max() < 0.02 * ref.abs().max()


def test_conditional_D_logit_is_the_cmap_projection():
    """logit = <out(fc(x)), cmap> / sqrt(cmap_dim) with cmap = mapping(c) (restated from the b4.fc feature)."""
    torch.manual_seed(1)
    D = small_D("resnet", c_dim=10).eval()
    img = torch.randn(4, 3, 16, 16)
    c = F.one_hot(torch.tensor([0, 3, 7, 9]), 10).float()
    logits, feats = D(img, c, return_features=True)
    out = D.b4.out(feats["b4.fc"])
    cmap = D.mapping(None, c)
    assert D.cmap_dim == 16 and out.shape == cmap.shape == (4, 16)
    ref = (out * cmap).sum(1, keepdim=True) / math.sqrt(D.cmap_dim)
    assert torch.allclose(logits, ref, atol=1e-6)
    other = D(img, F.one_hot(torch.tensor([1, 2, 4, 5]), 10).float())
    assert not torch.allclose(other, logits)  # the label matters


def _perturb_(module, seed=0):
    """Non-trivial biases / noise strengths so every sub-layer contributes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias") or name.endswith("noise_strength"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def test_G_resnet_block_is_sqrt_half_times_skip_plus_residual():
    """x_out = sqrt(1/2) * (skip(x) + conv1(conv0(x))), sub-layers evaluated at gain 1."""
    torch.manual_seed(2)
    G = small_G("resnet").eval()
    block = G.synthesis.b8
    _perturb_(block)
    x, ws = torch.randn(3, 16, 4, 4), torch.randn(3, block.num_conv + block.num_torgb, 16)
    assert block.num_torgb == 0  # not the last block: no ToRGB in resnet
    y, img = block(x, None, ws, fused_modconv=True, noise_mode="const")
    h = block.conv0(x, ws[:, 0], noise_mode="const", fused_modconv=True)
    h = block.conv1(h, ws[:, 1], noise_mode="const", fused_modconv=True)
    s = block.skip(x)
    assert torch.allclose(y, math.sqrt(0.5) * (s + h), atol=1e-5)
    assert not torch.allclose(y, s + h, atol=1e-3) and img is None


def test_D_resnet_block_is_sqrt_half_times_skip_plus_residual():
    torch.manual_seed(3)
    D = small_D("resnet").eval()
    block = D.b8
    _perturb_(block)
    x = torch.randn(3, block.in_channels, 8, 8)
    y, img = block(x, None)
    ref = math.sqrt(0.5) * (block.skip(x) + block.conv1(block.conv0(x)))
    assert y.shape == (3, block.out_channels, 4, 4) and img is None
    assert torch.allclose(y, ref, atol=1e-5)
    assert not torch.allclose(y, block.skip(x) + block.conv1(block.conv0(x)), atol=1e-3)


def test_fused_modconv_default_is_fused_in_eval_and_grouped_off_in_training(monkeypatch):
    from gandistill.teachers.stylegan2 import synthesis

    seen = []
    real = synthesis.modulated_conv2d

    def spy(*args, **kwargs):
        seen.append(kwargs["fused_modconv"])
        return real(*args, **kwargs)

    monkeypatch.setattr(synthesis, "modulated_conv2d", spy)
    G = small_G()
    ws = G.mapping(torch.randn(2, 16), None)
    G.eval().synthesis(ws)
    assert seen and all(f is True for f in seen)
    n = len(seen)
    G.train().synthesis(ws)
    assert len(seen) == 2 * n and all(f is False for f in seen[n:])
    seen.clear()
    G.train().synthesis(ws, fused_modconv=True)  # an explicit choice wins
    assert seen and all(f is True for f in seen)
