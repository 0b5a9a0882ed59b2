"""`gandistill export`: the bare backbone loads strictly into plain timm and computes the same features."""
import json

import pytest
import timm
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from gandistill.engine import FitConfig, fit
from gandistill.evaluate import load_student
from gandistill.students.export import (ExportError, export_backbone, load_backbone, load_projector, patch_backbone,
                               read_export)

from conftest import tiny_G


def _run(out, student="resnet10t", **kw):
    # a short run so BN statistics and weights differ from any fresh initialisation
    cfg = FitConfig(method="sns", student=student, img_size=16, batch=8, steps=2, dim=32, proj_hidden=16,
                    squeeze_hidden=16, out=str(out), eval="none", teacher_kwargs={"G": tiny_G()}, **kw)
    fit(cfg, log=lambda s: None)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    # resnet10t at 16 px: any student other than the default gets the CIFAR stem automatically
    return _run(tmp_path_factory.mktemp("exp") / "run")


def test_export_loads_strictly_into_plain_timm_with_equal_outputs(run, tmp_path):
    path = export_backbone(run, tmp_path / "exp")
    meta = json.loads(path.read_text())
    assert meta["timm_name"] == "resnet10t" and meta["patches"] == ["cifar_stem"]
    state = load_file(str(tmp_path / "exp" / "backbone.safetensors"))
    assert not any(k.startswith(("backbone.", "projector.")) for k in state)       # timm's own keys

    model = patch_backbone(timm.create_model("resnet10t", num_classes=0), tmp_path / "exp")   # the one line
    model.load_state_dict(state, strict=True)
    student = load_student(run).model.eval()
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        want = student.features(x)
        assert torch.equal(model.eval()(x), want)
        # resnet10t's deep stem keeps its shapes under the patch (only strides change): the same weights
        # load without it but compute something else -- the reason the patch is recorded
        plain = timm.create_model("resnet10t", num_classes=0)
        plain.load_state_dict(state, strict=True)
        assert not torch.allclose(plain.eval()(x), want, atol=1e-3)
        assert torch.equal(load_backbone(tmp_path / "exp")(x), want)
    assert meta["num_features"] == want.shape[1]
    assert len(meta["input"]["mean"]) == 3 and len(meta["input"]["std"]) == 3


def test_export_with_projector_reproduces_z(run, tmp_path):
    export_backbone(run, tmp_path / "exp", projector=True)
    student = load_student(run).model.eval()
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        z = load_projector(tmp_path / "exp")(load_backbone(tmp_path / "exp")(x))
        assert torch.equal(z, student(x))


def test_single_conv_stem_needs_the_patch_to_load(tmp_path):
    # resnet18's 7x7 stem conv becomes 3x3: plain timm refuses the weights, the patched model takes them
    from gandistill.students import create_student
    from gandistill.engine import save_checkpoint

    student = create_student("resnet18", img_size=16, proj_layers=0)
    save_checkpoint(tmp_path / "r", 0, student, None, None, None, {"dataset": "digits", "img_size": 16})
    export_backbone(tmp_path / "r", tmp_path / "exp")
    state = load_file(str(tmp_path / "exp" / "backbone.safetensors"))
    with pytest.raises(RuntimeError, match="conv1.weight"):
        timm.create_model("resnet18", num_classes=0).load_state_dict(state, strict=True)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(load_backbone(tmp_path / "exp")(x), student.eval().features(x))


def test_default_student_has_no_patch(tmp_path):
    run = _run(tmp_path / "r", student=None)                # resnet10t, standard stem
    export_backbone(run, tmp_path / "exp")
    assert read_export(tmp_path / "exp")["patches"] == []
    model = timm.create_model("resnet10t", num_classes=0)
    model.load_state_dict(load_file(str(tmp_path / "exp" / "backbone.safetensors")), strict=True)


def test_export_cli_and_refusals(run, tmp_path):
    from gandistill.cli import app

    res = CliRunner().invoke(app, ["export", str(run), "--out", str(tmp_path / "cli"), "--projector"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "projector.safetensors").is_file() and "load_backbone" in res.output
    again = CliRunner().invoke(app, ["export", str(run), "--out", str(tmp_path / "cli")])
    assert again.exit_code != 0 and "already holds an export" in str(again.exception)
    with pytest.raises(ExportError, match="not a gandistill student run"):
        export_backbone(tmp_path / "nothing", tmp_path / "x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "backbone.json").write_text('{"format": "something-else"}')
    with pytest.raises(ExportError, match="not a gandistill backbone export"):
        load_backbone(tmp_path / "other")
