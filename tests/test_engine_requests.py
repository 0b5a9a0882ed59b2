"""Engine features other parts of the project asked for: the conditional-teacher flag, the training
split, the encoder's raw input, the digits augmentation default and SimSiam's projector BN."""
import json

import pytest
import torch
from typer.testing import CliRunner

from gandistill.engine import FitConfig, default_augment, fit, make_plan, resolved_config
from gandistill.engine.parts import Parts
from gandistill.engine.plan import check_labelled
from gandistill.engine.step import make_inputs
from gandistill.teachers import TeacherSample
from gandistill.teachers.stylegan2 import Generator, save_sg2
from conftest import tiny_G


def cfg(out, **kw):
    base = dict(method="sns", student="test_resnet", img_size=16, batch=8, steps=1, dim=32, proj_hidden=16,
                squeeze_hidden=16, out=str(out), eval="none", log_every=1, teacher="sg2-generator")
    base.update(kw)
    return FitConfig(**base)


@pytest.mark.parametrize("c_dim", [0, 2])
def test_teacher_conditional_is_recorded_in_config_summary_and_result(tmp_path, c_dim):
    ckpt = save_sg2(tmp_path / "g", G_ema=tiny_G(c_dim))
    res = fit(cfg(tmp_path / "run", teacher_ckpt=str(ckpt)), log=lambda s: None)
    want = c_dim > 0
    assert res.teacher_conditional is want
    assert json.loads((tmp_path / "run" / "config.json").read_text())["teacher_conditional"] is want
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["teacher_conditional"] is want


def test_cli_prints_the_conditional_banner(tmp_path):
    from gandistill.cli import app
    from gandistill.cli.fit import CONDITIONAL_BANNER

    args = ["fit", "--teacher", "sg2-generator", "--student", "test_resnet", "--img-size", "16", "--batch", "8",
            "--steps", "1", "--dim", "32", "--eval", "none"]
    for c_dim in (2, 0):
        ckpt = save_sg2(tmp_path / f"g{c_dim}", G_ema=tiny_G(c_dim))
        res = CliRunner().invoke(app, args + ["--teacher-ckpt", str(ckpt), "--out", str(tmp_path / f"r{c_dim}")])
        assert res.exit_code == 0, res.output
        assert (CONDITIONAL_BANNER in res.output) is (c_dim > 0)


def test_train_split_feeds_training_and_the_schedule():
    a = resolved_config(FitConfig(batch=64, epochs=1, teacher="sg2-generator"))
    b = resolved_config(FitConfig(batch=64, epochs=1, teacher="sg2-generator", train_split="test"))
    assert b["resolved"]["train_split"] == "test" and b["config"]["train_split"] == "test"
    assert b["resolved"]["train_images"] < a["resolved"]["train_images"]
    assert b["resolved"]["steps_per_epoch"] == b["resolved"]["train_images"] // 64


class _DS:
    def __init__(self, num_classes):
        self.num_classes = num_classes


def test_unlabelled_training_split_is_fine_when_the_probe_split_has_labels():
    plan = make_plan(FitConfig(train_split="train+unlabeled", eval="linear"), 100, 32, torch.device("cpu"), 1)
    check_labelled(plan, _DS(0), lambda: _DS(10))                       # probe reads the labelled train split
    with pytest.raises(ValueError, match=r"split train\) has no labels"):
        check_labelled(plan, _DS(0), lambda: _DS(0))
    none = make_plan(FitConfig(train_split="train+unlabeled", eval="none"), 100, 32, torch.device("cpu"), 1)
    check_labelled(none, _DS(0), lambda: pytest.fail("no probe, so no labels needed"))


def _encoder_inputs(encoder_input):
    plan = make_plan(FitConfig(method="encoder", encoder_input=encoder_input, batch=8, alpha=0.5), 100, 16,
                     torch.device("cpu"), 1)
    syn = torch.rand(plan.n_syn, 3, 16, 16) * 2 - 1
    real = torch.rand(plan.n_real, 3, 16, 16)

    class T:
        def sample(self, n, generator=None):
            return TeacherSample(images=syn[:n], targets=[], ws=torch.zeros(n, 2, 4))

    class S:
        def next(self):
            return real

    marker = lambda x: x * 0 + 7.0                                     # what a normalising augmentation returns
    parts = Parts(teacher=T(), student=None, head=None, head_kind=None, model=None, train_model=None, opt=None,
                  scaler=None, aug_syn=marker, aug_real=marker, norm_real=marker, stream=S(),
                  z_gen=torch.Generator())
    inputs, batch = make_inputs(plan, parts, torch.device("cpu"))
    return inputs, batch, syn, real


def test_encoder_raw_input_is_the_generator_range():
    inputs, batch, syn, real = _encoder_inputs("raw")
    assert torch.equal(inputs["x_syn"], syn) and torch.equal(inputs["x_real"], real * 2 - 1)
    inputs, _, _, _ = _encoder_inputs("normalised")
    assert bool((inputs["x_syn"] == 7).all()) and bool((inputs["x_real"] == 7).all())
    assert torch.equal(batch["x_real"], real * 2 - 1)                  # the reconstruction target either way
    with pytest.raises(ValueError, match="encoder_input"):
        make_plan(FitConfig(encoder_input="whitened"), 100, 16, torch.device("cpu"), 1)


def test_digits_default_augmentation(monkeypatch):
    import gandistill.augment as augment

    presets = dict(augment.PRESETS)
    presets.pop("ssl-digits", None)
    monkeypatch.setattr(augment, "PRESETS", presets)
    assert default_augment("digits") == "ssl-cifar"
    presets["ssl-digits"] = augment.PRESETS["ssl-cifar"]
    assert default_augment("digits") == "ssl-digits"
    assert default_augment("stl10") == "ssl-stl" and default_augment("cifar10") == "ssl-cifar"
    r = resolved_config(FitConfig(teacher="sg2-generator"))["resolved"]
    assert r["augment"] == "ssl-digits" and r["augment_real"] == "ssl-digits"
    assert resolved_config(FitConfig(teacher="sg2-generator", augment="ssl-stl"))["resolved"]["augment"] == "ssl-stl"


def test_simsiam_student_gets_the_final_bn(tmp_path):
    from gandistill.methods import get_method

    spec = get_method("simsiam-real")
    if not getattr(spec, "proj_final_bn", False):
        pytest.skip("methods.py has no SimSiam final BN")
    res = fit(cfg(tmp_path / "s", method="simsiam-real", teacher=None, proj_hidden=None), log=lambda s: None)
    meta = json.loads((res.run_dir / "checkpoint.json").read_text())
    assert meta["student_kwargs"]["proj_final_bn"] is True
    from gandistill.evaluate import load_student

    bn = [m for m in load_student(res.run_dir).model.projector.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert bn and bn[-1].affine is False


def test_missing_dataset_message_names_download(tmp_path):
    for name, folder in (("cifar10", "cifar-10-batches-py"), ("stl10", "stl10_binary")):
        with pytest.raises(FileNotFoundError, match=rf"{folder}.*pass --download to fetch it"):
            resolved_config(FitConfig(dataset=name, data_root=str(tmp_path)))


def test_download_is_opt_in_and_reaches_the_loader(tmp_path, monkeypatch):
    import gandistill.engine.plan as plan_mod
    import gandistill.engine.run as run_mod

    seen = []

    class Stop(Exception):
        pass

    def fake(name, root=None, split="train", download=False, img_size=None):
        seen.append(download)
        raise Stop

    monkeypatch.setattr(run_mod, "load_dataset", fake)                 # fit's loader
    monkeypatch.setattr(plan_mod, "load_dataset", fake)                # --dry-run's
    for flag in (False, True):
        with pytest.raises(Stop):
            fit(FitConfig(dataset="cifar10", data_root=str(tmp_path), download=flag, out=str(tmp_path / "r")))
    from gandistill.cli import app

    res = CliRunner().invoke(app, ["fit", "--dataset", "cifar10", "--data-root", str(tmp_path), "--download",
                                   "--dry-run"])
    assert isinstance(res.exception, Stop)
    assert seen == [False, True, True]                             # nothing is fetched unless asked


def test_fit_closes_with_the_probe_table(tmp_path):
    ckpt = save_sg2(tmp_path / "g", G_ema=tiny_G(c_dim=2))
    res = fit(cfg(tmp_path / "run", teacher_ckpt=str(ckpt), eval="knn,fast", eval_epochs=2, eval_max_train=100,
                  eval_max_test=50), log=lambda s: None)
    table = json.loads((tmp_path / "run" / "summary.json").read_text())["probes"]
    assert [r["name"] for r in table["rows"]] == ["distilled", "random init", "raw pixels"]
    assert table["banner"] == "label-conditioned teacher: not self-supervised"    # conditional teacher
    distilled = table["rows"][0]
    assert res.eval["top1"] == distilled["fast"]["top1"] and res.eval["knn"] == distilled["knn"]
    assert res.eval_random["top1"] == table["rows"][1]["fast"]["top1"] and res.eval["num_train"] == 100
    assert (tmp_path / "run" / "init" / "checkpoint.json").exists()              # the random row is the run's init
    with pytest.raises(ValueError, match="eval must be 'none' or comma-separated probes"):
        resolved_config(FitConfig(teacher="sg2-generator", eval="linaer"))
    quiet = fit(cfg(tmp_path / "r2", teacher_ckpt=str(ckpt), eval="knn", eval_random=False, eval_raw_pixels=False,
                    eval_max_train=100, eval_max_test=50), log=lambda s: None)
    assert [r["name"] for r in quiet.probes["rows"]] == ["distilled"] and quiet.eval_random is None


def test_fit_from_a_feature_bank(tmp_path):
    from gandistill.teachers.bank import BankError, build_bank
    from gandistill.teachers import create_teacher

    G = save_sg2(tmp_path / "g", G_ema=tiny_G())
    teacher = create_teacher("sg2-generator", ckpt=str(G))
    build_bank(teacher, 16, tmp_path / "bank", teacher_name="sg2-generator", ckpt=str(G), batch=8)
    res = fit(cfg(tmp_path / "run", teacher_ckpt=str(G), bank=str(tmp_path / "bank"), steps=2), log=lambda s: None)
    rec = json.loads((res.run_dir / "config.json").read_text())
    assert rec["config"]["bank"] == str(tmp_path / "bank") and "bank" in json.dumps(rec["teacher"])
    assert json.loads((res.run_dir / "checkpoint.json").read_text())["step"] == 2
    other = save_sg2(tmp_path / "g2", G_ema=tiny_G(c_dim=2))
    with pytest.raises(BankError):                               # a bank of another checkpoint is refused
        fit(cfg(tmp_path / "r2", teacher_ckpt=str(other), bank=str(tmp_path / "bank")), log=lambda s: None)
    with pytest.raises(ValueError, match="--bank does not apply"):
        fit(cfg(tmp_path / "r3", method="vicreg-real", teacher=None, bank=str(tmp_path / "bank")), log=lambda s: None)


def test_sgd_is_fused_and_stays_fused_after_resume(tmp_path, monkeypatch):
    import gandistill.engine.loop as loop

    seen, real = [], loop.update

    def spy(parts, loss):
        seen.append(all(g.get("fused") for g in parts.opt.param_groups))
        if len(seen) == 2:
            raise KeyboardInterrupt("stop after the step-1 checkpoint")
        return real(parts, loss)

    monkeypatch.setattr(loop, "update", spy)
    run = tmp_path / "run"
    kw = dict(teacher_kwargs={"G": tiny_G()}, teacher=None, steps=3, ckpt_every=1)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg(run, **kw), log=lambda s: None)
    state = torch.load(run / "train_state.pt", weights_only=True)
    for g in state["optimizer"]["param_groups"]:
        g["fused"] = None                                          # a train_state.pt from before the change
    torch.save(state, run / "train_state.pt")
    fit(cfg(run, resume=True, **kw), log=lambda s: None)
    assert seen == [True, True, True, True]                        # steps 1, 2 (interrupted), 2, 3


def test_distill_step_batches_the_three_student_passes():
    import copy

    from gandistill.engine import DistillModel
    from gandistill.squeeze import SqueezeModule
    from gandistill.students import create_student

    torch.manual_seed(0)
    student = create_student("test_resnet", img_size=16, proj_layers=2, proj_hidden=16, proj_out=8)
    calls = []
    student.forward_groups = (lambda fg: lambda xs: calls.append(len(xs)) or fg(xs))(student.forward_groups)
    head = SqueezeModule([4], dim=8, hidden=8)
    grouped = DistillModel("distill", student, head).train()
    separate = copy.deepcopy(grouped)
    separate.student.forward_groups = None                         # the three separate passes
    x, v1, v2, t = torch.rand(4, 3, 16, 16), torch.rand(6, 3, 16, 16), torch.rand(6, 3, 16, 16), [torch.randn(4, 4)]
    a, b = grouped(x_syn=x, targets=t, v1=v1, v2=v2), separate(x_syn=x, targets=t, v1=v1, v2=v2)
    assert calls == [3] and list(a) == ["z_syn", "z_real1", "z_real2", "z_target"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    for (n, p), (_, q) in zip(grouped.state_dict().items(), separate.state_dict().items()):
        torch.testing.assert_close(p.float(), q.float(), rtol=1e-5, atol=1e-6)      # running BN statistics too
