"""Tests for gandistill.evaluate: kNN vs a brute-force statement, linear probe (fast + paper
protocol), checkpoint/run-folder loading and the error paths. Tiny data, CPU, seconds."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from gandistill.evaluate import (
    CheckpointError,
    EvalDataError,
    evaluate,
    extract_features,
    knn_eval,
    knn_predict,
    linear_probe,
)
from gandistill.evaluation.linear import cosine_lr, new_head, standardise


# ----------------------------------------------------------------------------- helpers
def brute_force_knn(train, labels, test, k, t, num_classes):
    """Independent re-statement of the InstDisc weighted kNN with plain Python loops."""
    def norm(v):
        n = math.sqrt(sum(a * a for a in v))
        return [a / n for a in v]

    bank = [norm(r) for r in train.tolist()]
    preds = []
    for q in test.tolist():
        q = norm(q)
        sims = sorted(((sum(a * b for a, b in zip(q, f)), i) for i, f in enumerate(bank)), reverse=True)
        score = [0.0] * num_classes
        for s, i in sims[:min(k, len(bank))]:
            score[int(labels[i])] += math.exp(s / t)
        preds.append(max(range(num_classes), key=lambda c: score[c]))
    return torch.tensor(preds)


def clusters(n_per, num_classes, dim, sep=6.0, seed=0):
    """Gaussian clusters around well-separated random centres: linearly separable w.h.p."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=g) * sep
    y = torch.arange(num_classes).repeat_interleave(n_per)
    x = centres[y] + torch.randn(len(y), dim, generator=g)
    return x, y


class LabelledImages(torch.utils.data.Dataset):
    """A tiny image dataset with the attributes gandistill datasets carry."""

    def __init__(self, x, y, num_classes):
        self.x, self.y = x, y
        self.name, self.num_classes, self.resolution = "toy", num_classes, x.shape[-1]
        self.mean, self.std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def colour_images(n_per, num_classes=3, size=8, seed=0):
    """Images whose class sets which channel is bright: separable by a linear map of the pixels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_classes).repeat_interleave(n_per)
    x = torch.rand(len(y), 3, size, size, generator=g) * 0.3
    x[torch.arange(len(y)), y % 3] += 0.6
    return x.clamp(0, 1), y


# ----------------------------------------------------------------------------- kNN
@pytest.mark.parametrize("k,t", [(1, 0.1), (5, 0.1), (7, 0.5), (200, 0.07)])
def test_knn_predict_matches_brute_force(k, t):
    g = torch.Generator().manual_seed(k)
    train, labels = torch.randn(30, 6, generator=g), torch.randint(0, 4, (30,), generator=g)
    test = torch.randn(17, 6, generator=g)
    got = knn_predict(train, labels, test, k=k, t=t, num_classes=4, chunk=5)
    assert torch.equal(got, brute_force_knn(train, labels, test, k, t, 4))


def test_knn_eval_top1_and_k_clamped():
    g = torch.Generator().manual_seed(3)
    xtr, ytr = torch.randn(12, 4, generator=g), torch.randint(0, 3, (12,), generator=g)
    xte, yte = torch.randn(9, 4, generator=g), torch.randint(0, 3, (9,), generator=g)
    res = knn_eval(nn.Identity(), (xtr, ytr), (xte, yte), k=200, t=0.1, num_classes=3, batch=4)
    expected = 100.0 * (brute_force_knn(xtr, ytr, xte, 200, 0.1, 3) == yte).float().mean().item()
    assert res["k"] == 12 and res["num_train"] == 12 and res["num_test"] == 9
    assert res["top1"] == pytest.approx(expected)


def test_knn_k1_recovers_training_labels():
    x, y = clusters(5, 4, 8)
    assert knn_eval(lambda v: v, (x, y), (x, y), k=1)["top1"] == 100.0


def test_knn_errors():
    x, y = torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 0, 1])
    with pytest.raises(EvalDataError, match="dims differ"):
        knn_predict(x, y, torch.randn(2, 4))
    with pytest.raises(ValueError, match="k must be"):
        knn_predict(x, y, x, k=0)
    with pytest.raises(EvalDataError, match="unlabelled"):
        knn_eval(nn.Identity(), (x, torch.full((6,), -1)), (x, y))
    with pytest.raises(EvalDataError, match="empty"):
        knn_eval(nn.Identity(), (x[:0], y[:0]), (x, y))


# ----------------------------------------------------------------------------- features
def test_extract_features_normalises_with_dataset_stats_and_restores_mode():
    x, y = colour_images(2)
    ds = LabelledImages(x, y, 3)
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.9))     # dropout must be off in eval
    net.train()
    f, labels = extract_features(net, ds, batch=4)
    m = torch.tensor(ds.mean).view(1, 3, 1, 1)
    s = torch.tensor(ds.std).view(1, 3, 1, 1)
    assert torch.allclose(f, ((x - m) / s).flatten(1), atol=1e-6)
    assert torch.equal(labels, y) and net.training


def test_extract_features_prefers_student_features():
    class Fake(nn.Module):
        def features(self, x):
            return x.flatten(1)[:, :2]

        def forward(self, x):
            raise AssertionError("the probe must read features before the projector")

    f, _ = extract_features(Fake(), (torch.rand(3, 5), torch.zeros(3, dtype=torch.long)))
    assert f.shape == (3, 2)


# ----------------------------------------------------------------------------- linear probe parts
def test_probe_parts_match_their_formulas():
    g = torch.Generator().manual_seed(0)
    head = new_head(300, 50, g)
    assert torch.all(head.bias == 0) and abs(head.weight.std().item() - 0.01) < 5e-4
    assert cosine_lr(30.0, 0, 90) == 30.0
    assert cosine_lr(30.0, 45, 90) == pytest.approx(15.0)
    assert cosine_lr(8.0, 3, 6) == pytest.approx(8.0 * 0.5 * (1 + math.cos(math.pi * 3 / 6)))
    a = torch.randn(20, 4) * torch.tensor([1.0, 5.0, 0.0, 2.0]) + 3.0
    b = torch.randn(7, 4)
    sa, sb = standardise(a, b)
    mu, sd = a.mean(0), a.std(0)
    for j in (0, 1, 3):
        assert torch.allclose(sa[:, j], (a[:, j] - mu[j]) / sd[j] / 2.0, atol=1e-5)
        assert torch.allclose(sb[:, j], (b[:, j] - mu[j]) / sd[j] / 2.0, atol=1e-5)
    assert torch.all(sb[:, 2] == 0)   # a dimension constant on train is dropped, not blown up


def test_fast_probe_separable_features_reach_100():
    xtr, ytr = clusters(40, 5, 16, seed=1)
    xte, yte = clusters(20, 5, 16, seed=1)
    res = linear_probe(lambda v: v, (xtr, ytr), (xte, yte), epochs=20, batch=64, fast=True)
    assert res["top1"] == 100.0 and res["best_top1"] == 100.0
    assert res["protocol"] == "linear-fast" and res["epochs"] == 20 and res["feature_dim"] == 16
    assert res["lr"] == pytest.approx(30.0 * 64 / 256)


def test_fast_probe_identity_backbone_on_images():
    xtr, ytr = colour_images(20, seed=0)
    xte, yte = colour_images(10, seed=1)
    progress = []
    res = linear_probe(nn.Flatten(), LabelledImages(xtr, ytr, 3), LabelledImages(xte, yte, 3),
                       epochs=10, batch=16, fast=True, eval_every=3, progress=progress.append)
    assert res["top1"] >= 99.0 and res["num_classes"] == 3
    assert [p["epoch"] for p in progress] == list(range(10))
    assert [p["epoch"] for p in progress if p["top1"] is not None] == [0, 3, 6, 9]
    assert res["best_top1"] == max(p["top1"] for p in progress if p["top1"] is not None)
    assert res["top1"] == progress[-1]["top1"]


def test_fast_probe_is_seeded_and_without_signal_stays_near_chance():
    x, y = clusters(30, 3, 8, sep=0.0, seed=2)           # no signal: centres coincide
    xte, yte = clusters(30, 3, 8, sep=0.0, seed=5)
    r1 = linear_probe(lambda v: v, (x, y), (xte, yte), epochs=5, batch=32, fast=True, seed=4)
    r2 = linear_probe(lambda v: v, (x, y), (xte, yte), epochs=5, batch=32, fast=True, seed=4)
    assert r1["top1"] == r2["top1"] and r1["train_loss"] == r2["train_loss"]
    assert r1["top1"] < 70.0


def test_probe_errors():
    x, y = clusters(4, 2, 3)
    with pytest.raises(ValueError, match="epochs"):
        linear_probe(lambda v: v, (x, y), (x, y), epochs=0, fast=True)
    with pytest.raises(EvalDataError, match="unlabelled"):
        linear_probe(lambda v: v, (x, torch.full_like(y, -1)), (x, y), epochs=1, fast=True)
    with pytest.raises(EvalDataError, match="empty"):
        linear_probe(lambda v: v, (x, y), (x[:0], y[:0]), epochs=1, fast=True)
    unlabelled = LabelledImages(torch.rand(4, 3, 8, 8), torch.full((4,), -1), 0)
    with pytest.raises(EvalDataError, match="no labels"):
        linear_probe(nn.Flatten(), unlabelled, unlabelled, epochs=1, fast=True)
    with pytest.raises(EvalDataError, match="rows"):
        linear_probe(lambda v: v, (x, y[:3]), (x, y), epochs=1, fast=True)


# ----------------------------------------------------------------------------- paper protocol
def test_full_protocol_learns_with_and_without_augmentation():
    xtr, ytr = colour_images(16, seed=0)
    xte, yte = colour_images(8, seed=1)
    train, test = LabelledImages(xtr, ytr, 3), LabelledImages(xte, yte, 3)
    for augment in (False, True):
        res = linear_probe(nn.Flatten(), train, test, epochs=6, batch=16, augment=augment, lr=1.0)
        assert res["protocol"] == "linear" and res["top1"] >= 95.0, (augment, res)


def test_full_protocol_one_epoch_tiny_student_keeps_backbone_frozen():
    from gandistill.students import create_student

    torch.manual_seed(0)
    student = create_student("test_resnet", img_size=16, proj_layers=2, proj_hidden=16, proj_out=8)
    student.train()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    xtr, ytr = colour_images(8, size=16, seed=0)
    xte, yte = colour_images(4, size=16, seed=1)
    rng = torch.get_rng_state()
    res = linear_probe(student, LabelledImages(xtr, ytr, 3), LabelledImages(xte, yte, 3), epochs=1, batch=8)
    assert torch.equal(rng, torch.get_rng_state())        # the caller's RNG is untouched
    assert res["epochs"] == 1 and res["feature_dim"] == student.num_features     # before the projector
    assert 0.0 <= res["top1"] <= 100.0 and math.isfinite(res["train_loss"])
    assert res["lr"] == pytest.approx(30.0 * 8 / 256)
    after = student.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)   # BN stats and weights untouched
    assert student.training                                          # mode restored


# ----------------------------------------------------------------------------- checkpoints / evaluate()
def tiny_student(seed=0, **kw):
    from gandistill.students import create_student

    torch.manual_seed(seed)
    kw = {"img_size": 16, "proj_layers": 2, "proj_hidden": 16, "proj_out": 8, **kw}
    s = create_student("test_resnet", **kw)
    with torch.no_grad():   # make it differ from any fresh init, BN statistics included
        for name, buf in s.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
    return s


def save_run(run_dir, student, dataset="digits"):
    """A run folder in the engine's format: config.json + checkpoint.json + student.safetensors."""
    from safetensors.torch import save_file

    run_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in student.state_dict().items()}, str(run_dir / "student.safetensors"))
    kwargs = student.config.to_dict()
    name = kwargs.pop("name")
    (run_dir / "checkpoint.json").write_text(json.dumps(
        {"format": "gandistill-student", "version": 1, "student": name, "student_kwargs": kwargs,
         "weights": "student.safetensors", "step": 3, "dataset": dataset, "img_size": kwargs["img_size"]}))
    (run_dir / "config.json").write_text(json.dumps(
        {"config": {"dataset": dataset, "data_root": None, "img_size": None, "student": name},
         "resolved": {"img_size": kwargs["img_size"]}}))
    return run_dir


def test_evaluate_run_folder_matches_the_saved_student(tmp_path):
    from gandistill.data import load_dataset
    from gandistill.evaluate import FirstN, load_student

    student = tiny_student()
    run = save_run(tmp_path / "run", student)
    for path in (run, run / "checkpoint.json", run / "student.safetensors"):
        loaded = load_student(path)
        assert loaded.name == "test_resnet" and loaded.source == "checkpoint"
        own, got = student.state_dict(), loaded.model.state_dict()
        assert own.keys() == got.keys() and all(torch.equal(own[k], got[k]) for k in own)

    # the older spelling: protocol both + fast = the cached-feature linear probe and kNN
    res = evaluate(run, protocol="both", fast=True, epochs=3, max_train=48, max_test=24)   # dataset from the run
    assert res["dataset"] == "digits" and res["img_size"] == 16 and res["source"] == "checkpoint"
    assert res["num_train"] == 48 and res["num_test"] == 24 and res["probes"] == ["knn", "fast"]
    assert res["top1"] == res["fast"]["top1"] and res["fast"]["protocol"] == "linear-fast" and "linear" not in res
    train = FirstN(load_dataset("digits", split="train", img_size=16), 48)
    test = FirstN(load_dataset("digits", split="test", img_size=16), 24)
    direct = knn_eval(student, train, test, k=20, t=0.1)
    assert res["knn"]["top1"] == pytest.approx(direct["top1"]) and res["knn"]["k"] == 20   # small-train default
    res200 = evaluate(run, protocol="knn", k=200, max_train=48, max_test=24)
    assert res200["knn"]["k"] == 48                                    # an explicit k, clamped to the train size
    assert res200["knn"]["top1"] == pytest.approx(knn_eval(student, train, test, k=200)["top1"])


def test_evaluate_reads_engine_checkpoints(tmp_path):
    engine = pytest.importorskip("gandistill.engine")
    student = tiny_student(seed=1)
    engine.save_checkpoint(tmp_path, 5, student, None, None, None, {"dataset": "digits", "img_size": 16})
    got = evaluate(tmp_path, protocol="knn", max_train=40, max_test=20)
    from gandistill.evaluate import load_student

    state = load_student(tmp_path).model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in student.state_dict().items())
    assert got["dataset"] == "digits" and got["knn"]["num_train"] == 40


def test_random_baseline_is_seeded_and_leaves_global_rng_alone():
    rng = torch.get_rng_state()
    kw = dict(protocol="knn", dataset="digits", img_size=16, max_train=48, max_test=24, k=10)
    a = evaluate("random:test_resnet", seed=3, **kw)
    b = evaluate("random:test_resnet", seed=3, **kw)
    assert torch.equal(rng, torch.get_rng_state())
    assert a["source"] == "random" and a["student"] == "test_resnet" and a["checkpoint"] is None
    assert a["knn"]["top1"] == b["knn"]["top1"] and a["top1"] == a["knn"]["top1"]


def test_checkpoint_errors(tmp_path):
    from gandistill.evaluate import load_student

    with pytest.raises(CheckpointError, match="no such run folder"):
        load_student(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no student checkpoint"):
        load_student(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="needs a student name"):
        load_student("random:")

    run = save_run(tmp_path / "run", tiny_student())
    (run / "student.safetensors").write_bytes(b"\x00garbage, not a safetensors file")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_student(run)
    (run / "student.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing weights"):
        load_student(run)

    run2 = save_run(tmp_path / "run2", tiny_student(proj_hidden=32))
    meta = json.loads((run2 / "checkpoint.json").read_text())
    meta["student_kwargs"]["proj_hidden"] = 16                 # names a student the weights do not fit
    (run2 / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="shape mismatch|do not match tensor"):
        load_student(run2)

    (run2 / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError):
        load_student(run2 / "checkpoint.json")
    with pytest.raises(ValueError, match="protocol"):
        evaluate("random:test_resnet", protocol="svm")


def test_evaluate_rejects_unlabelled_split(monkeypatch):
    import gandistill.evaluation.splits as splits

    unlabelled = LabelledImages(torch.rand(4, 3, 16, 16), torch.full((4,), -1), 0)
    monkeypatch.setattr(splits, "load_dataset", lambda *a, **k: unlabelled)
    with pytest.raises(EvalDataError, match="no labels"):
        evaluate("random:test_resnet", dataset="stl10", protocol="knn", img_size=16)


def test_probe_features_checks_shapes():
    from gandistill.evaluate import probe_features

    x, y = clusters(5, 2, 4)
    with pytest.raises(EvalDataError, match="dims differ"):
        probe_features(x, y, torch.randn(3, 5), y[:3], epochs=1)
    with pytest.raises(EvalDataError, match="expected features"):
        probe_features(x, y[:4], x, y, epochs=1)
    with pytest.raises(EvalDataError, match="num_classes"):
        probe_features(x, y, x, y, epochs=1, num_classes=1)


def test_eval_download_flag_reaches_load_dataset(monkeypatch, tmp_path):
    """`gandistill eval --download` passes download=True to load_dataset (nothing is fetched: it is faked)."""
    import gandistill.evaluation.splits as data_mod
    from gandistill import evaluate as ev

    seen = []

    def fake_load_dataset(name, root=None, split="train", download=False, img_size=None):
        seen.append(download)
        raise FileNotFoundError("stop here")

    monkeypatch.setattr(data_mod, "load_dataset", fake_load_dataset)
    with pytest.raises(FileNotFoundError, match="stop here"):
        ev.load_eval_splits("cifar10", str(tmp_path), download=True)
    with pytest.raises(FileNotFoundError):
        ev.load_eval_splits("cifar10", str(tmp_path))
    assert seen == [True, False]


def test_paper_protocol_views_are_label_preserving_on_digits():
    """The paper probe's train views: SnS's RRC + flip in general, no flip / mild crops on digits."""
    from gandistill.data import load_dataset
    from gandistill.evaluation.linear import _image_transforms, probe_views

    digits = load_dataset("digits", split="test")
    assert probe_views(digits) == "linear-digits"
    tr, _ = _image_transforms(digits, 32, None, None, augment=True)
    assert tr.preset.name == "linear-digits"

    class Other:
        name = "cifar10"

    assert probe_views(Other()) == "linear"
