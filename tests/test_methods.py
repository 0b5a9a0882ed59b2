"""Method specs, their losses against independently written formulas, and a 2-step run of each method."""
import json

import pytest
import torch

from gandistill.engine import FitConfig, fit
from gandistill.methods import (LossWeights, MethodSpec, get_method, list_methods, method_loss, register_method,
                                simsiam_loss)

from conftest import tiny_D, tiny_G, tiny_teacher_kwargs


def toy_cfg(method, out, **kw):
    base = dict(method=method, student="test_resnet", img_size=16, batch=8, steps=2, dim=64, proj_hidden=32,
                squeeze_hidden=32, out=str(out), eval="none", log_every=1, teacher_kwargs={"G": tiny_G()})
    base.update(kw)
    return FitConfig(**base)


# --- the specs ------------------------------------------------------------------------------------

def test_method_table_matches_the_paper_rows():
    names = set(list_methods())
    assert {"vanilla", "vanilla-noaug", "squeeze", "sns", "squeeze-novarcov", "squeeze-var", "vicreg-real",
            "vicreg-syn", "vicreg-mixed", "simsiam-real", "simsiam-syn", "simsiam-mixed", "encoder",
            "d-direct"} <= names
    sns, sq = get_method("sns"), get_method("squeeze")
    assert (sns.alpha, sns.sim, sns.var, sns.cov, sns.squeeze_depth, sns.proj_layers) == (0.5, 25, 25, 1, 3, 5)
    assert sq.alpha == 1.0 and sq.squeeze_depth == 3
    v, vn = get_method("vanilla"), get_method("vanilla-noaug")
    assert (v.sim, v.var, v.cov, v.squeeze_depth, v.augment) == (1, 0, 0, 0, True)
    assert vn.augment is False and vn.squeeze_depth == 0
    assert (get_method("squeeze-novarcov").var, get_method("squeeze-novarcov").cov) == (0, 0)
    assert (get_method("squeeze-var").sim, get_method("squeeze-var").var, get_method("squeeze-var").cov) == (25, 25, 0)
    assert get_method("vicreg-real").alpha == 0 and get_method("vicreg-real").teacher is None
    assert get_method("vicreg-mixed").alpha == 0.5
    ss = get_method("simsiam-syn")
    assert ss.objective == "simsiam" and ss.proj_layers == 2
    assert get_method("encoder").teacher == "sg2-encoder"
    assert get_method("d-direct").objective == "probe" and get_method("d-direct").teacher == "sg2-discriminator"


def test_overrides_unknown_names_and_validation():
    assert get_method("sns", alpha=0.25, sim=None).alpha == 0.25
    with pytest.raises(KeyError, match="sns"):
        get_method("snss")
    with pytest.raises(ValueError, match="objective"):
        MethodSpec("x", "magic")
    with pytest.raises(ValueError, match="alpha"):
        MethodSpec("x", "distill", alpha=1.5)
    spec = register_method(MethodSpec("test-half", "distill", alpha=0.3), overwrite=True)
    assert get_method("test-half") is spec


# --- losses against the formulas ------------------------------------------------------------------

def _var(z, eps=1e-4):
    return torch.relu(1 - torch.sqrt(z.var(dim=0) + eps)).mean()


def _cov(z):
    n, d = z.shape
    zc = z - z.mean(0)
    c = zc.T @ zc / (n - 1)
    return (c.pow(2).sum() - c.diagonal().pow(2).sum()) / d


def test_distill_loss_is_alpha_squeeze_plus_span():
    torch.manual_seed(0)
    zs, zt, r1, r2 = (torch.randn(6, 5) for _ in range(4))
    w = LossWeights(sim=3.0, var=2.0, cov=0.5, alpha=0.3)
    out = method_loss(get_method("sns"), w, {"z_syn": zs, "z_target": zt, "z_real1": r1, "z_real2": r2})
    squeeze = 3.0 * ((zs - zt) ** 2).mean() + 2.0 * _var(zs) + 0.5 * _cov(zs)       # var/cov on the student only
    span = 3.0 * ((r1 - r2) ** 2).mean() + 2.0 * (_var(r1) + _var(r2)) + 0.5 * (_cov(r1) + _cov(r2))
    torch.testing.assert_close(out["loss"], 0.3 * squeeze + 0.7 * span)
    torch.testing.assert_close(out["squeeze/loss"], squeeze)
    torch.testing.assert_close(out["span/loss"], span)


def test_synthetic_only_distill_has_no_span():
    zs, zt = torch.randn(4, 3), torch.randn(4, 3)
    out = method_loss(get_method("vanilla"), LossWeights(1, 0, 0, 1.0), {"z_syn": zs, "z_target": zt})
    torch.testing.assert_close(out["loss"], ((zs - zt) ** 2).mean())
    assert "span/loss" not in out


def test_simsiam_loss_formula_and_stop_gradient():
    torch.manual_seed(0)
    p1, p2, z1, z2 = (torch.randn(5, 4, requires_grad=True) for _ in range(4))
    out = simsiam_loss(p1, p2, z1, z2)
    cos = torch.nn.functional.cosine_similarity
    want = -0.5 * cos(p1, z2, dim=1).mean() - 0.5 * cos(p2, z1, dim=1).mean()
    torch.testing.assert_close(out["loss"], want)
    out["loss"].backward()
    assert z1.grad is None and z2.grad is None                  # stop-gradient on the targets
    assert p1.grad is not None and p2.grad is not None


# --- every method runs 2 steps on toy sizes ---------------------------------------------------------

@pytest.mark.parametrize("method", list_methods())      # every registered method, new ones included
def test_each_method_runs_two_steps(method, tmp_path):
    spec = get_method(method)
    cfg = toy_cfg(method, tmp_path / method, teacher_kwargs=tiny_teacher_kwargs(spec.teacher))
    if not spec.trains:                   # a probe of the frozen teacher: no steps, one probe epoch
        cfg = toy_cfg(method, tmp_path / method, teacher_kwargs=tiny_teacher_kwargs(spec.teacher), eval="linear",
                      eval_epochs=1, eval_max_train=32, eval_max_test=16)
        res = fit(cfg, log=lambda s: None)
        assert res.steps == 0 and res.checkpoint is None and 0.0 <= res.eval["top1"] <= 100.0
        return
    res = fit(cfg, log=lambda s: None)
    assert res.steps == 2 and res.final_loss is not None and res.final_loss == res.final_loss
    lines = [json.loads(l) for l in (tmp_path / method / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2]
    meta = json.loads((tmp_path / method / "checkpoint.json").read_text())
    assert meta["method"] == method and meta["step"] == 2 and meta["student"] == "test_resnet"
    if spec.objective == "distill":
        assert meta["head"] == "squeeze.safetensors" or spec.squeeze_depth == 0
    if spec.objective == "simsiam":
        assert meta["head"] == "predictor.safetensors"


@pytest.mark.parametrize("method", ["vanilla", "sns"])
def test_latent_teacher_rows(method, tmp_path):
    # Table 1 "latent variable" rows: the same methods with w as the target
    res = fit(toy_cfg(method, tmp_path / method, teacher="sg2-latent"), log=lambda s: None)
    cfg = json.loads((tmp_path / method / "config.json").read_text())
    assert cfg["teacher"]["target_names"] == ["w"] and cfg["teacher"]["target_dims"] == [16]
    meta = json.loads((tmp_path / method / "checkpoint.json").read_text())
    # vanilla on w: the student's projector outputs the 16-d w itself; squeeze maps w to the 64-d embedding
    assert meta["student_kwargs"]["proj_out"] == (16 if method == "vanilla" else 64)
    assert res.final_loss is not None


def test_encoder_method_needs_the_encoder_teacher(tmp_path):
    with pytest.raises(ValueError, match="sg2-encoder"):
        fit(toy_cfg("encoder", tmp_path / "e", teacher="sg2-generator"), log=lambda s: None)


def test_d_direct_probes_discriminator_features(tmp_path):
    cfg = toy_cfg("d-direct", tmp_path / "d", teacher_kwargs={"D": tiny_D(), "mode": "multi"}, eval="linear",
                  eval_epochs=2, eval_max_train=64, eval_max_test=32)
    res = fit(cfg, log=lambda s: None)
    assert res.checkpoint is None and res.steps == 0
    assert 0.0 <= res.eval["top1"] <= 100.0 and res.eval["feature_dim"] == 16 + 16 + 16
    assert (tmp_path / "d" / "summary.json").exists()


# --- SnS fidelity: SimSiam's projector and Table 5 row c ------------------------------------------

def _layout(module):
    out = []
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            out.append(("Linear", m.in_features, m.out_features, m.bias is not None))
        elif isinstance(m, torch.nn.BatchNorm1d):
            out.append(("BN", m.num_features, m.affine))
        elif isinstance(m, torch.nn.ReLU):
            out.append(("ReLU",))
    return out


@pytest.mark.parametrize("layers", [2, 3])
def test_simsiam_projector_is_snss(layers):
    # SimSiam (Chen & He 2021) as SnS builds it: hidden = backbone width, last layer + BN(dim, affine=False)
    from gandistill.students.projector import build_projector

    spec = get_method("simsiam-real")
    assert spec.proj_hidden is None and spec.proj_final_bn and spec.proj_layers == 2 and spec.dim == 2048
    proj = build_projector(512, layers, spec.proj_hidden, spec.dim, final_bn=spec.proj_final_bn)
    hidden = [("Linear", 512, 512, False), ("BN", 512, True), ("ReLU",)] * (layers - 1)
    assert _layout(proj) == hidden + [("Linear", 512, 2048, False), ("BN", 2048, False)]
    proj.train()
    z = proj(torch.randn(16, 512))
    torch.testing.assert_close(z.mean(0), torch.zeros(2048), atol=1e-5, rtol=0)   # BN output, no affine
    assert not any(p.requires_grad for p in proj[-1].parameters())
    for name in ("simsiam-syn", "simsiam-mixed"):
        s = get_method(name)
        assert (s.proj_layers, s.proj_hidden, s.proj_final_bn, s.fixed_head_lr) == (2, None, True, True)


def test_simsiam_predictor_and_stl10_preset():
    from gandistill.compare.presets import get_preset, resolve
    from gandistill.compare.tables import RUNS
    from gandistill.methods import SimSiamPredictor

    assert _layout(SimSiamPredictor(2048)) == [("Linear", 2048, 512, False), ("BN", 512, True), ("ReLU",),
                                               ("Linear", 512, 2048, True)]
    stl = resolve(RUNS["simsiam-real"], get_preset("stl10"), available={"method", "proj_layers", "base_lr", "wd"})
    assert (stl.fit["proj_layers"], stl.fit["base_lr"], stl.fit["wd"]) == (3, 0.05, 1e-4)
    c10 = resolve(RUNS["simsiam-real"], get_preset("cifar10"), available={"method", "proj_layers", "base_lr", "wd"})
    assert (c10.fit["proj_layers"], c10.fit["base_lr"], c10.fit["wd"]) == (2, 0.03, 5e-4)


def test_projector_defaults_unchanged_and_identity():
    from gandistill.students.projector import build_projector

    assert _layout(build_projector(512)) == [("Linear", 512, 512, False), ("BN", 512, True), ("ReLU",)] * 4 + [
        ("Linear", 512, 2048, False)]
    assert isinstance(build_projector(512, 0), torch.nn.Identity)
    with pytest.raises(ValueError, match="final_bn"):
        build_projector(512, 0, final_bn=True)


def test_table5_row_c_is_snss_script():
    # ablation c: T_phi (depth 3) on, augmentation on, sim 1 / var 0 / cov 0, synthetic only
    c = get_method("squeeze-novarcov")
    assert (c.sim, c.var, c.cov, c.squeeze_depth, c.augment, c.alpha) == (1.0, 0.0, 0.0, 3, True, 1.0)
