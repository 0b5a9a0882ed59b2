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
