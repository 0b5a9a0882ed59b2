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


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is faster, and far faster on an oversubscribed machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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
    from gandistill.teachers.stylegan2.nvlabs_pickle import _rebuild_tensor_v2

    flat = torch.arange(12.0)
    t = _rebuild_tensor_v2(flat, 2, (2, 3), (1, 2))
    assert torch.equal(t, torch.tensor([[2.0, 4.0, 6.0], [3.0, 5.0, 7.0]]))
    with pytest.raises(SG2LoadError, match="past the end"):
        _rebuild_tensor_v2(flat, 5, (2, 4), (4, 1))
