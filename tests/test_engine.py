"""The training loop: config resolution, schedule, checkpoints, resume, and the NaN / collapse guards."""
import json
import math

import pytest
import torch

from gandistill.engine import (FitConfig, TrainingStopped, cosine_lr, embedding_spread, fit, resolved_config,
                               student_choice)
from gandistill.teachers import TeacherSample, register_teacher
from gandistill.teachers.generator import GeneratorTeacher

from conftest import tiny_G


def toy_cfg(out, **kw):
    base = dict(method="sns", student="test_resnet", img_size=16, batch=8, steps=2, dim=64, proj_hidden=32,
                squeeze_hidden=32, out=str(out), eval="none", log_every=1, teacher_kwargs={"G": tiny_G()})
    base.update(kw)
    return FitConfig(**base)


@register_teacher("test-nan-after", help="tiny G whose targets turn NaN from the k-th sample on", overwrite=True)
class NanAfter(GeneratorTeacher):
    def __init__(self, ckpt=None, device="cpu", after=2, **kw):
        super().__init__(ckpt=ckpt, device=device, G=tiny_G(), **kw)
        self.after, self.calls = after, 0

    def sample(self, n, generator=None):
        s = super().sample(n, generator)
        self.calls += 1
        if self.calls > self.after:
            s = TeacherSample(images=s.images, targets=[t * float("nan") for t in s.targets])
        return s


# --- resolution and maths -----------------------------------------------------------------------

def test_resolved_config_scales_lr_and_splits_the_batch():
    r = resolved_config(FitConfig(method="sns", batch=512, epochs=2, teacher="sg2-generator"))["resolved"]
    assert r["lr"] == pytest.approx(0.03 * 512 / 256)
    assert (r["batch_syn_per_rank"], r["batch_real_per_rank"]) == (256, 256)
    assert r["steps_per_epoch"] == 4000 // 512 and r["total_steps"] == 2 * (4000 // 512)
    assert r["loss_weights"] == {"sim": 25.0, "var": 25.0, "cov": 1.0, "alpha": 0.5, "var_cov_on": "student",
                                 "gather": False}
    v = resolved_config(FitConfig(method="vanilla", batch=64, steps=3, sim=2.0))["resolved"]
    assert v["squeeze_depth"] == 0 and v["loss_weights"]["sim"] == 2.0 and v["batch_real_per_rank"] == 0
    assert resolved_config(FitConfig(method="vicreg-real", batch=64))["resolved"]["batch_syn_per_rank"] == 0


def test_bad_settings_are_clear():
    with pytest.raises(ValueError, match="alpha"):
        resolved_config(FitConfig(alpha=1.5))
    with pytest.raises(ValueError, match="at least 2"):
        resolved_config(FitConfig(batch=2))
    with pytest.raises(ValueError, match="precision"):
        resolved_config(FitConfig(precision="fp8"))
    with pytest.raises(KeyError, match="sns"):
        resolved_config(FitConfig(method="snss"))


def test_default_student_keeps_its_standard_stem():
    assert student_choice(FitConfig()) == ("resnet10t", False)
    assert student_choice(FitConfig(student="resnet18")) == ("resnet18", None)


def test_cosine_schedule():
    assert cosine_lr(0.1, 0, 100) == pytest.approx(0.1)
    assert cosine_lr(0.1, 50, 100) == pytest.approx(0.05)
    assert cosine_lr(0.1, 100, 100) == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(0.1, 25, 100) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_embedding_spread():
    torch.manual_seed(0)
    z = torch.randn(4096, 16)
    assert embedding_spread(z) == pytest.approx(1.0, abs=0.05)            # isotropic -> about 1
    assert embedding_spread(z * 1e-3) == pytest.approx(embedding_spread(z), rel=1e-4)   # scale free
    const = torch.ones(32, 16) * 3 + 1e-6 * torch.randn(32, 16)
    assert embedding_spread(const) < 1e-4
    assert math.isnan(embedding_spread(torch.randn(1, 4)))


# --- run folder, checkpoints, resume ------------------------------------------------------------

def test_run_folder_and_checkpoint_rebuild_the_student(tmp_path):
    from gandistill.evaluate import load_student
    from safetensors.torch import load_file

    res = fit(toy_cfg(tmp_path / "run", steps=3), log=lambda s: None)
    run = tmp_path / "run"
    for f in ("config.json", "metrics.jsonl", "checkpoint.json", "student.safetensors", "squeeze.safetensors",
              "train_state.pt", "summary.json"):
        assert (run / f).is_file(), f
    assert not list(run.glob(".*tmp*"))                                  # no temporaries left behind
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["config"]["method"] == "sns" and "torch" in cfg["versions"] and "git_rev" in cfg
    assert cfg["resolved"]["head_params"] > 0
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["step"] == 3 and meta["student"] == "test_resnet" and meta["student_kwargs"]["img_size"] == 16
    loaded = load_student(run)
    state = load_file(str(run / "student.safetensors"))
    for k, v in loaded.model.state_dict().items():
        torch.testing.assert_close(v, state[k])
    assert res.checkpoint == run / "checkpoint.json"


def test_resume_continues_where_it_stopped(tmp_path):
    full = fit(toy_cfg(tmp_path / "full", steps=4, teacher="test-nan-after", teacher_kwargs={"after": 99}),
               log=lambda s: None)
    with pytest.raises(TrainingStopped):
        fit(toy_cfg(tmp_path / "cut", steps=4, ckpt_every=1, teacher="test-nan-after", teacher_kwargs={"after": 2}),
            log=lambda s: None)
    assert json.loads((tmp_path / "cut" / "checkpoint.json").read_text())["step"] == 2
    resumed = fit(toy_cfg(tmp_path / "cut", steps=4, resume=True, teacher="test-nan-after",
                          teacher_kwargs={"after": 99}), log=lambda s: None)
    assert json.loads((tmp_path / "cut" / "checkpoint.json").read_text())["step"] == 4
    steps = [json.loads(l).get("step") for l in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps[-2:] == [3, 4]
    from safetensors.torch import load_file

    a, b = load_file(str(tmp_path / "full" / "student.safetensors")), load_file(str(tmp_path / "cut" / "student.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)    # same trajectory as the uncut run
    assert resumed.final_loss == pytest.approx(full.final_loss, rel=1e-4)


def test_resume_needs_a_checkpoint_and_a_matching_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        fit(toy_cfg(tmp_path / "none", resume=True), log=lambda s: None)
    fit(toy_cfg(tmp_path / "r", steps=1), log=lambda s: None)
    with pytest.raises(ValueError, match="was a 'sns' run"):
        fit(toy_cfg(tmp_path / "r", method="squeeze", steps=2, resume=True), log=lambda s: None)
    (tmp_path / "r" / "checkpoint.json").write_text('{"step": 1, "meth')          # a torn / corrupt file
    with pytest.raises(ValueError, match=r"checkpoint.json is unreadable or corrupt"):
        fit(toy_cfg(tmp_path / "r", steps=2, resume=True), log=lambda s: None)


# --- guards ---------------------------------------------------------------------------------------

def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    from gandistill.evaluate import load_student

    run = tmp_path / "nan"
    with pytest.raises(TrainingStopped, match=r"non-finite.*last good checkpoint \(step 3\)") as info:
        fit(toy_cfg(run, steps=6, ckpt_every=1, teacher="test-nan-after", teacher_kwargs={"after": 3}),
            log=lambda s: None)
    assert info.value.reason == "non-finite" and info.value.step == 4       # the 4th step saw the NaN
    assert info.value.checkpoint == run / "checkpoint.json"
    assert json.loads((run / "checkpoint.json").read_text())["step"] == 3
    model = load_student(run).model
    assert all(torch.isfinite(v.float()).all() for v in model.state_dict().values())
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["stopped"] == "non-finite"


def test_update_that_makes_weights_nan_is_never_checkpointed(tmp_path, monkeypatch):
    # the loss is finite but the last update poisons the weights: the final checkpoint must not be written
    real_step, calls = torch.optim.SGD.step, {"n": 0}

    def poisoned_step(self, *a, **k):
        out = real_step(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 3:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.SGD, "step", poisoned_step)
    run = tmp_path / "poison"
    with pytest.raises(TrainingStopped, match=r"non-finite weights.*last good checkpoint \(step 2\)") as info:
        fit(toy_cfg(run, steps=3, ckpt_every=1), log=lambda s: None)
    assert info.value.reason == "non-finite"
    assert json.loads((run / "checkpoint.json").read_text())["step"] == 2


def test_unlabelled_dataset_with_eval_fails_before_training(tmp_path):
    from PIL import Image

    data = tmp_path / "flat"
    data.mkdir()
    for i in range(20):
        Image.new("RGB", (16, 16), (i * 10, 0, 0)).save(data / f"{i}.png")
    cfg = toy_cfg(tmp_path / "run", dataset="imagefolder", data_root=str(data), eval="linear")
    with pytest.raises(ValueError, match="no labels"):
        fit(cfg, log=lambda s: None)
    assert not (tmp_path / "run" / "checkpoint.json").exists()      # nothing was trained
    with pytest.raises(ValueError, match="no labels"):
        resolved_config(cfg)                                         # --dry-run says so too
    fit(toy_cfg(tmp_path / "ok", dataset="imagefolder", data_root=str(data), steps=1), log=lambda s: None)


def test_collapse_is_detected_for_squeeze_without_var_cov(tmp_path):
    # ablation c (Table 5): T_phi without var/cov collapses; a large lr (and the invariance weight 25 of
    # squeeze, so only var/cov differ between the two runs) makes it happen in a few steps
    kw = dict(steps=40, batch=16, base_lr=2.0, sim=25.0, augment="ssl-cifar", collapse_patience=3, ckpt_every=1)
    with pytest.raises(TrainingStopped, match="collapsed") as info:
        fit(toy_cfg(tmp_path / "c", method="squeeze-novarcov", **kw), log=lambda s: None)
    assert info.value.reason == "collapse"
    step = json.loads((tmp_path / "c" / "checkpoint.json").read_text())["step"]
    assert step <= info.value.step - 3                    # the kept checkpoint predates the 3 collapsed steps
    # with var/cov (squeeze) the same run does not collapse
    fit(toy_cfg(tmp_path / "ok", method="squeeze", **{**kw, "steps": 20}), log=lambda s: None)


def test_cli_exits_nonzero_with_the_message(tmp_path):
    from typer.testing import CliRunner

    from gandistill.cli import app

    res = CliRunner().invoke(app, ["fit", "--method", "sns", "--teacher", "test-nan-after", "--teacher-opt", "after=1",
                                   "--student", "test_resnet", "--img-size", "16", "--batch", "8", "--steps", "4",
                                   "--dim", "64", "--eval", "none", "--ckpt-every", "1", "--out", str(tmp_path / "x")])
    assert res.exit_code == 3, res.output
    assert "non-finite" in res.output and "last good checkpoint" in res.output


def test_dry_run_prints_resolved_config_and_writes_nothing(tmp_path):
    from typer.testing import CliRunner

    from gandistill.cli import app

    res = CliRunner().invoke(app, ["fit", "--dry-run", "--method", "squeeze", "--batch", "128", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["resolved"]["lr"] == pytest.approx(0.03 * 128 / 256) and data["method"]["name"] == "squeeze"
    assert not (tmp_path / "d").exists()


def _ddp_worker(rank, world, port, out):
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    fit(toy_cfg(out, steps=2, batch=16, device="cpu"), log=lambda s: None)


@pytest.mark.slow
def test_ddp_two_process_gloo(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path / "ddp")), nprocs=2, join=True)
    cfg = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert cfg["world_size"] == 2
    assert (cfg["resolved"]["batch_syn_per_rank"], cfg["resolved"]["batch_real_per_rank"]) == (4, 4)
    assert json.loads((tmp_path / "ddp" / "checkpoint.json").read_text())["step"] == 2


def test_package_exports_are_lazy():
    import gandistill
    from gandistill import engine

    assert gandistill.fit is engine.fit and gandistill.FitConfig is engine.FitConfig
    assert callable(gandistill.create_teacher) and callable(gandistill.evaluate)
    import gandistill.evaluate as ev                 # still the module, and callable as the function
    assert ev.evaluate is not None and gandistill.evaluate.linear_probe is ev.linear_probe
    with pytest.raises(ValueError, match="protocol"):
        gandistill.evaluate("random:resnet10t", protocol="nope")
    with pytest.raises(AttributeError):
        gandistill.no_such_name


def test_existing_run_folder_is_not_overwritten(tmp_path):
    fit(toy_cfg(tmp_path / "r", steps=1), log=lambda s: None)
    with pytest.raises(ValueError, match="already holds a run"):
        fit(toy_cfg(tmp_path / "r", steps=1), log=lambda s: None)


def test_real_stream_ranks_take_disjoint_slices_of_each_epoch():
    from gandistill.engine import Dist, RealStream

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 20

        def __getitem__(self, i):
            return torch.full((1,), float(i)), 0

    class Fast(Items):
        def take(self, idx):
            return torch.as_tensor(idx, dtype=torch.float32).view(-1, 1), None

    for ds in (Fast(), Items()):
        seen = []
        for rank in (0, 1):
            s = RealStream(ds, 3, seed=0, d=Dist(world=2, rank=rank))
            assert s.per_epoch == 20 // 6
            seen.append(torch.cat([s.next() for _ in range(s.per_epoch)]).view(-1).tolist())
        assert not set(seen[0]) & set(seen[1]) and len(set(seen[0]) | set(seen[1])) == 18
        # the next epoch is a new permutation for both ranks
        s = RealStream(ds, 3, seed=0, d=Dist(world=2, rank=0))
        first = [s.next() for _ in range(s.per_epoch)]
        second = [s.next() for _ in range(s.per_epoch)]
        assert s.epoch == 1 and torch.cat(first).tolist() != torch.cat(second).tolist()


def test_distill_step_makes_three_student_passes_and_trains_T_phi():
    # SnS: synthetic, real view 1, real view 2 are separate student passes (own BN stats); z_target is
    # not detached, so T_phi gets gradients through the invariance term
    from gandistill.engine import DistillModel
    from gandistill.methods import LossWeights, get_method, method_loss
    from gandistill.squeeze import SqueezeModule

    torch.manual_seed(0)
    calls = []

    class S(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(12, 8)

        def forward(self, x):
            calls.append(x.shape[0])
            return self.lin(x.flatten(1))

    head = SqueezeModule([4, 6], dim=8, hidden=16)
    model = DistillModel("distill", S(), head).train()
    targets = [torch.randn(6, 4), torch.randn(6, 6)]            # frozen-teacher targets (no grad)
    out = model(x_syn=torch.randn(6, 12), targets=targets, v1=torch.randn(5, 12), v2=torch.randn(5, 12))
    assert calls == [6, 5, 5]
    loss = method_loss(get_method("sns"), LossWeights(25, 25, 1, 0.5), out)["loss"]
    loss.backward()
    assert head.laterals[0].weight.grad is not None and head.laterals[0].weight.grad.abs().sum() > 0
    assert model.student.lin.weight.grad.abs().sum() > 0
