"""scripts/teacher_quality.py --trajectory: the table of a run's snapshot quality JSONs, and the model-card block."""
from repo_scripts import load_script


def _script():
    return load_script("scripts/teacher_quality.py", "teacher_quality_script")


def _report(nimg, fd, hist):
    n = sum(hist)
    return {"checkpoint": f"runs/x/snapshot-{nimg:09d}", "fd": fd, "kid": fd / 2,
            "generated_labels": {"n": n, "class_histogram": hist, "class_share_min": min(hist) / n,
                                 "classes_with_3pct": sum(h >= 0.03 * n for h in hist), "share_confident_0.9": 0.5}}


def test_trajectory_rows_sorted_by_kimg_with_shares(tmp_path):
    tq = _script()
    table = tq.trajectory_markdown([_report(16000, 80.0, [10, 30, 60]), _report(8000, 120.25, [1, 1, 98])])
    lines = table.strip().splitlines()
    assert lines[2] == "| 8 | 120.2 | 60.1 | 1.00 % | 1 | 98.0 % | 50.0 % |"
    assert lines[3] == "| 16 | 80.0 | 40.0 | 10.00 % | 3 | 60.0 % | 50.0 % |"
    card = tmp_path / "card.md"
    card.write_text("# card\n\n<!-- t:start -->\nold\n<!-- t:end -->\ntail\n")
    tq.write_block(card, "t", table)
    text = card.read_text()
    assert "old" not in text and text.endswith("<!-- t:end -->\ntail\n") and "| 16 | 80.0 |" in text
    tq.write_block(card, "u", "new block")                      # a missing block is appended once
    assert card.read_text().endswith("<!-- u:start -->\nnew block\n<!-- u:end -->\n")
