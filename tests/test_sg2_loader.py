"""The safe NVlabs snapshot loader and gandistill's own StyleGAN2 format."""
import json
import os
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch

from gandistill.teachers.stylegan2 import Generator, sg2_kwargs
from gandistill.teachers.stylegan2.checkpoint import (
    JSON_NAME,
    SG2LoadError,
    UnsafePickleError,
    available_nets,
    convert,
    load_sg2,
    save_sg2,
)


FIX = Path(__file__).parent / "fixtures"
PKL = FIX / "sg2-tiny-uncond.pkl"


class _Evil:
    """Pickles as ``os.system(cmd)``."""

    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


@pytest.fixture()
def fake_persistence(monkeypatch):
    """Make ``torch_utils.persistence._reconstruct_persistent_obj`` picklable by name (as NVlabs' files name it)."""
    mod = types.ModuleType("torch_utils.persistence")
    pkg = types.ModuleType("torch_utils")

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - never called by the safe loader
        raise AssertionError("the real reconstruct hook must not run")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    pkg.persistence = mod
    monkeypatch.setitem(sys.modules, "torch_utils", pkg)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", mod)

    class Persistent:
        def __init__(self, class_name, state, module_src="<source removed>"):
            self.meta = dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state)

        def __reduce__(self):
            return (mod._reconstruct_persistent_obj, (self.meta,))

    return Persistent


def test_malicious_reduce_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Evil(f"touch {marker}")}))
    with pytest.raises(UnsafePickleError, match=r"wants to import (posix|os|nt)\.system; refusing"):
        load_sg2(path)
    assert not marker.exists()


def test_malicious_storage_blob_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Blob:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (pickle.dumps(_Evil(f"touch {marker}"), protocol=2),))

    path = tmp_path / "evil_blob.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Blob()}))
    with pytest.raises(UnsafePickleError, match="tensor blob .* wants to import"):
        load_sg2(path)
    assert not marker.exists()


def test_module_src_is_never_executed(tmp_path, fake_persistence):
    marker = tmp_path / "pwned"
    src = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\nclass Generator: pass\n"
    obj = fake_persistence("Generator", {"_parameters": {}, "_modules": {}, "_init_kwargs": {"bogus": 1}}, src)
    path = tmp_path / "src.pkl"
    path.write_bytes(pickle.dumps({"G_ema": obj}))
    with pytest.raises(SG2LoadError, match="cannot build G_ema"):
        load_sg2(path)
    assert not marker.exists()


def test_wrong_network_kind(tmp_path, fake_persistence):
    obj = fake_persistence("Discriminator", {"_parameters": {}, "_modules": {}, "_init_kwargs": {}})
    path = tmp_path / "swapped.pkl"
    path.write_bytes(pickle.dumps({"G_ema": obj, "D": obj}))
    with pytest.raises(SG2LoadError, match="'G_ema' is a 'Discriminator', expected a StyleGAN2-ADA 'Generator'"):
        load_sg2(path)
    with pytest.raises(SG2LoadError, match="has no 'G'"):
        load_sg2(path, nets=("G",))


def test_stylegan3_like_weights_give_clear_error(tmp_path, fake_persistence):
    """Right class name, but the weights do not fit (e.g. a StyleGAN3 or hand-edited network)."""
    G_kwargs, _ = sg2_kwargs("tiny")
    obj = fake_persistence("Generator", {"_parameters": {"foo": None}, "_modules": {}, "_init_kwargs": G_kwargs})
    path = tmp_path / "sg3.pkl"
    path.write_bytes(pickle.dumps({"G_ema": obj}))
    with pytest.raises(SG2LoadError, match="weights do not fit .* missing"):
        load_sg2(path)


@pytest.mark.parametrize("frac", [0.0005, 0.1, 0.37, 0.5, 0.83, 0.999])
def test_truncated_file(tmp_path, frac):
    data = PKL.read_bytes()
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises(SG2LoadError, match="truncated or corrupt|corrupt"):
        load_sg2(path)


def test_non_snapshot_and_other_formats(tmp_path):
    p = tmp_path / "list.pkl"
    p.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(SG2LoadError, match="not a StyleGAN2-ADA network snapshot"):
        load_sg2(p)
    p.write_bytes(pickle.dumps({"state_dict": {"a": 1}}))
    with pytest.raises(SG2LoadError, match="not a StyleGAN2-ADA network snapshot"):
        load_sg2(p)
    z = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, z)
    with pytest.raises(SG2LoadError, match="zip archive"):
        load_sg2(z)
    t = tmp_path / "notes.pkl"
    t.write_text("hello")
    with pytest.raises(SG2LoadError, match="not a pickle"):
        load_sg2(t)
    with pytest.raises(FileNotFoundError):
        load_sg2(tmp_path / "missing.pkl")
    with pytest.raises(ValueError, match="nets must be"):
        load_sg2(PKL, nets=("generator",))


def test_round_trip_nvlabs_to_ours_identical_outputs(tmp_path):
    src = load_sg2(PKL, nets=("G_ema", "G", "D"))
    out = convert(PKL, tmp_path / "conv")
    assert available_nets(out) == ("G_ema", "G", "D")
    ours = load_sg2(out, nets=("G_ema", "G", "D"))
    assert ours.source == "gandistill" and ours.kwargs["G_ema"] == src.kwargs["G_ema"]
    assert (ours.c_dim, ours.z_dim, ours.w_dim, ours.img_resolution) == (0, 64, 64, 32)
    z = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for name in ("G_ema", "G"):
            assert torch.equal(getattr(src, name)(z, None), getattr(ours, name)(z, None))
        img = src.G_ema(z, None)
        assert torch.equal(src.D(img, None), ours.D(img, None))
    # loading via the JSON path works too
    assert load_sg2(out / JSON_NAME).G_ema is not None


def test_half_storage_is_close_and_smaller(tmp_path):
    full = save_sg2(tmp_path / "f32", G_ema=load_sg2(PKL).G_ema)
    half = convert(PKL, tmp_path / "f16", nets=("G_ema",), half=True)
    assert (half / "G_ema.safetensors").stat().st_size < 0.6 * (full / "G_ema.safetensors").stat().st_size
    a, b = load_sg2(full).G_ema, load_sg2(half).G_ema
    assert b.synthesis.b4.const.dtype == torch.float32
    z = torch.randn(4, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ia, ib = a(z, None), b(z, None)
    assert (ia - ib).abs().max() < 0.05 * ia.abs().max()
    assert not torch.equal(ia, ib)


def test_save_overwrites_atomically_and_errors(tmp_path):
    G_kwargs, _ = sg2_kwargs("tiny")
    G = Generator(**G_kwargs)
    out = save_sg2(tmp_path / "ck", G_ema=G, G=G, meta={"note": "x"})
    assert sorted(p.name for p in out.iterdir()) == ["G.safetensors", "G_ema.safetensors", JSON_NAME]
    assert load_sg2(out).meta["note"] == "x"
    save_sg2(out, G_ema=G)  # a smaller checkpoint replaces the old one without leftovers
    assert sorted(p.name for p in out.iterdir()) == ["G_ema.safetensors", JSON_NAME]
    with pytest.raises(SG2LoadError, match="has no 'D'"):
        load_sg2(out, nets=("D",))
    with pytest.raises(ValueError, match="needs at least one"):
        save_sg2(tmp_path / "empty")
    with pytest.raises(ValueError, match="must be a gandistill Discriminator"):
        save_sg2(tmp_path / "bad", D=G)
    # corrupt weights and JSON
    w = out / "G_ema.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(SG2LoadError, match="corrupt or truncated"):
        load_sg2(out)
    (out / JSON_NAME).write_text("{not json")
    with pytest.raises(SG2LoadError, match="corrupt JSON"):
        load_sg2(out)
    (out / JSON_NAME).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(SG2LoadError, match="not a gandistill-sg2 checkpoint"):
        load_sg2(out)
    with pytest.raises(FileNotFoundError):
        load_sg2(tmp_path)  # a folder without the JSON


def test_cli_convert(tmp_path):
    from typer.testing import CliRunner

    from gandistill.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["convert", str(PKL), str(tmp_path / "out"), "--nets", "G_ema,D"])
    assert res.exit_code == 0, res.output
    assert "G_ema, D" in res.output
    assert available_nets(tmp_path / "out") == ("G_ema", "D")
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"G_ema": _Evil("true")}))
    res = runner.invoke(app, ["convert", str(bad), str(tmp_path / "out2")])
    assert res.exit_code != 0 and isinstance(res.exception, UnsafePickleError)
    assert not (tmp_path / "out2" / JSON_NAME).exists()


def test_snapshot_bytes_in_memory_parse_storage_views():
    """Storage blobs: sizes/strides/offsets are honoured (a strided view rebuilt from a blob)."""
    from gandistill.teachers.stylegan2.nvlabs_pickle import _rebuild_tensor_v2, _Storage

    flat = torch.arange(12.0)
    t = _rebuild_tensor_v2(_Storage(flat), 2, (2, 3), (1, 2))
    assert torch.equal(t, torch.tensor([[2.0, 4.0, 6.0], [3.0, 5.0, 7.0]]))
    with pytest.raises(SG2LoadError, match="past the end"):
        _rebuild_tensor_v2(_Storage(flat), 5, (2, 4), (4, 1))
    with pytest.raises(SG2LoadError, match="does not reference a storage"):
        _rebuild_tensor_v2(flat, 0, (2,), (1,))  # a tensor is not a storage record
    shared = _Storage(flat)  # views may split a storage, but not claim more than it holds
    assert _rebuild_tensor_v2(shared, 0, (6,), (1,)).shape == _rebuild_tensor_v2(shared, 6, (6,), (1,)).shape
    with pytest.raises(SG2LoadError, match="share one storage of 12 elements and claim 13"):
        _rebuild_tensor_v2(shared, 0, (1,), (1,))


# ------------------------------------------------------------------------------------------------ hardening


class _TensorWithState:
    """Pickles as a real tensor record followed by BUILD -> ``Tensor.__setstate__`` (sets requires_grad)."""

    def __reduce__(self):
        import collections
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            storage = torch.tensor([1.0, 2.0]).storage()  # TypedStorage pickles as _load_from_bytes(blob)
        args = (storage, 0, (2,), (1,), False, collections.OrderedDict())
        return (torch._utils._rebuild_tensor_v2, args, (True, None, collections.OrderedDict()))


class _OrderedDictWithState:
    """Pickles as ``OrderedDict()`` followed by BUILD with an attribute dict."""

    def __reduce__(self):
        import collections

        return (collections.OrderedDict, (), {"planted": 1})


@pytest.mark.parametrize("obj,kind", [(_TensorWithState(), "Tensor"), (_OrderedDictWithState(), "OrderedDict")])
def test_build_opcode_refused_outside_the_format(fake_persistence, obj, kind):
    """BUILD (__setstate__) on a rebuilt tensor could resize its storage / set grad hooks: refused."""
    from gandistill.teachers.stylegan2.nvlabs_pickle import read_snapshot

    rec = fake_persistence("Generator", {"_parameters": {"w": obj}, "_modules": {}, "_init_kwargs": {}})
    with pytest.raises(UnsafePickleError, match=f"set the state of a {kind} object"):
        read_snapshot(pickle.dumps({"G_ema": rec}, protocol=3))


def test_build_still_allowed_for_easydict_and_numpy_dtype(fake_persistence, monkeypatch):
    """The two BUILDs the format needs keep working: EasyDict (py3.7 pickles) and numpy.dtype state."""
    import struct

    from gandistill.teachers.stylegan2.nvlabs_pickle import EasyDict, read_snapshot

    mod = types.ModuleType("dnnlib.util")

    class EasyDictFake(dict):
        def __reduce_ex__(self, proto):  # what python 3.7 wrote: NEWOBJ, BUILD({}), then the items
            return (copyreg_newobj, (EasyDictFake,), {}, None, iter(self.items()))

    import copyreg

    copyreg_newobj = copyreg.__newobj__
    EasyDictFake.__module__, EasyDictFake.__qualname__, EasyDictFake.__name__ = "dnnlib.util", "EasyDict", "EasyDict"
    mod.EasyDict = EasyDictFake
    monkeypatch.setitem(sys.modules, "dnnlib", types.ModuleType("dnnlib"))
    monkeypatch.setitem(sys.modules, "dnnlib.util", mod)

    class Scalar:  # numpy.core.multiarray.scalar(numpy.dtype('f8', False, True) + BUILD(state), bytes)
        def __reduce__(self):
            return (scalar_fn, (DType(), struct.pack("<d", 0.25)))

    class DType:
        def __reduce__(self):
            return (dtype_fn, ("f8", False, True), (3, "<", None, None, None, -1, -1, 0))

    np_mod, core_mod = types.ModuleType("numpy"), types.ModuleType("numpy.core.multiarray")

    def scalar_fn(*a):  # pragma: no cover - never called by the safe loader
        raise AssertionError

    def dtype_fn(*a):  # pragma: no cover
        raise AssertionError

    scalar_fn.__module__, scalar_fn.__qualname__ = "numpy.core.multiarray", "scalar"
    dtype_fn.__module__, dtype_fn.__qualname__ = "numpy", "dtype"
    np_mod.dtype, core_mod.scalar = dtype_fn, scalar_fn
    for name, m in (("numpy", np_mod), ("numpy.core", types.ModuleType("numpy.core")),
                    ("numpy.core.multiarray", core_mod)):
        monkeypatch.setitem(sys.modules, name, m)
    rec = fake_persistence("Generator", {"_parameters": {}, "_modules": {}, "_init_kwargs": {}})
    snap = read_snapshot(pickle.dumps({"G_ema": rec, "training_set_kwargs": EasyDictFake(res=32),
                                       "augment_p": Scalar()}, protocol=3))
    assert type(snap["training_set_kwargs"]) is EasyDict and snap["training_set_kwargs"] == {"res": 32}
    assert snap["augment_p"] == 0.25


def _u(s: str) -> bytes:
    b = s.encode()
    return b"X" + len(b).to_bytes(4, "little") + b


def _cyclic_snapshot(where: str) -> bytes:
    """A hand-written protocol-2 pickle whose Generator record reaches itself through the memo.

    ``where="modules"``: ``state["_modules"]["loop"]`` is the record itself;
    ``where="kwargs"``: ``_init_kwargs["mapping_kwargs"]["me"]`` is that dict itself.
    """
    p = pickle
    body = (p.PROTO + b"\x02" + p.EMPTY_DICT + _u("G_ema")
            + p.GLOBAL + b"torch_utils.persistence\n_reconstruct_persistent_obj\n"
            + p.MARK + p.EMPTY_DICT + p.MARK
            + _u("type") + _u("class") + _u("version") + p.BININT1 + b"\x06" + _u("class_name") + _u("Generator")
            + _u("state") + p.EMPTY_DICT + p.MARK
            + _u("_parameters") + p.EMPTY_DICT + _u("_modules") + p.EMPTY_DICT + p.BINPUT + b"\x01"
            + _u("_init_kwargs") + p.EMPTY_DICT + p.MARK + _u("mapping_kwargs") + p.EMPTY_DICT + p.BINPUT + b"\x03"
            + p.SETITEMS + p.SETITEMS + p.SETITEMS + p.TUPLE + p.REDUCE + p.BINPUT + b"\x02" + p.SETITEM)
    if where == "modules":
        body += p.BINGET + b"\x01" + _u("loop") + p.BINGET + b"\x02" + p.SETITEM + p.POP
    else:
        body += p.BINGET + b"\x03" + _u("me") + p.BINGET + b"\x03" + p.SETITEM + p.POP
    return body + p.STOP


@pytest.mark.parametrize("where", ["modules", "kwargs"])
def test_self_referencing_records_give_clear_error(tmp_path, where):
    """A container re-opened after it was placed inside another object (how cycles are built) is refused."""
    path = tmp_path / "cycle.pkl"
    path.write_bytes(_cyclic_snapshot(where))
    with pytest.raises(UnsafePickleError, match=r"cycle.pkl: .*modifies a dict after placing it inside another "
                                                r"object \(a cycle"):
        load_sg2(path)


def test_plain_guards_cycles_depth_and_size():
    from gandistill.teachers.stylegan2.nvlabs_pickle import plain

    shared = {"a": 1}
    assert plain({"x": shared, "y": [shared, (2, 3)], "s": {"b", "a"}}) == {"x": {"a": 1}, "y": [{"a": 1}, [2, 3]],
                                                                         "s": ["a", "b"]}
    loop: list = [1]
    loop.append([loop])
    with pytest.raises(SG2LoadError, match="contains itself"):
        plain({"k": loop})
    deep: dict = {}
    d = deep
    for _ in range(200):
        d["n"] = {}
        d = d["n"]
    with pytest.raises(SG2LoadError, match="nests more than"):
        plain(deep)
    fan = [0] * 4
    for _ in range(12):  # a DAG of shared lists: 4**12 leaves from a few objects
        fan = [fan] * 4
    with pytest.raises(SG2LoadError, match="more than .* entries"):
        plain(fan)


def test_rebuild_tensor_cannot_outgrow_its_storage():
    """Zero strides or sizes beyond the storage would allocate far more than the file holds."""
    from gandistill.teachers.stylegan2.nvlabs_pickle import _rebuild_tensor_v2, _Storage

    def flat():
        return _Storage(torch.arange(4.0))

    with pytest.raises(SG2LoadError, match="larger than its storage"):
        _rebuild_tensor_v2(flat(), 0, (10 ** 6,), (0,))
    with pytest.raises(SG2LoadError, match="larger than its storage"):
        _rebuild_tensor_v2(flat(), 0, (3, 3), (0, 1))
    with pytest.raises(SG2LoadError, match="malformed"):
        _rebuild_tensor_v2(flat(), 0, (2,), (-1,))
    with pytest.raises(SG2LoadError, match="malformed"):
        _rebuild_tensor_v2(flat(), 0, (2.5,), (1,))
    with pytest.raises(SG2LoadError, match="more than 16 dimensions"):
        _rebuild_tensor_v2(flat(), 0, (1,) * 100, (1,) * 100)
    assert torch.equal(_rebuild_tensor_v2(flat(), 1, (3,), (1,)), torch.tensor([1.0, 2.0, 3.0]))
    assert _rebuild_tensor_v2(flat(), 4, (0, 5), (5, 1)).shape == (0, 5)


def _storage_blob(t: torch.Tensor) -> bytes:
    """The legacy torch serialization of ``t``'s storage: what ``_load_from_bytes`` receives in a snapshot."""
    import io
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buf = io.BytesIO()
        torch.save(t.storage(), buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def test_memoised_copies_are_a_refused_memory_bomb(tmp_path):
    """A small file decoding one memoised 80 KB storage blob many times would copy it each time."""
    p = pickle
    blob = _storage_blob(torch.zeros(20000))
    body = (p.PROTO + b"\x04" + p.GLOBAL + b"torch.storage\n_load_from_bytes\n" + p.BINPUT + b"\x00" + p.POP
            + p.BINBYTES + len(blob).to_bytes(4, "little") + blob + p.BINPUT + b"\x01" + p.POP + p.EMPTY_LIST
            + (p.BINGET + b"\x00" + p.BINGET + b"\x01" + p.TUPLE1 + p.REDUCE + p.APPEND) * 300 + p.STOP)
    path = tmp_path / "bomb.pkl"
    path.write_bytes(body)
    assert len(body) < 100_000
    with pytest.raises(SG2LoadError, match="bomb.pkl: .*(memory bomb|read twice)"):
        load_sg2(path)


@pytest.mark.parametrize("module,name", [("builtins", "getattr"), ("builtins", "frozenset"), ("codecs", "encode")])
def test_globals_outside_the_documented_list_are_refused(tmp_path, module, name):
    body = pickle.PROTO + b"\x04" + pickle.GLOBAL + f"{module}\n{name}\n".encode() + pickle.STOP
    path = tmp_path / "g.pkl"
    path.write_bytes(body)
    with pytest.raises(UnsafePickleError, match=f"g.pkl: this file wants to import {module}.{name}; refusing"):
        load_sg2(path)


def test_persistent_meta_version_and_type_checked(tmp_path, fake_persistence):
    obj = fake_persistence("Generator", {"_parameters": {}, "_modules": {}, "_init_kwargs": {}})
    obj.meta["version"] = 5
    path = tmp_path / "v5.pkl"
    path.write_bytes(pickle.dumps({"G_ema": obj}))
    with pytest.raises(SG2LoadError, match="persistence version 5; only version 6"):
        load_sg2(path)
    obj.meta["version"], obj.meta["type"] = 6, "function"
    path.write_bytes(pickle.dumps({"G_ema": obj}))
    with pytest.raises(SG2LoadError, match="has type 'function'; only persistent classes"):
        load_sg2(path)


@pytest.mark.parametrize("change,msg", [
    ({"img_resolution": 2 ** 20}, "img_resolution=1048576 is out of range"),
    ({"z_dim": -5}, "cannot build G_ema .* RuntimeError"),
    ({"w_dim": 10 ** 9}, "w_dim=1000000000 is out of range"),
    ({"img_resolution": 64}, "weights do not fit .* missing"),
    ({"mapping_kwargs": {"num_layers": 10 ** 6}}, "mapping_kwargs.num_layers=1000000 is out of range"),
])
def test_absurd_kwargs_fail_cleanly_before_allocating(tmp_path, change, msg):
    import nvlabs_writer as W

    G = load_sg2(PKL).G_ema
    snap = W.snapshot(G_ema=G)
    snap["G_ema"].state["_init_kwargs"] = W.easy({**G.init_kwargs, **change})
    path = W.write_snapshot(tmp_path / "absurd.pkl", snap)
    with pytest.raises(SG2LoadError, match=msg):
        load_sg2(path)


@pytest.fixture()
def ours(tmp_path):
    G_kwargs, _ = sg2_kwargs("tiny")
    out = save_sg2(tmp_path / "ck", G_ema=Generator(**G_kwargs))
    info = json.loads((out / JSON_NAME).read_text())
    return out, info


def _rewrite(out, info):
    (out / JSON_NAME).write_text(json.dumps(info))


def test_own_format_weights_file_must_stay_in_the_folder(ours, tmp_path):
    out, info = ours
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes((out / "G_ema.safetensors").read_bytes())  # a valid file the JSON must not reach
    for bad in ("../outside.safetensors", str(outside), "sub/G_ema.safetensors", "..", ""):
        info["nets"]["G_ema"]["file"] = bad
        _rewrite(out, info)
        with pytest.raises(SG2LoadError, match="must be a bare file name inside the checkpoint folder"):
            load_sg2(out)
    info["nets"]["G_ema"]["file"] = "G_ema.safetensors"
    _rewrite(out, info)
    assert load_sg2(out).G_ema is not None


@pytest.mark.parametrize("edit,msg", [
    (lambda i: i["nets"]["G_ema"].pop("kwargs"), "has no constructor 'kwargs' object"),
    (lambda i: i["nets"].__setitem__("G_ema", ["Generator"]), "must be an object, got list"),
    (lambda i: i.__setitem__("version", "1"), "version must be a positive integer, got '1'"),
    (lambda i: i.pop("version"), "version must be a positive integer, got None"),
    (lambda i: i.__setitem__("version", 99), "newer than this gandistill"),
    (lambda i: i.__setitem__("nets", ["G_ema"]), "'nets' must be an object"),
    (lambda i: i.__setitem__("meta", [1]), "'meta' must be an object"),
])
def test_own_format_malformed_json_entries(ours, edit, msg):
    out, info = ours
    edit(info)
    _rewrite(out, info)
    with pytest.raises(SG2LoadError, match=msg):
        load_sg2(out)
    with pytest.raises(SG2LoadError, match=msg):
        available_nets(out)
