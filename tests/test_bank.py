"""Teacher feature bank: file layout, faithful replay of the teacher's samples, refusal of mismatched banks."""
import json
import struct

import numpy as np
import pytest
import torch

from gandistill.teachers.bank import (BANK_FILE, BankError, BankExpectation, BankTeacher, build_bank, checkpoint_fingerprint,
                             read_header)
from gandistill.teachers import create_teacher
from gandistill.teachers.stylegan2 import Generator, save_sg2


def tiny_G(seed=0, c_dim=0, res=16):
    torch.manual_seed(seed)
    return Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=res, img_channels=3,
                     mapping_kwargs={"num_layers": 1},
                     synthesis_kwargs={"channel_base": 64, "channel_max": 8}).eval()


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpts")
    paths = {}
    for name, kw in {"a": dict(seed=0), "b": dict(seed=1), "cond": dict(seed=2, c_dim=3), "r8": dict(seed=0, res=8)}.items():
        paths[name] = root / name
        save_sg2(paths[name], G_ema=tiny_G(**kw))
    return paths


@pytest.fixture(scope="module")
def bank(ckpts, tmp_path_factory):
    out = tmp_path_factory.mktemp("bank")
    t = create_teacher("sg2-generator", ckpt=str(ckpts["a"]))
    build_bank(t, 10, out, teacher_name="sg2-generator", ckpt=str(ckpts["a"]), batch=4, seed=3)
    return out


def test_layout_header_and_replay_of_the_teacher(bank, ckpts):
    h = read_header(bank)
    assert h["n"] == 10 and h["teacher"] == "sg2-generator" and h["img_resolution"] == 16
    assert h["target_names"] == ["b4", "b8", "b16"] and h["target_dims"] == [8, 8, 4]
    assert h["teacher_fingerprint"] == checkpoint_fingerprint(ckpts["a"]) and h["labels"] is None
    raw = (bank / BANK_FILE).read_bytes()
    assert raw[:8] == b"GDBANK01" and h["offsets"]["images"] % 4096 == 0
    (size,) = struct.unpack("<Q", raw[8:16])
    assert json.loads(raw[16:16 + size]) == h
    # the stored items are the teacher's samples for the bank's seed, in batches of 4: uint8 images, fp16 targets
    t = create_teacher("sg2-generator", ckpt=str(ckpts["a"]))
    g = torch.Generator().manual_seed(3)
    ref = [t.sample(4, generator=g), t.sample(4, generator=g), t.sample(2, generator=g)]
    img = torch.cat([s.images for s in ref])
    tgt = torch.cat([torch.cat(s.targets, 1) for s in ref])
    u8 = np.frombuffer(raw, np.uint8, 10 * 3 * 16 * 16, h["offsets"]["images"]).reshape(10, 3, 16, 16)
    assert np.array_equal(u8, ((img + 1) * 127.5).round().to(torch.uint8).numpy())
    f16 = np.frombuffer(raw, np.float16, 10 * 20, h["offsets"]["targets"]).reshape(10, 20)
    assert np.array_equal(f16, tgt.half().numpy())


def test_bank_teacher_samples_like_a_teacher(bank, ckpts):
    bt = BankTeacher(bank, BankExpectation("sg2-generator", str(ckpts["a"]), 16))
    assert bt.target_dims == (8, 8, 4) and bt.img_resolution == 16 and bt.can_sample and not bt.training
    g = torch.Generator().manual_seed(0)
    s = bt.sample(32, generator=g)
    assert s.images.shape == (32, 3, 16, 16) and s.images.dtype == torch.float32
    assert s.images.min() >= -1 and s.images.max() <= 1 and s.labels is None
    assert [t.shape for t in s.targets] == [(32, 8), (32, 8), (32, 4)]
    # item i of the sample is bank item idx[i]: images within half a quantisation step of the teacher's
    idx = bt.indices(32, torch.Generator().manual_seed(0))
    t = create_teacher("sg2-generator", ckpt=str(ckpts["a"]))
    gen = torch.Generator().manual_seed(3)
    full = [t.sample(4, generator=gen), t.sample(4, generator=gen), t.sample(2, generator=gen)]
    img = torch.cat([x.images for x in full])
    assert (s.images - img[idx]).abs().max() <= 1 / 127.5 + 1e-6
    assert torch.allclose(s.targets[0], torch.cat([x.targets[0] for x in full])[idx], rtol=1e-3, atol=1e-3)
    # seeded draws repeat; all items get drawn (uniform with replacement)
    again = bt.sample(32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.images, s.images)
    many = bt.indices(2000, torch.Generator().manual_seed(1))
    counts = torch.bincount(many, minlength=10)
    assert counts.min() > 150 and counts.max() < 250
    assert bt.describe()["teacher_fingerprint"] == checkpoint_fingerprint(ckpts["a"])


def test_mismatched_bank_is_refused_with_a_clear_error(bank, ckpts):
    with pytest.raises(BankError, match="teacher 'sg2-generator' .*'sg2-latent'"):
        BankTeacher(bank, BankExpectation("sg2-latent", str(ckpts["a"]), 16))
    with pytest.raises(BankError, match=r"resolution 16 px .*32 px"):
        BankTeacher(bank, BankExpectation("sg2-generator", str(ckpts["a"]), 32))
    with pytest.raises(BankError, match="other weights"):
        BankTeacher(bank, BankExpectation("sg2-generator", str(ckpts["b"]), 16))
    with pytest.raises(BankError, match="teacher settings"):
        BankTeacher(bank, BankExpectation("sg2-generator", str(ckpts["a"]), 16, teacher_kwargs={"blocks": "b4"}))
    # every mismatch is named at once
    with pytest.raises(BankError) as e:
        BankTeacher(bank, BankExpectation("sg2-latent", str(ckpts["b"]), 8))
    assert "teacher" in str(e.value) and "resolution" in str(e.value) and "checkpoint" in str(e.value)


def test_missing_corrupt_and_truncated_banks(bank, tmp_path):
    with pytest.raises(FileNotFoundError, match="bank build"):
        BankTeacher(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / BANK_FILE).write_bytes(b"PK\x03\x04 not a bank at all")
    with pytest.raises(BankError, match="magic"):
        read_header(bad)
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / BANK_FILE).write_bytes((bank / BANK_FILE).read_bytes()[:-100])
    with pytest.raises(BankError, match="truncated"):
        read_header(cut)
    with pytest.raises(BankError, match="at least 2"):
        build_bank(None, 1, tmp_path / "x", teacher_name="sg2-generator")


def test_conditional_teacher_labels_and_latent_targets(ckpts, tmp_path):
    t = create_teacher("sg2-generator", ckpt=str(ckpts["cond"]))
    build_bank(t, 9, tmp_path / "c", teacher_name="sg2-generator", ckpt=str(ckpts["cond"]), batch=9)
    bt = BankTeacher(tmp_path / "c", BankExpectation("sg2-generator", str(ckpts["cond"]), 16))
    s = bt.sample(6, generator=torch.Generator().manual_seed(0))
    assert s.labels is not None and s.labels.dtype == torch.int64 and int(s.labels.max()) < 3
    assert bt.c_dim == 3
    stored = torch.from_numpy(bt.stored_labels())
    assert sorted(torch.bincount(stored, minlength=3).tolist()) == [3, 3, 3]  # the teacher's class balance
    lat = create_teacher("sg2-latent", ckpt=str(ckpts["a"]))
    build_bank(lat, 4, tmp_path / "w", teacher_name="sg2-latent", ckpt=str(ckpts["a"]))
    assert BankTeacher(tmp_path / "w").target_names == ("w",)


def test_bank_teacher_drives_an_engine_step(bank, ckpts, tmp_path):
    """The engine's parts and step accept a BankTeacher in place of the generator teacher."""
    from gandistill.data import load_dataset
    from gandistill.engine import FitConfig, step
    from gandistill.engine.distributed import Dist
    from gandistill.engine.parts import build_parts
    from gandistill.engine.plan import make_plan

    cfg = FitConfig(method="sns", batch=8, steps=1, eval="none", img_size=16, dim=16, proj_hidden=16,
                    squeeze_hidden=16, out=str(tmp_path / "run"))
    ds = load_dataset("digits", split="train", img_size=16)
    plan = make_plan(cfg, len(ds), 16, torch.device("cpu"), 1)
    bt = BankTeacher(bank, BankExpectation("sg2-generator", str(ckpts["a"]), plan.img_size))
    parts = build_parts(plan, bt, ds, torch.device("cpu"), Dist())
    out = step.forward(plan, parts, torch.device("cpu"))
    assert not out.bad and torch.isfinite(out.loss)
    step.update(parts, out.loss)


def test_cli_build_and_info(ckpts, tmp_path):
    from typer.testing import CliRunner

    from gandistill.cli.bank import bank_app

    r = CliRunner().invoke(bank_app, ["build", "--teacher-ckpt", str(ckpts["a"]), "--n", "5", "--out",
                                      str(tmp_path / "k"), "--batch", "2", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert read_header(tmp_path / "k")["n"] == 5
    r = CliRunner().invoke(bank_app, ["info", str(tmp_path / "k")])
    assert r.exit_code == 0 and '"teacher": "sg2-generator"' in r.output
