"""The paper's tables as data: every row present, every number equal to the paper's text.

The paper text lives in tests/fixtures/paper_tables.md (copied verbatim); it is parsed here,
independently of gandistill.compare.tables, and compared row by row.
"""
import re
from pathlib import Path

import pytest

from gandistill.compare.tables import FIGURE4_FID, FIGURE4_TOP1, RUNS, TABLES, get_table, run_of, select_rows
from gandistill.methods import get_method

FIXTURE = Path(__file__).parent / "fixtures" / "paper_tables.md"


def sections():
    out, cur = {}, None
    for line in FIXTURE.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            cur = line[3:].strip()
            out[cur] = []
        elif cur and line.strip() and not line.startswith("#"):
            out[cur].append(line)
    return out


def num(cell):
    cell = re.sub(r"</?u>", "", cell).strip()
    return None if cell in ("–", "-", "") else float(cell)


def clean(label):
    return re.sub(r"\s*\[\d+\]", "", label).strip()


def carried(lines, n_text):
    """Rows of a tab table whose first text cells carry down when empty (merged cells)."""
    rows, last = [], [""] * n_text
    for line in lines[1:]:
        cells = line.split("\t")
        text = [c if c else last[i] for i, c in enumerate(cells[:n_text])]
        last = text
        rows.append((text, cells[n_text:]))
    return rows


def test_table1_rows_and_numbers():
    t = get_table(1)
    rows = carried(sections()["Table 1"], 3)
    assert len(t.rows) == len(rows) == 10
    assert t.columns == ("cifar10", "cifar100")
    for spec, ((source, method, domain), nums) in zip(t.rows, rows):
        assert spec.group == source
        assert spec.label == f"{method} | {domain}"
        assert [spec.paper["cifar10"], spec.paper["cifar100"]] == [num(c) for c in nums]


def test_table2_rows_and_numbers():
    t = get_table(2)
    rows = carried(sections()["Table 2"], 2)
    header = sections()["Table 2"][0].split("\t")[2:]
    assert [h.lower() for h in header] == list(t.columns)
    assert len(t.rows) == len(rows) == 8
    for spec, ((data, method), nums) in zip(t.rows, rows):
        assert (spec.group, spec.label) == (data, clean(method))
        assert [spec.paper[c] for c in t.columns] == [num(c) for c in nums]


def test_table5_rows_numbers_and_components():
    t = get_table(5)
    lines = sections()["Table 5"]
    names = {r"\mathcal{L}_{RD}": "L_RD", r"\mathcal{A}": "A", "T_ϕ": "T_phi", r"\mathcal{L}_{var}": "L_var",
             r"\mathcal{L}_{cov}": "L_cov", "Span": "Span"}
    header = [names[h] for h in lines[0].split("\t")[1:-1]]
    assert len(t.rows) == len(lines) - 1 == 6
    for spec, line in zip(t.rows, lines[1:]):
        cells = line.split("\t")
        assert spec.key == cells[0]
        assert spec.paper["cifar10"] == num(cells[-1])
        assert set(spec.parts) == {h for h, c in zip(header, cells[1:-1]) if c.strip() == "✓"}


def test_table6_rows_numbers_and_units():
    t = get_table(6)
    lines = sections()["Table 6"]
    units = [10.0 ** int(m) for m in re.findall(r"10\^\{(-?\d+)\}", lines[0])]
    assert [t.units[c] for c in t.columns] == pytest.approx(units)
    rows = carried(lines, 2)
    assert len(t.rows) == len(rows) == 4
    for spec, ((method, data), nums) in zip(t.rows, rows):
        assert (spec.group, spec.label) == (clean(method), data)
        assert [spec.paper[c] for c in t.columns] == [num(c) for c in nums]
    assert t.metric == "mmd2"


def test_figure4_points():
    fid_line, top_line = sections()["Figure 4"]
    assert list(FIGURE4_FID) == [float(x) for x in fid_line.strip("| ").split("|")[1:]]
    assert list(FIGURE4_TOP1) == [float(x) for x in top_line.strip("| ").split("|")[1:]]


def test_table5_components_match_what_each_run_trains():
    # the check marks are a statement about the training: read them off the run specs
    for row in get_table(5).rows:
        run = run_of(row)
        sim, var, cov = run.weights
        trained = {"L_RD"} | ({"A"} if run.augment else set()) | ({"T_phi"} if run.squeeze_depth else set()) \
            | ({"L_var"} if var > 0 else set()) | ({"L_cov"} if cov > 0 else set()) \
            | ({"Span"} if run.alpha < 1 else set())
        assert trained == set(row.parts), row.key
    assert run_of(get_table(5).row("c")).weights == (1.0, 0.0, 0.0)        # SnS's script for row c


def test_runs_agree_with_their_method_specs():
    for table in TABLES.values():
        for row in table.rows:
            assert row.run in RUNS
    for run in RUNS.values():
        spec = get_method(run.method)
        if run.kind == "probe-d":
            assert spec.objective == "probe" and run.teacher == "sg2-discriminator"
            continue
        assert run.alpha == spec.alpha
        assert run.augment == spec.augment
        if run.squeeze_depth is not None:
            assert run.squeeze_depth == spec.squeeze_depth
        if spec.objective in ("distill", "vicreg"):
            assert run.weights == (spec.sim, spec.var, spec.cov)
        want_teacher = "sg2-latent" if run.id.startswith("w-") else spec.teacher
        assert run.teacher == want_teacher
        assert run.domain == {1.0: "syn", 0.0: "real"}.get(run.alpha, "syn+real")


def test_shared_runs_are_the_same_training():
    t1, t2, t5, t6 = (get_table(n) for n in (1, 2, 5, 6))
    assert t1.row("g-sns").run == t2.row("mixed-sns").run == t5.row("f").run == t6.row("sns").run
    assert t1.row("g-squeeze").run == t2.row("syn-squeeze").run == t5.row("e").run == t6.row("squeeze").run
    assert t1.row("g-vanilla").run == t5.row("b").run
    # shared rows print the same paper number in their common column
    assert t1.row("g-sns").paper["cifar10"] == t2.row("mixed-sns").paper["cifar10"] == t5.row("f").paper["cifar10"]


def test_select_rows_and_unknown_names():
    t = get_table(1)
    assert [r.key for r in select_rows(t, "g-sns, d-single")] == ["d-single", "g-sns"]
    assert len(select_rows(t, None)) == 10
    with pytest.raises(KeyError, match="no row"):
        select_rows(t, "g-snss")
    with pytest.raises(KeyError, match="Tables 3 and 4"):
        get_table(3)
