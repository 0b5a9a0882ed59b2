"""Loggers: metrics.jsonl always; TensorBoard event files (read back with EventAccumulator) and an offline
W&B run folder when asked; a clear one-line error naming the extra when the package is missing."""
import json

import pytest
import torch

from gandistill.engine.loggers import RunLoggers, check_loggers
from gandistill.io.errors import ConfigError


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_scalars_images_and_table_read_back(tmp_path):
    pytest.importorskip("tensorboard")
    logs = RunLoggers(tmp_path, ["tensorboard"], jsonl=tmp_path / "metrics.jsonl", config={"method": "sns"})
    for step in (1, 2, 3):
        logs.log_scalars(step, {"loss": 1.0 / step, "lr": 0.1, "note": "text is skipped"})
    logs.log_images(1, "teacher/samples", torch.rand(4, 3, 8, 8) * 2 - 1)
    logs.log_table("probes", [{"name": "student", "knn_top1": 91.5}, {"name": "random", "knn_top1": 40.0}])
    logs.close()
    acc = _events(tmp_path / "tb")
    loss = acc.Scalars("loss")
    assert [e.step for e in loss] == [1, 2, 3] and loss[1].value == pytest.approx(0.5)
    assert acc.Scalars("probes/student/knn_top1")[0].value == pytest.approx(91.5)
    img = acc.Images("teacher/samples")[0]
    assert img.step == 1 and img.width > 8 and img.height > 8            # a 2 x 2 grid of 8 px images
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[0] == {"step": 1, "loss": 1.0, "lr": 0.1, "note": "text is skipped"}


def test_fit_with_tensorboard_logs_losses_lr_guards_images_and_probes(tmp_path):
    pytest.importorskip("tensorboard")
    from gandistill.engine import FitConfig, fit
    from gandistill.teachers.stylegan2 import Generator

    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                  mapping_kwargs={"num_layers": 1}, synthesis_kwargs={"channel_base": 128, "channel_max": 16})
    cfg = FitConfig(method="sns", student="test_resnet", img_size=16, batch=8, steps=4, dim=32, proj_hidden=16,
                    squeeze_hidden=16, out=str(tmp_path / "run"), eval="knn", eval_random=False,
                    eval_raw_pixels=False, eval_max_train=64, eval_max_test=32, ckpt_every=2, log_every=1,
                    teacher_kwargs={"G": G}, device="cpu", progress=False, loggers=("tensorboard",))
    fit(cfg, log=lambda s: None)
    acc = _events(tmp_path / "run" / "tb")
    tags = acc.Tags()
    for tag in ("loss", "squeeze/loss", "span/loss", "lr", "img_s", "spread", "low_spread_steps"):
        assert tag in tags["scalars"], (tag, tags["scalars"])
    assert [e.step for e in acc.Scalars("loss")] == [1, 2, 3, 4]
    assert {"teacher/samples", "teacher/augmented"} <= set(tags["images"])
    assert sorted({e.step for e in acc.Images("teacher/samples")}) == [0, 2]       # at the start and every ckpt
    assert any(t.startswith("probes/") for t in tags["scalars"])                  # the closing probe table
    # metrics.jsonl is unchanged in kind: one line per logged step
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 4


def test_logging_images_does_not_change_the_trajectory(tmp_path):
    pytest.importorskip("tensorboard")
    from gandistill.engine import FitConfig, fit
    from gandistill.teachers.stylegan2 import Generator

    losses = []
    for i, loggers in enumerate([(), ("tensorboard",)]):
        torch.manual_seed(0)
        G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                      mapping_kwargs={"num_layers": 1}, synthesis_kwargs={"channel_base": 128, "channel_max": 16})
        cfg = FitConfig(method="sns", student="test_resnet", img_size=16, batch=8, steps=3, dim=32, proj_hidden=16,
                        squeeze_hidden=16, out=str(tmp_path / f"r{i}"), eval="none", ckpt_every=1, log_every=1,
                        teacher_kwargs={"G": G}, device="cpu", progress=False, loggers=loggers)
        fit(cfg, log=lambda s: None)
        losses.append([json.loads(s)["loss"] for s in (tmp_path / f"r{i}" / "metrics.jsonl").read_text().splitlines()])
    assert losses[0] == losses[1]


def test_wandb_offline_run_folder(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    logs = RunLoggers(tmp_path, ["wandb"], config={"method": "sns"}, name="t")
    logs.log_scalars(1, {"loss": 0.5})
    logs.log_images(1, "teacher/samples", torch.rand(4, 3, 8, 8))
    logs.log_table("probes", [{"name": "student", "knn_top1": 91.5}])
    logs.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((tmp_path / "wandb").iterdir())
    assert list(runs[0].glob("run-*.wandb")), "no offline run file"


def test_missing_extra_and_unknown_logger_are_one_line_errors(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'gandistill\[wandb\]'"):
        check_loggers(["wandb"])
    with pytest.raises(ConfigError, match="unknown logger 'mlflow'"):
        check_loggers(["mlflow"])


def test_gan_train_with_tensorboard_logs_losses_and_grids(tmp_path):
    pytest.importorskip("tensorboard")
    from gandistill.gan.config import gan_config
    from gandistill.gan.loop import train_gan

    B = 4
    cfg = gan_config("tiny", out=str(tmp_path / "gan"), kimg=3 * B / 1000, resolution=8, batch=B, grid_n=4,
                     net_overrides=dict(channel_base=64, channel_max=8, z_dim=8, w_dim=8, map_layers=1),
                     threads=1, tick_kimg=B / 1000, snap_kimg=2 * B / 1000, progress=False, ema_kimg=0.01,
                     loggers=("tensorboard",))
    train_gan(cfg)
    acc = _events(tmp_path / "gan" / "tb")
    tags = acc.Tags()
    assert {"loss_G", "loss_D", "augment_p", "img_per_s"} <= set(tags["scalars"]), tags["scalars"]
    assert [e.step for e in acc.Scalars("loss_G")] == [1, 2, 3]
    assert {"G_ema/samples", "data/real", "data/augmented"} <= set(tags["images"])
    # metrics.jsonl keeps its own format (one line per tick)
    assert len((tmp_path / "gan" / "metrics.jsonl").read_text().splitlines()) == 3


def test_compare_passes_its_loggers_to_every_training(tmp_path):
    from types import SimpleNamespace

    from gandistill.compare.runner import CompareConfig, _fit_config

    cfg = _fit_config(SimpleNamespace(fit={"method": "sns"}), CompareConfig(loggers=("tensorboard",)),
                      tmp_path / "r", False)
    assert cfg.loggers == ("tensorboard",)
