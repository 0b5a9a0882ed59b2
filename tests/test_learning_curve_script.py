"""scripts/learning_curve.py at a tiny budget: several methods x seeds, one jsonl line per point, a rerun
skips every finished point, the plot has error bars over seeds."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "learning_curve.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_curve_methods_seeds_resume_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    args = ["--out", str(tmp_path / "lc"), "--methods", "sns,vicreg-real", "--seeds", "0,1", "--steps", "2",
            "--candidate", "test_resnet:16:std", "--batch", "8", "--shots", "1,10", "--png", str(tmp_path / "img" / "lc_ssl.png")]
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [json.loads(x) for x in (tmp_path / "lc" / "curve.jsonl").read_text().splitlines()]
    points = sorted((x["key"]["method"], x["key"].get("seed", 0)) for x in recs if x["key"]["steps"] == 2)
    assert points == [("sns", 0), ("sns", 1), ("vicreg-real", 0), ("vicreg-real", 1)]
    assert sum(x["key"]["steps"] == 0 for x in recs) == 2                     # baselines once per seed
    for x in recs:
        if x["key"]["steps"]:
            d = x["probes"]["distilled"]
            assert {"shot1", "shot10"} <= set(d) and any(k.startswith("knn") and k[3:].isdigit() for k in d)
    assert (tmp_path / "lc" / "test_resnet-16-std-vicreg-real-b8-s2-seed1" / "checkpoint.json").exists()
    png = tmp_path / "img" / "lc_ssl.png"
    assert png.stat().st_size > 10_000
    png.unlink()
    again = run(*args, cwd=tmp_path)                                           # resumable: nothing retrained
    assert again.returncode == 0, again.stderr[-3000:]
    assert len((tmp_path / "lc" / "curve.jsonl").read_text().splitlines()) == len(recs)
    assert "test_resnet:16:std" not in again.stdout and "wrote" in again.stdout
    assert png.exists()


def test_method_colon_teacher_trains_with_that_teacher(tmp_path):
    pytest.importorskip("matplotlib")
    r = run("--out", str(tmp_path / "lc"), "--methods", "sns:sg2-d-on-g", "--steps", "1", "--candidate",
            "test_resnet:16:std", "--batch", "8", "--shots", "1", "--probes", "fewshot", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [json.loads(x) for x in (tmp_path / "lc" / "curve.jsonl").read_text().splitlines()]
    assert [x["key"]["method"] for x in recs if x["key"]["steps"]] == ["sns:sg2-d-on-g"]
    cfg = json.loads((tmp_path / "lc" / "test_resnet-16-std-sns-sg2-d-on-g-b8-s1" / "config.json").read_text())
    assert (cfg["method"]["name"], cfg["resolved"]["teacher"]) == ("sns", "sg2-d-on-g")
    assert cfg["teacher"]["class"] == "DiscriminatorOnSamplesTeacher"


def _script():
    from repo_scripts import load_script

    return load_script("scripts/learning_curve.py", "learning_curve_script")


def _rec(method, seed, steps, shot1, shot10=90.0, knn=95.0):
    key = {"candidate": "c", "steps": steps, "method": method, "batch": 64, **({"seed": seed} if seed else {})}
    return {"key": key, "probes": {"distilled": {"shot1": shot1, "shot10": shot10, "knn20": knn}}}


def test_summary_means_stds_and_paired_differences():
    lc = _script()
    base = {"key": {"candidate": "c", "steps": 0, "method": "sns", "batch": 64},
            "probes": {"raw pixels": {"shot1": 30.0, "shot10": 70.0, "knn20": 90.0},
                       "random init": {"shot1": 20.0, "shot10": 50.0, "knn20": 70.0}}}
    recs = [base, _rec("sns", 0, 100, 50.0), _rec("sns", 1, 100, 54.0), _rec("sns", 2, 100, 58.0),
            _rec("vicreg-real", 0, 100, 51.0), _rec("vicreg-real", 2, 100, 62.0)]
    text = lc.summarise(recs)
    assert "| – | raw pixels | 1 | 30.0 | 70.0 | 90.0 |" in text
    assert "| 100 | sns | 3 | 54.0 ± 4.0 | 90.0 ± 0.0 | 95.0 ± 0.0 |" in text       # sample std of 50, 54, 58
    assert "| 100 | vicreg-real | 2 | 56.5 ± 7.8 |" in text
    # paired over the seeds both have (0 and 2): -1 and -4 -> mean -2.5, sample std 2.1
    assert "| 100 | sns − vicreg-real | 2 | -2.5 ± 2.1 | +0.0 ± 0.0 | +0.0 ± 0.0 |" in text
    # --methods order picks the reference: vicreg-real minus sns over seeds 0 and 2, listed first
    again = lc.summarise(recs, order=["vicreg-real", "sns"])
    assert "| 100 | vicreg-real − sns | 2 | +2.5 ± 2.1 |" in again and "sns − vicreg-real" not in again
    assert again.index("| 100 | vicreg-real | 2") < again.index("| 100 | sns | 3")


def test_workers_share_points_through_claims(tmp_path):
    lc = _script()
    run = tmp_path / "point-a"
    assert lc._claim(run)                                   # first worker takes it
    assert (tmp_path / "point-a.claim").read_text() == str(os.getpid())
    assert lc._claim(run)                                   # its own claim
    other = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "point-b.claim").write_text(other.stdout.strip())   # a finished (dead) worker's claim
    assert lc._claim(tmp_path / "point-b")                  # is taken over
    (tmp_path / "point-c.claim").write_text("1")            # a live process (pid 1) holds this one
    assert not lc._claim(tmp_path / "point-c")


def test_plot_baselines_are_the_mean_over_seeds():
    lc = _script()
    recs = [{"key": {"candidate": "c", "steps": 0, "method": "sns", "batch": 64, **({"seed": s} if s else {})},
             "probes": {"raw pixels": {"shot1": v}, "random init": {"shot1": v - 10}}} for s, v in ((0, 30.0), (1, 36.0))]
    assert lc._mean_of(recs, "raw pixels", "shot1") == 33.0 and lc._mean_of(recs, "random init", "shot1") == 23.0
    assert lc._mean_of(recs, "raw pixels", "knn") is None
