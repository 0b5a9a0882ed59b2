"""gan score: Frechet distance and KID against independent statements, the judge, and the CLI on the fixture."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gandistill.gan.judge import DigitCNN, label_stats, load_judge
from gandistill.gan.score import (ScoreError, fd_from_features, frechet_distance, kid, mmd2_unbiased_poly,
                                  score_generator)

FIX = Path(__file__).parent / "fixtures"


def _fd_numpy(a: np.ndarray, b: np.ndarray) -> float:
    """FD through the trace of sqrtm(S1 S2) written with numpy's general eigenvalues (a different route)."""
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ev = np.linalg.eigvals(s1 @ s2)  # eigenvalues of S1 S2 are real, >= 0; tr sqrtm = sum sqrt(ev)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev.real, 0, None)).sum())


def test_fd_matches_independent_statement():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 6, generator=g, dtype=torch.float64)
    b = torch.randn(250, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64) + 0.5
    assert fd_from_features(a, b) == pytest.approx(_fd_numpy(a.numpy(), b.numpy()), rel=1e-6, abs=1e-8)


def test_fd_closed_form_gaussians():
    # diagonal covariances: FD = |dmu|^2 + sum (sqrt(s1) - sqrt(s2))^2
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    s1, s2 = torch.diag(torch.tensor([1.0, 4.0, 9.0])), torch.diag(torch.tensor([4.0, 4.0, 1.0]))
    want = 1 + 0 + 4 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, abs=1e-9)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_mmd_poly_matches_loop():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64)
    y = torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.3
    k = lambda a, b: (float(a @ b) / 3 + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    assert mmd2_unbiased_poly(x, y) == pytest.approx(sxx + syy - 2 * sxy, rel=1e-10)


def test_kid_near_zero_same_distribution_and_positive_for_shift():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    same, std = kid(a, b, subsets=10, subset_size=100)
    shifted, _ = kid(a, b + 1.0, subsets=10, subset_size=100)
    assert abs(same) < 3 * std + 1e-3
    assert shifted > 10 * abs(same)
    assert std > 0  # subsets differ between draws


def test_label_stats_histogram():
    p = torch.zeros(10, 10)
    p[torch.arange(10), torch.tensor([0, 0, 0, 1, 1, 2, 3, 4, 5, 9])] = 1.0
    s = label_stats(p)
    assert s["class_histogram"] == [3, 2, 1, 1, 1, 1, 0, 0, 0, 1]
    assert s["class_share_min"] == 0.0 and s["classes_with_3pct"] == 7
    assert s["share_confident_0.9"] == 1.0


def test_shipped_judge_loads_and_rejects_wrong_shape():
    j = load_judge()
    assert isinstance(j.model, DigitCNN) and j.meta["test_accuracy"] > 0.95
    with pytest.raises(ValueError, match="32, 32"):
        j.model(torch.zeros(2, 3, 28, 28))


def test_score_on_fixture_says_its_space(tmp_path):
    res = score_generator(FIX / "sg2-tiny-uncond.pkl", n=64, kid_subsets=3)
    assert res["feature_space"] == "digits-judge" and res["feature_dim"] == 128
    assert res["n_fake"] == 64 and res["n_real"] == 64
    assert math.isfinite(res["fd"]) and res["fd"] > 0
    assert sum(res["generated_labels"]["class_histogram"]) == 64
    assert res["conditional"] is False


def test_score_errors(tmp_path):
    with pytest.raises(ScoreError, match="not found"):
        score_generator(tmp_path / "nope.pkl", n=8)
    with pytest.raises(ScoreError, match="Inception weights file not found"):
        score_generator(FIX / "sg2-tiny-uncond.pkl", n=8, inception=tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(ScoreError, match="inception_v3"):
        score_generator(FIX / "sg2-tiny-uncond.pkl", n=8, inception=bad)


def test_cli_score(tmp_path):
    from typer.testing import CliRunner

    from gandistill.cli import app

    out = tmp_path / "s.json"
    r = CliRunner().invoke(app, ["gan", "score", str(FIX / "sg2-tiny-uncond.pkl"), "--n", "32", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "feature space: digits-judge" in r.output
    assert json.loads(out.read_text())["n_fake"] == 32
