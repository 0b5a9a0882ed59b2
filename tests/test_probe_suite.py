"""Tests for the probe suite: configurable kNN k and its default rule, the suite against the
probes run directly, raw pixels, parse_probes, the conditional-teacher banner in every rendering,
closing_probes and `gandistill eval` with baselines. Tiny data, CPU, seconds."""
from __future__ import annotations

import io
import json

import pytest
import torch
from rich.console import Console
from torch import nn

from gandistill.evaluation.features import EvalDataError
from gandistill.evaluation.fewshot import fewshot_probe
from gandistill.evaluation.knn import default_knn_k, knn_eval, knn_features, knn_predict
from gandistill.evaluation.linear import probe_features
from gandistill.evaluation.probes import get_probe, probe_names
from gandistill.evaluation.suite import (
    BANNER,
    RAW_PIXELS,
    Precomputed,
    ProbeConfig,
    ProbeTable,
    closing_probes,
    parse_probes,
    probe_suite,
    probe_table_markdown,
    render_probe_table,
    teacher_is_conditional,
)


class Images(torch.utils.data.Dataset):
    """A tiny labelled image set with the attributes gandistill datasets carry."""

    def __init__(self, n_per, num_classes=3, size=8, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(num_classes).repeat_interleave(n_per)
        x = torch.rand(len(self.y), 3, size, size, generator=g) * 0.4
        x[torch.arange(len(self.y)), self.y % 3, : size // 2] += 0.5      # class -> a bright channel half
        self.x = x.clamp(0, 1)
        self.name, self.num_classes, self.resolution = "toy", num_classes, size
        self.mean, self.std = (0.4, 0.3, 0.35), (0.2, 0.25, 0.3)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def brute_knn(train, labels, test, k, t, c):
    tr = train / train.norm(dim=1, keepdim=True)
    preds = []
    for q in test / test.norm(dim=1, keepdim=True):
        s = tr @ q
        order = sorted(range(len(s)), key=lambda i: -float(s[i]))[:k]
        score = [0.0] * c
        for i in order:
            score[int(labels[i])] += float(torch.exp(s[i] / t))
        preds.append(max(range(c), key=lambda j: score[j]))
    return torch.tensor(preds)


def console_text(renderable, width=160):
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(renderable)
    return buf.getvalue()


# ----------------------------------------------------------------------------- kNN k
def test_default_knn_k_rule():
    assert default_knn_k(9_999) == 20 and default_knn_k(10_000) == 200 and default_knn_k(1_281_167) == 200


@pytest.mark.parametrize("k", [1, 3, 11])
def test_knn_k_is_configurable(k):
    g = torch.Generator().manual_seed(k)
    xtr, ytr = torch.randn(40, 5, generator=g), torch.randint(0, 3, (40,), generator=g)
    xte, yte = torch.randn(15, 5, generator=g), torch.randint(0, 3, (15,), generator=g)
    res = knn_features(xtr, ytr, xte, yte, k=k, t=0.1, num_classes=3)
    expected = 100.0 * float((brute_knn(xtr, ytr, xte, k, 0.1, 3) == yte).float().mean())
    assert res["k"] == k and res["top1"] == pytest.approx(expected)


def test_knn_default_k_on_a_small_train_set_is_20():
    g = torch.Generator().manual_seed(0)
    xtr, ytr = torch.randn(60, 4, generator=g), torch.randint(0, 3, (60,), generator=g)
    xte = torch.randn(9, 4, generator=g)
    assert torch.equal(knn_predict(xtr, ytr, xte, num_classes=3), brute_knn(xtr, ytr, xte, 20, 0.1, 3))
    res = knn_eval(nn.Identity(), (xtr, ytr), (xte, torch.zeros(9, dtype=torch.long)), num_classes=3)
    assert res["k"] == 20 and res["k_requested"] is None
    with pytest.raises(ValueError, match="k must be"):
        knn_features(xtr, ytr, xte, torch.zeros(9, dtype=torch.long), k=0)


# ----------------------------------------------------------------------------- protocol words
def test_parse_probes():
    assert parse_probes("fewshot,knn,fast") == ("fewshot", "knn", "fast")
    assert parse_probes("all") == ("fewshot", "knn", "fast", "linear")
    assert parse_probes("linear") == ("linear",)                       # the paper protocol
    assert parse_probes("linear", fast=True) == ("fast",)              # the older --protocol linear --fast
    assert parse_probes("both") == parse_probes("both", fast=True) == ("knn", "fast")   # the older default
    assert parse_probes("both", fast=False) == ("knn", "linear")
    assert parse_probes("knn+fast", fast=False) == ("knn", "linear")   # --full
    with pytest.raises(ValueError, match="protocol"):
        parse_probes("svm")
    with pytest.raises(ValueError, match="probes"):
        ProbeConfig(probes=("nope",))


# ----------------------------------------------------------------------------- the suite
def test_suite_matches_the_probes_run_directly_and_raw_pixels_are_normalised_pixels():
    train, test = Images(12, seed=0), Images(6, seed=1)
    cfg = ProbeConfig(shots=(1, 4, 50), draws=2, fast_epochs=3, batch=16, knn_k=5)
    net = nn.Sequential(nn.Flatten(), nn.Linear(192, 7))
    torch.manual_seed(0)
    table = probe_suite({"net": net, "raw pixels": RAW_PIXELS}, train, test, cfg)
    assert [r.name for r in table.rows] == ["net", "raw pixels"] and table.num_classes == 3
    m, s = torch.tensor(train.mean).view(1, 3, 1, 1), torch.tensor(train.std).view(1, 3, 1, 1)
    px_tr, px_te = ((train.x - m) / s).flatten(1), ((test.x - m) / s).flatten(1)
    with torch.no_grad():
        net_tr, net_te = net(((train.x - m) / s)), net(((test.x - m) / s))
    for row, (ftr, fte) in zip(table.rows, [(net_tr, net_te), (px_tr, px_te)]):
        assert row.feature_dim == ftr.shape[1]
        direct = fewshot_probe(ftr, train.y, fte, test.y, shots=(1, 4, 50), draws=2)
        assert {k: v["top1"] for k, v in row.fewshot["shots"].items()} == \
            {k: v["top1"] for k, v in direct["shots"].items()}
        assert list(row.fewshot["skipped"]) == [50] and any("k=50" in n for n in row.notes)
        assert row.knn["k"] == 5
        assert row.knn["top1"] == pytest.approx(knn_features(ftr, train.y, fte, test.y, k=5)["top1"])
        fast = probe_features(ftr, train.y, fte, test.y, epochs=3, batch=16)
        assert row.fast["top1"] == pytest.approx(fast["top1"]) and row.linear is None
    assert table.row("raw pixels").role == "raw-pixels"


def test_suite_on_precomputed_features_and_linear_needs_a_model():
    train, test = Images(5, seed=0), Images(3, seed=1)
    g = torch.Generator().manual_seed(1)
    ftr, fte = torch.randn(15, 4, generator=g), torch.randn(9, 4, generator=g)
    t = probe_suite({"pair": (ftr, fte), "obj": Precomputed(ftr, fte)}, train, test,
                    probes=("knn", "linear"), knn_k=3)
    assert t.rows[0].knn["top1"] == t.rows[1].knn["top1"] == pytest.approx(
        knn_features(ftr, train.y, fte, test.y, k=3)["top1"])
    assert t.rows[0].linear is None and "no model" in t.rows[0].notes[0] and t.rows[0].role == "features"
    with pytest.raises(EvalDataError, match="do not match"):
        probe_suite({"bad": (ftr[:3], fte)}, train, test, probes=("knn",))
    with pytest.raises(ValueError, match="built-in"):
        probe_suite({"x": "pixels"}, train, test, probes=("knn",))


def test_paper_linear_protocol_runs_in_the_suite():
    train, test = Images(6, seed=0), Images(3, seed=1)
    t = probe_suite({"px": RAW_PIXELS}, train, test, probes=("linear",), linear_epochs=2, batch=9, lr=1.0)
    assert t.rows[0].linear["protocol"] == "linear" and t.rows[0].linear["epochs"] == 2
    assert t.rows[0].top1() == t.rows[0].linear["top1"]


@pytest.mark.parametrize("name", probe_names())           # every registered probe, new ones included
def test_each_probe_runs_and_renders(name):
    train, test = Images(6, seed=0), Images(3, seed=1)
    t = probe_suite({"px": RAW_PIXELS}, train, test, probes=(name,), shots=(1, 2), draws=2, knn_k=3,
                    fast_epochs=2, linear_epochs=2, batch=9)
    row = t.rows[0]
    assert list(row.results) == [name] and 0.0 <= row.top1() <= 100.0
    cols = get_probe(name).columns([row.results[name]])
    md = probe_table_markdown(t)
    assert cols and all(f"| {header} |" in md for _, header in cols)
    back = ProbeTable.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back.rows[0].top1() == pytest.approx(row.top1()) and probe_table_markdown(back) == md


# ----------------------------------------------------------------------------- banner and rendering
def _small_table(conditional):
    train, test = Images(4, seed=0), Images(2, seed=1)
    return probe_suite({"raw pixels": RAW_PIXELS}, train, test, shots=(1, 2), draws=2, fast_epochs=2,
                       teacher_conditional=conditional)


def test_banner_in_every_rendering_when_the_teacher_is_conditional():
    cond, plain = _small_table(True), _small_table(False)
    assert BANNER == "label-conditioned teacher: not self-supervised"
    assert BANNER in console_text(render_probe_table(cond, "fit"))
    assert BANNER in probe_table_markdown(cond, "fit")
    assert cond.to_dict()["banner"] == BANNER and cond.to_dict()["teacher_conditional"] is True
    assert BANNER not in console_text(render_probe_table(plain, "fit"))
    assert BANNER not in probe_table_markdown(plain, "fit") and "banner" not in plain.to_dict()
    assert BANNER in probe_table_markdown(plain, "fit", conditional_teacher=True)       # explicit override
    text = console_text(render_probe_table(plain, "fit"))
    for header in ("1-shot", "2-shot", "kNN-12", "linear (fast)", "raw pixels"):
        assert header in text


def test_table_round_trips_through_json():
    t = _small_table(True)
    back = ProbeTable.from_dict(json.loads(json.dumps(t.to_dict())))
    assert probe_table_markdown(back, "x") == probe_table_markdown(t, "x")
    assert back.rows[0].fewshot["shots"][1]["top1"] == t.rows[0].fewshot["shots"][1]["top1"]
    assert back.teacher_conditional and back.config.shots == (1, 2)


def test_teacher_is_conditional():
    assert teacher_is_conditional({"teacher_conditional": True})
    assert teacher_is_conditional({"resolved": {"teacher_conditional": True}, "teacher": {"c_dim": 0}})
    assert not teacher_is_conditional({"config": {"teacher_conditional": False}, "teacher": {"c_dim": 10}})
    assert teacher_is_conditional({"teacher": {"class": "GeneratorTeacher", "c_dim": 10}})
    assert not teacher_is_conditional({"teacher": {"c_dim": 0}}) and not teacher_is_conditional({})


# ----------------------------------------------------------------------------- closing table and eval
def tiny_student(seed):
    from gandistill.students import create_student

    torch.manual_seed(seed)
    return create_student("test_resnet", img_size=16, proj_layers=2, proj_hidden=16, proj_out=8)


def save_student(folder, student, extra_config=None):
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in student.state_dict().items()}, str(folder / "student.safetensors"))
    kwargs = student.config.to_dict()
    name = kwargs.pop("name")
    (folder / "checkpoint.json").write_text(json.dumps(
        {"format": "gandistill-student", "student": name, "student_kwargs": kwargs,
         "weights": "student.safetensors", "dataset": "digits", "img_size": 16}))
    if extra_config is not None:
        (folder / "config.json").write_text(json.dumps(extra_config))


def test_closing_probes_rows_and_random_student_from_a_path(tmp_path):
    from gandistill.evaluate import load_eval_splits

    distilled, init = tiny_student(0), tiny_student(1)
    save_student(tmp_path / "init", init)
    train, test = load_eval_splits("digits", img_size=16, max_train=60, max_test=20)
    cfg = ProbeConfig(shots=(1, 3), draws=2, fast_epochs=2)
    logs = []
    t = closing_probes(distilled, tmp_path / "init", train, test, cfg, teacher_conditional=True, log=logs.append)
    assert [r.name for r in t.rows] == ["distilled", "random init", "raw pixels"]
    assert [r.role for r in t.rows] == ["distilled", "random-init", "raw-pixels"] and len(logs) == 3
    direct = probe_suite({"init": init}, train, test, cfg)
    assert t.row("random init").knn["top1"] == direct.rows[0].knn["top1"]
    assert t.row("random init").fewshot["shots"][3]["top1"] == direct.rows[0].fewshot["shots"][3]["top1"]
    assert BANNER in console_text(render_probe_table(t, "gandistill fit"))
    t2 = closing_probes(distilled, None, train, test, cfg, with_raw_pixels=False)
    assert [r.name for r in t2.rows] == ["distilled"] and not t2.teacher_conditional


def make_run(tmp_path, conditional):
    run = tmp_path / ("cond" if conditional else "uncond")
    save_student(run, tiny_student(0), {"config": {"dataset": "digits", "seed": 4, "img_size": 16},
                                       "teacher": {"c_dim": 10 if conditional else 0}})
    save_student(run / "init", tiny_student(4))
    return run


def test_evaluate_with_baselines_reads_the_run(tmp_path):
    from gandistill.evaluate import evaluate, evaluate_table, load_eval_splits

    run = make_run(tmp_path, True)
    res = evaluate(run, protocol="fewshot,knn", shots=(1, 2), draws=2, baselines=True, max_train=40, max_test=20)
    assert res["teacher_conditional"] and res["probes"] == ["fewshot", "knn"] and res["knn"]["k"] == 20
    table = evaluate_table(res)
    assert [r.name for r in table.rows] == ["test_resnet", "random init", "raw pixels"]
    assert "own initial weights" in table.row("random init").notes[0]
    train, test = load_eval_splits("digits", img_size=16, max_train=40, max_test=20)
    own = probe_suite({"init": tiny_student(4)}, train, test, probes=("knn",))
    assert table.row("random init").knn["top1"] == own.rows[0].knn["top1"]
    assert res["top1"] == res["knn"]["top1"]
    plain = evaluate(make_run(tmp_path, False), protocol="knn", max_train=40, max_test=20)
    assert not plain["teacher_conditional"] and len(plain["table"]["rows"]) == 1


def test_eval_cli_prints_banner_only_for_conditional_runs(tmp_path):
    from typer.testing import CliRunner

    from gandistill.cli import app

    runner = CliRunner()
    args = ["--protocol", "fewshot,knn", "--shots", "1,2", "--draws", "2", "--knn-k", "7",
            "--max-train", "40", "--max-test", "20"]
    cond = runner.invoke(app, ["eval", str(make_run(tmp_path, True)), *args])
    assert cond.exit_code == 0, cond.output
    assert BANNER in cond.output and "kNN-7" in cond.output and "random init" in cond.output
    assert "raw pixels" in cond.output and "2-shot" in cond.output
    md = runner.invoke(app, ["eval", str(make_run(tmp_path, True)), *args, "--markdown", "--no-baselines"])
    assert md.exit_code == 0 and f"**{BANNER}**" in md.output and "raw pixels" not in md.output
    plain = runner.invoke(app, ["eval", str(make_run(tmp_path, False)), *args, "--no-baselines"])
    assert plain.exit_code == 0 and BANNER not in plain.output
    bad = runner.invoke(app, ["eval", str(make_run(tmp_path, False)), "--shots", "0,x"])
    assert bad.exit_code != 0
