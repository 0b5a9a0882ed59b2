"""Fast targeted tests for the `objectives` mutation group: gandistill/methods.py and gandistill/objectives/.

Every number below is stated independently: the method table against the paper (Yang et al. 2022, Tables 1,
2, 5; SnS's scripts as summarised in /work/shared/reference.md), the losses against formulas written out
here in float64. Tiny tensors, tiny modules, one forward each: no training, no runs.
"""
import dataclasses
from types import SimpleNamespace

import numpy as np

import pytest
import torch
from torch import nn

import gandistill.objectives.distill as distill_mod
import gandistill.objectives.vicreg as vicreg_mod
from gandistill.compare.tables import RUNS
from gandistill.methods import (METHODS, TWINS, LossWeights, MethodSpec, get_method, list_methods, method_loss,
                                register_method, twin_of)
from gandistill.objectives import (OBJECTIVES, Head, Objective, SimSiamPredictor, get_objective, list_objectives,
                                   negative_cosine, register_objective, simsiam_loss)
from gandistill.objectives.vicreg import two_passes, two_views
from gandistill.squeeze import SqueezeModule

# --- the method table against the paper ------------------------------------------------------------------

# (objective, teacher, alpha, (lambda, mu, nu), squeeze depth, augment, projector layers, base lr, twin)
# Paper §4/§5 and SnS's scripts: SnS weights 25/25/1 (CIFAR-10 defaults); vanilla = plain MSE (1/0/0) on the
# pooled concatenation (depth 0); Table 5 c = T_phi with 1/0/0, d = 25/25/0, e = Squeeze, f = Sq & Sp
# (alpha 0.5 = half of the batch synthetic); the encoder (Eq. 3): lambda 1.0, batch lr 0.01, 2 projection layers,
# no augmentation; SimSiam: lr 0.03, wd 5e-4, 2 projection layers, fixed predictor lr; VICReg: 5 layers, 25/25/1.
PAPER = {
    "sns": ("distill", "sg2-generator", 0.5, (25.0, 25.0, 1.0), 3, True, 5, 0.03, "vicreg-real"),
    "squeeze": ("distill", "sg2-generator", 1.0, (25.0, 25.0, 1.0), 3, True, 5, 0.03, "vicreg-syn"),
    "vanilla": ("distill", "sg2-generator", 1.0, (1.0, 0.0, 0.0), 0, True, 5, 0.03, "vicreg-syn"),
    "vanilla-noaug": ("distill", "sg2-generator", 1.0, (1.0, 0.0, 0.0), 0, False, 5, 0.03, "vicreg-syn"),
    "squeeze-novarcov": ("distill", "sg2-generator", 1.0, (1.0, 0.0, 0.0), 3, True, 5, 0.03, "vicreg-syn"),
    "squeeze-var": ("distill", "sg2-generator", 1.0, (25.0, 25.0, 0.0), 3, True, 5, 0.03, "vicreg-syn"),
    "vicreg-real": ("vicreg", None, 0.0, (25.0, 25.0, 1.0), 3, True, 5, 0.03, None),
    "vicreg-syn": ("vicreg", "sg2-generator", 1.0, (25.0, 25.0, 1.0), 3, True, 5, 0.03, None),
    "vicreg-mixed": ("vicreg", "sg2-generator", 0.5, (25.0, 25.0, 1.0), 3, True, 5, 0.03, None),
    "simsiam-real": ("simsiam", None, 0.0, (1.0, 0.0, 0.0), 3, True, 2, 0.03, None),
    "simsiam-syn": ("simsiam", "sg2-generator", 1.0, (1.0, 0.0, 0.0), 3, True, 2, 0.03, None),
    "simsiam-mixed": ("simsiam", "sg2-generator", 0.5, (1.0, 0.0, 0.0), 3, True, 2, 0.03, None),
    "encoder": ("encoder", "sg2-encoder", 1.0, (1.0, 0.0, 0.0), 3, False, 2, 0.01, "vicreg-syn"),
    "encoder-mixed": ("encoder", "sg2-encoder", 0.5, (1.0, 0.0, 0.0), 3, False, 2, 0.01, "vicreg-mixed"),
    "d-direct": ("probe", "sg2-discriminator", 0.0, (0.0, 0.0, 0.0), 3, False, 0, 0.03, None),
}

# the printed row each spec names (its table and its row label) and the paper's numbers in it
PAPER_ROWS = {
    "sns": ("Table 1 'Squeeze and span'", ("92.54", "67.87")),
    "squeeze": ("Table 1 'Squeeze'", ("87.67", "57.35", "Table 5 e")),
    "vanilla": ("Table 1 'Vanilla (w/ aug)'", ("Table 5 b",)),
    "vanilla-noaug": ("Table 5 a", ("74.20",)),
    "squeeze-novarcov": ("Table 5 c", ("10.00",)),
    "squeeze-var": ("Table 5 d", ("79.10",)),
    "vicreg-real": ("Table 2 VICReg real", ()),
    "vicreg-syn": ("Table 2 VICReg syn", ()),
    "vicreg-mixed": ("Table 2 VICReg real & syn", ()),
    "simsiam-real": ("Table 2 SimSiam real", ()),
    "simsiam-syn": ("Table 2 SimSiam syn", ()),
    "simsiam-mixed": ("Table 2 SimSiam real & syn", ()),
    "encoder": ("Table 1 'Encoding' syn", ("57.15", "32.19")),
    "encoder-mixed": ("Table 1 'Encoding' syn & real", ("50.27", "28.43")),
    "d-direct": ("Table 1 'Direct use'", ("63.81", "77.58")),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_each_method_has_the_papers_settings(name):
    objective, teacher, alpha, weights, depth, augment, proj_layers, base_lr, twin = PAPER[name]
    s = get_method(name)
    assert s.name == name and s.objective == objective and s.teacher == teacher
    assert s.alpha == alpha and (s.sim, s.var, s.cov) == weights
    assert s.squeeze_depth == depth and s.augment is augment and s.proj_layers == proj_layers
    assert s.base_lr == base_lr and s.twin == twin and twin_of(name) == twin
    assert s.var_cov_on == "student"           # SnS: var/cov on the student's branch only
    assert s.dim == 2048 and s.weight_decay == 5e-4
    simsiam = objective == "simsiam"
    # SimSiam's projector: hidden = the backbone's width, final BN(affine=False), predictor at a fixed lr
    assert s.proj_hidden == (None if simsiam else 512)
    assert s.proj_final_bn is simsiam and s.fixed_head_lr is simsiam
    row, numbers = PAPER_ROWS[name]
    assert s.paper.startswith(row) and all(x in s.paper for x in numbers)
    assert s.help and METHODS._help[name] == s.help                 # the one-line help `gandistill methods` lists


def test_methods_match_the_table_runs_they_reproduce():
    """compare/tables.py's runs (the paper's rows) and the method specs agree on every training setting."""
    for run in RUNS.values():
        s = get_method(run.method)
        if run.weights is not None:
            assert (s.sim, s.var, s.cov) == run.weights, run.id
        if run.alpha is not None:
            assert s.alpha == run.alpha, run.id
        if run.squeeze_depth is not None:
            assert s.squeeze_depth == run.squeeze_depth, run.id
        assert s.augment is run.augment, run.id


def test_spec_defaults_are_snss():
    s = MethodSpec("x", "distill")
    assert (s.help, s.teacher, s.alpha, s.sim, s.var, s.cov, s.var_cov_on) == ("", "sg2-generator", 1.0, 25.0, 25.0,
                                                                               1.0, "student")
    assert (s.squeeze_depth, s.augment, s.proj_layers, s.proj_hidden, s.proj_final_bn, s.dim) == (3, True, 5, 512,
                                                                                                  False, 2048)
    assert (s.base_lr, s.weight_decay, s.fixed_head_lr, s.paper, s.twin) == (0.03, 5e-4, False, "", None)
    w = LossWeights(1.0, 2.0, 3.0, 0.5)
    assert (w.var_cov_on, w.gather) == ("student", False)
    with pytest.raises(dataclasses.FrozenInstanceError):      # a registered spec cannot be changed in place
        s.alpha = 0.5


def test_twins_pair_each_teacher_method_with_plain_ssl_on_the_same_images():
    want = {"sns": "vicreg-real", "squeeze": "vicreg-syn", "squeeze-var": "vicreg-syn",
            "squeeze-novarcov": "vicreg-syn", "vanilla": "vicreg-syn", "vanilla-noaug": "vicreg-syn",
            "encoder": "vicreg-syn", "encoder-mixed": "vicreg-mixed"}
    assert TWINS == want
    for name, twin in want.items():
        assert get_method(twin).objective == "vicreg"
        # the twin sees the images its method learns from: real for sns (span), the same synthetic share else
        assert get_method(twin).alpha == (0.0 if name == "sns" else get_method(name).alpha)
    for name in ("vicreg-real", "vicreg-syn", "vicreg-mixed", "simsiam-real", "simsiam-syn", "simsiam-mixed",
                 "d-direct"):
        assert twin_of(name) is None


def test_spec_validation_boundaries():
    for a in (0.0, 1.0, 0.5):
        assert MethodSpec("x", "distill", alpha=a).alpha == a
    for a in (-1e-9, 1.0 + 1e-9, 2.0, -1.0):
        with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\], got"):
            MethodSpec("x", "distill", alpha=a)
    with pytest.raises(ValueError, match="objective must be one of .*distill.*got 'nope'"):
        MethodSpec("x", "nope")
    for name in list_objectives():
        assert MethodSpec("x", name).objective == name


@pytest.mark.parametrize("objective,alpha,trains,syn,real", [
    ("distill", 1.0, True, True, False), ("distill", 0.5, True, True, True), ("vicreg", 0.0, True, False, True),
    ("probe", 0.0, False, False, True), ("probe", 1.0, False, False, True), ("probe", 0.5, False, False, True),
    ("simsiam", 1e-6, True, True, True), ("simsiam", 1 - 1e-6, True, True, True),
])
def test_which_images_a_method_uses(objective, alpha, trains, syn, real):
    s = MethodSpec("x", objective, alpha=alpha)
    assert (s.trains, s.uses_synthetic, s.uses_real) == (trains, syn, real)


def test_builtin_method_flags():
    assert [n for n in sorted(PAPER) if not get_method(n).trains] == ["d-direct"]
    assert get_method("sns").uses_real and get_method("sns").uses_synthetic
    assert not get_method("squeeze").uses_real and not get_method("vicreg-real").uses_synthetic
    assert not get_method("d-direct").uses_synthetic and get_method("d-direct").uses_real


def test_get_method_overrides_and_registry():
    sns = get_method("sns")
    assert get_method("sns") is sns                                  # no overrides: the registered spec
    o = get_method("sns", alpha=0.25, sim=None, var=3.0)               # None means "keep the default"
    assert (o.alpha, o.sim, o.var, o.cov, o.name) == (0.25, 25.0, 3.0, 1.0, "sns") and sns.alpha == 0.5
    with pytest.raises(KeyError, match="unknown method 'snss'"):
        get_method("snss")
    assert set(PAPER) <= set(list_methods()) and list_methods() == METHODS.names()
    d = sns.to_dict()
    assert d["name"] == "sns" and d["alpha"] == 0.5 and d["twin"] == "vicreg-real" and len(d) == 20
    spec = MethodSpec("test-mut-obj", "vicreg", help="a test method", alpha=0.3)
    assert register_method(spec) is spec and get_method("test-mut-obj") is spec
    assert METHODS._help["test-mut-obj"] == "a test method"
    with pytest.raises(KeyError, match="already registered"):
        register_method(spec)
    spec2 = MethodSpec("test-mut-obj", "vicreg", alpha=0.7)
    assert register_method(spec2, overwrite=True) is spec2 and get_method("test-mut-obj").alpha == 0.7
    METHODS.unregister("test-mut-obj")


# --- losses against the formulas -------------------------------------------------------------------------

def _var(z, eps=1e-4):
    z = z.double()
    return torch.relu(1 - torch.sqrt(z.var(dim=0) + eps)).mean()


def _cov(z):
    z = z.double()
    n, d = z.shape
    zc = z - z.mean(0)
    c = zc.T @ zc / (n - 1)
    return (c.pow(2).sum() - c.diagonal().pow(2).sum()) / d


def _mse(a, b):
    return ((a.double() - b.double()) ** 2).mean()


def _close(a, b):
    # numpy, not torch.testing: its first call imports torch.distributed (seconds per mutant)
    a, b = np.asarray(torch.as_tensor(a).detach().double()), np.asarray(torch.as_tensor(b).detach().double())
    assert a.shape == b.shape and np.allclose(a, b, rtol=1e-5, atol=1e-6), (a, b)


def _z(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def test_distill_loss_mixes_squeeze_and_span_with_alpha():
    zs, zt, r1, r2 = (_z(7, 5, seed=i) for i in range(4))
    for var_cov_on in ("student", "both"):
        w = LossWeights(sim=3.0, var=2.0, cov=0.5, alpha=0.3, var_cov_on=var_cov_on)
        out = method_loss(get_method("sns"), w, {"z_syn": zs, "z_target": zt, "z_real1": r1, "z_real2": r2})
        sq = 3.0 * _mse(zs, zt) + 2.0 * _var(zs) + 0.5 * _cov(zs)
        if var_cov_on == "both":                               # Eq. 11 as printed: the target branch too
            sq = sq + 2.0 * _var(zt) + 0.5 * _cov(zt)
        sp = 3.0 * _mse(r1, r2) + 2.0 * (_var(r1) + _var(r2)) + 0.5 * (_cov(r1) + _cov(r2))
        _close(out["loss"], 0.3 * sq + 0.7 * sp)
        _close(out["squeeze/loss"], sq)
        _close(out["span/loss"], sp)
        _close(out["squeeze/sim"], _mse(zs, zt))
        _close(out["span/sim"], _mse(r1, r2))
        _close(out["span/var"], _var(r1) + _var(r2))
        _close(out["span/cov"], _cov(r1) + _cov(r2))
        _close(out["squeeze/var_target"], _var(zt))
        assert set(out) == {"loss", "squeeze/loss", "squeeze/sim", "squeeze/var", "squeeze/cov",
                            "squeeze/var_target", "squeeze/cov_target", "span/loss", "span/sim", "span/var",
                            "span/cov"}


def test_distill_loss_logs_are_detached_and_the_loss_is_not():
    zs, zt, r1, r2 = (_z(6, 4, seed=10 + i).requires_grad_() for i in range(4))
    out = method_loss(get_method("sns"), LossWeights(25.0, 25.0, 1.0, 0.5),
                      {"z_syn": zs, "z_target": zt, "z_real1": r1, "z_real2": r2})
    assert out["loss"].requires_grad
    assert all(not v.requires_grad for k, v in out.items() if k != "loss")


def test_distill_one_branch_only():
    zs, zt, r1, r2 = (_z(6, 4, seed=20 + i) for i in range(4))
    out = method_loss(get_method("squeeze"), LossWeights(25.0, 25.0, 1.0, 1.0), {"z_syn": zs, "z_target": zt})
    _close(out["loss"], 25.0 * _mse(zs, zt) + 25.0 * _var(zs) + 1.0 * _cov(zs))
    assert not any(k.startswith("span/") for k in out)
    out = method_loss(get_method("sns"), LossWeights(25.0, 25.0, 1.0, 0.0), {"z_real1": r1, "z_real2": r2})
    _close(out["loss"], 25.0 * _mse(r1, r2) + 25.0 * (_var(r1) + _var(r2)) + (_cov(r1) + _cov(r2)))
    assert not any(k.startswith("squeeze/") for k in out)
    with pytest.raises(ValueError, match="needs a span loss"):
        method_loss(get_method("sns"), LossWeights(1.0, 1.0, 1.0, 0.5), {"z_syn": zs, "z_target": zt})


def test_vicreg_objective_loss():
    z1, z2 = _z(8, 6, seed=30).requires_grad_(), _z(8, 6, seed=31)
    out = method_loss(get_method("vicreg-real"), LossWeights(sim=2.0, var=3.0, cov=0.25, alpha=0.0),
                      {"z1": z1, "z2": z2})
    sim, var, cov = _mse(z1, z2), _var(z1) + _var(z2), _cov(z1) + _cov(z2)
    _close(out["loss"], 2.0 * sim + 3.0 * var + 0.25 * cov)
    _close(out["sim"], sim)
    _close(out["var"], var)
    _close(out["cov"], cov)
    assert set(out) == {"loss", "sim", "var", "cov"}
    assert out["loss"].requires_grad and not any(out[k].requires_grad for k in ("sim", "var", "cov"))


def test_weights_and_gather_flag_reach_the_losses(monkeypatch):
    """The objectives pass the run's resolved weights and ``gather`` through (recorded, not recomputed)."""
    seen = []

    def rec(name):
        def f(*args, **kw):
            seen.append((name, args[2:], kw))
            return {"loss": torch.tensor(1.0), "sim": torch.tensor(0.0)}
        return f

    monkeypatch.setattr(distill_mod, "squeeze_loss", rec("squeeze"))
    monkeypatch.setattr(distill_mod, "vicreg_loss", rec("span"))
    monkeypatch.setattr(vicreg_mod, "vicreg_loss", rec("vicreg"))
    z = torch.zeros(2, 2)
    for gather in (True, False):
        seen.clear()
        w = LossWeights(sim=2.0, var=3.0, cov=4.0, alpha=0.5, var_cov_on="both", gather=gather)
        get_objective("distill").loss(w, {"z_syn": z, "z_target": z, "z_real1": z, "z_real2": z})
        get_objective("vicreg").loss(w, {"z1": z, "z2": z})
        assert seen == [("squeeze", (2.0, 3.0, 4.0), {"var_cov_on": "both", "gather": gather}),
                        ("span", (2.0, 3.0, 4.0), {"gather": gather}),
                        ("vicreg", (2.0, 3.0, 4.0), {"gather": gather})]


def test_simsiam_loss_and_negative_cosine():
    p1, p2, z1, z2 = (_z(5, 4, seed=40 + i).requires_grad_() for i in range(4))

    def cos(a, b):
        a, b = a.double(), b.double()
        return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).mean()

    _close(negative_cosine(p1, z2), -cos(p1, z2))
    d = simsiam_loss(p1, p2, z1, z2)
    want = -0.5 * cos(p1, z2) - 0.5 * cos(p2, z1)
    _close(d["loss"], want)
    _close(d["sim"], want)
    assert set(d) == {"loss", "sim"} and not d["sim"].requires_grad
    out = method_loss(get_method("simsiam-real"), LossWeights(1.0, 0.0, 0.0, 0.0),
                      {"p1": p1, "p2": p2, "z1": z1, "z2": z2})
    assert set(out) == {"loss"}
    _close(out["loss"], want)
    out["loss"].backward()
    assert z1.grad is None and z2.grad is None and p1.grad is not None and p2.grad is not None
    # fp32 maths for low-precision inputs
    h = negative_cosine(p1.detach().half(), z2.detach().half())
    assert h.dtype == torch.float32


def test_simsiam_predictor_layout():
    p = SimSiamPredictor()
    lin1, bn, relu, lin2 = p.net
    assert (lin1.in_features, lin1.out_features, lin1.bias) == (2048, 512, None)
    assert bn.num_features == 512 and isinstance(relu, nn.ReLU)
    assert (lin2.in_features, lin2.out_features, lin2.bias is not None) == (512, 2048, True)
    assert p.out_dim == 2048
    q = SimSiamPredictor(6, 3)
    assert q.out_dim == 6 and q.net[0].out_features == 3
    q.eval()
    x = _z(4, 6, seed=50)
    _close(q(x), q.net(x))


class _EncTeacher:
    """Records the calls of the sg2-encoder teacher's loss; returns known numbers."""

    target_dims = (12, 3)

    def __init__(self):
        self.calls = []

    def loss(self, e, x, ws=None):
        self.calls.append((e, x, ws))
        v = float(e.sum()) + (0.0 if ws is None else 100.0)
        return {"loss": torch.tensor(v, requires_grad=True), "l1": torch.tensor(v / 2, requires_grad=True)}


def test_encoder_loss_mixes_synthetic_and_real():
    t = _EncTeacher()
    es, er = torch.full((2, 3), 1.0), torch.full((2, 3), 2.0)
    batch = {"x_syn": torch.zeros(2, 3, 4, 4), "ws": torch.ones(2, 5, 3), "x_real": torch.ones(2, 3, 4, 4)}
    out = get_objective("encoder").loss(LossWeights(1.0, 0.0, 0.0, 0.25), {"e_syn": es, "e_real": er}, t, batch)
    assert t.calls[0][0] is es and t.calls[0][1] is batch["x_syn"] and t.calls[0][2] is batch["ws"]
    assert t.calls[1][0] is er and t.calls[1][1] is batch["x_real"] and t.calls[1][2] is None  # no w+ for real
    _close(out["loss"], 0.25 * (6.0 + 100.0) + 0.75 * 12.0)
    _close(out["syn/loss"], 106.0)
    _close(out["real/l1"], 6.0)
    assert set(out) == {"loss", "syn/loss", "syn/l1", "real/loss", "real/l1"}
    assert out["loss"].requires_grad and not out["syn/l1"].requires_grad and not out["real/loss"].requires_grad
    only = get_objective("encoder").loss(LossWeights(1.0, 0.0, 0.0, 1.0), {"e_syn": es}, _EncTeacher(), batch)
    assert set(only) == {"loss", "syn/loss", "syn/l1"}
    _close(only["loss"], 106.0)
    for teacher, b in ((None, batch), (t, None)):
        with pytest.raises(ValueError, match="needs the sg2-encoder teacher and the batch images"):
            get_objective("encoder").loss(LossWeights(1.0, 0.0, 0.0, 1.0), {"e_syn": es}, teacher, b)


def test_encoder_teacher_check_head_and_refusal():
    enc = get_objective("encoder")
    spec = get_method("encoder")
    enc.check_teacher(spec, "sg2-encoder", _EncTeacher())
    for bad in (SimpleNamespace(), SimpleNamespace(loss=3)):
        with pytest.raises(ValueError, match="method 'encoder' needs the sg2-encoder teacher \\(got 'sg2-generator'\\)"):
            enc.check_teacher(spec, "sg2-generator", bad)
    assert enc.build_head(SimpleNamespace(dim=64), _EncTeacher()) == Head(None, None, 12)
    assert enc.bank_refusal.startswith("the encoder method needs the generator itself")
    assert enc.bank_refusal.endswith("drop --bank")
    assert enc.embedding({"e_syn": 1, "e_real": 2}) == 1 and enc.embedding({"e_real": 2}) == 2
    assert not enc.needs_synthetic and enc.trains


# --- inputs and forward -----------------------------------------------------------------------------------

class _Parts:
    """Deterministic stand-ins for the augmentations: each call adds a known, distinct offset."""

    def __init__(self):
        self.k = 0

    def _next(self):
        self.k += 1
        return self.k

    def aug_syn(self, x):
        return x + 100.0 * self._next()

    def aug_real(self, x):
        return x + 1000.0 * self._next()

    def norm_real(self, x):
        return x * 3.0


def _cl(x):
    return x * 10.0


def test_distill_inputs():
    syn = SimpleNamespace(images=torch.zeros(2, 3, 4, 4), targets=[torch.ones(2, 5, dtype=torch.float16)])
    xr = torch.ones(3, 3, 4, 4)
    inp, batch = get_objective("distill").inputs(None, _Parts(), syn, xr, _cl)
    assert batch == {} and set(inp) == {"x_syn", "targets", "v1", "v2"}
    assert torch.equal(inp["x_syn"], torch.full((2, 3, 4, 4), 1000.0))        # cl(aug_syn(images))
    assert inp["targets"][0].dtype == torch.float32 and torch.equal(inp["targets"][0], torch.ones(2, 5))
    assert torch.equal(inp["v1"], torch.full((3, 3, 4, 4), 20010.0))           # two distinct real views
    assert torch.equal(inp["v2"], torch.full((3, 3, 4, 4), 30010.0))
    inp, _ = get_objective("distill").inputs(None, _Parts(), None, xr, _cl)
    assert set(inp) == {"v1", "v2"}
    inp, _ = get_objective("distill").inputs(None, _Parts(), syn, None, _cl)
    assert set(inp) == {"x_syn", "targets"}


def test_two_views_put_synthetic_first():
    syn = SimpleNamespace(images=torch.zeros(2, 1))
    xr = torch.ones(1, 1)
    for name in ("vicreg", "simsiam"):
        inp, batch = get_objective(name).inputs(None, _Parts(), syn, xr, _cl)
        assert batch == {}
        # view 1: aug_syn (call 1), aug_real (call 3); view 2: aug_syn (call 2), aug_real (call 4)
        assert inp["v1"].flatten().tolist() == [1000.0, 1000.0, 30010.0]
        assert inp["v2"].flatten().tolist() == [2000.0, 2000.0, 40010.0]
    v = two_views(_Parts(), None, xr, _cl)
    assert v["v1"].flatten().tolist() == [10010.0] and v["v2"].flatten().tolist() == [20010.0]
    v = two_views(_Parts(), syn, None, _cl)
    assert v["v1"].flatten().tolist() == [1000.0, 1000.0] and v["v2"].flatten().tolist() == [2000.0, 2000.0]


def test_encoder_inputs_normalised_and_raw():
    syn = SimpleNamespace(images=torch.full((2, 3, 8, 8), 0.5), ws=torch.ones(2, 4, 3))
    xr = torch.full((3, 3, 8, 8), 0.25)
    plan = SimpleNamespace(encoder_input="normalised", img_size=4)
    inp, batch = get_objective("encoder").inputs(plan, _Parts(), syn, xr, _cl)
    assert torch.equal(inp["x_syn"], torch.full((2, 3, 8, 8), 1005.0))        # cl(aug_syn(x))
    assert torch.equal(inp["x_real"], torch.full((3, 3, 8, 8), 7.5))          # cl(norm_real(x))
    assert batch["x_syn"] is syn.images and batch["ws"] is syn.ws
    assert torch.equal(batch["x_real"], torch.full((3, 3, 8, 8), -0.5))       # [0, 1] -> [-1, 1]
    plan = SimpleNamespace(encoder_input="raw", img_size=4)
    inp, batch = get_objective("encoder").inputs(plan, _Parts(), syn, xr, _cl)
    assert inp["x_syn"].shape == (2, 3, 4, 4) and torch.allclose(inp["x_syn"], torch.full((2, 3, 4, 4), 5.0))
    assert inp["x_real"].shape == (3, 3, 4, 4) and torch.allclose(inp["x_real"], torch.full((3, 3, 4, 4), -5.0))
    inp, batch = get_objective("encoder").inputs(plan, _Parts(), None, xr, _cl)
    assert set(inp) == {"x_real"} and set(batch) == {"x_real"}
    inp, batch = get_objective("encoder").inputs(plan, _Parts(), syn, None, _cl)
    assert set(inp) == {"x_syn"} and set(batch) == {"x_syn", "ws"}


class _Student(nn.Module):
    def __init__(self, groups=False):
        super().__init__()
        self.calls, self.group_calls = [], []
        if groups:
            self.forward_groups = self._groups

    def forward(self, x):
        self.calls.append(x.shape[0])
        return x.flatten(1)[:, :3] * 2.0

    def _groups(self, xs):
        self.group_calls.append([x.shape[0] for x in xs])
        return [x.flatten(1)[:, :3] * 2.0 for x in xs]


def _head(targets):
    return targets[0] * 5.0


def test_distill_forward_separate_and_grouped_passes():
    xs, v1, v2 = _z(2, 1, 2, 2, seed=60), _z(3, 1, 2, 2, seed=61), _z(3, 1, 2, 2, seed=62)
    tg = [_z(2, 3, seed=63)]
    d = get_objective("distill")
    for groups in (False, True):
        s = _Student(groups)
        out = d.forward(s, _head, x_syn=xs, targets=tg, v1=v1, v2=v2)
        assert set(out) == {"z_syn", "z_target", "z_real1", "z_real2"}
        _close(out["z_syn"], xs.flatten(1)[:, :3] * 2.0)
        _close(out["z_real1"], v1.flatten(1)[:, :3] * 2.0)
        _close(out["z_real2"], v2.flatten(1)[:, :3] * 2.0)
        _close(out["z_target"], tg[0] * 5.0)
        assert (s.calls, s.group_calls) == (([], [[2, 3, 3]]) if groups else ([2, 3, 3], []))
    # other image shapes (e.g. a teacher at another resolution): separate passes even with forward_groups
    s = _Student(True)
    out = d.forward(s, _head, x_syn=_z(2, 1, 4, 4, seed=64), targets=tg, v1=v1, v2=v2)
    assert s.calls == [2, 3, 3] and s.group_calls == [] and set(out) == {"z_syn", "z_target", "z_real1", "z_real2"}
    s = _Student(True)
    assert set(d.forward(s, _head, x_syn=xs, targets=tg)) == {"z_syn", "z_target"} and s.calls == [2]
    s = _Student(True)
    assert set(d.forward(s, None, v1=v1, v2=v2)) == {"z_real1", "z_real2"} and s.calls == [3, 3]


def test_vicreg_and_simsiam_forward():
    v1, v2 = _z(3, 1, 2, 2, seed=70), _z(3, 1, 2, 2, seed=71)
    for groups in (False, True):
        s = _Student(groups)
        out = get_objective("vicreg").forward(s, None, v1=v1, v2=v2)
        assert set(out) == {"z1", "z2"}
        _close(out["z1"], v1.flatten(1)[:, :3] * 2.0)
        _close(out["z2"], v2.flatten(1)[:, :3] * 2.0)
        assert (s.calls, s.group_calls) == (([], [[3, 3]]) if groups else ([3, 3], []))
        assert set(two_passes(_Student(groups), v1, v2)) == {"z1", "z2"}
    out = get_objective("simsiam").forward(_Student(), lambda z: z + 1.0, v1=v1, v2=v2)
    assert set(out) == {"z1", "z2", "p1", "p2"}
    _close(out["p1"], out["z1"] + 1.0)
    _close(out["p2"], out["z2"] + 1.0)


def test_encoder_forward():
    s = _Student()
    xs, xr = _z(2, 1, 2, 2, seed=80), _z(3, 1, 2, 2, seed=81)
    out = get_objective("encoder").forward(s, None, x_syn=xs, x_real=xr)
    _close(out["e_syn"], xs.flatten(1)[:, :3] * 2.0)
    _close(out["e_real"], xr.flatten(1)[:, :3] * 2.0)
    assert set(get_objective("encoder").forward(_Student(), None, x_real=xr)) == {"e_real"}
    assert set(get_objective("encoder").forward(_Student(), None, x_syn=xs)) == {"e_syn"}


# --- heads, the registry, the base class ------------------------------------------------------------------

def test_heads_of_each_objective():
    plan = SimpleNamespace(dim=16, squeeze_hidden=8, depth=2)
    teacher = SimpleNamespace(target_dims=(4, 6))
    h = get_objective("distill").build_head(plan, teacher)
    assert isinstance(h.module, SqueezeModule) and h.kind == "squeeze" and h.proj_out == 16
    assert h.module.in_dims == (4, 6) and h.module.depth == 2 and h.module.laterals[0].out_features == 8
    h0 = get_objective("distill").build_head(SimpleNamespace(dim=16, squeeze_hidden=8, depth=0), teacher)
    assert h0.proj_out == 10                                     # depth 0: the pooled concatenation
    h = get_objective("simsiam").build_head(plan, teacher)
    assert isinstance(h.module, SimSiamPredictor) and h.kind == "predictor" and h.proj_out == 16
    assert h.module.out_dim == 16 and h.module.net[0].out_features == 512
    assert get_objective("vicreg").build_head(plan, teacher) == Head(None, None, 16)
    assert get_objective("probe").build_head(plan, teacher) == Head(None, None, 16)


def test_objective_class_attributes():
    d, v, s, e, p = (get_objective(n) for n in ("distill", "vicreg", "simsiam", "encoder", "probe"))
    assert [o.name for o in (d, v, s, e, p)] == ["distill", "vicreg", "simsiam", "encoder", "probe"]
    assert (d.needs_synthetic, v.needs_synthetic, s.needs_synthetic, e.needs_synthetic, p.needs_synthetic) == (
        True, False, False, False, False)
    assert (d.trains, v.trains, s.trains, e.trains, p.trains) == (True, True, True, True, False)
    assert d.bank_refusal is None and v.bank_refusal is None and s.bank_refusal is None and p.bank_refusal is None
    assert d.embedding_keys == ("z_syn", "z_real1") and v.embedding_keys == ("z1",) and s.embedding_keys == ("z1",)
    assert e.embedding_keys == ("e_syn", "e_real") and p.embedding_keys == ()
    assert d.embedding({"z_real1": 1, "z_syn": 2}) == 2 and d.embedding({"z_real1": 1, "z_real2": 3}) == 1
    assert d.embedding({"z_target": 1}) is None and p.embedding({"z1": 1}) is None
    assert get_objective("distill") is not d                                  # a fresh instance per lookup
    assert set(list_objectives()) >= {"distill", "vicreg", "simsiam", "encoder", "probe"}
    assert list_objectives() == OBJECTIVES.names()
    with pytest.raises(KeyError, match="unknown objective 'distil'"):
        get_objective("distil")
    assert OBJECTIVES._help["probe"] == "no training: a linear probe on the frozen discriminator's features"
    assert OBJECTIVES._help["distill"].startswith("squeeze (Eq. 11)")
    assert p.check_teacher(None, "x", None) is None


def test_the_base_objective_refuses_what_it_cannot_do():
    p = get_objective("probe")
    with pytest.raises(NotImplementedError, match="objective 'probe' has no training loss"):
        p.loss(LossWeights(1.0, 0.0, 0.0, 0.0), {})
    with pytest.raises(NotImplementedError):
        p.inputs(None, None, None, None, None)
    with pytest.raises(NotImplementedError):
        p.forward(None, None)


def test_register_objective():
    try:
        @register_objective("test-mut-a", help="first line")
        class A(Objective):
            """ignored doc"""

        assert A.name == "test-mut-a" and isinstance(get_objective("test-mut-a"), A)
        assert OBJECTIVES._help["test-mut-a"] == "first line"

        @register_objective()
        class B(Objective):
            """the doc's first line
            and more"""

            name = "test-mut-b"

        assert B.name == "test-mut-b" and OBJECTIVES._help["test-mut-b"] == "the doc's first line"
        with pytest.raises(KeyError, match="already registered"):
            register_objective("test-mut-b")(B)

        @register_objective("test-mut-b", overwrite=True)
        class C(Objective):
            pass

        assert isinstance(get_objective("test-mut-b"), C) and OBJECTIVES._help["test-mut-b"] == ""
        with pytest.raises(ValueError, match="objective D needs a name"):
            @register_objective()
            class D(Objective):
                pass
        with pytest.raises(TypeError, match="register_objective takes an Objective subclass"):
            register_objective("test-mut-c")(dict)
        with pytest.raises(TypeError, match="register_objective takes an Objective subclass"):
            register_objective("test-mut-c")(Objective())
        assert "test-mut-c" not in OBJECTIVES.names()
    finally:
        for n in ("test-mut-a", "test-mut-b", "test-mut-c"):
            OBJECTIVES.unregister(n)


def test_method_loss_dispatches_on_the_objective():
    z1, z2 = _z(6, 3, seed=90), _z(6, 3, seed=91)
    spec = MethodSpec("x", "vicreg")
    out = method_loss(spec, LossWeights(1.0, 0.0, 0.0, 0.0), {"z1": z1, "z2": z2})
    _close(out["loss"], _mse(z1, z2))
    with pytest.raises(NotImplementedError, match="objective 'probe'"):
        method_loss(get_method("d-direct"), LossWeights(0.0, 0.0, 0.0, 0.0), {})
    t = _EncTeacher()
    batch = {"x_syn": torch.zeros(1), "ws": torch.zeros(1)}
    out = method_loss(get_method("encoder"), LossWeights(1.0, 0.0, 0.0, 1.0), {"e_syn": torch.ones(2, 2)}, t, batch)
    _close(out["loss"], 104.0)
