"""Reports of a comparison: the rich table, ``tableN.csv``, ``tableN.md`` and a bar chart PNG.

Every report shows, per row: our figures (every probe metric), the headline figure beside the paper's
number for the preset's column, the difference, both rankings (where the ordering differs from the
paper's is what a cross-dataset comparison can honestly show) and the row's notes. Table 6 values are
printed in the paper's unit (x 1e-5 or x 1e-3). The PNG needs matplotlib (the optional
extra ``plot``); without it the tables are still written.
"""
from __future__ import annotations

import csv
import math
import os
import platform
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from rich.console import Console
from rich.table import Table

from gandistill.compare.plotting import MissingPlotExtra, PLOT_HINT, pyplot
from gandistill.compare.runner import CompareResult, RowResult

COLOURS = {"ours": "#1f77b4", "paper": "#bebebe"}


def scale_of(res: CompareResult) -> float:
    """Divisor that turns our value into the paper's printed unit (1 for top-1 %)."""
    if res.table.metric == "mmd2":
        return res.table.units.get(res.preset.paper_column, 1.0)
    return 1.0


def unit_label(res: CompareResult) -> str:
    if res.table.metric != "mmd2":
        return "top-1 %"
    u = scale_of(res)
    return f"MMD^2 x 1e{int(round(math.log10(u)))}" if u != 1.0 else "MMD^2"


def ours(r: RowResult, scale: float = 1.0) -> Optional[float]:
    v = r.value
    return None if v is None else v / scale


def ranks(values: Sequence[Optional[float]], higher_is_better: bool = True) -> List[Optional[int]]:
    """1 = best; rows without a value get None; ties share the better rank."""
    present = [v for v in values if v is not None]
    out: List[Optional[int]] = []
    for v in values:
        if v is None:
            out.append(None)
        else:
            better = sum(1 for w in present if (w > v if higher_is_better else w < v))
            out.append(better + 1)
    return out


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    """Kendall's tau-a between two equally long sequences (None for fewer than 2 pairs)."""
    n = len(a)
    if n < 2:
        return None
    s = 0
    for i in range(n):
        for j in range(i + 1, n):
            s += int(math.copysign(1, a[i] - a[j])) * int(math.copysign(1, b[i] - b[j])) \
                if a[i] != a[j] and b[i] != b[j] else 0
    return s / (n * (n - 1) / 2)


def metric_names(rows: Sequence[RowResult]) -> List[str]:
    names: List[str] = []
    for r in rows:
        for k in r.metrics:
            if k not in names and k != "sigma" and not k.endswith("_std"):
                names.append(k)
    return names


def table_rows(res: CompareResult) -> Tuple[List[str], List[List[str]]]:
    """Header and string cells shared by the CSV, markdown and rich outputs."""
    sc = scale_of(res)
    hib = res.table.metric != "mmd2"
    names = metric_names(res.rows + res.baselines)
    vals = [ours(r, sc) for r in res.rows]
    paper = [r.paper for r in res.rows]
    both = [i for i, (v, p) in enumerate(zip(vals, paper)) if v is not None and p is not None]
    r_ours = ranks([vals[i] if i in both else None for i in range(len(vals))], hib)
    r_paper = ranks([paper[i] if i in both else None for i in range(len(vals))], hib)
    col = res.preset.paper_column
    header = ["table", "row", "group", "label", "status"] + names + [
        f"ours ({unit_label(res)})", f"paper {col}", "diff", "rank ours", "rank paper", "notes"]
    cells = []
    for i, r in enumerate(res.rows + res.baselines):
        main = i < len(res.rows)
        v = ours(r, sc)
        d = (v - r.paper) if (v is not None and r.paper is not None) else None
        metric_cells = [_metric_cell(r.metrics, n, sc if n == "mmd2" else 1.0) for n in names]
        cells.append([str(r.table) if main else "-", r.key, r.group, r.label, r.status] + metric_cells + [
            _fmt(v), _fmt(r.paper), _fmt(d, signed=True),
            str(r_ours[i]) if main and r_ours[i] else "", str(r_paper[i]) if main and r_paper[i] else "",
            "; ".join(r.notes)])
    return header, cells


def _metric_cell(metrics: Dict[str, float], name: str, scale: float) -> str:
    if name not in metrics:
        return ""
    cell = _fmt(metrics[name] / scale)
    if f"{name}_std" in metrics:
        cell += f" ± {metrics[name + '_std'] / scale:.1f}"
    return cell


def _fmt(v: Optional[float], signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    mag = abs(v)
    s = f"{v:+.2f}" if signed else f"{v:.2f}"
    if 0 < mag < 0.01:
        s = f"{v:+.3g}" if signed else f"{v:.3g}"
    return s


def write_csv(res: CompareResult, path: Path) -> Path:
    header, cells = table_rows(res)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(cells)
    return path


def ordering_summary(res: CompareResult) -> str:
    """One sentence on how our ordering of the rows compares with the paper's."""
    sc = scale_of(res)
    pairs = [(ours(r, sc), r.paper, r.key) for r in res.rows if ours(r, sc) is not None and r.paper is not None]
    if len(pairs) < 2:
        return "Too few rows with both numbers to compare orderings."
    sign = 1.0 if res.table.metric != "mmd2" else -1.0
    a, b = [p[0] * sign for p in pairs], [p[1] * sign for p in pairs]
    tau = kendall_tau(a, b)
    swapped = [f"{pairs[i][2]} vs {pairs[j][2]}" for i in range(len(pairs)) for j in range(i + 1, len(pairs))
               if (a[i] - a[j]) * (b[i] - b[j]) < 0]
    text = f"Kendall's tau between our ordering and the paper's: {tau:+.2f} over {len(pairs)} rows."
    if swapped:
        text += f" Pairs ordered differently from the paper: {', '.join(swapped[:12])}" + (
            f" (+{len(swapped) - 12} more)" if len(swapped) > 12 else "") + "."
    return text


def machine() -> str:
    try:
        threads = torch.get_num_threads()
        dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except Exception:
        threads, dev = "?", "?"
    return f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, torch threads {threads}, {dev}"


def write_markdown(res: CompareResult, path: Path, command: str = "") -> Path:
    header, cells = table_rows(res)
    t = res.table
    lines = [f"# Table {t.number}: {t.title}", "",
             f"Preset `{res.preset.name}` ({res.preset.help}); paper column: {res.preset.paper_column}.", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"Machine: {machine()}. Wall time of this call: {res.wall_s / 60:.1f} min"
              + (f" (rows resumed from earlier calls: {', '.join(res.skipped)})" if res.skipped else "") + ".", ""]
    if res.preset.paper_column != res.preset.dataset:
        lines += [f"Our numbers are on `{res.preset.dataset}`, the paper's on {res.preset.paper_column}: the "
                  "difference column crosses datasets; the rankings are what compares.", ""]
    lines += ["| " + " | ".join(header[1:]) + " |", "|" + "---|" * (len(header) - 1)]
    for c in cells:
        lines.append("| " + " | ".join(x.replace("|", "/") for x in c[1:]) + " |")
    lines += ["", ordering_summary(res), ""]
    if t.caption:
        lines += [f"Paper caption: {t.caption}", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def write_png(res: CompareResult, path: Path) -> Path:
    """Grouped bars (ours vs paper) per row, drawn with matplotlib (``MissingPlotExtra`` without it)."""
    sc = scale_of(res)
    labels = [r.key for r in res.rows] + [r.key for r in res.baselines]
    ours_v = [ours(r, sc) for r in res.rows] + [ours(r, sc) for r in res.baselines]
    paper_v = [r.paper for r in res.rows] + [None] * len(res.baselines)
    title = f"Table {res.table.number} ({res.preset.name} preset) vs paper {res.preset.paper_column}"
    plt = pyplot()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * n + 2), 4))
    xs = range(n)
    ax.bar([x - 0.2 for x in xs], [v or 0 for v in ours_v], 0.4, label="ours", color=COLOURS["ours"])
    ax.bar([x + 0.2 for x in xs], [v or 0 for v in paper_v], 0.4, label="paper", color=COLOURS["paper"])
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_ylabel(unit_label(res))
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_all(res: CompareResult, command: str = "") -> Dict[str, str]:
    """Write tableN.csv, tableN.md and tableN.png into the comparison's folder."""
    n = res.table.number
    out = res.out
    out.mkdir(parents=True, exist_ok=True)
    csv_p = write_csv(res, out / f"table{n}.csv")
    md_p = write_markdown(res, out / f"table{n}.md", command)
    try:
        png, backend = str(write_png(res, out / f"table{n}.png")), "matplotlib"
    except MissingPlotExtra:   # the tables are written; only the chart needs the optional extra
        png, backend = "", f"none ({PLOT_HINT})"
    return {"csv": str(csv_p), "md": str(md_p), "png": png, "png_backend": backend}


def _short(cell: str, signed: bool = False) -> str:
    """One decimal for the terminal ("59.60 ± 3.1" -> "59.6±3.1"); non-numbers unchanged."""
    parts = [p.strip() for p in cell.split("±")]
    try:
        nums = [float(p) for p in parts if p]
    except ValueError:
        return cell
    if not nums:
        return cell
    head = f"{nums[0]:+.1f}" if signed else f"{nums[0]:.1f}"
    if abs(nums[0]) < 0.05 and nums[0] != 0:
        head = f"{nums[0]:.3g}"
    return head + (f"±{nums[1]:.1f}" if len(nums) > 1 else "")


def print_rich(res: CompareResult, console=None) -> None:
    """A compact rich table (row, status, probes, ours vs paper, ranks) with the notes as footnotes."""
    console = console or Console()
    if not console.is_terminal and console.width < 140:     # logs and pipes: do not fold the numbers
        console = Console(width=140, file=console.file)
    header, cells = table_rows(res)
    idx = {h: i for i, h in enumerate(header)}
    names = header[idx["status"] + 1: idx[f"ours ({unit_label(res)})"]]
    tab = Table(title=f"Table {res.table.number}: {res.table.title} -- preset {res.preset.name}",
                caption=f"ours: {unit_label(res)}"
                        + (f"; headline = {res.rows[0].headline}" if res.rows and res.rows[0].headline else ""))
    for hname in ["row", "label", "status"] + names + ["ours", f"paper {res.preset.paper_column}", "diff", "rank o/p"]:
        tab.add_column(hname, overflow="fold", max_width=28 if hname == "label" else None,
                       no_wrap=hname not in ("label",), justify="left" if hname in ("row", "label", "status") else "right")
    notes = []
    for c in cells:
        style = {"failed": "red", "collapsed": "yellow"}.get(c[idx["status"]])
        rank = f"{c[idx['rank ours']]}/{c[idx['rank paper']]}" if c[idx["rank ours"]] else ""
        label = "" if c[idx["label"]] == c[idx["row"]] else c[idx["label"]]
        tab.add_row(c[idx["row"]], label, c[idx["status"]], *(_short(c[idx[n]]) for n in names),
                    _short(c[idx[f"ours ({unit_label(res)})"]]), _short(c[idx[f"paper {res.preset.paper_column}"]]),
                    _short(c[idx["diff"]], signed=True), rank, style=style)
        if c[idx["notes"]]:
            notes.append(f"[bold]{c[idx['row']]}[/bold]: {c[idx['notes']]}")
    console.print(tab)
    for n in notes:
        console.print(f"  {n}", highlight=False)
    console.print(ordering_summary(res))


__all__ = ["write_all", "write_csv", "write_markdown", "write_png", "print_rich", "table_rows",
           "ranks", "kendall_tau", "ordering_summary"]
