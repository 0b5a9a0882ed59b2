"""Bad input, clearly refused: each mistake fails early with a message that names the problem."""
import json

import pytest
import torch

from gandistill.engine import FitConfig, fit, resolved_config
from gandistill.teachers.stylegan2 import save_sg2
from conftest import tiny_G


def toy(out, **kw):
    base = dict(method="sns", student="test_resnet", img_size=16, batch=8, steps=2, dim=32, proj_hidden=16,
                squeeze_hidden=16, out=str(out), eval="none", ckpt_every=1, teacher_kwargs={"G": tiny_G()})
    base.update(kw)
    return FitConfig(**base)


def quiet(cfg):
    return fit(cfg, log=lambda s: None)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad") / "run"
    quiet(toy(out))
    return out


def test_unknown_names_suggest_close_matches():
    from gandistill.students import create_student

    with pytest.raises(KeyError, match="Did you mean: sns"):
        resolved_config(FitConfig(method="snss"))
    with pytest.raises(KeyError, match="Did you mean: digits"):
        resolved_config(FitConfig(dataset="digitz"))
    with pytest.raises(KeyError, match="sg2-generator"):
        quiet(FitConfig(teacher="sg2-generater", steps=1, eval="none"))
    with pytest.raises(KeyError, match="ssl-cifar"):
        quiet(toy("unused", augment="ssl-cifarr"))
    with pytest.raises(KeyError, match="resnet18"):
        create_student("resnet19")


def test_student_that_cannot_take_the_input_size(tmp_path):
    # test_vit cuts 16x16 patches: 8x8 inputs (the teacher's 16 px images resized to --img-size 8) do not fit
    with pytest.raises(ValueError, match=r"student 'test_vit' cannot take 8x8 inputs .*teacher's 16x16.*patch"):
        quiet(toy(tmp_path / "vit", student="test_vit", img_size=8))
    assert not (tmp_path / "vit" / "checkpoint.json").exists()


def test_teacher_images_must_be_rgb(tmp_path):
    with pytest.raises(ValueError, match="1-channel images; students take RGB"):
        quiet(toy(tmp_path / "g", teacher_kwargs={"G": tiny_G(channels=1)}))


def test_dataset_root_with_the_wrong_layout(tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"no images found in .*flat.*expected <root>/<class_name>/<image>"):
        quiet(toy(tmp_path / "r", dataset="imagefolder", data_root=str(tmp_path / "flat")))
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py/data_batch_1"):
        resolved_config(FitConfig(dataset="cifar10", data_root=str(tmp_path / "flat")))


def test_checkpoint_of_the_wrong_kind(run, tmp_path):
    from gandistill.students.export import ExportError, export_backbone
    from gandistill.teachers import create_teacher

    gan = save_sg2(tmp_path / "gan", G_ema=tiny_G())
    with pytest.raises(ExportError, match="not a gandistill student run"):
        export_backbone(gan, tmp_path / "exp")                  # a GAN folder is not a student run
    with pytest.raises(FileNotFoundError, match="not a gandistill StyleGAN2 checkpoint"):
        create_teacher("sg2-generator", ckpt=str(run))          # a student run is not a GAN checkpoint
    other = tmp_path / "other"
    other.mkdir()
    (other / "checkpoint.json").write_text(json.dumps({"format": "something-else", "step": 3}))
    with pytest.raises(ValueError, match="not a gandistill student checkpoint"):
        quiet(toy(other, resume=True))


@pytest.mark.parametrize("victim", ["student.safetensors", "squeeze.safetensors", "train_state.pt"])
def test_truncated_checkpoint(run, tmp_path, victim):
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    data = (cut / victim).read_bytes()
    (cut / victim).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{victim} is truncated or corrupt"):
        quiet(toy(cut, resume=True))
    if victim == "student.safetensors":
        from gandistill.evaluate import CheckpointError, load_student

        with pytest.raises(CheckpointError, match="corrupt or unreadable"):
            load_student(cut)


def test_batch_too_small_for_vicreg_terms():
    with pytest.raises(ValueError, match="batch must be at least 2 per rank"):
        resolved_config(FitConfig(batch=1, teacher="sg2-generator"))
    with pytest.raises(ValueError, match=r"synthetic part of the batch has 1 image.*at least 2"):
        resolved_config(FitConfig(batch=2, teacher="sg2-generator"))         # alpha 0.5: 1 synthetic, 1 real
    with pytest.raises(ValueError, match=r"real part of the batch has 1 image.*at least 2"):
        resolved_config(FitConfig(batch=6, alpha=0.8, teacher="sg2-generator"))


def test_sync_bn_on_cpu_ranks():
    from gandistill.engine import make_plan

    with pytest.raises(ValueError, match="sync-bn needs GPUs"):
        make_plan(FitConfig(sync_bn=True), 100, 32, torch.device("cpu"), 2)
    make_plan(FitConfig(sync_bn=True), 100, 32, torch.device("cpu"), 1)       # one process: nothing to sync


def test_alpha_out_of_range():
    for alpha in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
            resolved_config(FitConfig(alpha=alpha, teacher="sg2-generator"))
    with pytest.raises(ValueError, match="alpha=0 has no synthetic images"):
        resolved_config(FitConfig(alpha=0.0, teacher="sg2-generator"))


def test_resume_on_a_different_config(run):
    with pytest.raises(ValueError, match=r"different config \(.*batch: 8 -> 16.*seed: 0 -> 1"):
        quiet(toy(run, batch=16, seed=1, resume=True))
    with pytest.raises(ValueError, match=r"total_steps: 2 -> 5"):
        quiet(toy(run, steps=5, resume=True))
    with pytest.raises(ValueError, match="was a 'sns' run of 'test_resnet', not 'squeeze'"):
        quiet(toy(run, method="squeeze", resume=True))
    quiet(toy(run, resume=True, log_every=5, collapse_patience=3))    # logging / guards may change
