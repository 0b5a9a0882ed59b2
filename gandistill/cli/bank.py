"""``gandistill bank``: build and inspect teacher feature banks (see :mod:`gandistill.teachers.bank`).

>>> gandistill bank build --teacher sg2-generator --n 20000 --out banks/digits
>>> gandistill fit --bank banks/digits             # samples the bank instead of running G
>>> gandistill bank info banks/digits
"""
from __future__ import annotations

import json
from typing import Optional

import torch
import typer

from gandistill.teachers.bank import build_bank, read_header
from gandistill.cli.console import console, say
from gandistill.teachers import create_teacher

bank_app = typer.Typer(help="Teacher feature banks: generated images + targets, read by bounded positioned reads.",
                       no_args_is_help=True)


@bank_app.command("build")
def build_cmd(
    teacher: str = typer.Option("sg2-generator", help="teacher name (`gandistill list teachers`)"),
    teacher_ckpt: Optional[str] = typer.Option(None, "--teacher-ckpt", help="default: the bundled digits teacher"),
    n: int = typer.Option(..., "--n", help="number of generated images to store"),
    out: str = typer.Option(..., "--out", help="output folder (bank.bin is written there)"),
    batch: int = typer.Option(256, help="images per teacher forward"),
    seed: int = typer.Option(0, help="seed of the latent draws"),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:i]"),
    blocks: Optional[str] = typer.Option(None, help="sg2-generator: blocks to tap, e.g. b4,b8 (default all)"),
) -> None:
    """Sample N images with their targets from a teacher into OUT/bank.bin."""
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    kw = {"blocks": blocks} if blocks else {}
    t = create_teacher(teacher, ckpt=teacher_ckpt, device=dev, **kw)
    path = build_bank(t, n, out, teacher_name=teacher, ckpt=teacher_ckpt, teacher_kwargs=kw, batch=batch, seed=seed,
                      log=lambda s: None)
    size = path.stat().st_size / 2 ** 20
    say(f"wrote {path} ({n} items, {size:.1f} MiB, targets {list(t.target_names)})")


@bank_app.command("info")
def info_cmd(bank: str = typer.Argument(..., help="bank folder or bank.bin")) -> None:
    """Print a bank's header."""
    console.print_json(json.dumps(read_header(bank)))


def register(app: typer.Typer) -> None:
    """Add the ``bank`` sub-app."""
    app.add_typer(bank_app, name="bank")
