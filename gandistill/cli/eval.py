"""``gandistill eval``: a thin shell over :func:`gandistill.evaluate.evaluate`.

>>> gandistill eval runs/sns-digits-...                  # few-shot 1/10/100, kNN, fast linear + baselines
>>> gandistill eval RUN --protocol all                   # + the paper's linear protocol
>>> gandistill eval RUN --protocol knn --knn-k 200 --no-baselines
"""
from __future__ import annotations

import json
from typing import List, Literal, Optional

import typer

from gandistill.cli.console import console, say
from gandistill.cli.options import comma_choice
from gandistill.evaluation.run import evaluate, evaluate_table
from gandistill.evaluation.suite import protocol_words, probe_table_markdown, render_probe_table


def parse_shots(value: str) -> List[int]:
    """``"1,10,100"`` -> ``[1, 10, 100]`` (positive integers)."""
    try:
        shots = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise typer.BadParameter(f"--shots expects comma-separated integers, got {value!r}") from None
    if not shots or min(shots) < 1:
        raise typer.BadParameter(f"--shots expects positive integers, got {value!r}")
    return shots


def eval_cmd(
    run_or_ckpt: str = typer.Argument(..., help="run folder, checkpoint .json/.safetensors, or random:<timm-name>"),
    protocol: str = typer.Option(
        "fewshot,knn,fast", parser=comma_choice("probe", protocol_words),
        help="comma-separated: fewshot | knn | fast (cached-feature linear) | linear (paper protocol) | all"),
    knn_k: Optional[int] = typer.Option(None, "--knn-k", help="kNN neighbours (default: 200 for >= 10k train items, else 20)"),
    knn_t: float = typer.Option(0.1, "--knn-t", help="kNN temperature"),
    shots: str = typer.Option("1,10,100", help="few-shot: labelled images per class, comma-separated"),
    draws: int = typer.Option(5, help="few-shot: seeded draws per shot count (mean ± std)"),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines",
                                   help="also probe the run's random-init student and raw pixels"),
    dataset: Optional[str] = typer.Option(None, help="default: the run's dataset"),
    data_root: Optional[str] = typer.Option(None),
    download: bool = typer.Option(False, "--download", help="fetch cifar10 / cifar100 / stl10 into --data-root if missing"),
    epochs: Optional[int] = typer.Option(None, help="linear probe epochs (default 90)"),
    fast: Optional[bool] = typer.Option(None, "--fast/--full",
                                        help="which linear probe: --fast turns linear into fast, --full fast into linear"),
    optimizer: Literal["sgd", "lars"] = typer.Option("sgd", help="linear probes' optimizer: sgd | lars (lars: lr 0.1 at batch 256 "
                                  "scaled by batch/256, trust 0.001; SnS's STL-10 probe)"),
    seed: int = typer.Option(0, help="seeds the draws and probe heads (and random:<name> students)"),
    device: str = typer.Option("cpu", help="cpu | cuda | auto"),
    img_size: Optional[int] = typer.Option(None),
    max_train: Optional[int] = typer.Option(None),
    max_test: Optional[int] = typer.Option(None),
    markdown: bool = typer.Option(False, "--markdown", help="print the table as markdown"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Probe a trained (or random) student's frozen backbone: few-shot, kNN and linear probes, next to baselines."""
    res = evaluate(run_or_ckpt, protocol=protocol, dataset=dataset, data_root=data_root, epochs=epochs, fast=fast,
                   device=device, img_size=img_size, max_train=max_train, max_test=max_test, k=knn_k, t=knn_t,
                   shots=parse_shots(shots), draws=draws, seed=seed, baselines=baselines,
                   optimizer=optimizer, download=download,
                   log=None if as_json else say)
    if as_json:
        console.print_json(json.dumps(res, default=str))
        return
    table = evaluate_table(res)
    title = f"gandistill eval: {res['student']} ({res['source']}) on {res['dataset']}"
    if markdown:
        console.print(probe_table_markdown(table, title), markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(render_probe_table(table, title))
        for row in table.rows:
            for note in row.notes:
                say(f"note: {row.name}: {note}")
    if res.get("checkpoint"):
        say(f"checkpoint: {res['checkpoint']}")
    say(f"time: {res.get('time_s', 0.0):.1f}s")


def register(app: typer.Typer) -> None:
    """Add ``eval``."""
    app.command("eval")(eval_cmd)
