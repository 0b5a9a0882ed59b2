"""``gandistill eval``: a thin shell over :func:`gandistill.evaluate.evaluate`."""
from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def eval_cmd(
    run_or_ckpt: str = typer.Argument(..., help="run folder, checkpoint .json/.safetensors, or random:<timm-name>"),
    protocol: str = typer.Option("linear", help="linear | knn | both"),
    dataset: Optional[str] = typer.Option(None, help="default: the run's dataset"),
    data_root: Optional[str] = typer.Option(None),
    epochs: Optional[int] = typer.Option(None, help="probe epochs (default 90)"),
    fast: bool = typer.Option(True, "--fast/--full", help="cached-feature probe or the paper protocol"),
    device: str = typer.Option("cpu"),
    img_size: Optional[int] = typer.Option(None),
    max_train: Optional[int] = typer.Option(None),
    max_test: Optional[int] = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Linear probe and/or kNN of a trained (or random) student's frozen backbone features."""
    from gandistill.evaluate import evaluate

    res = evaluate(run_or_ckpt, protocol=protocol, dataset=dataset, data_root=data_root, epochs=epochs, fast=fast,
                   device=device, img_size=img_size, max_train=max_train, max_test=max_test)
    if as_json:
        console.print_json(json.dumps(res, default=str))
        return
    table = Table(title=f"gandistill eval: {run_or_ckpt}", show_header=False)
    for key in ("student", "source", "dataset", "img_size", "protocol"):
        table.add_row(key, str(res.get(key)))
    if "linear" in res:
        table.add_row("linear top-1 (%)", f"{res['linear']['top1']:.2f}")
    if "knn" in res:
        table.add_row("kNN top-1 (%)", f"{res['knn']['top1']:.2f}")
    table.add_row("time (s)", f"{res.get('time_s', 0.0):.1f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``eval`` to the ``gandistill`` app."""
    app.command("eval")(eval_cmd)
