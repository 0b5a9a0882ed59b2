"""``gandistill convert IN OUT``: NVlabs StyleGAN2-ADA snapshot -> gandistill checkpoint folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from gandistill.cli.console import say
from gandistill.teachers.stylegan2.checkpoint import JSON_NAME, convert


def convert_cmd(
    src: Path = typer.Argument(..., help="NVlabs StyleGAN2-ADA .pkl snapshot (or a gandistill checkpoint)"),
    out: Path = typer.Argument(..., help="output folder (safetensors weights + gandistill_sg2.json)"),
    nets: Optional[str] = typer.Option(None, help="comma-separated subset of G_ema,G,D (default: all present)"),
    half: bool = typer.Option(False, "--half", help="store weights as float16 (halves the size)"),
) -> None:
    """Convert a StyleGAN2-ADA snapshot to gandistill's safe format (nothing in the pickle is executed)."""
    chosen = tuple(n.strip() for n in nets.split(",") if n.strip()) if nets else None
    out_dir = convert(src, out, nets=chosen, half=half)
    info = json.loads((out_dir / JSON_NAME).read_text())
    say(f"wrote {out_dir}: {', '.join(info['nets'])} ({'float16' if half else 'float32'})")


def register(app: typer.Typer) -> None:
    """Add ``convert``."""
    app.command("convert")(convert_cmd)
