"""StyleGAN2-ADA objective: logistic losses, lazy R1, style mixing, G EMA (against hand-written formulas)."""
import math

import pytest
import torch
from torch import nn

from gandistill.gan.loss import StyleGAN2Loss, ema_beta, generate, r1_penalty, update_ema


class StubMapping(nn.Module):
    def __init__(self, num_ws=4):
        super().__init__()
        self.num_ws = num_ws
        self.scale = nn.Parameter(torch.tensor(1.5))

    def forward(self, z, c, update_emas=False):
        return (z * self.scale).unsqueeze(1).repeat(1, self.num_ws, 1)


class StubSynthesis(nn.Module):
    def forward(self, ws, noise_mode="random", force_fp32=True, update_emas=False):
        return ws.unsqueeze(1)  # [N,1,num_ws,z] "image"


class StubG(nn.Module):
    def __init__(self):
        super().__init__()
        self.mapping, self.synthesis = StubMapping(), StubSynthesis()


class LinearD(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape, generator=torch.Generator().manual_seed(3)))

    def forward(self, x, c):
        return (x * self.w).flatten(1).sum(1, keepdim=True)


def softplus(t):
    return torch.log1p(torch.exp(t))


def test_g_and_d_losses_are_logistic():
    G, D = StubG(), LinearD((1, 4, 5))
    loss = StyleGAN2Loss(G, D, augment=lambda x: x, r1_gamma=0.0)
    z, z2, c = torch.randn(6, 5), torch.randn(6, 5), torch.zeros(6, 0)
    real = torch.randn(6, 1, 4, 5)
    fake_logits = D(G.synthesis(G.mapping(z, c)), c)
    lg, logs = loss.g_main(z, c)
    assert lg.item() == pytest.approx(softplus(-fake_logits).mean().item(), rel=1e-6)
    ld, logs_d, real_logits = loss.d_main(z2, c, real, c)
    expect = softplus(D(G.synthesis(G.mapping(z2, c)), c)).mean() + softplus(-D(real, c)).mean()
    assert ld.item() == pytest.approx(expect.item(), rel=1e-6)
    assert torch.equal(real_logits, D(real, c).detach())
    # D loss sends no gradient into G (fakes generated under no_grad)
    ld.backward()
    assert G.mapping.scale.grad is None


def test_r1_is_gamma_half_grad_norm_times_interval():
    D = LinearD((1, 3, 4, 4))
    real = torch.randn(5, 3, 4, 4)
    pen, _ = r1_penalty(D, real, torch.zeros(5, 0), augment=lambda x: x)
    # for D(x) = <w, x> the gradient is w for every sample
    assert torch.allclose(pen, D.w.detach().square().sum().expand(5))
    loss = StyleGAN2Loss(StubG(), D, augment=lambda x: 2 * x, r1_gamma=0.4)
    lr1, _ = loss.d_reg(real, torch.zeros(5, 0), gain=16)
    # through augment x -> 2x the gradient doubles: ||2w||^2
    assert lr1.item() == pytest.approx(0.4 / 2 * 4 * D.w.square().sum().item() * 16, rel=1e-5)
    lr1.backward()  # grad of grad reaches D's weights: d/dw (c * ||2w||^2) = c * 8 w
    assert torch.allclose(D.w.grad, 0.2 * 16 * 8 * D.w.detach(), rtol=1e-5)


def test_style_mixing_takes_a_suffix_from_the_second_latent():
    G = StubG()
    z = torch.ones(3, 2)
    torch.manual_seed(0)
    for _ in range(5):
        ws = generate(G, z, torch.zeros(3, 0), style_mixing_prob=1.0)[:, 0, :, 0]  # [N, num_ws]
        same = torch.isclose(ws, torch.full_like(ws, 1.5))
        assert same[:, 0].all() and not same[:, -1].any()          # cut-off in [1, num_ws)
        k = int(same[0].sum())
        assert same[:, :k].all() and not same[:, k:].any()         # one cut-off for the batch
    ws = generate(G, z, torch.zeros(3, 0), style_mixing_prob=0.0)
    assert torch.allclose(ws, torch.full_like(ws, 1.5))


def test_ema_beta_formula():
    # beta = 0.5 ** (batch / ema_nimg), ema_nimg = min(ema_kimg * 1000, cur_nimg * rampup)
    assert ema_beta(32, 0, 10.0, 0.05) == 0.0                       # first step copies G
    assert ema_beta(32, 10_000, 10.0, 0.05) == pytest.approx(0.5 ** (32 / 500))
    assert ema_beta(32, 10_000_000, 10.0, 0.05) == pytest.approx(0.5 ** (32 / 10_000))
    assert ema_beta(64, 5, 500.0, None) == pytest.approx(0.5 ** (64 / 500_000))
    # half-life: after ema_kimg thousand images the old weights have weight 1/2
    assert ema_beta(100, 10 ** 9, 2.0, 0.05) ** (2000 / 100) == pytest.approx(0.5)


def test_update_ema_lerps_parameters_and_copies_buffers():
    a, b = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        a.weight.fill_(1.0)
        b.weight.fill_(3.0)
        b.running_mean.fill_(7.0)
    update_ema(a, b, beta=0.25)
    assert torch.allclose(a.weight, torch.full((3,), 0.25 * 1.0 + 0.75 * 3.0))
    assert torch.equal(a.running_mean, b.running_mean)
    assert not math.isnan(a.weight.sum().item())


def test_tie_grey_makes_a_skip_generator_output_grey():
    from gandistill.gan.loss import tie_grey
    from gandistill.teachers.stylegan2.networks import Generator

    torch.manual_seed(0)
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3,
                  synthesis_kwargs=dict(channel_base=64, channel_max=8), mapping_kwargs=dict(num_layers=1))
    z = torch.randn(3, 8)
    before = G(z, None, noise_mode="const")
    assert not torch.allclose(before[:, 0], before[:, 1])
    assert tie_grey(G) == len(G.synthesis.block_resolutions)  # one toRGB per block (skip architecture)
    after = G(z, None, noise_mode="const")
    assert torch.equal(after[:, 0], after[:, 1]) and torch.equal(after[:, 1], after[:, 2])
    # the tied image is the channel mean of the untied one (toRGB is linear in its weight rows and bias)
    assert torch.allclose(after[:, 0], before.mean(1), atol=1e-5)


def test_clamp_straight_through():
    from gandistill.gan.loss import clamp_straight_through

    x = torch.tensor([-3.0, -0.5, 0.2, 2.0], requires_grad=True)
    y = clamp_straight_through(x)
    assert torch.equal(y.detach(), torch.tensor([-1.0, -0.5, 0.2, 1.0]))
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert torch.equal(x.grad, torch.tensor([1.0, 2.0, 3.0, 4.0]))  # gradient passes even where clamped


def test_clamp_fakes_and_range_penalty_in_g_loss():
    G, D = StubG(), LinearD((1, 4, 5))
    z, c = torch.full((3, 5), 2.0), torch.zeros(3, 0)  # stub images are 1.5 * z = 3.0 everywhere
    plain = StyleGAN2Loss(G, D, augment=lambda x: x)
    clamped = StyleGAN2Loss(G, D, augment=lambda x: x, clamp_fakes=True, range_weight=0.5, range_margin=2.0)
    lg, _ = plain.g_main(z, c)
    lc, logs = clamped.g_main(z, c)
    ones = torch.ones(3, 1, 4, 5)
    assert lg.item() == pytest.approx(softplus(-D(3 * ones, c)).mean().item(), rel=1e-6)
    # D sees the clamped image (all ones); excess = sum relu(3 - 2) over 20 pixels = 20 per sample
    assert logs["range_excess"] == pytest.approx(20.0)
    assert lc.item() == pytest.approx(softplus(-D(ones, c)).mean().item() + 0.5 * 20.0, rel=1e-6)


def test_pack_inputs_stacks_consecutive_images_along_channels():
    from gandistill.gan.loss import pack_inputs

    x, c = torch.randn(6, 3, 4, 4), torch.randn(6, 2)
    px, pc = pack_inputs(x, c, 3)
    # independent statement: pack i is torch.cat of images 3i, 3i+1, 3i+2 along channels (labels alike)
    for i in range(2):
        assert torch.equal(px[i], torch.cat([x[3 * i], x[3 * i + 1], x[3 * i + 2]], dim=0))
        assert torch.equal(pc[i], torch.cat([c[3 * i], c[3 * i + 1], c[3 * i + 2]]))
    assert pack_inputs(x, c, 1)[0] is x
    with pytest.raises(ValueError, match="groups of 4"):
        pack_inputs(x, c, 4)


def test_packed_losses_and_r1_average_over_packs():
    G, D2 = StubG(), LinearD((2, 4, 5))          # pack 2 of [1, 4, 5] "images" -> [2, 4, 5]
    loss = StyleGAN2Loss(G, D2, augment=lambda x: 2 * x, r1_gamma=0.3, pack=2)
    z, c = torch.randn(6, 5), torch.zeros(6, 0)
    real = torch.randn(6, 1, 4, 5)
    fake = G.synthesis(G.mapping(z, c))
    packed = lambda t: torch.stack([torch.cat([t[2 * i], t[2 * i + 1]]) for i in range(3)])  # noqa: E731
    logits = D2(packed(2 * fake), None)
    assert logits.shape == (3, 1)
    lg, _ = loss.g_main(z, c)
    assert lg.item() == pytest.approx(softplus(-logits).mean().item(), rel=1e-6)
    ld, _, real_logits = loss.d_main(z, c, real, c)
    expect = softplus(logits).mean() + softplus(-D2(packed(2 * real), None)).mean()
    assert ld.item() == pytest.approx(expect.item(), rel=1e-6) and real_logits.shape == (3, 1)
    # R1 for D(pack) = <w, pack(2x)>: each image's gradient is 2 * (its half of w); mean over the 6 images
    lr1, logs = loss.d_reg(real, c, gain=4)
    half = D2.w.detach().square().sum(dim=(1, 2))   # ||w_first||^2, ||w_second||^2
    per_image = 4 * half.repeat(3)                  # images alternate first / second slot
    assert logs["r1_penalty"] == pytest.approx(per_image.mean().item(), rel=1e-5)
    assert lr1.item() == pytest.approx(0.3 / 2 * per_image.mean().item() * 4, rel=1e-5)
