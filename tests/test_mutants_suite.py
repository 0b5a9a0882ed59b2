"""Fast targeted tests of gandistill/evaluation/suite.py (mutation group `suite`): which representations
are probed with which inputs, the protocol words, row/table (de)serialisation, the teacher's contribution
(paired per-draw differences: mean and sample std worked by hand), teacher_is_conditional, and the
rendered tables compared against text written out by hand. The probes' maths is stubbed (its own group
tests it): every probe's ``run`` is replaced by a spy returning canned results, so each test is a few ms."""
from __future__ import annotations

import io
import math

import pytest
import torch
from rich.console import Console
from torch.utils.data import Dataset

from gandistill.evaluation import suite as S
from gandistill.evaluation.features import EvalDataError
from gandistill.evaluation.probes import PROBES, Probe, ProbeInput
from gandistill.evaluation.probes.base import register_probe
from gandistill.evaluation.probes.fast_linear import FastLinear
from gandistill.evaluation.probes.fewshot import FewShot
from gandistill.evaluation.probes.knn import KNN
from gandistill.evaluation.probes.paper_linear import PaperLinear
from gandistill.evaluation.suite import (BANNER, CONTRIBUTION, RAW_PIXELS, Precomputed, ProbeConfig, ProbeRow,
                                         ProbeTable)


# ----------------------------------------------------------------------------- fixtures
class Tiny(Dataset):
    """8 images 1x2x2 in [0, 1], 3 classes, with gandistill's dataset attributes (mean/std/name)."""

    def __init__(self, n=6, num_classes=3, name="tiny", offset=0.0):
        self.x = (torch.arange(n * 4, dtype=torch.float32).view(n, 1, 2, 2) + offset) / (n * 4 + 1)
        self.y = torch.arange(n) % 3
        self.name, self.num_classes = name, num_classes
        self.mean, self.std = (0.5,), (0.25,)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


class Spy:
    """Stands in for every probe's run(): records the ProbeInput and returns canned results."""

    def __init__(self):
        self.calls = []

    def install(self, monkeypatch, results=None, notes=None):
        results = results or {}
        notes = notes or {}
        for cls, name in ((FewShot, "fewshot"), (KNN, "knn"), (FastLinear, "fast"), (PaperLinear, "linear")):
            def run(probe_self, data, _name=name):
                self.calls.append((_name, data))
                res = results.get(_name, {"top1": float(len(self.calls))})
                return (None if res is None else dict(res)), list(notes.get(_name, []))
            monkeypatch.setattr(cls, "run", run)
        return self


@pytest.fixture
def spy(monkeypatch):
    return Spy().install(monkeypatch)


def fewshot_result(shots, skipped=None):
    return {"shots": {k: {"mean": sum(v) / len(v), "std": 0.5, "top1": list(v)} for k, v in shots.items()},
            "skipped": dict(skipped or {}), "notes": []}


# ----------------------------------------------------------------------------- small pieces
def test_protocol_words_and_raw_pixels():
    assert S.protocol_words() == ("fewshot", "knn", "fast", "linear", "all", "both")
    x = torch.arange(24.0).view(2, 3, 2, 2)
    f = S.raw_pixels(x)
    assert f.shape == (2, 12) and torch.equal(f[1], torch.arange(12.0, 24.0))
    assert S.DEFAULT_PROBES == ("fewshot", "knn", "fast")


def test_probe_config_checks():
    c = ProbeConfig(probes=["knn"], shots=[1.0, "10"], draws=1)
    assert c.probes == ("knn",) and c.shots == (1, 10) and all(type(k) is int for k in c.shots)
    assert c.optimizer == "sgd"
    assert ProbeConfig(optimizer="LARS").optimizer == "lars"
    for bad in (dict(probes=()), dict(probes=("knn", "nope")), dict(draws=0), dict(probes=("fewshot",), shots=(0,)),
                dict(probes=("knn",), knn_k=0), dict(optimizer="adam")):
        with pytest.raises(ValueError):
            ProbeConfig(**bad)
    ProbeConfig(probes=("knn",), knn_k=1)                        # the boundaries are allowed
    ProbeConfig(probes=("fewshot",), shots=(1,))
    ProbeConfig(probes=("knn",), shots=(0,))                      # shots are fewshot's business only


def test_parse_probes_words_order_and_twins():
    P = S.parse_probes
    assert P("knn") == ("knn",)
    assert P(" KNN , ,fewshot") == ("fewshot", "knn")            # table order, case and blanks ignored
    assert P("knn+fewshot") == ("fewshot", "knn")
    assert P(["linear", "knn"]) == ("knn", "linear")
    assert P("all") == ("fewshot", "knn", "fast", "linear")
    assert P("both") == ("knn", "fast")
    assert P("knn,knn,fast") == ("knn", "fast")
    assert P("linear", fast=True) == ("fast",)
    assert P("fast", fast=False) == ("linear",)
    assert P("fast", fast=None) == ("fast",) and P("linear") == ("linear",)
    assert P("fast,linear", fast=True) == ("fast",)
    assert P("knn", fast=True) == ("knn",) and P("knn", fast=False) == ("knn",)
    assert P("all", fast=False) == ("fewshot", "knn", "linear")
    with pytest.raises(ValueError, match="comma-separated"):
        P("knn,nope")
    with pytest.raises(ValueError, match="no probe named"):
        P(" , ")


def test_probe_row_attributes_and_headline():
    r = ProbeRow(name="a", results={"knn": {"top1": 70.0, "k": 20}, "custom": {"top1": 1.0}})
    assert r.knn == {"top1": 70.0, "k": 20} and r.fewshot is None and r.linear is None
    assert r.custom == {"top1": 1.0}                             # a result of an unregistered probe
    with pytest.raises(AttributeError):
        r.nothing
    with pytest.raises(AttributeError):
        r._private
    assert not hasattr(r, "nothing")
    # headline: paper linear, else fast, else kNN, else the largest few-shot k's mean
    fs = fewshot_result({1: [10.0, 20.0], 10: [40.0, 50.0]})
    assert ProbeRow("a", results={"fewshot": fs}).top1() == 45.0
    assert ProbeRow("a", results={"fewshot": fs, "knn": {"top1": 61.0, "k": 5}}).top1() == 61.0
    assert ProbeRow("a", results={"fewshot": fs, "knn": {"top1": 61.0, "k": 5}, "fast": {"top1": 62.0}}).top1() == 62.0
    assert ProbeRow("a", results={"knn": {"top1": 61.0, "k": 5}, "fast": {"top1": 62.0},
                                  "linear": {"top1": 63.0}}).top1() == 63.0
    # a probe whose headline is missing (no few-shot k ran, no top1) gives way to the next one
    assert ProbeRow("a", results={"fewshot": fewshot_result({}), "knn": {"top1": 61.0, "k": 5}}).top1() == 61.0
    assert ProbeRow("a", results={"linear": {"top1": None}, "knn": {"top1": 61.0, "k": 5}}).top1() == 61.0
    assert ProbeRow("a", results={"linear": None, "custom": {"top1": 9.0}}).top1() is None
    assert ProbeRow("a", results={"fewshot": fewshot_result({})}).top1() is None


def test_probe_row_json_round_trip():
    fs = fewshot_result({1: [10.0, 20.0]}, skipped={100: "too few"})
    r = ProbeRow("a", role="distilled", feature_dim=8, results={"fewshot": fs, "custom": {"x": 1}},
                 notes=["n1"], extract_s=1.5, time_s=2.5)
    d = r.to_dict()
    assert list(d) == ["name", "role", "feature_dim", "fewshot", "knn", "fast", "linear", "custom", "notes",
                       "extract_s", "time_s"]
    assert d["fewshot"]["shots"] == {"1": fs["shots"][1]} and d["fewshot"]["skipped"] == {"100": "too few"}
    assert d["knn"] is None and d["linear"] is None and d["custom"] == {"x": 1}
    assert (d["name"], d["role"], d["feature_dim"], d["notes"], d["extract_s"], d["time_s"]) == \
        ("a", "distilled", 8, ["n1"], 1.5, 2.5)
    d["notes"].append("changed")
    assert r.notes == ["n1"]                                       # a copy
    back = ProbeRow.from_dict(r.to_dict())
    assert back == r and set(back.results) == {"fewshot", "custom"}
    assert ProbeRow.from_dict({"name": "b", "results": {"knn": 1}, "knn": None}) == ProbeRow("b")


def _table(cond=False, diff=None):
    cfg = ProbeConfig(probes=("fewshot", "knn"), shots=(1, 10), draws=2, l2=0.5, knn_t=0.07)
    rows = [ProbeRow("dist", role="distilled", feature_dim=8,
                     results={"fewshot": {"shots": {1: {"mean": 50.0, "std": 2.0, "top1": [48.0, 52.0]},
                                                    10: {"mean": 70.25, "std": 1.5, "top1": [69.0, 71.5]}},
                                          "skipped": {}, "notes": []},
                              "knn": {"top1": 81.04, "k": 20}},
                     notes=["warm"]),
            ProbeRow("twin", role="ssl-twin", feature_dim=16,
                     results={"fewshot": {"shots": {1: {"mean": 45.0, "std": 1.0, "top1": [44.0, 46.0]}},
                                          "skipped": {10: "too few"}, "notes": []},
                              "knn": {"top1": 79.0, "k": 20}})]
    return ProbeTable(rows=rows, config=cfg, dataset="toy", num_train=30, num_test=12, num_classes=3,
                      teacher_conditional=cond, time_s=3.0, difference=diff)


def test_table_row_lookup_and_json_round_trip():
    t = _table(cond=True, diff={"label": "d", "minuend": "dist", "subtrahend": "twin", "probes": {}})
    assert t.row("twin") is t.rows[1]
    with pytest.raises(KeyError, match="dist, twin"):
        t.row("none")
    d = t.to_dict()
    assert d["banner"] == BANNER and d["config"]["probes"] == ["fewshot", "knn"] and d["config"]["shots"] == [1, 10]
    assert d["config"]["draws"] == 2 and d["config"]["knn_t"] == 0.07
    assert (d["dataset"], d["num_train"], d["num_test"], d["num_classes"], d["teacher_conditional"], d["time_s"]) \
        == ("toy", 30, 12, 3, True, 3.0)
    assert d["rows"][0]["fewshot"]["shots"]["10"]["mean"] == 70.25 and d["rows"][1]["name"] == "twin"
    d["difference"]["label"] = "changed"
    assert t.difference["label"] == "d"                           # a deep copy
    assert "banner" not in _table().to_dict()
    back = ProbeTable.from_dict(t.to_dict())
    assert back.rows == t.rows and back.config == t.config and back.difference == t.difference
    assert (back.dataset, back.num_train, back.num_test, back.num_classes, back.teacher_conditional, back.time_s) \
        == ("toy", 30, 12, 3, True, 3.0)
    empty = ProbeTable.from_dict({"config": {"probes": ["knn"], "unknown": 1}})
    assert empty.rows == [] and empty.config.probes == ("knn",) and empty.dataset is None


# ----------------------------------------------------------------------------- running the probes
def test_suite_feeds_each_probe_the_same_features_in_table_order(spy):
    train, test = Tiny(6), Tiny(3, offset=100.0)
    calls = []

    def model(x):
        calls.append(x.clone())
        return x.flatten(1)[:, :3] * 2

    logs = []
    t = S.probe_suite({"m": model, "raw": RAW_PIXELS}, train, test, ProbeConfig(probes=("knn", "fewshot")),
                      log=logs.append, batch=4)
    assert [(n, d.config.batch) for n, d in spy.calls] == [("fewshot", 4), ("knn", 4), ("fewshot", 4), ("knn", 4)]
    norm = (train.x - 0.5) / 0.25
    d_model, d_raw = spy.calls[0][1], spy.calls[2][1]
    assert spy.calls[1][1] is d_model                           # one ProbeInput per representation
    assert torch.allclose(d_model.train_feats, norm.flatten(1)[:, :3] * 2)
    assert torch.allclose(d_model.test_feats, ((test.x - 0.5) / 0.25).flatten(1)[:, :3] * 2)
    assert torch.equal(d_model.train_labels, train.y) and torch.equal(d_model.test_labels, test.y)
    assert d_model.model is model and d_model.num_classes == 3 and d_model.train is train and d_model.test is test
    assert torch.allclose(d_raw.train_feats, norm.flatten(1)) and d_raw.model is S.raw_pixels
    assert [c.shape[0] for c in calls] == [4, 2, 3]                # batch 4 over 6 train items, then 3 test items
    assert [r.name for r in t.rows] == ["m", "raw"] and [r.role for r in t.rows] == ["model", "raw-pixels"]
    assert [r.feature_dim for r in t.rows] == [3, 4]
    assert t.rows[0].results == {"fewshot": {"top1": 1.0}, "knn": {"top1": 2.0}}
    assert (t.dataset, t.num_train, t.num_test, t.num_classes, t.teacher_conditional) == ("tiny", 6, 3, 3, False)
    assert t.config.batch == 4 and t.config.probes == ("knn", "fewshot")
    assert logs == [f"probes: m (3-d) done in {t.rows[0].time_s:.1f}s", f"probes: raw (4-d) done in {t.rows[1].time_s:.1f}s"]
    for r in t.rows:
        assert 0.0 <= r.extract_s <= r.time_s <= t.time_s


def test_suite_notes_skips_roles_and_settings(monkeypatch):
    spy = Spy().install(monkeypatch, results={"knn": None, "fewshot": {"top1": 5.0}},
                        notes={"knn": ["knn skipped"], "fewshot": ["fs note"]})
    cfg = ProbeConfig(probes=("fewshot", "knn"))
    t = S.probe_suite({"a": RAW_PIXELS}, Tiny(6), Tiny(3), cfg, roles={"a": "random-init"}, dataset="named",
                      teacher_conditional=1, progress=print)
    (row,) = t.rows
    assert row.results == {"fewshot": {"top1": 5.0}} and row.notes == ["fs note", "knn skipped"]
    assert row.role == "random-init" and t.dataset == "named" and t.teacher_conditional is True
    assert spy.calls[0][1].progress is print and t.config is cfg
    # without a name the dataset's own; without one of those None; "auto" picks the CPU here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    t2 = S.probe_suite({"a": RAW_PIXELS}, (Tiny(6).x, Tiny(6).y), (Tiny(3).x, Tiny(3).y), device="auto")
    assert t2.dataset is None and t2.config.device == "cpu" and t2.num_classes == 3
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    t3 = S.probe_suite({"a": (torch.zeros(6, 2), torch.zeros(3, 2))}, Tiny(6), Tiny(3), ProbeConfig(device="auto"))
    assert t3.config.device == "cuda"
    with pytest.raises(ValueError, match="at least one"):
        S.probe_suite({}, Tiny(6), Tiny(3))


def test_suite_refuses_unlabelled_sets_and_labels_beyond_the_classes(spy):
    bad = Tiny(6, num_classes=0)
    with pytest.raises(EvalDataError, match="train set"):
        S.probe_suite({"a": RAW_PIXELS}, bad, Tiny(3))
    with pytest.raises(EvalDataError, match="test set"):
        S.probe_suite({"a": RAW_PIXELS}, Tiny(6), bad)
    with pytest.raises(EvalDataError, match="train set"):       # labels 0..2 but the set says 2 classes
        S.probe_suite({"a": RAW_PIXELS}, Tiny(6, num_classes=2), Tiny(3, num_classes=2))
    yte = torch.tensor([0, 1, 3])
    with pytest.raises(EvalDataError, match="test set"):
        S.probe_suite({"a": Precomputed(torch.zeros(6, 2), torch.zeros(3, 2), None, yte)}, Tiny(6), Tiny(3))
    assert spy.calls == []


def test_precomputed_features_pairs_quads_and_label_overrides(spy):
    train, test = Tiny(6), Tiny(3)
    ftr, fte = torch.arange(12.0).view(6, 2), torch.arange(6.0).view(3, 2)
    ytr, yte = torch.tensor([2, 2, 2, 1, 1, 1]), torch.tensor([1, 0, 2])
    t = S.probe_suite({"pair": (ftr, fte), "quad": (ftr.double(), ytr, fte, yte),
                       "pre": Precomputed(ftr, fte, test_labels=yte)}, train, test, ProbeConfig(probes=("knn",)))
    pair, quad, pre = (d for _, d in spy.calls)
    assert torch.equal(pair.train_feats, ftr) and torch.equal(pair.test_feats, fte)
    assert torch.equal(pair.train_labels, train.y) and torch.equal(pair.test_labels, test.y)
    assert pair.model is None and pair.train_labels.dtype == torch.long
    assert quad.train_feats.dtype == torch.float32 and torch.equal(quad.train_feats, ftr)
    assert torch.equal(quad.train_labels, ytr) and torch.equal(quad.test_labels, yte) and torch.equal(quad.test_feats, fte)
    assert torch.equal(pre.train_labels, train.y) and torch.equal(pre.test_labels, yte)
    assert [r.role for r in t.rows] == ["features"] * 3 and [r.feature_dim for r in t.rows] == [2, 2, 2]
    for bad in ((torch.zeros(5, 2), fte), (ftr, torch.zeros(3)), (ftr.view(6, 2, 1), fte), (ftr, torch.zeros(4, 2))):
        with pytest.raises(EvalDataError, match="precomputed"):
            S.probe_suite({"x": bad}, train, test)
    with pytest.raises(ValueError, match="built-in"):
        S.probe_suite({"x": "pixels"}, train, test)


def test_labels_of_reads_every_batch():
    data = Tiny(7)
    assert torch.equal(S._labels_of(data, 3), torch.tensor([0, 1, 2, 0, 1, 2, 0]))


def test_roles():
    assert S._role(RAW_PIXELS) == "raw-pixels" and S._role(S.raw_pixels) == "raw-pixels"
    assert S._role("other") == "model"
    assert S._role(Precomputed(torch.zeros(1), torch.zeros(1))) == "features" and S._role((1, 2)) == "features"
    assert S._role(lambda x: x) == "model"


def test_closing_probes_rows_roles_twin_and_difference(spy, monkeypatch):
    seen = {}

    class Loaded:
        model = staticmethod(lambda x: x.flatten(1)[:, :2])

    def fake_load(path, seed=None):
        seen["args"] = (path, seed)
        return Loaded()

    monkeypatch.setattr(S, "load_student", fake_load)
    student = lambda x: x.flatten(1)[:, :1]                        # noqa: E731
    twin = lambda x: x.flatten(1)[:, 1:2]                          # noqa: E731
    logs = []
    t = S.closing_probes(student, "runs/x/init", Tiny(6), Tiny(3), ProbeConfig(probes=("knn",), seed=7),
                         teacher_conditional=True, student_name="mine", dataset="dd", log=logs.append, twin=twin,
                         twin_name="tw")
    assert seen["args"] == ("runs/x/init", 7)
    assert [(r.name, r.role, r.feature_dim) for r in t.rows] == [
        ("mine", "distilled", 1), ("tw", "ssl-twin", 1), ("random init", "random-init", 2),
        ("raw pixels", "raw-pixels", 4)]
    assert t.teacher_conditional is True and t.dataset == "dd" and len(logs) == 4
    assert spy.calls[0][1].model is student and spy.calls[1][1].model is twin
    assert spy.calls[2][1].model is Loaded.model
    # knn results of the spy are 1.0 (mine) and 2.0 (tw): the contribution is mine minus twin
    assert t.difference == {"label": CONTRIBUTION, "minuend": "mine", "subtrahend": "tw",
                            "probes": {"knn": {"mean": -1.0, "std": None}}}
    assert CONTRIBUTION == "teacher's contribution"
    # defaults: no twin, no difference; a module as the random student; no raw pixels on request
    spy.calls.clear()
    t = S.closing_probes(student, twin, Tiny(6), Tiny(3), ProbeConfig(probes=("knn",)), with_raw_pixels=False)
    assert [(r.name, r.role) for r in t.rows] == [("distilled", "distilled"), ("random init", "random-init")]
    assert t.difference is None and t.teacher_conditional is False and t.dataset == "tiny"
    t = S.closing_probes(student, None, Tiny(6), Tiny(3), ProbeConfig(probes=("knn",)))
    assert [r.name for r in t.rows] == ["distilled", "raw pixels"]
    from pathlib import Path
    S.closing_probes(student, Path("p"), Tiny(6), Tiny(3), ProbeConfig(probes=("knn",)))
    assert seen["args"] == (Path("p"), 0)


def test_closing_probes_seed_default_without_config(spy, monkeypatch):
    seen = {}

    class Loaded:
        model = staticmethod(lambda x: x.flatten(1))

    def fake_load(path, seed=None):
        seen["seed"] = seed
        return Loaded()

    monkeypatch.setattr(S, "load_student", fake_load)
    S.closing_probes(lambda x: x.flatten(1), "q", Tiny(6), Tiny(3), ProbeConfig(probes=("knn",)))
    assert seen["seed"] == 0
    seen.clear()
    monkeypatch.setattr(S, "ProbeConfig", lambda: ProbeConfig(probes=("knn",), seed=5))
    S.closing_probes(lambda x: x.flatten(1), "q", Tiny(6), Tiny(3), None)
    assert seen["seed"] == 5


# ----------------------------------------------------------------------------- the teacher's contribution
def _fs_row(name, draws, knn=None, linear=None):
    res = {"fewshot": {"shots": {k: {"mean": 0.0, "std": 0.0, "top1": v} for k, v in draws.items()},
                       "skipped": {}, "notes": []}}
    if knn is not None:
        res["knn"] = {"top1": knn, "k": 20}
    if linear is not None:
        res["linear"] = {"top1": linear}
    return ProbeRow(name, results=res)


def test_paired_difference_by_hand():
    a = _fs_row("a", {1: [50.0, 61.0, 55.0, 40.0], 10: [70.0], 100: [1.0, 2.0]}, knn=90.0, linear=80.0)
    b = _fs_row("b", {1: [40.0, 52.0, 49.0, 40.0], 10: [66.5], 5: [3.0, 3.0]}, knn=91.5)
    b.results["fast"] = {"top1": 60.0}
    t = ProbeTable(rows=[a, b], config=ProbeConfig())
    d = S.paired_difference(t, "a", "b")
    # per draw 10, 9, 6, 0: mean 25/4 = 6.25; squares of deviations 14.0625 + 7.5625 + 0.0625 + 39.0625 = 60.75,
    # sample variance 60.75 / 3 = 20.25, std 4.5
    assert d["label"] == "difference" and d["minuend"] == "a" and d["subtrahend"] == "b"
    assert set(d["probes"]) == {"fewshot:1", "fewshot:10", "knn"}
    assert d["probes"]["fewshot:1"] == {"mean": 6.25, "std": 4.5, "per_draw": [10.0, 9.0, 6.0, 0.0]}
    assert d["probes"]["fewshot:10"] == {"mean": 3.5, "std": None, "per_draw": [3.5]}      # one draw: no std
    assert d["probes"]["knn"] == {"mean": -1.5, "std": None}
    rev = S.paired_difference(t, "b", "a", label="x")
    assert rev["probes"]["fewshot:1"]["mean"] == -6.25 and rev["probes"]["fewshot:1"]["std"] == 4.5
    assert rev["probes"]["knn"]["mean"] == 1.5 and rev["label"] == "x"


def test_diff_stats_two_draws_and_types():
    s = S._diff_stats([3, 5], [1.0, 1.0])
    assert s == {"mean": 3.0, "std": math.sqrt(2.0), "per_draw": [2.0, 4.0]}
    assert all(type(v) is float for v in s["per_draw"]) and type(s["mean"]) is float
    # float64: a difference float32 would round
    s = S._diff_stats([1e8 + 1, 1e8 + 3], [0.0, 0.0])
    assert s["mean"] == 1e8 + 2


def test_paired_difference_top1_none_and_missing_rows():
    a = ProbeRow("a", results={"knn": {"top1": None, "k": 1}, "fast": {"top1": 50.0}, "linear": {"top1": 3}})
    b = ProbeRow("b", results={"knn": {"top1": 40.0, "k": 1}, "fast": {"top1": None}, "linear": {"top1": 1}})
    d = S.paired_difference(ProbeTable(rows=[a, b], config=ProbeConfig()), "a", "b")
    assert d["probes"] == {"linear": {"mean": 2.0, "std": None}}
    # a few-shot result on one side only (no per-draw dict on the other): not paired
    c = ProbeRow("c", results={"fewshot": {"top1": 5.0}})
    e = _fs_row("e", {1: [1.0]})
    assert S.paired_difference(ProbeTable(rows=[c, e], config=ProbeConfig()), "c", "e")["probes"] == {}
    assert S.paired_difference(ProbeTable(rows=[e, c], config=ProbeConfig()), "e", "c")["probes"] == {}
    f = ProbeRow("f", results={"fewshot": {"top1": 7.5}})
    assert S.paired_difference(ProbeTable(rows=[f, c], config=ProbeConfig()), "f", "c")["probes"] == \
        {"fewshot": {"mean": 2.5, "std": None}}
    with pytest.raises(KeyError):
        S.paired_difference(ProbeTable(rows=[c], config=ProbeConfig()), "c", "zz")


def test_teacher_is_conditional_search_depth():
    f = S.teacher_is_conditional
    assert f({"teacher_conditional": True}) is True
    assert f({"teacher_conditional": 0, "teacher": {"c_dim": 10}}) is False
    assert f({"teacher_conditional": None, "teacher": {"c_dim": 10}}) is True
    assert f({"a": {"teacher_conditional": 1}}) is True
    assert f({"a": {"b": {"teacher_conditional": True}}}) is True           # two sections down
    assert f({"a": {"b": {"c": {"teacher_conditional": True}}}}) is False    # three: not looked at
    assert f({"a": {"x": 1}, "b": {"teacher_conditional": True}}) is True   # a section without it is passed
    assert f({"a": {"teacher_conditional": False}, "teacher": {"c_dim": 3}}) is False
    assert f({"a": 1, "teacher": {"c_dim": 1}}) is True
    assert f({"teacher": {"c_dim": 0}}) is False and f({"teacher": {"c_dim": 0.5}}) is True
    assert f({"teacher": {"G": {"c_dim": 10}}}) is True and f({"teacher": {"G": {"c_dim": 0}}}) is False
    assert f({"teacher": {"c_dim": 0, "G": {"c_dim": 10}}}) is False        # the top-level c_dim is the answer
    assert f({"teacher": {"G": "x"}}) is False and f({"teacher": {"c_dim": "10"}}) is False
    assert f({"teacher": "sg2"}) is False and f({}) is False


# ----------------------------------------------------------------------------- rendering
def _diff_table():
    t = _table()
    t.difference = S.paired_difference(t, "dist", "twin", label=CONTRIBUTION)
    return t


def test_row_metrics_and_columns():
    t = _table()
    assert S.row_metrics(t.rows[0]) == {"shot1": 50.0, "shot1_std": 2.0, "shot10": 70.25, "shot10_std": 1.5,
                                        "knn20": 81.04}
    assert S.row_metrics(ProbeRow("x", results={"knn": None, "fast": {"top1": 3}, "custom": {"top1": 1}})) == \
        {"fast": 3.0}
    assert S._columns(t) == [("fewshot:1", "1-shot"), ("fewshot:10", "10-shot"), ("knn", "kNN-20")]
    assert S._ran(t, "knn") == [t.rows[0].results["knn"], t.rows[1].results["knn"]] and S._ran(t, "fast") == []
    assert S._cell(t.rows[1], "fewshot:10") == "skipped" and S._cell(t.rows[0], "knn") == "81.0"
    assert S._cell(t.rows[0], "fast") == "-"


def test_diff_cells_and_caption():
    t = _diff_table()
    # 1-shot per draw 4, 6: mean 5, sample std sqrt(2) = 1.414
    assert S._diff_cell(t, "fewshot:1") == "+5.0 ± 1.4"
    assert S._diff_cell(t, "fewshot:10") == "-" and S._diff_cell(t, "knn") == "+2.0"
    assert S._diff_header(t) == CONTRIBUTION and S._diff_header(_table()) is None
    assert S._diff_cell(_table(), "knn") == "-"
    assert S._caption(t) == ("top-1 (%) on 12 test images of toy, 30 train; k-shot: k labelled images per class, "
                             "mean ± std over 2 draws, L-BFGS logistic regression (l2 0.5); kNN: cosine, t=0.07; "
                             "teacher's contribution: dist minus twin, ± std of the paired per-draw differences")
    t2 = ProbeTable(rows=[ProbeRow("r", results={"fast": {"top1": 1.0}})], config=ProbeConfig(), num_test=5,
                    num_train=7)
    assert S._caption(t2) == "top-1 (%) on 5 test images, 7 train; linear (fast): on cached features"


class Silent(Probe):
    """a probe with no caption line"""

    order = 50

    def run(self, data):
        return {"top1": 1.0}, []


def test_a_probe_without_a_caption_adds_no_part():
    register_probe("zz_silent")(Silent)
    try:
        t = ProbeTable(rows=[ProbeRow("r", results={"zz_silent": {"top1": 2.0}})], config=ProbeConfig(),
                       num_test=5, num_train=7)
        assert S._caption(t) == "top-1 (%) on 5 test images, 7 train"
    finally:
        PROBES.unregister("zz_silent")


MD = """### T

| probe (top-1 %) | dist | twin | teacher's contribution |
|---|---:|---:|---:|
| feature dim | 8 | 16 |  |
| 1-shot | 50.0 ± 2.0 | 45.0 ± 1.0 | +5.0 ± 1.4 |
| 10-shot | 70.2 ± 1.5 | skipped | - |
| kNN-20 | 81.0 | 79.0 | +2.0 |

{caption}.
- dist: warm
"""


def test_markdown_by_hand():
    t = _diff_table()
    assert S.probe_table_markdown(t, "T") == MD.format(caption=S._caption(t))
    plain = _table()
    want = ("### probes\n\n**" + BANNER + "**\n\n| probe (top-1 %) | dist | twin |\n|---|---:|---:|\n"
            "| feature dim | 8 | 16 |\n| 1-shot | 50.0 ± 2.0 | 45.0 ± 1.0 |\n| 10-shot | 70.2 ± 1.5 | skipped |\n"
            "| kNN-20 | 81.0 | 79.0 |\n\n" + S._caption(plain) + ".\n- dist: warm\n")
    assert S.probe_table_markdown(plain, conditional_teacher=True) == want
    plain.teacher_conditional = True
    assert S.probe_table_markdown(plain) == want
    assert BANNER not in S.probe_table_markdown(plain, conditional_teacher=False)


def _cells(table, i):
    return [str(c) for c in table.columns[i]._cells]


def test_rich_table_by_hand():
    t = _diff_table()
    out = S.render_probe_table(t, "T")
    assert out.title == "T" and out.caption == S._caption(t) and out.min_width is None and out.show_header
    assert [c.header for c in out.columns] == ["probe (top-1 %)", "dist", "twin", CONTRIBUTION]
    assert [c.justify for c in out.columns] == ["left", "right", "right", "right"]
    assert out.columns[0].no_wrap and not out.columns[1].no_wrap and out.columns[3].style == "bold"
    assert _cells(out, 0) == ["feature dim", "1-shot", "10-shot", "kNN-20"]
    assert _cells(out, 1) == ["8", "50.0 ± 2.0", "70.2 ± 1.5", "81.0"]
    assert _cells(out, 2) == ["16", "45.0 ± 1.0", "skipped", "79.0"]
    assert _cells(out, 3) == ["", "+5.0 ± 1.4", "-", "+2.0"]
    plain = _table(cond=True)
    out = S.render_probe_table(plain)
    assert out.title == f"probes\n[bold red]{BANNER}[/bold red]" and out.min_width == len(BANNER) + 4
    assert len(out.columns) == 3 and _cells(out, 2) == ["16", "45.0 ± 1.0", "skipped", "79.0"]
    out = S.render_probe_table(plain, conditional_teacher=False)
    assert out.title == "probes" and out.min_width is None
    out = S.render_probe_table(_table(), conditional_teacher=True)
    assert BANNER in out.title
    buf = io.StringIO()
    Console(file=buf, width=60, color_system=None).print(S.render_probe_table(plain))
    assert BANNER in buf.getvalue()                               # never wrapped


# ----------------------------------------------------------------------------- gaps found by the first mutation pass
def test_private_names_and_a_bare_row_are_never_probe_lookups():
    r = ProbeRow("a", results={"_hidden": {"top1": 1.0}})
    with pytest.raises(AttributeError):
        r._hidden                                                  # a private name is never a probe's result
    bare = ProbeRow.__new__(ProbeRow)                              # as copy/pickle make it, before __dict__ is set
    assert not hasattr(bare, "anything") and not hasattr(bare, "results")
    import copy
    import pickle
    r2 = ProbeRow("b", results={"knn": {"top1": 3.0, "k": 1}})
    assert copy.copy(r2) == r2 and pickle.loads(pickle.dumps(r2)).knn == {"top1": 3.0, "k": 1}


def test_table_from_dict_without_a_config_uses_the_defaults():
    t = ProbeTable.from_dict({"rows": [{"name": "x"}]})
    assert t.config == ProbeConfig() and [r.name for r in t.rows] == ["x"]


def test_labels_are_read_once_per_suite(spy, monkeypatch):
    calls = []
    real = S._labels_of

    def count(data, batch):
        calls.append(len(data))
        return real(data, batch)

    monkeypatch.setattr(S, "_labels_of", count)
    S.probe_suite({"a": (torch.zeros(6, 2), torch.zeros(3, 2)), "b": (torch.ones(6, 2), torch.ones(3, 2))},
                  Tiny(6), Tiny(3), ProbeConfig(probes=("knn",)))
    assert calls == [6, 3]


def test_precomputed_shape_errors_name_the_split(spy):
    train, test = Tiny(6), Tiny(3)
    with pytest.raises(EvalDataError, match=r"^precomputed train features \(5, 2\) do not match 6 labels"):
        S.probe_suite({"x": (torch.zeros(5, 2), torch.zeros(3, 2))}, train, test)
    with pytest.raises(EvalDataError, match=r"^precomputed test features \(3,\) do not match 3 labels"):
        S.probe_suite({"x": (torch.zeros(6, 2), torch.zeros(3))}, train, test)


def test_features_are_extracted_on_the_configured_device(spy, monkeypatch):
    seen = []

    def fake_extract(rep, data, batch, device):
        seen.append((len(data), batch, device))
        return torch.zeros(len(data), 2), torch.arange(len(data)) % 3

    monkeypatch.setattr(S, "extract_features", fake_extract)
    S.probe_suite({"a": RAW_PIXELS}, Tiny(6), Tiny(3), ProbeConfig(probes=("knn",), batch=5, device="meta"))
    assert seen == [(6, 5, "meta"), (3, 5, "meta")]


def test_data_errors_name_the_split(spy):
    x, y = torch.zeros(3, 1, 2, 2), torch.zeros(2)
    with pytest.raises(EvalDataError, match=r"^train set: x has 3 rows but y has 2"):
        S.probe_suite({"a": RAW_PIXELS}, (x, y), Tiny(3))
    with pytest.raises(EvalDataError, match=r"^test set: x has 3 rows but y has 2"):
        S.probe_suite({"a": RAW_PIXELS}, Tiny(6), (x, y))
    with pytest.raises(EvalDataError, match=r"^train set 'tiny' has no labels"):
        S.probe_suite({"a": RAW_PIXELS}, Tiny(6, num_classes=0), Tiny(3))
    with pytest.raises(EvalDataError, match=r"^test set 'tiny' has no labels"):
        S.probe_suite({"a": RAW_PIXELS}, Tiny(6), Tiny(3, num_classes=0))
    with pytest.raises(EvalDataError, match=r"^train set has label 2 but num_classes=2"):
        S.probe_suite({"a": RAW_PIXELS}, Tiny(6, num_classes=2), Tiny(3, num_classes=2))
    yte = torch.tensor([0, 1, 3])
    with pytest.raises(EvalDataError, match=r"^test set has label 3 but num_classes=3"):
        S.probe_suite({"a": Precomputed(torch.zeros(6, 2), torch.zeros(3, 2), None, yte)}, Tiny(6), Tiny(3))


def test_number_of_classes_from_the_train_set_first(spy):
    t = S.probe_suite({"a": RAW_PIXELS}, Tiny(6, num_classes=5), Tiny(3, num_classes=4), probes=("knn",))
    assert t.num_classes == 5 and spy.calls[-1][1].num_classes == 5
    t = S.probe_suite({"a": RAW_PIXELS}, (Tiny(6).x, Tiny(6).y), Tiny(3, num_classes=5), probes=("knn",))
    assert t.num_classes == 5


def test_times_are_measured(spy):
    t = S.probe_suite({"a": RAW_PIXELS}, Tiny(6), Tiny(3), probes=("knn",))
    assert 0.0 < t.rows[0].extract_s <= t.rows[0].time_s <= t.time_s < 60.0


def test_closing_probes_default_twin_name(spy):
    t = S.closing_probes(lambda x: x.flatten(1), None, Tiny(6), Tiny(3), ProbeConfig(probes=("knn",)),
                         twin=lambda x: x.flatten(1)[:, :2])
    assert [r.name for r in t.rows] == ["distilled", "SSL twin", "raw pixels"]
    assert t.difference["subtrahend"] == "SSL twin"


def test_a_plugin_column_key_may_hold_colons():
    register_probe("zz_silent")(Silent)
    try:
        row = ProbeRow("r", results={"zz_silent": {"top1": 2.0}})
        assert S._cell(row, "zz_silent:a:b") == "2.0"
    finally:
        PROBES.unregister("zz_silent")
