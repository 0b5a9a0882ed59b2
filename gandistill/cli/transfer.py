"""``gandistill transfer RUN --dataset folder:PATH --dataset torchvision:NAME:ROOT``: linear transfer
(the paper's Table 3 protocol, :mod:`gandistill.evaluation.transfer`) on the user's own datasets."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from gandistill.cli.console import console, say
from gandistill.evaluation.transfer import TransferConfig, summary_table, transfer, write_outputs


def transfer_cmd(
    run: str = typer.Argument(..., help="run folder or checkpoint of the distilled student"),
    dataset: List[str] = typer.Option(..., "--dataset", "-d", help="folder:PATH (train/ and test/ class "
                                      "sub-folders, or one folder split 75/25 with --seed) or "
                                      "torchvision:NAME:ROOT (e.g. torchvision:Flowers102:~/data); repeatable"),
    img_size: Optional[int] = typer.Option(None, help="feature resolution (default: the run's; images are resized "
                                           "so the shorter side is this, bicubic, then centre-cropped)"),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="also the random-init student and the "
                                   "run's SSL twin (when its summary.json names one)"),
    download: bool = typer.Option(False, "--download", help="torchvision datasets: fetch into ROOT if missing"),
    seed: int = typer.Option(0, help="seed of the validation (and single-folder test) splits"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    batch: int = typer.Option(256, help="feature extraction batch"),
    out: Optional[str] = typer.Option(None, help="folder for transfer.csv/.md/.png (default RUN/transfer)"),
) -> None:
    """Linear transfer on your labelled images (the paper's Table 3 protocol): frozen features, L-BFGS logistic regression, L2 chosen on a validation split; a table per dataset plus the average, next to baselines."""  # noqa: E501
    cfg = TransferConfig(run=run, datasets=tuple(dataset), img_size=img_size, baselines=baselines,
                         download=download, seed=seed, device=device, batch=batch, out=out)
    res = transfer(cfg, log=say)
    for d in res.datasets:
        t = Table(title=f"transfer: {d} (test top-1 %)")
        for c in ("representation", "top-1", "L2", "val top-1", "train/val/test"):
            t.add_column(c)
        for r in (r for r in res.rows if r["dataset"] == d):
            t.add_row(r["model"], f"{r['top1']:.2f}", f"{r['l2']:g}", f"{r['val_top1']:.2f}",
                      f"{r['n_train']}/{r['n_val']}/{r['n_test']}")
        console.print(t)
    header, rows = summary_table(res)
    t = Table(title="transfer: average over the datasets")
    for c in header:
        t.add_column(c)
    for r in rows:
        t.add_row(*r)
    console.print(t)
    folder = Path(out) if out else (Path(run) if Path(run).is_dir() else Path(run).parent) / "transfer"
    files = write_outputs(res, folder, "gandistill " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    png = f", {files['png']}" if files["png"] else " (no PNG: matplotlib is not installed)"
    say(f"wrote {files['csv']}, {files['md']}{png}; wall time {res.wall_s:.1f}s")


def register(app: typer.Typer) -> None:
    """Add ``transfer``."""
    app.command("transfer")(transfer_cmd)
