"""`gandistill compare` end to end at a tiny budget: rows run, reports are written, resume skips,
a collapse is the row's result, a row that cannot run says why, dry runs print SnS's settings."""
import csv
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from gandistill.compare import CompareConfig, compare, get_preset, resolve
from gandistill.compare import report
from gandistill.compare.tables import RUNS

TINY = dict(student="test_resnet", img_size=16, batch=8, steps=2, dim=32, proj_hidden=16, squeeze_hidden=32,
            log_every=1)


def tiny_cfg(out, rows, **kw):
    base = dict(table=1, rows=rows, out=str(out), probe_epochs=2, probe_max_train=120, probe_max_test=60,
                fit_overrides=dict(TINY), device="cpu")
    base.update(kw)
    return CompareConfig(**base)


@pytest.fixture(scope="module")
def two_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    res = compare(tiny_cfg(out, "d-single,g-sns"), log=lambda s: None)
    files = report.write_all(res, "gandistill compare --table 1 --rows d-single,g-sns")
    return out, res, files


def test_two_rows_end_to_end_write_csv_md_png(two_rows):
    out, res, files = two_rows
    assert [r.key for r in res.rows] == ["d-single", "g-sns"]
    assert [r.status for r in res.rows] == ["ok", "ok"], [r.notes for r in res.rows]
    for r in res.rows:
        assert r.headline in r.metrics and 0.0 <= r.value <= 100.0
    assert res.rows[0].paper == 63.81 and res.rows[1].paper == 92.54
    assert (out / "runs" / "g-sns" / "checkpoint.json").exists()          # the row's own run folder
    assert {b.group for b in res.baselines} == {"baseline"} and len(res.baselines) == 2
    with open(files["csv"]) as f:
        rows = list(csv.reader(f))
    head = rows[0]
    assert "paper cifar10" in head and "diff" in head and "rank ours" in head
    by_key = {r[1]: dict(zip(head, r)) for r in rows[1:]}
    assert float(by_key["g-sns"]["paper cifar10"]) == 92.54
    assert float(by_key["d-single"]["diff"]) == pytest.approx(res.rows[0].value - 63.81, abs=0.011)
    md = Path(files["md"]).read_text()
    assert "| d-single |" in md and "63.81" in md and "92.54" in md and "Kendall" in md and "Machine:" in md
    with Image.open(files["png"]) as im:
        assert im.size[0] > 100 and im.size[1] > 100
    saved = json.loads((out / "results" / "table1" / "g-sns.json").read_text())
    assert saved["status"] == "ok" and saved["metrics"] == res.rows[1].metrics


def test_resume_skips_finished_rows_and_finished_runs(two_rows, monkeypatch):
    out, first, _ = two_rows

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("gandistill.engine.fit", no_training)
    again = compare(tiny_cfg(out, "d-single,g-sns"), log=lambda s: None)
    assert again.skipped == ["d-single", "g-sns"]
    assert [r.value for r in again.rows] == [r.value for r in first.rows]
    # a row whose result was lost but whose run is finished: probed again from the cache, not retrained
    (out / "results" / "table1" / "g-sns.json").unlink()
    third = compare(tiny_cfg(out, "g-sns"), log=lambda s: None)
    assert third.skipped == [] and third.rows[0].status == "ok"
    assert third.rows[0].metrics == first.rows[1].metrics


def test_other_settings_in_the_same_folder_are_refused(two_rows):
    out, _, _ = two_rows
    with pytest.raises(ValueError, match="other settings"):
        compare(tiny_cfg(out, "g-sns", budget=0.5), log=lambda s: None)


def _raise_stop(reason):
    from gandistill.engine import TrainingStopped

    def fake_fit(cfg, log=None):
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        raise TrainingStopped(f"training stopped at step 7: {reason}", reason=reason, step=7)

    return fake_fit


def test_collapse_is_the_rows_result_at_chance(tmp_path, monkeypatch):
    monkeypatch.setattr("gandistill.engine.fit", _raise_stop("collapse"))
    res = compare(tiny_cfg(tmp_path, "c", table=5, baselines=False), log=lambda s: None)
    (row,) = res.rows
    assert row.status == "collapsed" and row.value == pytest.approx(10.0)    # digits: 10 classes
    assert row.paper == 10.0 and any("collapsed at step 7" in n for n in row.notes)
    st = json.loads((tmp_path / "runs" / "g-squeeze-novarcov" / "compare_run.json").read_text())
    assert st["status"] == "collapsed" and st["step"] == 7


def test_rows_that_cannot_run_say_why_and_the_table_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr("gandistill.engine.fit", _raise_stop("non-finite"))
    res = compare(tiny_cfg(tmp_path, "d-single,g-vanilla", teacher_ckpt=str(tmp_path / "nope"), baselines=False),
                  log=lambda s: None)
    d, g = res.rows
    assert d.status == "failed" and any("nope" in n for n in d.notes)
    assert g.status == "failed" and any("non-finite" in n for n in g.notes)
    header, cells = report.table_rows(res)
    assert [c[4] for c in cells] == ["failed", "failed"]
    assert (tmp_path / "results" / "errors.log").exists()


def test_budget_scales_the_training_length():
    digits, c10 = get_preset("digits"), get_preset("cifar10")
    assert resolve(RUNS["g-sns"], digits, 0.5).fit["steps"] == round(digits.steps * 0.5)
    assert resolve(RUNS["g-sns"], c10, 0.1).fit["epochs"] == pytest.approx(80.0)
    assert resolve(RUNS["d-single"], c10, 0.1).fit.get("epochs") is None          # probes train nothing
    with pytest.raises(ValueError, match="budget"):
        resolve(RUNS["g-sns"], digits, 0.0)


def dry_run_text(table, preset, rows=None):
    from gandistill.cli.compare import print_dry_run

    lines = []
    print_dry_run(table, preset, rows, 1.0, None, echo=lines.append)
    return "\n".join(lines)


def block(text, key):
    part = text.split(f"[{key}]", 1)[1]
    return part.split("\n[", 1)[0]


def test_dry_run_prints_snss_cifar10_settings():
    text = dry_run_text(1, "cifar10")
    assert text.count("\n[") == 10
    sns = block(text, "g-sns")
    for line in ("student = resnet18", "cifar_stem = True", "img_size = 32", "batch = 512", "epochs = 800.0",
                 "base_lr = 0.03", "lr = 0.06", "wd = 0.0005", "sim = 25.0", "var = 25.0", "cov = 1.0",
                 "alpha = 0.5", "squeeze_depth = 3", "steps_per_epoch = 97", "total_steps = 77600",
                 "proj_layers = 5", "proj_hidden = 512", "dim = 2048", "shared_aug = True", "sync_bn = True",
                 "squeeze_hidden = 2048", "augment_syn = ssl-cifar", "no warm-up"):
        assert line in sns, line
    enc = block(text, "enc-syn")
    for line in ("batch = 128", "lr = 0.005", "proj_layers = 2", "encoder_input = raw", "augment_syn = none"):
        assert line in enc, line
    assert "probe = paper-linear: sgd batch 256 lr 30 wd 0 90 epochs" in block(text, "d-multi")
    assert "teacher_kwargs = {'mode': 'multi'}" in block(text, "d-multi")
    van = block(text, "w-vanilla")
    assert "teacher = sg2-latent" in van and "sim = 1.0" in van and "squeeze_depth = 0" in van


def test_dry_run_other_presets():
    c100 = block(dry_run_text(1, "cifar100", "g-sns,g-vanilla"), "g-sns")
    assert "sim = 10.0" in c100 and "var = 10.0" in c100 and "cov = 1.0" in c100
    stl = dry_run_text(2, "stl10", "real-simsiam,mixed-sns")
    sns = block(stl, "mixed-sns")
    for line in ("cifar_stem = False", "img_size = 64", "lr = 0.1", "wd = 0.0001", "train_split = train+unlabeled",
                 "steps_per_epoch = 205", "total_steps = 41000", "augment_syn = ssl-stl", "lars batch 4096 lr 1.6"):
        assert line in sns, line
    ss = block(stl, "real-simsiam")
    assert "proj_layers = 3" in ss and "proj_final_bn = True" in ss and "proj_hidden = backbone width" in ss
    c = block(dry_run_text(5, "cifar10", "c"), "c")
    assert "sim = 1.0" in c and "var = 0.0" in c and "cov = 0.0" in c and "squeeze_depth = 3" in c


def test_cli_dry_run_and_bad_arguments():
    from typer.testing import CliRunner

    from gandistill.cli import app

    r = CliRunner().invoke(app, ["compare", "--table", "5", "--preset", "cifar10", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "[f]" in r.output and "paper cifar10: 92.54" in r.output
    r = CliRunner().invoke(app, ["compare", "--preset", "cifar10", "--dry-run"])
    assert r.exit_code != 0
    r = CliRunner().invoke(app, ["compare", "--table", "1", "--preset", "cifar11", "--dry-run"])
    assert r.exit_code != 0


def test_bar_chart_png_has_both_series(tmp_path, two_rows):
    _, res, _ = two_rows
    path = report.write_png(res, tmp_path / "t.png")
    with Image.open(path) as im:
        colours = {c for _, c in im.convert("RGB").getcolors(1 << 20)}
    hexes = {"#%02x%02x%02x" % c for c in colours}
    assert report.COLOURS["ours"] in hexes and report.COLOURS["paper"] in hexes


def test_without_matplotlib_the_tables_are_written_and_the_png_names_the_extra(tmp_path, monkeypatch, two_rows):
    import builtins

    from gandistill.compare.plotting import MissingPlotExtra

    real_import = builtins.__import__

    def no_mpl(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    _, res, _ = two_rows
    with pytest.raises(MissingPlotExtra, match=r"gandistill\[plot\]") as e:
        report.write_png(res, tmp_path / "t.png")
    assert "\n" not in str(e.value) and not (tmp_path / "t.png").exists()
    files = report.write_all(dataclasses.replace(res, out=tmp_path / "cmp"))
    assert files["png"] == "" and "gandistill[plot]" in files["png_backend"]
    assert Path(files["csv"]).exists() and Path(files["md"]).exists()


def test_ranks_and_kendall():
    assert report.ranks([3.0, None, 5.0, 3.0]) == [2, None, 1, 2]
    assert report.ranks([3.0, 1.0], higher_is_better=False) == [2, 1]
    assert report.kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert report.kendall_tau([1, 2, 3], [30, 20, 10]) == -1.0


def test_an_interrupted_fit_is_continued_not_restarted(tmp_path, monkeypatch):
    import gandistill.engine as engine
    from gandistill.compare.presets import get_preset, resolve
    from gandistill.compare.runner import _fit_config

    cfg = tiny_cfg(tmp_path, "g-vanilla", baselines=False)
    plan = resolve(RUNS["g-vanilla"], get_preset("digits"), 1.0, seed=0, device="cpu")
    run_dir = tmp_path / "runs" / "g-vanilla"
    engine.fit(_fit_config(plan, cfg, run_dir, resume=False), log=lambda s: None)
    (run_dir / "summary.json").unlink()          # killed after its last checkpoint, before the summary
    calls = []
    real_fit = engine.fit

    def spy(c, log=None):
        calls.append(c.resume)
        return real_fit(c, log=log)

    monkeypatch.setattr("gandistill.engine.fit", spy)
    res = compare(cfg, log=lambda s: None)
    assert calls == [True] and res.rows[0].status == "ok", res.rows[0].notes


def test_paper_presets_need_a_teacher_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="--teacher-ckpt"):
        compare(CompareConfig(table=1, preset="cifar10", out=str(tmp_path)), log=lambda s: None)


def test_encoder_and_simsiam_rows_record_how_they_differ_from_the_paper(tmp_path):
    enc = compare(tiny_cfg(tmp_path / "a", "enc-syn", baselines=False), log=lambda s: None).rows[0]
    assert enc.status == "ok", enc.notes
    assert any("not LPIPS" in n for n in enc.notes)                  # no AlexNet weights offline: labelled
    cfg = json.loads((tmp_path / "a" / "runs" / "enc-syn" / "config.json").read_text())
    assert cfg["config"]["encoder_input"] == "raw"                    # E sees G's [-1, 1] images, as SnS
    over = {k: v for k, v in TINY.items() if k != "proj_hidden"}      # SimSiam: hidden = backbone width
    ss = compare(tiny_cfg(tmp_path / "b", "real-simsiam", table=2, baselines=False, fit_overrides=over),
                 log=lambda s: None).rows[0]
    assert ss.status == "ok", ss.notes
    ck = json.loads((tmp_path / "b" / "runs" / "simsiam-real" / "checkpoint.json").read_text())
    assert ck["student_kwargs"]["proj_final_bn"] is True and ck["student_kwargs"]["proj_hidden"] is None
    assert not any("final BatchNorm1d" in n for n in ss.notes)


def test_twin_row_is_a_lookup_of_the_vicreg_row_never_a_second_training(tmp_path):
    from gandistill.compare.runner import twin_run_id

    assert twin_run_id("g-sns") == "vicreg-real" and twin_run_id("g-sns@snapshot-000016000") == "vicreg-real"
    assert twin_run_id("g-squeeze") == "vicreg-syn" and twin_run_id("vicreg-real") is None
    assert twin_run_id("d-single") is None
    res = compare(tiny_cfg(tmp_path, "real-vicreg,mixed-sns", table=2, baselines=False), log=lambda s: None)
    sns, vic = res.rows[1], res.rows[0]
    assert sns.status == vic.status == "ok", [r.notes for r in res.rows]
    assert sns.twin["run"] == "vicreg-real" and sns.twin["metrics"] == vic.metrics
    for k, v in sns.twin["difference"].items():
        assert v == pytest.approx(sns.metrics[k] - vic.metrics[k])
    assert any(n.startswith("teacher's contribution (minus SSL twin vicreg-real)") for n in sns.notes)
    assert not (tmp_path / "runs" / "g-sns" / "twin").exists()            # fit trained no twin of its own
    stamp = (tmp_path / "runs" / "vicreg-real" / "checkpoint.json").stat().st_mtime_ns
    # Table 1 has no VICReg row: its Sq & Sp row finds the run Table 2 trained, without training it again
    t1 = compare(tiny_cfg(tmp_path, "g-sns", table=1, baselines=False), log=lambda s: None)
    assert t1.rows[0].twin["run"] == "vicreg-real" and t1.rows[0].twin["metrics"] == vic.metrics
    assert (tmp_path / "runs" / "vicreg-real" / "checkpoint.json").stat().st_mtime_ns == stamp


def test_conditional_teacher_warned_before_any_row(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from gandistill.cli import app

    cond = str(Path(__file__).parents[1] / "gandistill" / "assets" / "digits-sg2-cond")
    r = CliRunner().invoke(app, ["compare", "--table", "2", "--dry-run", "--teacher-ckpt", cond])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0].startswith("warning:") and "c_dim=10" in r.output.splitlines()[0]
    monkeypatch.chdir(tmp_path)
    said = []
    cfg = tiny_cfg(None, "real-vicreg", table=2, teacher_ckpt=cond, baselines=False)
    cfg.out = None
    res = compare(cfg, log=said.append)
    assert said[0].startswith("warning:") and "class-conditional (c_dim=10)" in said[0]
    assert res.out.name == "compare-digits-cond"
    assert json.loads((res.out / "compare.json").read_text())["conditional_teacher"]["c_dim"] == 10
