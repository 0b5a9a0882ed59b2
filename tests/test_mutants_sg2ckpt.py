"""Rules of gandistill's StyleGAN2 checkpoints (``gandistill/teachers/stylegan2/checkpoint.py``), stated
independently of the code (for mutation testing: ``scripts/mutation.sh sg2ckpt``): the folder format
(``gandistill_sg2.json`` + ``<net>.safetensors``) written and read back, every check of the JSON and the
kwargs at the limit and one past it, the lean build's allocation cap, the class and tensor checks, the
conversion of NVlabs records, and the errors with their words. Fast: networks of a few hundred weights
(8 px, 4 channels) in ``tmp_path`` folders, no training and no CLI."""
import json
import math
import mmap
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from gandistill.io.safe_pickle import ForbiddenError, SafeLoadError
from gandistill.teachers.stylegan2 import Discriminator, Generator
from gandistill.teachers.stylegan2 import checkpoint as C
from gandistill.teachers.stylegan2.checkpoint import JSON_NAME, SG2LoadError, UnsafePickleError
from gandistill.teachers.stylegan2.nvlabs_pickle import PersistentRecord

sys.path.insert(0, str(Path(__file__).parent))
import nvlabs_writer as W  # noqa: E402

GK = dict(z_dim=4, w_dim=4, c_dim=0, img_resolution=8, img_channels=1, mapping_kwargs=dict(num_layers=1),
          synthesis_kwargs=dict(channel_base=16, channel_max=4))
DK = dict(c_dim=0, img_resolution=8, img_channels=1, channel_base=16, channel_max=4)
DKW = Discriminator(**DK).init_kwargs  # D records its defaults too (architecture, ...)


def gen(seed=0, **kw):
    torch.manual_seed(seed)
    return Generator(**{**GK, **kw})


def disc(seed=0, **kw):
    torch.manual_seed(seed)
    return Discriminator(**{**DK, **kw})


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype for k in sa)


@pytest.fixture(autouse=True)
def _no_cache():
    C._PARSED.clear()
    yield
    C._PARSED.clear()


def folder(tmp_path, **nets):
    return C.save_sg2(tmp_path / "ck", **nets)


def info_of(out):
    return json.loads((out / JSON_NAME).read_text())


def write_info(out, info):
    (out / JSON_NAME).write_text(json.dumps(info))


# ------------------------------------------------------------------------------------------------ constants


def test_constants():
    assert C.FORMAT_NAME == "gandistill-sg2" and C.FORMAT_VERSION == 1 and C.JSON_NAME == "gandistill_sg2.json"
    assert C.NET_NAMES == ("G_ema", "G", "D")
    assert C.MAX_IMG_RESOLUTION == 16384 and C.MAX_MAPPING_LAYERS == 64 and C.MAX_INT_KWARG == 16777216
    assert C.MAX_LIST_KWARG == 64 and C.BUILD_SLACK == 4194304 and C.MAX_JSON_BYTES == 16777216


# ------------------------------------------------------------------------------------------------ SG2Checkpoint


def test_checkpoint_properties_prefer_g_ema_then_g_then_d():
    ck = C.SG2Checkpoint(kwargs={"D": {"c_dim": 5, "img_resolution": 16, "img_channels": 2},
                                 "G": {"c_dim": 3, "z_dim": 7, "w_dim": 8, "img_resolution": 32, "img_channels": 1},
                                 "G_ema": {"c_dim": 1, "z_dim": 2, "w_dim": 3, "img_resolution": 64,
                                           "img_channels": 4}})
    assert (ck.c_dim, ck.z_dim, ck.w_dim, ck.img_resolution, ck.img_channels) == (1, 2, 3, 64, 4)
    del ck.kwargs["G_ema"]
    assert (ck.c_dim, ck.z_dim, ck.w_dim, ck.img_resolution, ck.img_channels) == (3, 7, 8, 32, 1)
    del ck.kwargs["G"]
    assert (ck.c_dim, ck.z_dim, ck.w_dim, ck.img_resolution, ck.img_channels) == (5, None, None, 16, 2)
    ck.kwargs.clear()
    with pytest.raises(SG2LoadError, match="^checkpoint holds no networks$"):
        ck.c_dim
    assert isinstance(ck.c_dim if False else 0, int)


def test_checkpoint_defaults_and_generator():
    ck = C.SG2Checkpoint()
    assert (ck.G_ema, ck.G, ck.D, ck.kwargs, ck.meta, ck.source) == (None, None, None, {}, {}, "gandistill")
    assert ck.generator is None
    g, e = gen(0), gen(1)
    ck.G = g
    assert ck.generator is g
    ck.G_ema = e
    assert ck.generator is e
    assert C.SG2Checkpoint().kwargs is not C.SG2Checkpoint().kwargs


def test_int_properties_are_ints():
    ck = C.SG2Checkpoint(kwargs={"G": {"c_dim": "3", "img_resolution": "8", "img_channels": "1"}})
    assert (ck.c_dim, ck.img_resolution, ck.img_channels) == (3, 8, 1)


# ------------------------------------------------------------------------------------------------ nets and kwargs


def test_check_nets():
    assert C._check_nets("G") == ("G",)
    assert C._check_nets(["D", "G_ema"]) == ("D", "G_ema")
    for bad in ((), ("G", "X"), "generator"):
        with pytest.raises(ValueError, match=r"^nets must be a non-empty subset of \('G_ema', 'G', 'D'\), got"):
            C._check_nets(bad)


def test_check_kwargs_type():
    with pytest.raises(SG2LoadError, match="^w: the kwargs of G are a list, expected a dict$"):
        C._check_kwargs("G", [1], "w")
    C._check_kwargs("G", {}, "w")


def test_check_kwargs_depth_limit():
    d = {"x": 1}
    for _ in range(4):
        d = {"a": d}
    C._check_kwargs("G", d, "w")  # depth 4 is fine
    with pytest.raises(SG2LoadError, match=r"^w: G kwargs nest too deep at a\.a\.a\.a\.a\.$"):
        C._check_kwargs("G", {"a": d}, "w")


def test_check_kwargs_keys():
    with pytest.raises(SG2LoadError, match="^w: G kwargs have a non-string key 3$"):
        C._check_kwargs("G", {"m": {3: 1}}, "w")


@pytest.mark.parametrize("kind", [list, tuple])
def test_check_kwargs_list_length(kind):
    C._check_kwargs("G", {"a": {"f": kind(range(64))}}, "w")
    with pytest.raises(SG2LoadError, match=r"^w: cannot build G: a\.f is a list of 65 values \(at most 64\)$"):
        C._check_kwargs("G", {"a": {"f": kind(range(65))}}, "w")


@pytest.mark.parametrize("key,limit", [("img_resolution", 2 ** 14), ("num_layers", 64), ("z_dim", 2 ** 24)])
@pytest.mark.parametrize("sign", [1, -1])
def test_check_kwargs_int_limits(key, limit, sign):
    C._check_kwargs("G", {"m": {key: sign * limit}}, "w")
    with pytest.raises(SG2LoadError, match=rf"^w: cannot build G: m\.{key}={sign * (limit + 1)} is out of range "
                                           rf"\(\|value\| <= {limit}\)$"):
        C._check_kwargs("G", {"m": {key: sign * (limit + 1)}}, "w")


def test_check_kwargs_ignores_bools_floats_strings():
    C._check_kwargs("G", {"a": True, "b": 1e30, "c": "x" * 1000, "d": None}, "w")


# ------------------------------------------------------------------------------------------------ lean build


@pytest.mark.parametrize("args,kwargs,n", [
    (([3, 4],), {}, 12), (((3, 4),), {}, 12), ((torch.Size([2, 5]),), {}, 10), ((3, 4), {}, 12),
    ((), {"size": (2, 3)}, 6), (((2, 2),), {"size": [5]}, 5), ((), {}, 1), ((7,), {}, 7),
    (([3, -1],), {}, 0), (([3, 2.0],), {}, 0), (([True, 3],), {}, 0), ((2, 3.5), {}, 2), (([0, 9],), {}, 0),
])
def test_numel_of(args, kwargs, n):
    assert C._numel_of(args, kwargs) == n


def test_lean_init_cap_boundary():
    with C._LeanInit(12) as m:
        torch.zeros(3, 4)
        assert m.left == 0
    with pytest.raises(MemoryError, match="far larger than the stored weights"):
        with C._LeanInit(11):
            torch.zeros(3, 4)
    with C._LeanInit(10) as m:
        torch.ones(2)
        torch.full((2, 2), 3.0)
        torch.empty(3)
        torch.rand(1)
        assert m.left == 0
        torch.arange(100)  # not a sized factory: not counted
        assert m.left == 0
    with pytest.raises(MemoryError):
        with C._LeanInit(1):
            torch.randn([2])


def test_lean_init_random_factories_draw_nothing():
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(5)
    with C._LeanInit(100):
        a = torch.randn([2, 3], generator=g)
        b = torch.rand(4, dtype=torch.float64)
        z = torch.zeros(2)
    assert a.shape == (2, 3) and b.shape == (4,) and b.dtype == torch.float64
    assert torch.equal(z, torch.zeros(2))
    assert torch.equal(torch.randn(3, generator=g), torch.randn(3, generator=torch.Generator().manual_seed(3)))
    x = torch.randn(2)
    torch.manual_seed(5)
    assert torch.equal(x, torch.randn(2))


def test_construct():
    net = C._construct("G", GK, "w")
    assert isinstance(net, Generator) and net.training
    net = C._construct("D", DK, "w", cap=10 ** 6)
    assert isinstance(net, Discriminator)
    with pytest.raises(SG2LoadError, match=r"^w: cannot build G \(Generator\) from its kwargs .*bogus"):
        C._construct("G", {**GK, "bogus": 1}, "w")
    with pytest.raises(SG2LoadError, match=r"^w: cannot build D \(Discriminator\) from its kwargs .*far larger"):
        C._construct("D", DK, "w", cap=10)
    with pytest.raises(SG2LoadError, match=r"^w: cannot build G_ema \(Discriminator\)"):
        C._construct("G_ema", {"bogus": 1}, "w", cls=Discriminator)


def test_construct_without_cap_initialises_randomly():
    torch.manual_seed(0)
    a = C._construct("G", GK, "w")
    torch.manual_seed(0)
    b = Generator(**GK)
    assert same_weights(a, b)
    assert a.mapping.fc0.weight.abs().sum() > 0


@pytest.mark.parametrize("err", [TypeError, ValueError, KeyError, AttributeError, RuntimeError, MemoryError,
                                 ZeroDivisionError, RecursionError, IndexError])
def test_construct_turns_build_errors(err):
    class Bad(nn.Module):
        def __init__(self):
            raise err("boom")
    with pytest.raises(SG2LoadError, match=r"^w: cannot build G \(Bad\) from its kwargs \{\}: .*boom"):
        C._construct("G", {}, "w", cls=Bad)


def test_construct_lets_other_errors_through():
    class Bad(nn.Module):
        def __init__(self):
            raise OSError("disk")
    with pytest.raises(OSError):
        C._construct("G", {}, "w", cls=Bad)


def test_check_classes():
    net = gen()
    classes = {p: type(m).__name__ for p, m in net.named_modules()}
    C._check_classes("G", net, dict(classes), "w")
    with pytest.raises(SG2LoadError, match=r"^w: G has a submodule x\.y \('Foo'\) that a StyleGAN2-ADA Generator "
                                           r"built from its kwargs does not have$"):
        C._check_classes("G", net, {**classes, "x.y": "Foo"}, "w")
    with pytest.raises(SG2LoadError, match=r"^w: G\.synthesis is a 'Foo', expected a SynthesisNetwork$"):
        C._check_classes("G", net, {**classes, "synthesis": "Foo"}, "w")
    with pytest.raises(SG2LoadError, match=r"^w: G is a 'Foo', expected a Generator$"):
        C._check_classes("G", net, {**classes, "": "Foo"}, "w")
    del classes["mapping.fc0"]
    with pytest.raises(SG2LoadError, match=r"^w: G lacks the submodule mapping\.fc0 \(FullyConnectedLayer\)$"):
        C._check_classes("G", net, classes, "w")


def test_check_classes_uses_nvlabs_class_name():
    class Mine(nn.Module):
        NVLABS_CLASS = "Theirs"
    net = nn.Module()
    net.sub = Mine()
    C._check_classes("G", net, {"": "Module", "sub": "Theirs"}, "w")
    with pytest.raises(SG2LoadError, match="is a 'Mine', expected a Theirs"):
        C._check_classes("G", net, {"": "Module", "sub": "Mine"}, "w")


def test_checked_tensor():
    f32 = torch.zeros(2)
    t = torch.tensor([1.5, -2.0], dtype=torch.float16)
    out = C._checked_tensor("G", "k", t, f32, "w")
    assert out.dtype == torch.float32 and out.tolist() == [1.5, -2.0]
    same = torch.tensor([1.0, 2.0])
    assert C._checked_tensor("G", "k", same, f32, "w") is same
    i = torch.tensor([1, 2])
    assert C._checked_tensor("G", "k", i, torch.zeros(2, dtype=torch.int64), "w") is i
    with pytest.raises(SG2LoadError, match=r"^w: G k is stored as int64, expected float32; refusing to "
                                           r"reinterpret it$"):
        C._checked_tensor("G", "k", i, f32, "w")
    with pytest.raises(SG2LoadError, match=r"^w: G k is stored as float32, expected uint8"):
        C._checked_tensor("G", "k", same, torch.zeros(2, dtype=torch.uint8), "w")
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(SG2LoadError, match=r"^w: G k holds NaN or infinite values$"):
            C._checked_tensor("G", "k", torch.tensor([0.0, bad]), f32, "w")
        with pytest.raises(SG2LoadError, match="NaN or infinite"):
            C._checked_tensor("G", "k", torch.tensor([bad, 0.0], dtype=torch.float16), f32, "w")
    empty = torch.zeros(0)
    assert C._checked_tensor("G", "k", empty, torch.zeros(0), "w") is empty


def test_build_adopts_the_stored_tensors():
    src = gen(1)
    state = {k: v.clone() for k, v in src.state_dict().items()}
    net = C._build("G", dict(GK), state, "w")
    assert isinstance(net, Generator) and same_weights(net, src)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    own = net.state_dict()
    assert all(own[k].data_ptr() == state[k].data_ptr() for k in state)


def test_build_casts_half_weights():
    src = gen(1)
    state = {k: v.half() if v.is_floating_point() else v for k, v in src.state_dict().items()}
    net = C._build("G", dict(GK), state, "w")
    assert all(v.dtype == torch.float32 for v in net.state_dict().values() if v.is_floating_point())


def test_build_refuses_weights_of_another_shape():
    state = dict(gen().state_dict())
    state["mapping.fc0.weight"] = torch.zeros(3, 3)
    with pytest.raises(SG2LoadError, match=r"^w: G weights do not fit a StyleGAN2-ADA Generator \(not an SG2-ADA "
                                           r"network\?\): .*mapping\.fc0\.weight"):
        C._build("G", dict(GK), state, "w")


def test_build_checks_kwargs_and_classes():
    state = dict(gen().state_dict())
    with pytest.raises(SG2LoadError, match="out of range"):
        C._build("G", {**GK, "img_resolution": 2 ** 15}, state, "w")
    classes = {p: type(m).__name__ for p, m in gen().named_modules()}
    C._build("G", dict(GK), state, "w", classes)
    classes["synthesis"] = "Foo"
    with pytest.raises(SG2LoadError, match="is a 'Foo'"):
        C._build("G", dict(GK), state, "w", classes)
    with pytest.raises(SG2LoadError, match="D weights do not fit a StyleGAN2-ADA Discriminator"):
        C._build("D", dict(DK), state, "w")
    assert isinstance(C._build("D", dict(GK), state, "w", cls=Generator), Generator)


def test_build_cap_is_twice_the_stored_elements_plus_slack(monkeypatch):
    state = dict(gen().state_dict())
    stored = sum(t.numel() for t in state.values())
    seen = []

    class Spy(C._LeanInit):
        def __init__(self, cap):
            seen.append(cap)
            super().__init__(cap)
    monkeypatch.setattr(C, "_LeanInit", Spy)
    C._build("G", dict(GK), state, "w")
    assert seen == [2 * stored + C.BUILD_SLACK]


def test_build_refuses_kwargs_far_larger_than_the_weights(monkeypatch):
    state = dict(gen().state_dict())
    monkeypatch.setattr(C, "BUILD_SLACK", 0)
    C._build("G", dict(GK), state, "w")  # the real network fits in twice its weights
    big = {**GK, "synthesis_kwargs": dict(channel_base=4096, channel_max=256)}
    with pytest.raises(SG2LoadError, match="far larger than the stored weights"):
        C._build("G", big, state, "w")


# ------------------------------------------------------------------------------------------------ errors


def test_as_load_error_branches():
    e = C._as_load_error("/p", UnsafePickleError("bad   thing"))
    assert type(e) is UnsafePickleError and str(e) == "/p: bad thing"
    e = C._as_load_error("/p", ForbiddenError("no"))
    assert type(e) is UnsafePickleError and str(e) == "/p: no"

    class Sub(SG2LoadError):
        pass
    e = C._as_load_error("/p", Sub("/p: x  y"))
    assert type(e) is Sub and str(e) == "/p: x y"
    e = C._as_load_error("/p", SafeLoadError("z"))
    assert type(e) is SG2LoadError and str(e) == "/p: z"
    e = C._as_load_error(Path("/p"), RecursionError("deep"))
    assert type(e) is SG2LoadError and str(e) == "/p: the file nests too deep to read"
    e = C._as_load_error("/p", MemoryError())
    assert type(e) is SG2LoadError and str(e) == "/p: ran out of memory reading the file"
    e = C._as_load_error("/p", OSError("disk   full"))
    assert type(e) is SG2LoadError and str(e) == "/p: cannot read the checkpoint (OSError: disk full)"


def test_guarded():
    assert C._guarded("/p", lambda a, b: a + b, 1, 2) == 3

    def missing():
        raise FileNotFoundError("gone")
    with pytest.raises(FileNotFoundError, match="^gone$"):
        C._guarded("/p", missing)

    def other():
        raise KeyError("k")
    with pytest.raises(SG2LoadError, match=r"^/p: cannot read the checkpoint \(KeyError"):
        C._guarded("/p", other)


# ------------------------------------------------------------------------------------------------ our format


def test_save_writes_the_documented_folder(tmp_path):
    G, D = gen(1), disc(2)
    out = C.save_sg2(tmp_path / "ck", G_ema=G, D=D, meta={"note": "x", "obj": object})
    assert out == tmp_path / "ck"
    assert sorted(p.name for p in out.iterdir()) == ["D.safetensors", "G_ema.safetensors", JSON_NAME]
    info = info_of(out)
    assert info == {"format": "gandistill-sg2", "version": 1, "meta": {"note": "x", "obj": repr(object)},
                    "nets": {"G_ema": {"class": "Generator", "file": "G_ema.safetensors", "kwargs": GK,
                                       "dtype": "float32"},
                             "D": {"class": "Discriminator", "file": "D.safetensors", "kwargs": DKW,
                                   "dtype": "float32"}}}
    assert (out / JSON_NAME).read_text().startswith('{\n "format"')
    for name, net in (("G_ema", G), ("D", D)):
        f = out / f"{name}.safetensors"
        assert stat.S_IMODE(f.stat().st_mode) == 0o644
        st = load_file(str(f))
        ref = net.state_dict()
        assert list(sorted(st)) == sorted(ref) and all(torch.equal(st[k], ref[k]) for k in ref)
        from safetensors import safe_open
        with safe_open(str(f), "pt") as h:
            assert h.metadata() == {"format": "gandistill-sg2", "net": name}


def test_save_half(tmp_path):
    G = gen(1)
    out = C.save_sg2(tmp_path / "ck", G=G, half=True)
    st = load_file(str(out / "G.safetensors"))
    ref = G.state_dict()
    for k, v in ref.items():
        want = v.half() if v.is_floating_point() else v
        assert st[k].dtype == want.dtype and torch.equal(st[k], want)
    assert info_of(out)["nets"]["G"]["dtype"] == "float16"
    assert any(not v.is_floating_point() for v in ref.values()) or True
    back = C.load_sg2(out, nets="G").G
    assert back.mapping.fc0.weight.dtype == torch.float32
    assert torch.equal(back.mapping.fc0.weight, G.mapping.fc0.weight.half().float())


def test_save_meta_default_and_expanduser(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    out = C.save_sg2("~/a/b", G=gen())
    assert out == tmp_path / "a" / "b" and info_of(out)["meta"] == {}


def test_save_refuses(tmp_path):
    with pytest.raises(ValueError, match="^save_sg2 needs at least one of G_ema, G, D$"):
        C.save_sg2(tmp_path / "x")
    with pytest.raises(ValueError, match="^D must be a gandistill Discriminator, got Generator$"):
        C.save_sg2(tmp_path / "x", D=gen())
    with pytest.raises(ValueError, match="^G_ema must be a gandistill Generator or SG3Generator, got Discriminator$"):
        C.save_sg2(tmp_path / "x", G_ema=disc())
    g = gen()
    del g.init_kwargs
    with pytest.raises(ValueError, match="^G must be a gandistill Generator or SG3Generator, got Generator$"):
        C.save_sg2(tmp_path / "x", G=g)
    assert not (tmp_path / "x").exists()


def test_save_replaces_old_checkpoint_and_leaves_nothing(tmp_path):
    out = C.save_sg2(tmp_path / "ck", G_ema=gen(1), G=gen(2), D=disc(3), meta={"v": 1})
    (out / "notes.txt").write_text("mine")
    C.save_sg2(out, G=gen(4), meta={"v": 2})
    assert sorted(p.name for p in out.iterdir()) == ["G.safetensors", JSON_NAME, "notes.txt"]
    ck = C.load_sg2(out, nets="G")
    assert ck.meta["v"] == 2 and same_weights(ck.G, gen(4))
    C.save_sg2(out, G=gen(5))
    assert sorted(p.name for p in out.iterdir()) == ["G.safetensors", JSON_NAME, "notes.txt"]


def test_save_cleans_up_after_a_failure(tmp_path, monkeypatch):
    out = C.save_sg2(tmp_path / "ck", G=gen(1))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*a, **k):
        raise OSError("full")
    monkeypatch.setattr(C, "save_file", boom)
    with pytest.raises(OSError, match="full"):
        C.save_sg2(out, G=gen(2))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_round_trip_all_nets(tmp_path):
    G_ema, G, D = gen(1), gen(2), disc(3)
    out = C.save_sg2(tmp_path / "ck", G_ema=G_ema, G=G, D=D, meta={"k": [1, 2]})
    ck = C.load_sg2(out, nets=("G_ema", "G", "D"))
    assert ck.source == "gandistill"
    assert same_weights(ck.G_ema, G_ema) and same_weights(ck.G, G) and same_weights(ck.D, D)
    assert ck.meta == {"k": [1, 2], "path": str(out)}
    assert ck.kwargs == {"G_ema": GK, "G": GK, "D": DKW}
    ck = C.load_sg2(out)
    assert ck.G is None and ck.D is None and same_weights(ck.G_ema, G_ema)
    assert set(ck.kwargs) == {"G_ema", "G", "D"}
    assert not ck.G_ema.training and not any(p.requires_grad for p in ck.G_ema.parameters())


def test_load_by_json_or_weights_path(tmp_path):
    out = folder(tmp_path, G=gen(1))
    assert same_weights(C.load_sg2(out / JSON_NAME, nets="G").G, gen(1))
    assert same_weights(C.load_sg2(out / "G.safetensors", nets="G").G, gen(1))
    # a safetensors file without the JSON beside it is no checkpoint
    save_file({"a": torch.zeros(1)}, str(tmp_path / "lone.safetensors"))
    with pytest.raises(SG2LoadError, match=r"unrecognised checkpoint \(expected an NVlabs \.pkl snapshot or a "
                                           r"folder with gandistill_sg2\.json\)$"):
        C.load_sg2(tmp_path / "lone.safetensors")


def test_load_moves_to_device(tmp_path, monkeypatch):
    out = folder(tmp_path, G_ema=gen(), D=disc())
    seen = []
    orig = nn.Module.to

    def spy(self, *a, **k):
        seen.append((type(self).__name__, a))
        return orig(self, *a, **k)
    monkeypatch.setattr(nn.Module, "to", spy)
    ck = C.load_sg2(out, nets=("G_ema", "D"), device="cpu")
    assert [s for s in seen if s[0] in ("Generator", "Discriminator")] == [("Generator", ("cpu",)),
                                                                           ("Discriminator", ("cpu",))]
    with pytest.raises(RuntimeError):
        monkeypatch.setattr(nn.Module, "to", orig)
        C.load_sg2(out, device="nonsense-device")
    assert ck.G is None


def test_load_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="^no such StyleGAN2 checkpoint: "):
        C.load_sg2(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=f"^no {JSON_NAME} in .*empty: not a gandistill"):
        C.load_sg2(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        C.available_nets(tmp_path / "none")
    with pytest.raises(FileNotFoundError, match=f"^no {JSON_NAME} in "):
        C.available_nets(tmp_path / "empty")


def test_resolve_ours(tmp_path):
    out = folder(tmp_path, G=gen())
    assert C._resolve_ours(out) == (out / JSON_NAME).resolve()
    (tmp_path / "link.json").symlink_to(out / JSON_NAME)
    assert C._resolve_ours(tmp_path / "link.json") == (out / JSON_NAME).resolve()
    with pytest.raises(FileNotFoundError, match=rf"^no {JSON_NAME} in {tmp_path}: not a gandistill StyleGAN2 "):
        C._resolve_ours(tmp_path / "gone.json")
    # the JSON beside the link is what counts: weights are read next to the real JSON
    assert same_weights(C.load_sg2(tmp_path / "link.json", nets="G").G, gen())


def test_resolve_ours_refuses_a_json_link_out_of_the_folder(tmp_path):
    out = folder(tmp_path, G=gen())
    other = tmp_path / "other"
    other.mkdir()
    os.replace(out / JSON_NAME, other / JSON_NAME)
    (out / JSON_NAME).symlink_to(other / JSON_NAME)
    with pytest.raises(SG2LoadError, match="outside|inside"):
        C.load_sg2(out, nets="G")
    (out / JSON_NAME).unlink()
    (out / JSON_NAME).symlink_to(tmp_path / "dangling.json")
    with pytest.raises((SG2LoadError, FileNotFoundError)):
        C.load_sg2(out, nets="G")


def base_info(**entry):
    e = {"class": "Generator", "kwargs": dict(GK), **entry}
    return {"format": "gandistill-sg2", "version": 1, "nets": {"G": e}}


def test_read_info_accepts_and_defaults(tmp_path):
    j = tmp_path / "i.json"
    j.write_text(json.dumps(base_info()))
    info = C._read_info(j)
    assert info == {"nets": {"G": {"class": "Generator", "kwargs": GK, "file": "G.safetensors"}}, "meta": {},
                    "version": 1}
    j.write_text(json.dumps({**base_info(file="w.bin"), "meta": {}}))
    info = C._read_info(j)
    assert info["nets"]["G"]["file"] == "w.bin" and info["meta"] == {}
    j.write_text(json.dumps({**base_info(), "meta": None}))
    with pytest.raises(SG2LoadError, match="'meta' must be an object"):
        C._read_info(j)
    j.write_text(json.dumps({**base_info(), "meta": {"a": 1}}))
    assert C._read_info(j)["meta"] == {"a": 1}


@pytest.mark.parametrize("doc,msg", [
    ("{not json", r"corrupt JSON \("),
    ("[1]", r"not a gandistill-sg2 checkpoint$"),
    ('{"format": "other"}', r"not a gandistill-sg2 checkpoint \(format field is 'other'\)$"),
    ("{}", r"not a gandistill-sg2 checkpoint \(format field is None\)$"),
    ('{"format": "gandistill-sg2"}', r"format version must be a positive integer, got None$"),
    ('{"format": "gandistill-sg2", "version": 0}', r"format version must be a positive integer, got 0$"),
    ('{"format": "gandistill-sg2", "version": -1}', r"format version must be a positive integer, got -1$"),
    ('{"format": "gandistill-sg2", "version": 1.0}', r"format version must be a positive integer, got 1\.0$"),
    ('{"format": "gandistill-sg2", "version": true}', r"format version must be a positive integer, got True$"),
    ('{"format": "gandistill-sg2", "version": 2}',
     r"format version 2 is newer than this gandistill understands \(1\); upgrade gandistill$"),
    ('{"format": "gandistill-sg2", "version": 1}', r"'nets' must be an object mapping network names to entries$"),
    ('{"format": "gandistill-sg2", "version": 1, "nets": []}', r"'nets' must be an object"),
    ('{"format": "gandistill-sg2", "version": 1, "nets": {}, "meta": []}', r"'meta' must be an object$"),
    ('{"format": "gandistill-sg2", "version": 1, "nets": {"G": 3}}', r"the entry for 'G' must be an object, got int$"),
    ('{"format": "gandistill-sg2", "version": 1, "nets": {"G": {}}}',
     r"the entry for 'G' has no constructor 'kwargs' object$"),
    ('{"format": "gandistill-sg2", "version": 1, "nets": {"G": {"kwargs": []}}}', r"the entry for 'G' has no constructor 'kwargs' object$"),
    ("\xff", r"corrupt JSON"),
    ("[" * 100000 + "]" * 100000, r"corrupt JSON"),
])
def test_read_info_refuses(tmp_path, doc, msg):
    j = tmp_path / "i.json"
    j.write_bytes(doc.encode("latin-1") if doc == "\xff" else doc.encode())
    with pytest.raises(SG2LoadError, match=f"^{j}: {msg}"):
        C._read_info(j)


def test_read_info_empty_nets_and_no_meta(tmp_path):
    j = tmp_path / "i.json"
    j.write_text('{"format": "gandistill-sg2", "version": 1, "nets": {}}')
    assert C._read_info(j) == {"nets": {}, "meta": {}, "version": 1}


@pytest.mark.parametrize("fname", ["", ".", "..", "a/b", "a\\b", "a\0b", "/abs", 3, None, "../x"])
def test_read_info_refuses_weights_names(tmp_path, fname):
    j = tmp_path / "i.json"
    j.write_text(json.dumps(base_info(file=fname)))
    with pytest.raises(SG2LoadError, match=rf"^{j}: the weights file of 'G' must be a bare file name inside the "
                                           r"checkpoint folder, got "):
        C._read_info(j)


def test_read_info_size_cap(tmp_path, monkeypatch):
    j = tmp_path / "i.json"
    text = json.dumps(base_info())
    j.write_text(text)
    monkeypatch.setattr(C, "MAX_JSON_BYTES", len(text))
    C._read_info(j)
    monkeypatch.setattr(C, "MAX_JSON_BYTES", len(text) - 1)
    with pytest.raises(SafeLoadError, match="over the"):
        C._read_info(j)


def test_load_ours_refuses_unknown_nets_and_classes(tmp_path):
    out = folder(tmp_path, G=gen())
    with pytest.raises(SG2LoadError, match=rf"^{out / JSON_NAME}: the checkpoint has no 'D' \(it has G\)$"):
        C.load_sg2(out, nets="D")
    info = info_of(out)
    info["nets"] = {}
    write_info(out, info)
    with pytest.raises(SG2LoadError, match=r"the checkpoint has no 'G' \(it has nothing\)$"):
        C.load_sg2(out, nets="G")
    info["nets"] = {"G": {"class": "Discriminator", "kwargs": DK, "file": "G.safetensors"}}
    write_info(out, info)
    with pytest.raises(SG2LoadError, match=r"^.*: 'G' is a 'Discriminator', expected 'Generator' or "
                                           r"'SG3Generator'$"):
        C.load_sg2(out, nets="G")
    info["nets"] = {"D": {"kwargs": DK, "file": "G.safetensors"}}
    write_info(out, info)
    with pytest.raises(SG2LoadError, match=r"'D' is a None, expected 'Discriminator'$"):
        C.load_sg2(out, nets="D")


def test_load_ours_names_the_weights_file_in_build_errors(tmp_path):
    out = folder(tmp_path, G=gen())
    info = info_of(out)
    info["nets"]["G"]["kwargs"]["img_resolution"] = 16
    write_info(out, info)
    with pytest.raises(SG2LoadError, match=rf"^{out / 'G.safetensors'}: G weights do not fit"):
        C.load_sg2(out, nets="G")


def test_load_ours_kwargs_of_every_entry(tmp_path):
    out = folder(tmp_path, G=gen(), D=disc())
    ck = C.load_sg2(out, nets="D")
    assert ck.kwargs == {"G": GK, "D": DKW} and ck.G is None and isinstance(ck.D, Discriminator)
    assert ck.meta == {"path": str(out)}


def test_read_weights(tmp_path):
    out = folder(tmp_path, G=gen())
    j = out / JSON_NAME
    st = C._read_weights(j, "G.safetensors")
    assert torch.equal(st["mapping.fc0.weight"], gen().mapping.fc0.weight)
    with pytest.raises(SG2LoadError, match=rf"^{j}: weights file D\.safetensors is missing$"):
        C._read_weights(j, "D.safetensors")
    (out / "bad.safetensors").write_bytes(b"\x08" + b"\0" * 7 + b"{}")
    with pytest.raises(SG2LoadError, match=rf"^{out / 'bad.safetensors'}: corrupt or truncated safetensors file \("):
        C._read_weights(j, "bad.safetensors")


def test_read_weights_refuses_links_out_of_the_folder(tmp_path):
    out = folder(tmp_path, G=gen())
    os.replace(out / "G.safetensors", tmp_path / "G.safetensors")
    (out / "G.safetensors").symlink_to(tmp_path / "G.safetensors")
    with pytest.raises(SG2LoadError, match="G.safetensors"):
        C.load_sg2(out, nets="G")
    (out / "G.safetensors").unlink()
    (out / "G.safetensors").symlink_to("missing-target")
    with pytest.raises(SG2LoadError, match=rf"^{out / JSON_NAME}: weights file G\.safetensors is missing$"):
        C.load_sg2(out, nets="G")  # a dangling link is a broken checkpoint, not a missing path


def test_read_weights_size_cap(tmp_path, monkeypatch):
    out = folder(tmp_path, G=gen())
    size = (out / "G.safetensors").stat().st_size
    monkeypatch.setattr(C, "MAX_WEIGHTS_BYTES", size)
    C.load_sg2(out, nets="G")
    monkeypatch.setattr(C, "MAX_WEIGHTS_BYTES", size - 1)
    with pytest.raises(SG2LoadError):
        C.load_sg2(out, nets="G")


def test_load_ours_refuses_nonfinite_and_int_weights(tmp_path):
    out = folder(tmp_path, G=gen())
    st = load_file(str(out / "G.safetensors"))
    st["mapping.fc0.bias"] = st["mapping.fc0.bias"].clone()
    st["mapping.fc0.bias"][0] = math.nan
    save_file(st, str(out / "G.safetensors"))
    with pytest.raises(SG2LoadError, match=r"G mapping\.fc0\.bias holds NaN or infinite values$"):
        C.load_sg2(out, nets="G")
    st["mapping.fc0.bias"] = torch.zeros_like(st["mapping.fc0.bias"], dtype=torch.int32)
    save_file(st, str(out / "G.safetensors"))
    with pytest.raises(SG2LoadError, match=r"stored as int32, expected float32"):
        C.load_sg2(out, nets="G")


def test_available_nets_of_our_folders(tmp_path):
    out = folder(tmp_path, D=disc(), G_ema=gen())
    assert C.available_nets(out) == ("G_ema", "D")
    assert C.available_nets(out / JSON_NAME) == ("G_ema", "D")
    info = info_of(out)
    info["nets"]["X"] = {"kwargs": {}}
    write_info(out, info)
    assert C.available_nets(out) == ("G_ema", "D")
    (out / JSON_NAME).write_text("[")
    with pytest.raises(SG2LoadError, match=rf"^{out / JSON_NAME}: corrupt JSON"):
        C.available_nets(out)


# ------------------------------------------------------------------------------------------------ NVlabs snapshots


def snap_file(tmp_path, name="s.pkl", protocol=4, **kw):
    nets = kw.pop("nets", None) or dict(G=gen(2), D=disc(3), G_ema=gen(1))
    return W.write_snapshot(tmp_path / name, W.snapshot(**nets, **kw), protocol)


def test_nvlabs_snapshot_loads(tmp_path):
    p = snap_file(tmp_path)
    ck = C.load_sg2(p, nets=("G_ema", "G", "D"))
    assert ck.source == "nvlabs-pkl"
    assert same_weights(ck.G_ema, gen(1)) and same_weights(ck.G, gen(2)) and same_weights(ck.D, disc(3))
    assert ck.kwargs == {"G_ema": GK, "G": GK, "D": DKW}
    assert ck.meta == {"path": str(p), "training_set_kwargs": {
        "class_name": "training.dataset.ImageFolderDataset", "path": "data.zip", "use_labels": False,
        "max_size": 50000, "xflip": False, "resolution": 32}, "variant": "stylegan2-ada",
        "networks": ["G_ema", "G", "D"], "has_augment_pipe": True, "extra_keys": []}
    assert type(ck.meta["training_set_kwargs"]) is dict
    assert not ck.G.training and not any(p.requires_grad for p in ck.D.parameters())


def test_nvlabs_kwargs_of_unbuilt_nets_and_meta(tmp_path):
    snap = W.snapshot(G_ema=gen(1), D=disc(), augment_p=None, training_set_kwargs=[1])
    snap["extra"] = 1
    snap["x" * 100] = 3
    snap["G"] = W.Record("Discriminator", {})
    p = W.write_snapshot(tmp_path / "s.pkl", snap)
    ck = C.load_sg2(p)
    assert ck.G is None and ck.D is None
    assert ck.kwargs == {"G_ema": GK, "D": DKW}
    assert ck.meta["training_set_kwargs"] is None and ck.meta["has_augment_pipe"] is False
    assert ck.meta["networks"] == ["G_ema", "G", "D"]
    assert ck.meta["extra_keys"] == ["extra", "x" * 80]
    assert C.available_nets(p) == ("G_ema", "D")


def test_nvlabs_meta_names_non_string_keys(tmp_path):
    """The reader refuses non-string keys in files; a snapshot dict built otherwise is still summarised."""
    p = W.write_snapshot(tmp_path / "s.pkl", W.snapshot(G_ema=gen(1)))
    snap = C.read_snapshot(p.read_bytes())
    snap[("t", 1)] = 2
    snap[7] = 3
    snap[("y" * 100,)] = 4
    ck = C._load_nvlabs(p, snap, ("G_ema",))
    assert ck.meta["extra_keys"][:2] == ["('t', 1)", "7"]
    assert ck.meta["extra_keys"][2] == C.summary(("y" * 100,), 80).strip("'")
    assert ck.meta["extra_keys"][2].startswith("('yyy") and len(ck.meta["extra_keys"][2]) < 90
    assert snap == {} and same_weights(ck.G_ema, gen(1))


def test_nvlabs_extra_keys_limit(tmp_path):
    snap = {f"k{i}": i for i in range(70)}
    snap["G_ema"] = W.snapshot(G_ema=gen())["G_ema"]
    p = W.write_snapshot(tmp_path / "s.pkl", snap)
    assert C.load_sg2(p).meta["extra_keys"] == [f"k{i}" for i in range(64)]


def test_nvlabs_unbuildable_unbuilt_net_is_skipped(tmp_path):
    snap = W.snapshot(G_ema=gen(1), D=disc())
    snap["D"].state["_init_kwargs"] = W.easy({"img_resolution": 2 ** 30, "c_dim": 0})
    p = W.write_snapshot(tmp_path / "s.pkl", snap)
    ck = C.load_sg2(p)
    assert "G_ema" in ck.kwargs


def test_nvlabs_missing_and_wrong_nets(tmp_path):
    p = W.write_snapshot(tmp_path / "s.pkl", W.snapshot(G_ema=gen(), D=disc()))
    with pytest.raises(SG2LoadError, match=rf"^{p}: the snapshot has no 'G' \(it has G_ema, D\)$"):
        C.load_sg2(p, nets="G")
    snap = W.snapshot(G_ema=gen())
    snap["G"] = W.Record("Discriminator", {})
    snap["D"] = 5
    p = W.write_snapshot(tmp_path / "t.pkl", snap)
    with pytest.raises(SG2LoadError, match=rf"^{p}: 'G' is a 'Discriminator', expected a StyleGAN2-ADA 'Generator'$"):
        C.load_sg2(p, nets="G")
    with pytest.raises(SG2LoadError, match=rf"^{p}: 'D' is int, expected a StyleGAN2-ADA 'Discriminator'$"):
        C.load_sg2(p, nets="D")
    assert same_weights(C.load_sg2(p).G_ema, gen())


def test_nvlabs_stored_attributes_must_match(tmp_path):
    for attr, val in (("num_ws", 99), ("z_dim", 5), ("w_dim", 9), ("c_dim", 2), ("img_resolution", 16)):
        snap = W.snapshot(G_ema=gen())
        snap["G_ema"].state[attr] = val
        p = W.write_snapshot(tmp_path / f"{attr}.pkl", snap)
        with pytest.raises(SG2LoadError, match=rf"^{p}: G_ema\.{attr} is {val} in the file but the rebuilt network "
                                               rf"has \d+$|{attr}"):
            C.load_sg2(p)
    snap = W.snapshot(G_ema=gen())
    snap["G_ema"].state["num_ws"] = float(gen().num_ws)  # not an int: not compared
    C.load_sg2(W.write_snapshot(tmp_path / "f.pkl", snap))


def test_nvlabs_stored_num_ws_alone(tmp_path):
    snap = W.snapshot(G_ema=gen())
    snap["G_ema"].state["num_ws"] = gen().num_ws + 1
    p = W.write_snapshot(tmp_path / "n.pkl", snap)
    with pytest.raises(SG2LoadError, match=rf"^{p}: G_ema\.num_ws is {gen().num_ws + 1} in the file but the rebuilt "
                                           rf"network has {gen().num_ws}$"):
        C.load_sg2(p)


def test_nvlabs_checks_submodule_classes(tmp_path):
    snap = W.snapshot(G_ema=gen())
    snap["G_ema"].state["_modules"]["mapping"].meta["class_name"] = "Other"
    p = W.write_snapshot(tmp_path / "s.pkl", snap)
    with pytest.raises(SG2LoadError, match=rf"^{p}: G_ema\.mapping is a 'Other', expected a MappingNetwork$"):
        C.load_sg2(p)


@pytest.mark.parametrize("protocol", [0, 2])
def test_nvlabs_low_protocols_and_other_suffix(tmp_path, protocol):
    p = snap_file(tmp_path, name="snap.bin", protocol=protocol)
    assert same_weights(C.load_sg2(p).G_ema, gen(1))


def test_dispatch_by_first_bytes(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"hello")
    with pytest.raises(SG2LoadError, match=rf"^{tmp_path / 'x.bin'}: unrecognised checkpoint"):
        C.load_sg2(tmp_path / "x.bin")
    (tmp_path / "z.bin").write_bytes(b"PK\x03\x04rest")
    with pytest.raises(SG2LoadError, match=r": this is a zip archive \(a torch\.save file\?\), not a StyleGAN2-ADA "
                                           r"snapshot pickle; gandistill never unpickles torch\.save files$"):
        C.load_sg2(tmp_path / "z.bin")
    (tmp_path / "z.pkl").write_bytes(b"PK")
    with pytest.raises(SG2LoadError, match="zip archive"):
        C.load_sg2(tmp_path / "z.pkl")
    for head in (b"}", b"(", b"\x80\x02}"):
        (tmp_path / "e.bin").write_bytes(head)
        with pytest.raises(SG2LoadError) as ei:
            C.load_sg2(tmp_path / "e.bin")
        assert "unrecognised" not in str(ei.value)
    (tmp_path / "e.pkl").write_bytes(b"xyz")
    with pytest.raises(SG2LoadError) as ei:
        C.load_sg2(tmp_path / "e.pkl")
    assert "unrecognised" not in str(ei.value)


def test_snapshot_size_cap(tmp_path, monkeypatch):
    p = snap_file(tmp_path)
    size = p.stat().st_size
    monkeypatch.setattr(C, "MAX_SNAPSHOT_BYTES", size - 1)
    with pytest.raises(SG2LoadError):
        C.load_sg2(p)
    C._PARSED.clear()
    with pytest.raises(SG2LoadError):
        C.available_nets(p)
    monkeypatch.setattr(C, "MAX_SNAPSHOT_BYTES", size)
    C.load_sg2(p)
    C._PARSED.clear()
    assert C.available_nets(p) == ("G_ema", "G", "D")


def test_available_nets_caches_one_parse_for_load(tmp_path, monkeypatch):
    p = snap_file(tmp_path)
    calls = []
    real = C.read_snapshot

    def spy(buf):
        calls.append(1)
        return real(buf)
    monkeypatch.setattr(C, "read_snapshot", spy)
    assert C.available_nets(p) == ("G_ema", "G", "D")
    assert C.available_nets(p) == ("G_ema", "G", "D")
    assert len(calls) == 1 and len(C._PARSED) == 1
    ck = C.load_sg2(p, nets="D")  # handed over: no second parse
    assert len(calls) == 1 and same_weights(ck.D, disc(3))
    assert C.available_nets(p) == ("G_ema", "G", "D") and len(calls) == 1  # the list stays
    ck = C.load_sg2(p)  # the snapshot was handed over once: parsed again
    assert len(calls) == 2 and same_weights(ck.G_ema, gen(1))
    assert C.available_nets(p) == ("G_ema", "G", "D") and len(calls) == 2  # load remembered the list


def test_cache_entry_is_keyed_by_identity(tmp_path, monkeypatch):
    p = snap_file(tmp_path)
    assert C.available_nets(p) == ("G_ema", "G", "D")
    ident = C._identity(p)
    st = os.stat(p)
    assert ident == (os.fspath(p.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    assert list(C._PARSED) == [ident]
    q = W.write_snapshot(tmp_path / "q.pkl", W.snapshot(G_ema=gen(4)))
    assert C.available_nets(q) == ("G_ema",)
    assert list(C._PARSED) == [C._identity(q)]
    # a file rewritten in place (other size/mtime) is parsed afresh
    W.write_snapshot(q, W.snapshot(D=disc(), G=gen()))
    os.utime(q, ns=(1, 1))
    assert C.available_nets(q) == ("G", "D")


def test_remember_and_snapshot_nets():
    rec = PersistentRecord.__new__(PersistentRecord)
    snap = W.snapshot(G_ema=gen())
    C._remember(("a",), None, None)
    assert C._PARSED == {("a",): [None, None, None]}
    C._remember(("b",), {"G": 1}, "buf")
    assert C._PARSED == {("b",): [(), {"G": 1}, "buf"]}
    del rec, snap


def test_snapshot_nets_needs_records_of_the_right_class(tmp_path):
    snap = W.snapshot(G_ema=gen(), D=disc())
    snap["G"] = W.Record("Generator", {})
    snap["D"].meta["class_name"] = "Generator"
    p = W.write_snapshot(tmp_path / "s.pkl", snap)
    assert C.available_nets(p) == ("G_ema", "G")


def test_available_nets_for_a_corrupt_snapshot(tmp_path):
    (tmp_path / "c.pkl").write_bytes(b"\x80\x04garbage")
    with pytest.raises(SG2LoadError, match=rf"^{tmp_path / 'c.pkl'}: "):
        C.available_nets(tmp_path / "c.pkl")


def test_load_after_available_nets_of_a_file_without_the_net(tmp_path):
    p = W.write_snapshot(tmp_path / "s.pkl", W.snapshot(D=disc()))
    assert C.available_nets(p) == ("D",)
    with pytest.raises(SG2LoadError, match="the snapshot has no 'G_ema'"):
        C.load_sg2(p)


def test_convert_nvlabs(tmp_path):
    p = snap_file(tmp_path)
    out = C.convert(p, tmp_path / "out")
    assert C.available_nets(out) == ("G_ema", "G", "D")
    ck = C.load_sg2(out, nets=("G_ema", "G", "D"))
    assert same_weights(ck.G_ema, gen(1)) and same_weights(ck.G, gen(2)) and same_weights(ck.D, disc(3))
    meta = info_of(out)["meta"]
    assert meta["converted_from"] == str(p) and meta["source"] == "nvlabs-pkl" and "path" not in meta
    assert meta["variant"] == "stylegan2-ada"
    out2 = C.convert(p, tmp_path / "half", nets="G_ema", half=True)
    assert info_of(out2)["nets"]["G_ema"]["dtype"] == "float16" and C.available_nets(out2) == ("G_ema",)


def test_convert_ours_and_empty(tmp_path):
    out = folder(tmp_path, G=gen(), D=disc())
    back = C.convert(out, tmp_path / "again", nets=["D"])
    assert C.available_nets(back) == ("D",)
    meta = info_of(back)["meta"]
    assert meta == {"converted_from": str(out), "source": "gandistill"}
    p = W.write_snapshot(tmp_path / "none.pkl", {"G_ema": W.Record("Other", {}), "D": W.Record("Generator", {})})
    with pytest.raises(SG2LoadError, match=rf"^{p}: holds no StyleGAN2-ADA Generator or Discriminator$"):
        C.convert(p, tmp_path / "x")


# ------------------------------------------------------------------------------------------------ releasing pages


class FakeMap(mmap.mmap):
    """Anonymous memory that records the ranges given back."""

    def madvise(self, option, start=0, length=None):
        self.advised.append((option, start, length))


def fake_buf(n):
    m = FakeMap(-1, n)
    m.advised = []
    return m


class Holder(nn.Module):
    def __init__(self, *ts, buffers=()):
        super().__init__()
        for i, t in enumerate(ts):
            self.register_parameter(f"p{i}", nn.Parameter(t, requires_grad=False))
        for i, t in enumerate(buffers):
            self.register_buffer(f"b{i}", t)


def test_release_unused_gives_back_whole_pages_between_views():
    page = mmap.PAGESIZE
    buf = fake_buf(10 * page)
    base = torch.frombuffer(buf, dtype=torch.uint8)
    # two views: [page+10, 2*page+10) and [5*page, 6*page) (as separate storages of the buffer)
    v1 = torch.frombuffer(buf, dtype=torch.uint8, offset=page + 10, count=page)
    v2 = torch.frombuffer(buf, dtype=torch.uint8, offset=5 * page, count=page)
    outside = torch.zeros(3)
    ck = C.SG2Checkpoint(G_ema=Holder(v2, outside), D=Holder(buffers=[v1]))
    C._release_unused(ck, buf)
    assert buf.advised == [(mmap.MADV_DONTNEED, 0, page), (mmap.MADV_DONTNEED, 3 * page, 2 * page),
                           (mmap.MADV_DONTNEED, 6 * page, 4 * page)]
    del base


def test_release_unused_keeps_pages_touched_by_a_view_and_G():
    page = mmap.PAGESIZE
    buf = fake_buf(4 * page)
    v = torch.frombuffer(buf, dtype=torch.uint8, offset=0, count=2 * page - 1)
    w = torch.frombuffer(buf, dtype=torch.uint8, offset=3 * page, count=page)
    ck = C.SG2Checkpoint(G=Holder(v, w))
    C._release_unused(ck, buf)
    assert buf.advised == [(mmap.MADV_DONTNEED, 2 * page, page)]
    buf.advised.clear()
    x = torch.frombuffer(buf, dtype=torch.uint8, offset=2 * page, count=1)
    C._release_unused(C.SG2Checkpoint(G=Holder(v, w, x)), buf)
    assert buf.advised == []
    ck = C.SG2Checkpoint(G=Holder(v))
    C._release_unused(ck, buf)
    assert buf.advised == [(mmap.MADV_DONTNEED, 2 * page, 2 * page)]


def test_release_unused_nothing_used_and_overlaps():
    page = mmap.PAGESIZE
    buf = fake_buf(3 * page)
    C._release_unused(C.SG2Checkpoint(), buf)
    assert buf.advised == [(mmap.MADV_DONTNEED, 0, 3 * page)]
    buf = fake_buf(6 * page)
    big = torch.frombuffer(buf, dtype=torch.uint8, offset=page, count=3 * page)
    small = torch.frombuffer(buf, dtype=torch.uint8, offset=2 * page, count=10)
    C._release_unused(C.SG2Checkpoint(D=Holder(small, big)), buf)
    assert buf.advised == [(mmap.MADV_DONTNEED, 0, page), (mmap.MADV_DONTNEED, 4 * page, 2 * page)]


def test_release_unused_ignores_other_buffers():
    C._release_unused(C.SG2Checkpoint(), bytearray(100))
    C._release_unused(C.SG2Checkpoint(), None)
    buf = fake_buf(mmap.PAGESIZE)
    buf.close()

    class Empty(FakeMap):
        def __len__(self):
            return 0
    e = Empty(-1, mmap.PAGESIZE)
    e.advised = []
    C._release_unused(C.SG2Checkpoint(), e)
    assert e.advised == []


def test_release_unused_after_a_real_load(tmp_path, monkeypatch):
    seen = []
    real = C._release_unused

    def spy(ck, buf):
        seen.append(type(buf))
        return real(ck, buf)
    monkeypatch.setattr(C, "_release_unused", spy)
    p = snap_file(tmp_path)
    ck = C.load_sg2(p)
    assert seen == [mmap.mmap] and same_weights(ck.G_ema, gen(1))


def test_save_moves_the_old_json_away_before_the_new_weights(tmp_path, monkeypatch):
    """A crash between moving the weights and the JSON never leaves the old JSON beside new weights."""
    out = C.save_sg2(tmp_path / "ck", G=gen(1))
    moves = []
    real = os.replace

    def spy(a, b):
        moves.append((Path(a).name, Path(b).parent == out))
        if Path(a).name == JSON_NAME and Path(b).parent == out:
            raise OSError("crash")
        return real(a, b)
    monkeypatch.setattr(os, "replace", spy)
    with pytest.raises(OSError, match="crash"):
        C.save_sg2(out, G=gen(2))
    assert moves[0][0] == JSON_NAME and moves[0][1] is False
    assert moves[1:] == [("G.safetensors", True), (JSON_NAME, True)]
    assert sorted(p.name for p in out.iterdir()) == ["G.safetensors"]  # the stage and the old JSON are gone
    monkeypatch.setattr(os, "replace", real)
    C.save_sg2(out, G=gen(3))
    assert same_weights(C.load_sg2(out, nets="G").G, gen(3))


def test_save_names_the_old_json_uniquely(tmp_path, monkeypatch):
    out = C.save_sg2(tmp_path / "ck", G=gen(1))
    seen = []
    real = os.replace

    def spy(a, b):
        seen.append(Path(b).name)
        return real(a, b)
    monkeypatch.setattr(os, "replace", spy)
    C.save_sg2(out, G=gen(2))
    import re
    assert re.fullmatch(r"old-[0-9a-f]{32}\.json", seen[0])
    seen.clear()
    C.save_sg2(tmp_path / "fresh", G=gen(2))
    assert seen == ["G.safetensors", JSON_NAME]


def test_save_stage_is_a_hidden_folder_inside_out(tmp_path, monkeypatch):
    made = []
    real = C.tempfile.mkdtemp

    def spy(**kw):
        made.append(kw)
        return real(**kw)
    monkeypatch.setattr(C.tempfile, "mkdtemp", spy)
    out = C.save_sg2(tmp_path / "ck", G=gen(1))
    assert made == [{"prefix": ".sg2-tmp-", "dir": out}]
    assert sorted(p.name for p in out.iterdir()) == ["G.safetensors", JSON_NAME]


# ------------------------------------------------------------------------------------------------ second round


SG3 = Path(__file__).parent / "fixtures" / "sg3" / "sg3r-tiny-uncond.pkl"


def test_lean_init_passes_keyword_arguments_through():
    with C._LeanInit(100):
        a = torch.arange(3, dtype=torch.float64)
        z = torch.zeros(2, dtype=torch.float64)
        r = torch.randn(2, dtype=torch.float64)
    assert a.dtype == z.dtype == r.dtype == torch.float64 and a.tolist() == [0.0, 1.0, 2.0]


def test_build_messages_name_the_network_and_the_file():
    state = dict(gen().state_dict())
    with pytest.raises(SG2LoadError, match=r"^w: cannot build G: img_resolution=32768 is out of range"):
        C._build("G", {**GK, "img_resolution": 2 ** 15}, state, "w")
    with pytest.raises(SG2LoadError, match=r"^w: cannot build G \(Generator\) from its kwargs"):
        C._build("G", {**GK, "bogus": 1}, state, "w")
    bad = dict(state)
    bad["mapping.fc0.bias"] = torch.full_like(state["mapping.fc0.bias"], math.inf)
    with pytest.raises(SG2LoadError, match=r"^w: G mapping\.fc0\.bias holds NaN or infinite values$"):
        C._build("G", dict(GK), bad, "w")


def test_release_unused_only_for_mmaps_that_can_advise():
    class NoAdvise(mmap.mmap):
        @property
        def madvise(self):
            raise AttributeError("madvise")
    C._release_unused(C.SG2Checkpoint(), NoAdvise(-1, mmap.PAGESIZE))  # returns before any advice

    class Lookalike:
        def __init__(self):
            self.advised = []

        def madvise(self, *a):
            self.advised.append(a)

        def __len__(self):
            return mmap.PAGESIZE
    look = Lookalike()
    C._release_unused(C.SG2Checkpoint(), look)
    assert look.advised == []


def test_wrong_class_name_is_summarised_to_60(tmp_path):
    name = "Q" * 100
    p = W.write_snapshot(tmp_path / "s.pkl", {"G_ema": W.Record(name, {})})
    with pytest.raises(SG2LoadError) as ei:
        C.load_sg2(p)
    assert str(ei.value) == f"{p}: 'G_ema' is a {C.summary(name, 60)}, expected a StyleGAN2-ADA 'Generator'"


def test_nvlabs_meta_names_bytes_keys(tmp_path):
    p = W.write_snapshot(tmp_path / "s.pkl", W.snapshot(G_ema=gen(1)))
    snap = C.read_snapshot(p.read_bytes())
    snap[b"X"] = 1
    assert C._load_nvlabs(p, snap, ("G_ema",)).meta["extra_keys"] == ["b'X"]


def test_what_each_file_is_called_in_refusals(tmp_path, monkeypatch):
    out = folder(tmp_path, G=gen())
    monkeypatch.setattr(C, "MAX_JSON_BYTES", 10)
    with pytest.raises(SG2LoadError, match=rf"^{out / JSON_NAME}: the checkpoint JSON is .* over the"):
        C.load_sg2(out, nets="G")
    monkeypatch.setattr(C, "MAX_JSON_BYTES", 2 ** 20)
    monkeypatch.setattr(C, "MAX_WEIGHTS_BYTES", 10)
    with pytest.raises(SG2LoadError, match=rf"^{out / 'G.safetensors'}: the weights file is .* over the"):
        C.load_sg2(out, nets="G")
    p = snap_file(tmp_path)
    monkeypatch.setattr(C, "MAX_SNAPSHOT_BYTES", 10)
    with pytest.raises(SG2LoadError, match=rf"^{p}: the checkpoint is .* over the"):
        C.load_sg2(p)
    with pytest.raises(SG2LoadError, match=rf"^{p}: the snapshot is .* over the"):
        C.available_nets(p)


def test_links_out_of_the_folder_are_named(tmp_path):
    out = folder(tmp_path, G=gen())
    os.replace(out / "G.safetensors", tmp_path / "G.safetensors")
    (out / "G.safetensors").symlink_to(tmp_path / "G.safetensors")
    with pytest.raises(SG2LoadError, match=r": the weights file resolves to .*, outside the folder"):
        C.load_sg2(out, nets="G")
    os.replace(out / JSON_NAME, tmp_path / JSON_NAME)
    (out / JSON_NAME).symlink_to(tmp_path / JSON_NAME)
    with pytest.raises(SG2LoadError, match=r": the checkpoint JSON resolves to .*, outside the folder"):
        C.load_sg2(out, nets="G")


def test_weights_are_opened_without_following_links(tmp_path, monkeypatch):
    """Even a link that resolve_inside let through (a race) is not followed when the file is opened."""
    out = folder(tmp_path, G=gen())
    os.replace(out / "G.safetensors", out / "real.safetensors")
    (out / "G.safetensors").symlink_to(out / "real.safetensors")
    assert same_weights(C.load_sg2(out, nets="G").G, gen())  # a link inside the folder is fine
    monkeypatch.setattr(C, "resolve_inside", lambda folder, name, what: Path(folder) / name)
    with pytest.raises(SG2LoadError, match="G.safetensors"):
        C.load_sg2(out, nets="G")


def test_handed_over_snapshot_keeps_its_buffer_and_path(tmp_path, monkeypatch):
    p = snap_file(tmp_path)
    seen = []
    real = C._release_unused

    def spy(ck, buf):
        seen.append(type(buf))
        return real(ck, buf)
    monkeypatch.setattr(C, "_release_unused", spy)
    assert C.available_nets(p) == ("G_ema", "G", "D")
    ck = C.load_sg2(p)
    assert seen == [mmap.mmap] and ck.meta["path"] == str(p) and same_weights(ck.G_ema, gen(1))


def test_stylegan3_snapshot_builds_sg3_generators():
    from gandistill.teachers.stylegan3.networks import SG3Generator
    ck = C.load_sg2(SG3, nets=("G_ema", "G", "D"))
    assert type(ck.G_ema) is SG3Generator and type(ck.G) is SG3Generator and type(ck.D) is Discriminator
    assert ck.meta["variant"] == "stylegan3"
    only_g = C.load_sg2(SG3, nets="G_ema")
    assert only_g.kwargs == ck.kwargs  # the kwargs of networks not built are those a build uses


def test_stylegan3_stored_settings_are_checked(tmp_path):
    from gandistill.teachers.stylegan3.snapshot import SG3LoadError
    snap = C.read_snapshot(SG3.read_bytes())
    syn = snap["G_ema"].state["_modules"]["synthesis"]
    syn.state["num_ws"] = syn.state["num_ws"] + 1
    with pytest.raises(SG3LoadError, match=rf"^{tmp_path / 'x.pkl'}: G_ema\.synthesis"):
        C._load_nvlabs(tmp_path / "x.pkl", snap, ("G_ema",))


def test_stylegan3_generator_round_trips_through_our_format(tmp_path):
    src = C.load_sg2(SG3, nets="G_ema").G_ema
    out = C.save_sg2(tmp_path / "ck", G_ema=src)
    assert info_of(out)["nets"]["G_ema"]["class"] == "SG3Generator"
    back = C.load_sg2(out).G_ema
    assert type(back) is type(src) and same_weights(back, src)


def test_stylegan2_ada_d_kwargs_get_no_stylegan3_defaults(tmp_path):
    """Only D of the StyleGAN3 repository gets that repository's defaults; an SG2-ADA D keeps its kwargs."""
    snap = W.snapshot(G_ema=gen(1), D=disc())
    snap["D"].state["_init_kwargs"] = W.easy(dict(DK))
    p = W.write_snapshot(tmp_path / "s.pkl", snap)
    assert C.load_sg2(p, nets="D").kwargs["D"] == DK
    assert C.load_sg2(p).kwargs["D"] == DK  # not built: the same plan
