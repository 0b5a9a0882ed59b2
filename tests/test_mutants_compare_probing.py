"""Fast targeted tests of gandistill/compare/probing.py and gandistill/compare/figure4.py (mutation group
`compare_probing`): each preset's probe protocol, the headline metric, Table 6's MMD inputs, and Fig. 4's
snapshot choice, per-seed bookkeeping, twin pairing and its CSV / markdown. Nothing trains and nothing
probes for real: the heavy callees are replaced by fakes that record their arguments."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from gandistill.compare import figure4 as F4
from gandistill.compare import probing as P
from gandistill.compare.plotting import MissingPlotExtra
from gandistill.compare.presets import ProbeSpec, get_preset
from gandistill.evaluation.splits import FirstN

LIN = ProbeSpec(kind="paper-linear", epochs=7, batch=64, base_lr=0.5, optimizer="lars", knn_k=5, shots=(2, 3))
SUITE = ProbeSpec(kind="suite", epochs=9, batch=32, base_lr=3.0, knn_k=4, shots=(1, 5))


class Rec:
    """A callable that records (args, kwargs) and answers ``ret`` (or ret(*a, **k) when callable)."""

    def __init__(self, ret=None):
        self.calls, self.ret = [], ret

    def __call__(self, *a, **k):
        self.calls.append((a, k))
        return self.ret(*a, **k) if callable(self.ret) else self.ret


class DS:
    def __init__(self, n, tag="", shape=(3, 4, 4), take=False):
        self.n, self.tag, self.shape = n, tag, shape
        self.mean, self.std = (0.1, 0.2, 0.3), (0.4, 0.5, 0.6)
        self.items = [(torch.full(shape, float(i)), i % 3) for i in range(n)]
        if take:
            self.take = lambda idx: (torch.stack([self.items[int(i)][0] for i in idx]).half(), None)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.items[i]


# ----------------------------------------------------------------------------------------------- probing

def test_headline_key():
    assert P.headline_key(LIN, {"shot10": 1.0, "top1": 2.0}) == "top1"
    assert P.headline_key(LIN, {"fast": 1.0, "shot10": 2.0}) == "fast"          # no top1: the first metric
    assert P.headline_key(LIN, {}) is None
    assert P.headline_key(SUITE, {"knn20": 1.0, "top1": 2.0, "linear": 3.0, "fast": 4.0, "shot10": 5.0}) == "shot10"
    assert P.headline_key(SUITE, {"knn20": 1.0, "top1": 2.0, "linear": 3.0, "fast": 4.0}) == "fast"
    assert P.headline_key(SUITE, {"knn20": 1.0, "top1": 2.0, "linear": 3.0}) == "linear"
    assert P.headline_key(SUITE, {"knn20": 1.0, "top1": 2.0}) == "top1"
    assert P.headline_key(SUITE, {"knn20": 1.0, "shot1": 2.0}) == "knn20"
    assert P.headline_key(SUITE, {}) is None


def test_dev(monkeypatch):
    monkeypatch.setattr(P.torch.cuda, "is_available", lambda: True)
    assert P._dev("auto") == "cuda" and P._dev("cpu") == "cpu" and P._dev("cuda:1") == "cuda:1"
    monkeypatch.setattr(P.torch.cuda, "is_available", lambda: False)
    assert P._dev("auto") == "cpu" and P._dev("cuda") == "cuda"


def fake_load_dataset(monkeypatch, n=10):
    rec = Rec(lambda name, root=None, split=None, img_size=None: DS(n, tag=split))
    monkeypatch.setattr(P, "load_dataset", rec)
    return rec


def test_load_splits(monkeypatch):
    rec = fake_load_dataset(monkeypatch)
    tr, te = P._load_splits("digits", "/d", 16, 3, 4)
    assert rec.calls == [(("digits",), dict(root="/d", split="train", img_size=16)),
                         (("digits",), dict(root="/d", split="test", img_size=16))]
    assert isinstance(tr, FirstN) and isinstance(te, FirstN) and len(tr) == 3 and len(te) == 4
    assert tr.base.tag == "train" and te.base.tag == "test"
    tr, te = P._load_splits("digits", None, None, None, 0)
    assert isinstance(tr, DS) and isinstance(te, DS) and tr.tag == "train" and te.tag == "test"
    assert rec.calls[-1] == (("digits",), dict(root=None, split="test", img_size=None))


def fake_suite(monkeypatch):
    ext = Rec(lambda fn, ds, bs, dev, mean, std: (torch.full((2, 3), float(len(ds))), torch.tensor([0, 1])))
    suite = Rec(lambda reps, tr, te, cfg: SimpleNamespace(rows=[SimpleNamespace(name="row0", notes=("n1", "n2"))]))
    rowm = Rec(lambda row: {"shot10": 1.5, "from": row.name})
    monkeypatch.setattr(P, "extract_features", ext)
    monkeypatch.setattr(P, "probe_suite", suite)
    monkeypatch.setattr(P, "row_metrics", rowm)
    monkeypatch.setattr(P, "default_probes", lambda: ("fewshot", "knn"))
    return ext, suite


def test_features_suite(monkeypatch):
    ext, suite = fake_suite(monkeypatch)
    fn, tr, te = nn.Identity(), DS(5), DS(2)
    m, notes = P.features_suite(fn, tr, te, SUITE, device="cpu", seed=4, mean=(0.5,), std=(0.25,))
    assert m == {"shot10": 1.5, "from": "row0"} and notes == ["n1", "n2"] and isinstance(notes, list)
    assert ext.calls == [((fn, tr, 256, "cpu", (0.5,), (0.25,)), {}), ((fn, te, 256, "cpu", (0.5,), (0.25,)), {})]
    (reps, s_tr, s_te, cfg), _ = suite.calls[0]
    assert s_tr is tr and s_te is te and list(reps) == ["rep"]
    pre = reps["rep"]
    assert pre.train.tolist() == [[5.0] * 3] * 2 and pre.test.tolist() == [[2.0] * 3] * 2
    assert pre.train_labels.tolist() == [0, 1] and pre.test_labels.tolist() == [0, 1]
    assert cfg.probes == ("fewshot", "knn") and tuple(cfg.shots) == (1, 5) and cfg.knn_k == 4
    assert cfg.fast_epochs == 9 and cfg.seed == 4 and cfg.device == "cpu"
    P.features_suite(fn, tr, te, ProbeSpec(kind="suite", shots=()), device="cuda", seed=1, epochs=3)
    cfg = suite.calls[-1][0][3]
    assert tuple(cfg.shots) == (1, 10, 100) and cfg.fast_epochs == 3 and cfg.knn_k == 200 and cfg.device == "cuda"
    assert ext.calls[-1][0][4:] == (None, None)


def test_suite_metrics(monkeypatch):
    monkeypatch.setattr(P, "row_metrics", lambda row: {"fast": row.v})
    assert P.suite_metrics(SimpleNamespace(v=2.5, notes=("a",))) == ({"fast": 2.5}, ["a"])


def test_probe_student_paper_linear(monkeypatch):
    ev = Rec({"top1": torch.tensor(61.25), "top5": 90.0})
    monkeypatch.setattr(P, "evaluate", ev)
    monkeypatch.setattr(P, "load_student", Rec(AssertionError))
    m, notes = P.probe_student("/r", LIN, dataset="cifar10", data_root="/d", device="cpu", seed=3,
                               max_train=11, max_test=12)
    assert m == {"top1": 61.25} and type(m["top1"]) is float and notes == []
    assert ev.calls == [(("/r",), dict(protocol="linear", dataset="cifar10", data_root="/d", epochs=7, fast=False,
                                       device="cpu", batch=64, lr=0.5, optimizer="lars", seed=3, max_train=11,
                                       max_test=12))]
    P.probe_student("/r", LIN, dataset="c", data_root=None, device="cpu", epochs=2)
    assert ev.calls[-1][1]["epochs"] == 2 and ev.calls[-1][1]["seed"] == 0
    assert ev.calls[-1][1]["max_train"] is None and ev.calls[-1][1]["max_test"] is None


def test_probe_student_suite(monkeypatch):
    model = nn.Identity()
    ls = Rec(SimpleNamespace(model=model, kwargs={"img_size": 24}))
    ld = fake_load_dataset(monkeypatch, n=10)
    fs = Rec(({"shot10": 3.0}, ["x"]))
    monkeypatch.setattr(P, "load_student", ls)
    monkeypatch.setattr(P, "features_suite", fs)
    monkeypatch.setattr(P.torch.cuda, "is_available", lambda: False)
    out = P.probe_student("/run", SUITE, dataset="digits", data_root="/d", device="auto", seed=2, epochs=5,
                          max_train=6, max_test=7)
    assert out == ({"shot10": 3.0}, ["x"]) and ls.calls == [(("/run",), {})]
    assert [c[0] for c in ld.calls] == [("digits",), ("digits",)]
    assert [c[1]["img_size"] for c in ld.calls] == [24, 24] and [c[1]["root"] for c in ld.calls] == ["/d", "/d"]
    (fn, tr, te, probe), kw = fs.calls[0]
    assert fn is model and len(tr) == 6 and len(te) == 7 and probe is SUITE
    assert kw == dict(device="cpu", seed=2, epochs=5)


class Teacher:
    target_names = ("b8", "b4")
    num_features = 96

    def features(self, x):
        return x * 2.0


def test_probe_discriminator(monkeypatch):
    ct = Rec(Teacher())
    ld = fake_load_dataset(monkeypatch, n=10)
    lp = Rec({"top1": torch.tensor(44.5)})
    fs = Rec(({"fast": 3.0}, ["suite note"]))
    monkeypatch.setattr(P, "create_teacher", ct)
    monkeypatch.setattr(P, "linear_probe", lp)
    monkeypatch.setattr(P, "features_suite", fs)
    monkeypatch.setattr(P.torch.cuda, "is_available", lambda: False)
    note = "D features ['b8', 'b4'] (96-d)"
    m, notes = P.probe_discriminator({"res": 32}, LIN, ckpt="/ck", dataset="cifar10", data_root="/d", device="auto",
                                     seed=5, max_train=3, max_test=4)
    assert m == {"top1": 44.5} and type(m["top1"]) is float and notes == [note]
    assert ct.calls == [(("sg2-discriminator",), dict(ckpt="/ck", device="cpu", res=32))]
    assert [c[0] for c in ld.calls] == [("cifar10",), ("cifar10",)]
    assert [c[1]["img_size"] for c in ld.calls] == [None, None] and [c[1]["root"] for c in ld.calls] == ["/d"] * 2
    (fn, tr, te), kw = lp.calls[0]
    assert isinstance(fn, P._DFeatures) and len(tr) == 3 and len(te) == 4
    assert torch.equal(fn(torch.ones(1, 2)), torch.full((1, 2), 2.0))
    assert kw == dict(epochs=7, batch=64, lr=0.5, optimizer="lars", fast=False, device="cpu", seed=5,
                      mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    P.probe_discriminator({}, LIN, ckpt=None, dataset="c", data_root=None, device="cpu", epochs=2)
    assert lp.calls[-1][1]["epochs"] == 2 and lp.calls[-1][1]["seed"] == 0 and len(lp.calls[-1][0][1]) == 10
    m, notes = P.probe_discriminator({}, SUITE, ckpt=None, dataset="d", data_root=None, device="cpu", seed=6, epochs=8)
    assert m == {"fast": 3.0} and notes == [note, "suite note"] and len(lp.calls) == 2
    (fn, tr, te, probe), kw = fs.calls[0]
    assert isinstance(fn, P._DFeatures) and probe is SUITE and tr.tag == "train" and te.tag == "test"
    assert torch.equal(fn(torch.ones(1, 2)), torch.full((1, 2), 2.0))
    assert kw == dict(device="cpu", seed=6, epochs=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def test_probe_baselines(monkeypatch):
    model = nn.Identity()
    ls = Rec(SimpleNamespace(model=model, kwargs={}))
    ld = fake_load_dataset(monkeypatch, n=10)
    fs = Rec(lambda fn, tr, te, probe, **kw: ({"fast": 1.0 if isinstance(fn, nn.Flatten) else 2.0}, [type(fn).__name__]))
    monkeypatch.setattr(P, "load_student", ls)
    monkeypatch.setattr(P, "features_suite", fs)
    monkeypatch.setattr(P.torch.cuda, "is_available", lambda: False)
    out = P.probe_baselines("resnet18", {"name": "x", "pretrained": True, "img_size": 20, "width": 2}, SUITE,
                            dataset="d", data_root="/d", device="auto", seed=7, epochs=3, max_train=2, max_test=3)
    assert out == {"raw pixels": ({"fast": 1.0}, ["Flatten"]), "random-init resnet18": ({"fast": 2.0}, ["Identity"])}
    assert ls.calls == [(("random:resnet18",), dict(student_kwargs={"img_size": 20, "width": 2}, seed=7))]
    assert [c[1]["img_size"] for c in ld.calls] == [20, 20] and [c[1]["root"] for c in ld.calls] == ["/d"] * 2
    assert [c[0][3] for c in fs.calls] == [SUITE, SUITE] and fs.calls[1][0][0] is model
    assert all(len(c[0][1]) == 2 and len(c[0][2]) == 3 for c in fs.calls)
    assert [c[1] for c in fs.calls] == [dict(device="cpu", seed=7, epochs=3)] * 2
    assert [c[0] for c in ld.calls] == [("d",), ("d",)]
    P.probe_baselines("r", {}, SUITE, dataset="d", data_root=None, device="cpu")
    assert ls.calls[-1] == (("random:r",), dict(student_kwargs={}, seed=0)) and fs.calls[-1][1]["seed"] == 0


class GTeacher:
    def __init__(self, size=4, value=None):
        self.calls, self.size, self.value = [], size, value

    def sample(self, k, generator=None):
        self.calls.append((k, generator))
        vals = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0, 0.5])
        img = vals[torch.arange(k * 3 * self.size * self.size) % 6].reshape(k, 3, self.size, self.size)
        return SimpleNamespace(images=img.double())


def fake_mmd(monkeypatch, ds, teacher):
    model = nn.Identity()
    ls = Rec(SimpleNamespace(model=model, kwargs={"img_size": 4}))
    ld = Rec(ds)
    ct = Rec(teacher)
    ext = Rec(lambda fn, data, bs, dev, mean, std: (data[0] * 1.0, data[1]))
    mmd = Rec({"mmd2": 0.125, "sigma": torch.tensor(2.5)})
    for k, v in dict(load_student=ls, load_dataset=ld, create_teacher=ct, extract_features=ext,
                     mmd2_unbiased=mmd).items():
        monkeypatch.setattr(P, k, v)
    monkeypatch.setattr(P.torch.cuda, "is_available", lambda: False)
    return SimpleNamespace(model=model, ls=ls, ld=ld, ct=ct, ext=ext, mmd=mmd)


def test_representation_mmd(monkeypatch):
    ds, tea = DS(300), GTeacher()
    f = fake_mmd(monkeypatch, ds, tea)
    m, notes = P.representation_mmd("/run", teacher_ckpt="/g", dataset="digits", data_root="/d", n=280,
                                    device="auto", seed=3)
    assert m == {"mmd2": 0.125, "sigma": 2.5} and type(m["sigma"]) is float
    assert notes == ["MMD^2: n=280 synthetic vs 280 real train images, Gaussian kernel, sigma = median pairwise distance"]
    assert f.ls.calls == [(("/run",), {})]
    assert f.ld.calls == [(("digits",), dict(root="/d", split="train", img_size=4))]
    assert f.ct.calls == [(("sg2-generator",), dict(ckpt="/g", device="cpu"))]
    assert [k for k, _ in tea.calls] == [256, 24] and all(isinstance(g, torch.Generator) for _, g in tea.calls)
    (fn_s, (xs, ys), bs, dev, mean, std), _ = f.ext.calls[0]
    (fn_r, (xr, yr), bs2, dev2, mean2, std2), _ = f.ext.calls[1]
    assert fn_s is f.model and fn_r is f.model and bs == bs2 == 256 and dev == dev2 == "cpu"
    assert mean == mean2 == (0.1, 0.2, 0.3) and std == std2 == (0.4, 0.5, 0.6)
    assert ys.dtype == torch.long and ys.tolist() == [0] * 280 and torch.equal(ys, yr)
    # synthetic images: [-1, 1] -> [0, 1], clipped; float; same size as the real ones so no resampling
    assert xs.shape == (280, 3, 4, 4) and xs.dtype == torch.float32
    want = torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0, 0.75])
    assert torch.equal(xs[0].flatten()[:6], want) and torch.equal(xs[1].flatten()[:6], want)
    assert set(xs.unique().tolist()) == {0.0, 0.5, 0.75, 1.0}
    # real images: n distinct training images (item i is filled with i), chosen by the seeded permutation
    used = [int(x[0, 0, 0]) for x in xr]
    assert xr.shape == (280, 3, 4, 4) and len(set(used)) == 280 and max(used) < 300
    assert used == torch.randperm(300, generator=torch.Generator().manual_seed(3))[:280].tolist()
    (a, b), kw = f.mmd.calls[0]
    assert torch.equal(a, xs) and torch.equal(b, xr) and kw == dict(kernel="gaussian", sigma="median")


def test_representation_mmd_small_set_take_and_resize(monkeypatch):
    ds, tea = DS(5, take=True), GTeacher(size=2)
    f = fake_mmd(monkeypatch, ds, tea)
    m, notes = P.representation_mmd("/run", teacher_ckpt=None, dataset="d", data_root=None, n=9, device="cpu")
    assert "n=5 synthetic vs 5 real" in notes[0] and [k for k, _ in tea.calls] == [5]
    xs = f.ext.calls[0][0][1][0]
    xr = f.ext.calls[1][0][1][0]
    assert xs.shape == (5, 3, 4, 4) and xr.dtype == torch.float32 and xr.shape == (5, 3, 4, 4)
    assert sorted(int(x[0, 0, 0]) for x in xr) == [0, 1, 2, 3, 4]
    assert f.ext.calls[0][0][1][1].tolist() == [0] * 5


# ----------------------------------------------------------------------------------------------- figure4

def snap(root: Path, name: str, complete=True) -> Path:
    p = root / name
    p.mkdir(parents=True)
    if complete:
        (p / "gandistill_sg2.json").write_text("{}")
    return p


def test_find_snapshots_list(tmp_path):
    a, b = snap(tmp_path, "a"), snap(tmp_path, "b")
    run = tmp_path / "run"
    s2, s1 = snap(run, "snapshot-2"), snap(run, "snapshot-1")
    snap(run, "partial", complete=False)
    (run / "file.txt").write_text("x")
    f = tmp_path / "model.pkl"
    f.write_text("x")
    got = F4.find_snapshots(F4.Figure4Config(snapshots=f" {b}, ,{a},{run},{f}, "))
    assert got == [b, a, s1, s2, f]
    with pytest.raises(FileNotFoundError, match=r"--snapshots: not found: .*nope1, .*nope2"):
        F4.find_snapshots(F4.Figure4Config(snapshots=f"{a},{tmp_path / 'nope1'},{tmp_path / 'nope2'}"))


def test_find_snapshots_run(tmp_path, monkeypatch):
    run = tmp_path / "run"
    snaps = [snap(run, f"snapshot-{i:03d}") for i in (6, 0, 3, 1, 5, 2, 4)]
    snaps.sort(key=lambda p: p.name)
    snap(run, "snapshot-999", complete=False)
    snap(run, "other-000")
    (run / "snapshot-file").write_text("x")
    pick = lambda k: [p.name for p in F4.find_snapshots(F4.Figure4Config(gan_run=str(run), max_snapshots=k))]  # noqa
    assert pick(3) == ["snapshot-000", "snapshot-003", "snapshot-006"]
    assert pick(4) == ["snapshot-000", "snapshot-002", "snapshot-004", "snapshot-006"]
    assert pick(1) == pick(2) == ["snapshot-000", "snapshot-006"]
    assert pick(7) == pick(50) == [f"snapshot-{i:03d}" for i in range(7)]
    assert pick(5) == ["snapshot-000", "snapshot-002", "snapshot-003", "snapshot-004", "snapshot-006"]
    for p in snaps[:5]:
        (p / "gandistill_sg2.json").unlink()
    assert pick(4) == ["snapshot-005", "snapshot-006"]
    (snaps[5] / "gandistill_sg2.json").unlink()
    with pytest.raises(ValueError, match="holds 1 complete snapshot.*at least 2"):
        pick(3)
    bundled = tmp_path / "bundled"
    monkeypatch.setattr(F4, "bundled_teacher_path", lambda: str(bundled))
    with pytest.raises(ValueError, match="--gan-run DIR"):
        F4.find_snapshots(F4.Figure4Config())
    s = [snap(bundled / "snapshots", f"snapshot-{i}") for i in range(3)]
    assert F4.find_snapshots(F4.Figure4Config(max_snapshots=5)) == s


def test_mean_std():
    m, s = F4._mean_std([1.0, None, 2.0, 4.0])
    assert m == pytest.approx(7 / 3)
    # sample std by hand: deviations -4/3, -1/3, 5/3 -> squares 16/9 + 1/9 + 25/9 = 42/9, / (3 - 1)
    assert s == pytest.approx(math.sqrt(42 / 18))
    assert F4._mean_std([5]) == (5.0, None) and F4._mean_std([None, None]) == (None, None)
    assert F4._mean_std([]) == (None, None)
    assert F4._mean_std([0.0, 0.0]) == (0.0, 0.0)


def test_config_helpers():
    assert F4.Figure4Config(seed=3).seed_list() == (3,) and F4.Figure4Config(seeds=["2", 0]).seed_list() == (2, 0)
    assert F4.Figure4Config(seeds=[], seed=4).seed_list() == (4,)
    assert F4.Figure4Config(preset="p").out_dir() == Path("runs") / "compare-p"
    assert F4.Figure4Config(out="/x/y").out_dir() == Path("/x/y")
    assert F4._seed_suffix(0) == "" and F4._seed_suffix(2) == "@s2"
    cc = F4._compare_cfg(F4.Figure4Config(preset="cifar10", data_root="/d", budget=0.5, out="/o", device="cpu",
                                          probe_epochs=3, probe_max_train=4, probe_max_test=5,
                                          fit_overrides={"lr": 1}), Path("/ck"), 2)
    assert (cc.table, cc.preset, cc.teacher_ckpt, cc.data_root, cc.budget, cc.out, cc.device, cc.seed) == \
        (2, "cifar10", "/ck", "/d", 0.5, "/o", "cpu", 2)
    assert (cc.probe_epochs, cc.probe_max_train, cc.probe_max_test, cc.fit_overrides) == (3, 4, 5, {"lr": 1})
    assert F4._compare_cfg(F4.Figure4Config(), None, 0).teacher_ckpt is None


class Fig:
    """ensure_trained, score and the snapshot scorer, recording their calls; per-run top-1 in ``top1``
    (a run id absent from it fails to train with status ``failed:<id>``; ``raise_ids`` raise)."""

    def __init__(self, monkeypatch, top1, raise_ids=(), metrics=None):
        self.top1, self.raise_ids, self.metric = top1, set(raise_ids), metrics
        self.trained, self.scored, self.snap_scores, self.said, self.plans = [], [], [], [], []
        monkeypatch.setattr(F4, "ensure_trained", self.ensure_trained)
        monkeypatch.setattr(F4, "score", self.score)
        monkeypatch.setattr(F4.probing.torch.cuda, "is_available", lambda: False)

    def ensure_trained(self, plan, ccfg, out, say):
        rid = plan.run.id
        self.trained.append((rid, ccfg.teacher_ckpt, ccfg.seed, plan.fit["seed"], plan.fit["device"]))
        say(f"train {rid}")
        if rid in self.raise_ids:
            raise RuntimeError(f"boom {rid}")
        if rid not in self.top1:
            return out / "runs" / rid, "collapsed" if rid.endswith("@s9") else "failed", f"no {rid}"
        return out / "runs" / rid, "ok", ""

    def score(self, run_dir, table, plan, ccfg, preset):
        self.scored.append((Path(run_dir).name, table.number, ccfg.seed))
        self.plans.append((plan.run.id, plan.fit, preset.name))
        rid = Path(run_dir).name
        if self.metric is not None:
            return self.metric(rid), [f"note {rid}"]
        return {"knn20": 1.0, "shot10": self.top1[rid]}, [f"note {rid}"]

    def score_fn(self, snap, **kw):
        self.snap_scores.append((Path(snap).name, kw))
        i = int(Path(snap).name.split("-")[-1])
        return {"fd": 10.0 * (i + 1), "kid": 0.01 * i, "feature_space": "digits-judge"}


def test_point_for_pairs_each_seed_with_its_twin(tmp_path, monkeypatch):
    s = snap(tmp_path, "snapshot-1")
    fk = Fig(monkeypatch, {"g-sns@snapshot-1": 60.0, "g-sns@snapshot-1@s1": 63.0, "g-sns@snapshot-1@s2": 66.0})
    cfg = F4.Figure4Config(preset="digits", seeds=(0, 1, 2), out=str(tmp_path / "o"), device="auto", score_n=77,
                           inception="/inc", data_root="/d")
    twin = {0: (50.0, "shot10", "ok", []), 1: (54.0, "shot10", "ok", []), 2: (52.0, "shot10", "ok", [])}
    pt = F4._point_for(s, "snapshot-1", cfg, get_preset("digits"), Path(cfg.out), twin, fk.score_fn, None, fk.said.append)
    assert fk.snap_scores == [("snapshot-1", dict(n=77, data="digits", data_root="/d", inception="/inc", device="cpu"))]
    assert (pt.fd, pt.kid, pt.feature_space, pt.status, pt.metric) == (20.0, 0.01, "digits-judge", "ok", "shot10")
    assert pt.snapshot == str(s) and pt.seeds == [0, 1, 2]
    assert [t[:3] for t in fk.trained] == [("g-sns@snapshot-1", str(s), 0), ("g-sns@snapshot-1@s1", str(s), 1),
                                           ("g-sns@snapshot-1@s2", str(s), 2)]
    assert [t[3:] for t in fk.trained] == [(0, "auto"), (1, "auto"), (2, "auto")] and [x[1:] for x in fk.scored] == [(2, 0), (2, 1), (2, 2)]
    assert pt.top1_seeds == [60.0, 63.0, 66.0] and pt.twin_seeds == [50.0, 54.0, 52.0]
    assert pt.delta_seeds == [10.0, 9.0, 14.0]
    assert pt.top1 == pytest.approx(63.0) and pt.top1_std == pytest.approx(3.0)
    assert pt.twin == pytest.approx(52.0) and pt.twin_std == pytest.approx(2.0)
    # the differences 10, 9, 14: mean 11, deviations -1, -2, 3 -> sample std sqrt(14 / 2)
    assert pt.delta == pytest.approx(11.0) and pt.delta_std == pytest.approx(math.sqrt(7.0))
    assert pt.notes == ["seed 0: note g-sns@snapshot-1", "seed 1: note g-sns@snapshot-1@s1",
                        "seed 2: note g-sns@snapshot-1@s2"]


def test_point_for_failures_and_old_score(tmp_path, monkeypatch):
    s = snap(tmp_path, "snapshot-2")
    fk = Fig(monkeypatch, {"g-sns@x@s1": 70.0}, raise_ids={"g-sns@x@s2"})
    cfg = F4.Figure4Config(seeds=(0, 1, 2, 3), out=str(tmp_path / "o"), device="cpu")
    twin = {0: (50.0, "m", "ok", []), 1: (None, None, "failed", [])}
    old = {"fd": 5.0, "kid": 0.5, "feature_space": "inception"}
    pt = F4._point_for(s, "x", cfg, get_preset("digits"), Path(cfg.out), twin, fk.score_fn, old, fk.said.append)
    assert fk.snap_scores == [] and (pt.fd, pt.kid, pt.feature_space) == (5.0, 0.5, "inception")
    pt2 = F4._point_for(s, "x", F4.Figure4Config(), get_preset("digits"), Path(cfg.out), {}, fk.score_fn, {"fd": 4.0},
                       fk.said.append)
    assert (pt2.fd, pt2.kid, pt2.feature_space) == (4.0, None, "")
    assert pt.top1_seeds == [None, 70.0, None, None] and pt.twin_seeds == [50.0, None, None, None]
    assert pt.delta_seeds == [None, None, None, None] and pt.delta is None and pt.delta_std is None
    assert (pt.top1, pt.top1_std, pt.twin, pt.twin_std) == (70.0, None, 50.0, None)
    assert pt.status == "ok" and pt.metric == "shot10"
    assert pt.notes == ["seed 0: no g-sns@x", "seed 1: note g-sns@x@s1", "seed 2: RuntimeError: boom g-sns@x@s2",
                        "seed 3: no g-sns@x@s3"]
    # an old entry without fd is scored again; seeds failing in different ways: failed
    pt = F4._point_for(s, "y", F4.Figure4Config(seeds=(0, 9)), get_preset("digits"), Path(cfg.out), {},
                       fk.score_fn, {"fd": None, "kid": 1.0}, fk.said.append)
    assert pt.fd == 30.0 and pt.status == "failed" and pt.metric is None and pt.top1 is None


def test_point_for_statuses(tmp_path, monkeypatch):
    s = snap(tmp_path, "snapshot-3")
    fk = Fig(monkeypatch, {"g-sns@a@s1": 1.0})
    go = lambda name, seeds: F4._point_for(s, name, F4.Figure4Config(seeds=seeds), get_preset("digits"),  # noqa
                                           tmp_path, {}, fk.score_fn, None, fk.said.append)
    assert go("a@s9", (9,)).status == "collapsed"           # "g-sns@a@s9@s9" ends with @s9 -> collapsed
    assert go("b", (9, 9)).status == "collapsed"
    assert go("b", (9, 0)).status == "failed"                # mixed failures
    assert go("a", (9, 1)).status == "ok"                    # one seed ok
    pt = go("a", (1,))
    assert pt.top1 == 1.0 and pt.metric == "shot10" and pt.top1_std is None


def test_train_and_probe_headline_and_metric_absent(tmp_path, monkeypatch):
    fk = Fig(monkeypatch, {}, metrics=lambda rid: {})
    fk.top1 = {"g-sns@q": 1.0}
    cfg = F4.Figure4Config(seed=0)
    assert F4._train_and_probe("g-sns@q", "g-sns", None, 0, cfg, get_preset("digits"), tmp_path, fk.said.append) \
        == (None, None, "ok", ["note g-sns@q"])
    fk.metric = lambda rid: {"knn20": 4.0, "fast": 5.0}
    assert F4._train_and_probe("g-sns@q", "g-sns", None, 0, cfg, get_preset("digits"), tmp_path, fk.said.append) \
        == (5.0, "fast", "ok", ["note g-sns@q"])
    assert F4._train_and_probe("g-sns@r", "g-sns", None, 0, cfg, get_preset("digits"), tmp_path, fk.said.append) \
        == (None, None, "failed", ["no g-sns@r"])


def test_figure4_flow_and_resume(tmp_path, monkeypatch):
    run = tmp_path / "gan"
    for i in range(3):
        snap(run, f"snapshot-{i}")
    top1 = {"vicreg-real": 40.0, "vicreg-real@s1": 44.0, "g-sns@snapshot-0": 50.0, "g-sns@snapshot-0@s1": 52.0,
            "g-sns@snapshot-2": 60.0, "g-sns@snapshot-2@s1": 66.0}
    fk = Fig(monkeypatch, top1, raise_ids={"g-sns@snapshot-1", "g-sns@snapshot-1@s1"})
    out = tmp_path / "o"
    cfg = F4.Figure4Config(preset="digits", gan_run=str(run), out=str(out), seeds=(0, 1), device="cpu")
    res = F4.figure4(cfg, log=fk.said.append, score_fn=fk.score_fn)
    assert [t[0] for t in fk.trained] == ["vicreg-real", "vicreg-real@s1", "g-sns@snapshot-0", "g-sns@snapshot-0@s1",
                                          "g-sns@snapshot-1", "g-sns@snapshot-1@s1", "g-sns@snapshot-2",
                                          "g-sns@snapshot-2@s1"]
    assert [t[1] for t in fk.trained[:2]] == [None, None]
    assert res.twin == pytest.approx(42.0) and res.twin_std == pytest.approx(math.sqrt(8.0))
    assert res.twin_method == "vicreg-real" and res.seeds == [0, 1] and res.preset == "digits" and res.out == out
    assert res.dry_run is False and res.wall_s >= 0
    p0, p1, p2 = res.points
    assert p0.delta_seeds == [10.0, 8.0] and p0.delta == pytest.approx(9.0) and p0.delta_std == pytest.approx(2 ** 0.5)
    assert p1.status == "failed" and p1.top1 is None and p1.fd == 20.0
    assert p2.top1 == pytest.approx(63.0) and p2.twin == pytest.approx(42.0) and p2.delta == pytest.approx(21.0)
    saved = json.loads((out / "results" / "figure4" / "snapshot-2.json").read_text())
    assert saved["top1_seeds"] == [60.0, 66.0] and saved["seeds"] == [0, 1] and saved["status"] == "ok"
    assert fk.said[0] == "SSL twin (vicreg-real, no teacher): seeds 0, 1 ..."
    assert fk.said[1:3] == ["train vicreg-real", "train vicreg-real@s1"]
    assert fk.said[3] == "[1/3] snapshot-0: scoring the snapshot, then Sq & Sp from it (seeds 0, 1) ..."
    assert fk.said[4:6] == ["train g-sns@snapshot-0", "train g-sns@snapshot-0@s1"]
    assert res.wall_s < 60
    # rerun: ok points are skipped (the failed one is retried, its score reused from its JSON)
    fk.trained.clear(), fk.said.clear(), fk.snap_scores.clear()
    res2 = F4.figure4(cfg, log=fk.said.append, score_fn=fk.score_fn)
    assert [t[0] for t in fk.trained] == ["vicreg-real", "vicreg-real@s1", "g-sns@snapshot-1", "g-sns@snapshot-1@s1"]
    assert fk.snap_scores == [] and "[1/3] snapshot-0: done before, skipped" in fk.said
    assert "[3/3] snapshot-2: done before, skipped" in fk.said
    assert [p.top1 for p in res2.points] == [p.top1 for p in res.points] and res2.points[2].delta_seeds == [20.0, 22.0]
    # a seed not yet done, or an old JSON without twin_seeds, redoes the point
    fk.trained.clear()
    cfg3 = F4.Figure4Config(preset="digits", gan_run=str(run), out=str(out), seeds=(0, 2), device="cpu",
                            max_snapshots=2)
    F4.figure4(cfg3, log=fk.said.append, score_fn=fk.score_fn)
    assert "g-sns@snapshot-2@s2" in [t[0] for t in fk.trained]
    p = out / "results" / "figure4" / "snapshot-0.json"
    d = json.loads(p.read_text())
    d.pop("twin_seeds")
    d["seeds"] = [0, 1]
    p.write_text(json.dumps(d))
    fk.trained.clear()
    F4.figure4(cfg, log=fk.said.append, score_fn=fk.score_fn)
    assert "g-sns@snapshot-0" in [t[0] for t in fk.trained]
    d = json.loads(p.read_text())
    d["status"] = "collapsed"
    d["top1"] = 1.5
    p.write_text(json.dumps(d))
    fk.trained.clear()
    res4 = F4.figure4(cfg, log=fk.said.append, score_fn=fk.score_fn)
    assert "g-sns@snapshot-0" not in [t[0] for t in fk.trained] and res4.points[0].top1 == 1.5
    d["status"] = "failed"
    p.write_text(json.dumps(d))
    fk.trained.clear()
    F4.figure4(cfg, log=fk.said.append, score_fn=fk.score_fn)
    assert "g-sns@snapshot-0" in [t[0] for t in fk.trained]


def test_figure4_single_seed_old_json_without_seeds(tmp_path, monkeypatch):
    s = snap(tmp_path, "snapshot-0")
    fk = Fig(monkeypatch, {"vicreg-real": 40.0, "g-sns@snapshot-0": 50.0})
    out = tmp_path / "o"
    cfg = F4.Figure4Config(snapshots=f"{s},{s}", out=str(out), device="cpu")
    res = F4.figure4(cfg, log=fk.said.append, score_fn=fk.score_fn)
    assert res.twin == 40.0 and res.twin_std is None and res.seeds == [0]
    p = out / "results" / "figure4" / "snapshot-0.json"
    d = json.loads(p.read_text())
    d.pop("seeds")
    d["extra"] = 1
    p.write_text(json.dumps(d))
    fk.trained.clear()
    res = F4.figure4(cfg, log=fk.said.append, score_fn=fk.score_fn)
    assert [t[0] for t in fk.trained] == ["vicreg-real"] and res.points[0].seeds == [0]


def test_figure4_named_checkpoints_failures_and_dry_run(tmp_path, monkeypatch):
    a = snap(tmp_path, "ckA")
    fk = Fig(monkeypatch, {"g-sns@ckA": 50.0}, raise_ids={"vicreg-real"})
    out = tmp_path / "o"
    boom = Rec(lambda *a, **k: (_ for _ in ()).throw(OSError("unreadable")))
    res = F4.figure4(F4.Figure4Config(snapshots=str(a), out=str(out), device="cpu", seeds=(0, 3)),
                     log=fk.said.append, score_fn=boom)
    (pt,) = res.points
    assert pt.status == "failed" and pt.notes == ["OSError: unreadable"] and pt.seeds == [0, 3]
    assert pt.snapshot == str(a) and res.twin is None and res.twin_std is None
    assert json.loads((out / "results" / "figure4" / "ckA.json").read_text())["status"] == "failed"
    res = F4.figure4(F4.Figure4Config(snapshots=str(a), out=str(out), device="cpu"), log=fk.said.append,
                     score_fn=lambda *a, **k: {"fd": 1.0})
    assert res.points[0].top1 == 50.0 and res.points[0].twin_seeds == [None] and res.twin is None
    assert res.points[0].feature_space == "" and res.points[0].kid is None
    dry = F4.figure4(F4.Figure4Config(snapshots=str(a), out=str(out), dry_run=True, seeds=(1, 2)),
                     log=fk.said.append)
    assert dry.dry_run and dry.wall_s == 0.0 and dry.twin_method == "vicreg-real" and dry.seeds == [1, 2]
    assert [(p.snapshot, p.status, p.seeds) for p in dry.points] == [(str(a), "planned", [1, 2])]
    assert dry.preset == "digits" and dry.out == out
    monkeypatch.setattr(F4, "score_generator", lambda *a, **k: {"fd": 7.0})
    res = F4.figure4(F4.Figure4Config(snapshots=str(tmp_path / "ckA"), out=str(tmp_path / "o2"), device="cpu"),
                     log=fk.said.append)
    assert res.points[0].fd == 7.0


def test_twin_reference(tmp_path, monkeypatch):
    fk = Fig(monkeypatch, {"vicreg-real": 40.0, "vicreg-real@s2": 42.0}, raise_ids={"vicreg-real@s1"})
    ref = F4.twin_reference(F4.Figure4Config(seeds=(0, 1, 2, 3), device="cpu"), get_preset("digits"), tmp_path,
                            fk.said.append)
    assert ref == {0: (40.0, "shot10", "ok", ["note vicreg-real"]),
                   1: (None, None, "failed", ["RuntimeError: boom vicreg-real@s1"]),
                   2: (42.0, "shot10", "ok", ["note vicreg-real@s2"]),
                   3: (None, None, "failed", ["no vicreg-real@s3"])}
    assert [t[4] for t in fk.trained] == ["cpu"] * 4
    assert [(r, n) for r, _, n in fk.plans] == [("vicreg-real", "digits"), ("vicreg-real@s2", "digits")]
    assert [t[1] for t in fk.trained] == [None] * 4 and [t[2:4] for t in fk.trained] == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert fk.said == ["train vicreg-real", "train vicreg-real@s1", "train vicreg-real@s2", "train vicreg-real@s3"]


def test_errors_are_not_swallowed_on_interrupt(tmp_path, monkeypatch):
    fk = Fig(monkeypatch, {"vicreg-real": 1.0})

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(F4, "ensure_trained", stop)
    with pytest.raises(KeyboardInterrupt):
        F4.twin_reference(F4.Figure4Config(), get_preset("digits"), tmp_path, fk.said.append)
    with pytest.raises(KeyboardInterrupt):
        F4._point_for(tmp_path, "n", F4.Figure4Config(), get_preset("digits"), tmp_path, {}, lambda *a, **k: {},
                      None, fk.said.append)
    s = snap(tmp_path, "snapshot-0")
    monkeypatch.setattr(F4, "twin_reference", lambda *a: {})
    with pytest.raises(KeyboardInterrupt):
        F4.figure4(F4.Figure4Config(snapshots=str(s), out=str(tmp_path / "o")), log=fk.said.append,
                   score_fn=stop)


def result(tmp_path, points, **kw):
    base = dict(points=points, preset="digits", out=tmp_path / "out", wall_s=600.0, twin=41.234, twin_std=1.5,
                twin_method="vicreg-real", seeds=[0, 1])
    base.update(kw)
    return F4.Figure4Result(**base)


def test_write_figure4(tmp_path, monkeypatch):
    plots = []
    monkeypatch.setattr(F4, "plot_figure4", lambda res, path: plots.append((res, path)) or path)
    monkeypatch.chdir(tmp_path)
    pts = [F4.Figure4Point(str(tmp_path / "g" / "snapshot-1"), fd=12.345, kid=0.01234, feature_space="digits-judge",
                           metric="shot10", seeds=[0, 1], top1=63.0, top1_std=3.0, top1_seeds=[60.0, 66.0],
                           twin=42.0, twin_std=2.0, twin_seeds=[40.0, None], delta=-1.5, delta_std=0.25,
                           delta_seeds=[1.0, 2.0], notes=["a", "b"]),
           F4.Figure4Point("rel/snapshot-2", status="failed", seeds=[0, 1], notes=["x"])]
    res = result(tmp_path, pts)
    (tmp_path / "out").mkdir()                      # an existing out folder is fine
    files = F4.write_figure4(res, command="gandistill compare --figure 4")
    out = tmp_path / "out"
    assert files == {"csv": str(out / "figure4.csv"), "md": str(out / "figure4.md"), "png": str(out / "figure4.png"),
                     "png_backend": "matplotlib"}
    assert plots == [(res, out / "figure4.png")]
    rows = list(csv.reader(open(out / "figure4.csv", newline="")))
    assert rows[0] == ["snapshot", "status", "feature_space", "fd", "kid", "probe", "seeds", "top1", "top1_std", "twin",
                       "twin_std", "delta", "delta_std", "top1_per_seed", "twin_per_seed", "notes"]
    assert rows[1] == ["g/snapshot-1", "ok", "digits-judge", "12.345", "0.01234", "shot10", "0 1", "63.0", "3.0", "42.0",
                       "2.0", "-1.5", "0.25", "60.00 66.00", "40.00 ", "a; b"]
    assert rows[2] == ["rel/snapshot-2", "failed", "", "", "", "", "0 1", "", "", "", "", "", "", "", "", "x"]
    assert len(rows) == 3
    md = (out / "figure4.md").read_text()
    assert md == "\n".join([
        "# Figure 4: representation quality vs teacher quality, with the SSL twin", "",
        "Command: `gandistill compare --figure 4`", "",
        "Preset `digits`; seeds 0, 1; teacher quality: Frechet distance in the `digits-judge` feature space (the "
        "paper: FID, Inception features, CIFAR-100). SSL twin: `vicreg-real` (the same student, real data, steps "
        "and seed, no teacher): 41.23 ± 1.50. Wall time of this call: 10.0 min.", "",
        "| snapshot | status | FD | KID | probe | Sq & Sp top-1 | twin top-1 | Sq & Sp − twin | notes |",
        "|---|---|---|---|---|---|---|---|---|",
        "| snapshot-1 | ok | 12.35 | 0.0123 | shot10 | 63.00 ± 3.00 | 42.00 ± 2.00 | -1.50 ± 0.25 | a; b |",
        "| snapshot-2 | failed |  |  |  |  |  |  | x |", "",
        "± : sample std over the seeds (Sq & Sp − twin: of the per-seed differences, each seed against its own twin).",
        "", "Paper (CIFAR-100 Sq & Sp): FID 87.51 -> 62.08, FID 50.21 -> 60.52, FID 41.71 -> 62.18, FID 20.78 -> 62.91, "
        "FID 11.03 -> 64.65, FID 7.09 -> 66.56, FID 5.22 -> 66.68, FID 4.43 -> 67.63, FID 4.13 -> 67.86", ""])


def test_write_figure4_no_plot_extra_no_command(tmp_path, monkeypatch):
    def missing(res, path):
        raise MissingPlotExtra("no matplotlib")

    monkeypatch.setattr(F4, "plot_figure4", missing)
    pts = [F4.Figure4Point("/elsewhere/s", fd=1.0, top1=50.0, delta=2.0, feature_space="b"),
           F4.Figure4Point("/elsewhere/t", feature_space="a")]
    res = result(tmp_path, pts, twin=None, twin_std=None, seeds=[3], out=tmp_path / "new" / "deep")
    files = F4.write_figure4(res)
    assert files["png"] == "" and files["png_backend"] == f"none ({F4.PLOT_HINT})"
    lines = (tmp_path / "new" / "deep" / "figure4.md").read_text().split("\n")
    assert lines[1] == "" and lines[2].startswith("Preset `digits`; seeds 3; teacher quality: Frechet distance in the `a, b` ")
    assert "no teacher): . Wall" in lines[2]
    assert lines[6] == "| s | ok | 1.00 |  |  | 50.00 |  | +2.00 |  |"
    res = result(tmp_path, [F4.Figure4Point("/e/u")], seeds=[0, 1, 2])
    F4.write_figure4(res)
    lines = (tmp_path / "out" / "figure4.md").read_text().split("\n")
    assert "seeds 0, 1, 2; " in lines[2] and "in the `?` feature space" in lines[2]


def test_shown_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert F4.shown_path("a/b") == "a/b"
    assert F4.shown_path(str(tmp_path / "x" / "y")) == "x/y"
    pkg = Path(F4.__file__).resolve().parents[1]
    assert F4.shown_path(str(pkg / "teachers" / "snap")) == "gandistill/teachers/snap"
    other = "/nonexistent-root-xyz/q"
    assert F4.shown_path(other) == other
    monkeypatch.chdir(pkg)
    assert F4.shown_path(str(pkg / "compare")) == "compare"


def test_pm_and_f():
    assert F4._pm(None, 1.0) == "" and F4._pm(1.234, None) == "1.23" and F4._pm(1.0, 0.5, True) == "+1.00 ± 0.50"
    assert F4._pm(-1.0, None, True) == "-1.00" and F4._f(None) == "" and F4._f(1.23456, 3) == "1.235"


def test_figure4_default_log_and_nameless_checkpoint(tmp_path, monkeypatch, capsys):
    fk = Fig(monkeypatch, {"vicreg-real": 40.0})
    monkeypatch.setattr(F4, "find_snapshots", lambda cfg: [Path("/")])
    out = tmp_path / "o"
    res = F4.figure4(F4.Figure4Config(out=str(out), device="cpu"), score_fn=lambda *a, **k: {"fd": 2.0})
    assert res.points[0].fd == 2.0 and (out / "results" / "figure4" / "ckpt1.json").exists()
    said = capsys.readouterr().out.splitlines()
    assert said[:2] == ["SSL twin (vicreg-real, no teacher): seeds 0 ...", "train vicreg-real"]
    assert said[2] == "[1/1] ckpt1: scoring the snapshot, then Sq & Sp from it (seeds 0) ..."


def test_train_and_probe_budget(tmp_path, monkeypatch):
    fk = Fig(monkeypatch, {"g-sns@b": 1.0})
    pre = get_preset("digits")
    for budget in (1.0, 0.25):
        F4._train_and_probe("g-sns@b", "g-sns", None, 0, F4.Figure4Config(budget=budget), pre, tmp_path, fk.said.append)
    full, quarter = fk.plans[0][1], fk.plans[1][1]
    assert quarter["steps"] == max(1, round(full["steps"] * 0.25)) and quarter["steps"] < full["steps"]
