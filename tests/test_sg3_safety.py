"""StyleGAN3 snapshots: numpy objects only in their exact shapes, clean one-line refusals, fp16 on CPU."""
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import sg3_resave as R
from gandistill.io.errors import GandistillError
from gandistill.teachers.stylegan2.checkpoint import SG2LoadError, UnsafePickleError, load_sg2
from gandistill.teachers.stylegan3.snapshot import SG3LoadError

FIX = Path(__file__).parent / "fixtures"
SG3T = FIX / "sg3" / "sg3t-tiny-uncond.pkl"


@pytest.fixture(scope="module")
def snap():
    return R.read(SG3T)


@pytest.fixture()
def fresh(snap):
    return R.read(SG3T)  # a private copy to edit


def refused(path: Path, match: str, kind=UnsafePickleError, nets=("G_ema",)):
    with pytest.raises(kind) as e:
        load_sg2(path, nets=nets)
    msg = str(e.value)
    assert isinstance(e.value, GandistillError) and isinstance(e.value, SG2LoadError)
    assert "\n" not in msg and msg.startswith(str(path)), msg
    assert re.search(match, msg), msg
    return msg


def test_numpy2_names_load_the_same(tmp_path, snap):
    """Re-saved by numpy 2 (``numpy._core.multiarray.*``): same network. (Protocols 0-3 are issue 16 item 1.)"""
    ref = torch.load(FIX / "sg3" / "sg3t-tiny-uncond.ref.pt", weights_only=True)
    for proto in (4,):
        p = R.write(snap, tmp_path / f"np2-p{proto}.pkl", protocol=proto)
        assert b"numpy._core.multiarray" in p.read_bytes()
        G = load_sg2(p).G_ema
        with torch.no_grad():
            assert (G.synthesis(ref["ws"]) - ref["img"]).abs().max() < 1e-4


def _layer(snap, name="L5_52_32"):
    return snap["G_ema"].child("synthesis", name)


@pytest.mark.parametrize("value, match", [
    (np.array([52, 52, 52]), r"numpy array of shape \(3,\).*only int64 arrays of shape \(2,\)"),
    (np.array([52, 52], dtype=np.int32), r"dtype 'i4'.*only int64 arrays of shape \(2,\)"),
    (np.array([[52, 52]]), r"shape \(1, 2\)"),
    (np.float32(52.0), r"numpy scalar of dtype 'f4'.*only float64 and bool"),
    (np.int64(52), r"numpy scalar of dtype 'i8'"),
    (np.array(["52", "52"], dtype=object), r"unsupported numpy dtype"),
])
def test_numpy_objects_outside_the_exact_shapes_are_refused(tmp_path, fresh, value, match):
    _layer(fresh).state["out_size"] = value
    refused(R.write(fresh, tmp_path / "np.pkl"), match)


class _Call:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


@pytest.mark.parametrize("obj, match", [
    (_Call(np.frombuffer, b"\0" * 16, "i8"), r"wants to import numpy\.frombuffer; refusing"),
    (_Call(np._core.multiarray._reconstruct, np.ndarray, (1,), b"b"), r"only that call is part of"),
    (_Call(np._core.multiarray._reconstruct, np.ndarray, (0,), b"c"), r"only that call is part of"),
    (_Call(np.ones, (2,)), r"wants to import numpy\.(_core\.numeric\.)?ones"),
    (_Call(np.lib.format.read_array, None), r"wants to import numpy\.lib\.format\.read_array"),
])
def test_other_numpy_globals_and_calls_are_refused(tmp_path, fresh, obj, match):
    _layer(fresh).state["out_size"] = obj
    refused(R.write(fresh, tmp_path / "np.pkl"), match)


def test_an_array_never_built_cannot_be_used(tmp_path, fresh):
    _layer(fresh).state["out_size"] = _Call(np._core.multiarray._reconstruct, np.ndarray, (0,), b"b")
    refused(R.write(fresh, tmp_path / "unbuilt.pkl"), r"never filled", kind=SG2LoadError)


def test_stored_layer_values_must_equal_the_rebuilt_ones(tmp_path, fresh):
    """A default we do not know (here: a different padding or margin) is refused, not silently recomputed."""
    _layer(fresh).state["padding"] = [-5, -9, -6, -9]
    msg = refused(R.write(fresh, tmp_path / "pad.pkl"), r"L5_52_32 stores padding=\[-5, -9, -6, -9\]",
                  kind=SG3LoadError)
    assert "refusing" in msg
    fresh2 = R.read(SG3T)
    fresh2["G_ema"].child("synthesis").state["margin_size"] = 8
    refused(R.write(fresh2, tmp_path / "margin.pkl"), r"synthesis stores margin_size=8", kind=SG3LoadError)


def test_module_source_is_never_run(tmp_path, fresh):
    marker = tmp_path / "pwned"
    fresh["G_ema"].meta["module_src"] = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    G = load_sg2(R.write(fresh, tmp_path / "src.pkl")).G_ema
    assert G is not None and not marker.exists()


@pytest.mark.parametrize("module", ["dill._dill", "timm.models.efficientnet", "pg_modules.discriminator"])
def test_stylegan_xl_snapshots_get_a_specific_refusal(tmp_path, fresh, monkeypatch, module):
    """StyleGAN-XL pickles (dill, timm backbones, repository classes) are refused naming what is missing."""
    thing = type("Thing", (), {"__module__": module})
    mod = types.ModuleType(module)
    mod.Thing = thing
    monkeypatch.setitem(sys.modules, module, mod)
    if "." in module:
        monkeypatch.setitem(sys.modules, module.split(".")[0], types.ModuleType(module.split(".")[0]))
    fresh["D"] = thing  # pickled as a reference to the global module.Thing, as dill writes its classes
    msg = refused(R.write(fresh, tmp_path / "xl.pkl"), r"StyleGAN-XL")
    assert f"{module}.Thing" in msg and "missing" in msg and "nothing was run" in msg


# ------------------------------------------------------------------------------------------------ fp16 on CPU


def _to_half(snap):
    def fn(rec):
        for group in ("_parameters", "_buffers"):
            for k, v in list((rec.state.get(group) or {}).items()):
                if isinstance(v, torch.Tensor) and v.is_floating_point():
                    half = v.detach().half()
                    rec.state[group][k] = torch.nn.Parameter(half, requires_grad=False) \
                        if isinstance(v, torch.nn.Parameter) else half
    R.walk_records(snap, fn)
    return snap


@pytest.mark.parametrize("fixture, ref_name", [("sg3/sg3t-tiny-uncond", "sg3"), ("sg3/sg3r-tiny-uncond", "sg3"),
                                               ("sg2-tiny-uncond", "sg2")])
def test_fp16_snapshots_load_and_run_in_fp32_on_cpu(tmp_path, fixture, ref_name):
    """Weights stored as fp16 load as fp32; fp16 layers asked to run in fp16 on CPU run in fp32 (no 'Half' errors)."""
    path = R.write(_to_half(R.read(FIX / f"{fixture}.pkl")), tmp_path / "half.pkl")
    assert b"HalfStorage" in path.read_bytes() and b"FloatStorage" not in path.read_bytes()
    ck = load_sg2(path, nets=("G_ema", "D"))
    assert all(t.dtype == torch.float32 for t in ck.G_ema.state_dict().values())
    ref = torch.load(FIX / f"{fixture}.ref.pt", weights_only=True)
    with torch.no_grad():
        ws = ck.G_ema.mapping(ref["z"], torch.zeros(ref["z"].shape[0], 0))
        img = ck.G_ema.synthesis(ws, noise_mode="const", force_fp32=False)  # fp16 layers, CPU: fp32
        assert img.dtype == torch.float32
        want = ref["img"] if "img" in ref else ref["img_const"]
        assert (img - want).abs().max() < 0.05 * want.abs().max()  # fp16-rounded weights, fp32 maths
        logits = ck.D(img, torch.zeros(img.shape[0], 0), force_fp32=False)
        assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_a_generator_cast_to_half_still_runs_on_cpu_after_float(tmp_path):
    """What NVlabs issues #54/#105 hit: ``G.half()`` on CPU; our teachers call ``.float()`` first."""
    G = load_sg2(SG3T).G_ema.half().float()
    ws = G.mapping(torch.randn(2, G.z_dim), torch.zeros(2, 0))
    assert G.synthesis(ws, force_fp32=False).dtype == torch.float32
