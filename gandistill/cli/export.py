"""``gandistill export RUN --out DIR``: a run's bare backbone for ``timm.create_model(name, num_classes=0)``."""
from __future__ import annotations

import typer

from gandistill.cli.console import console
from gandistill.students.export import export_backbone, read_export


def export_cmd(
    run: str = typer.Argument(..., help="run folder or checkpoint (.json / .safetensors)"),
    out: str = typer.Option(..., "--out", help="folder for backbone.safetensors + backbone.json"),
    projector: bool = typer.Option(False, "--projector/--no-projector", help="also write the projector"),
    force: bool = typer.Option(False, "--force", help="replace an existing export in --out"),
) -> None:
    """Write a run's bare backbone (safetensors, timm's own keys) for timm.create_model(name, num_classes=0)."""
    path = export_backbone(run, out, projector=projector, overwrite=force)
    meta = read_export(path)
    console.print(f"exported {meta['timm_name']} backbone ({meta['num_features']}-d"
                  f"{', patches: ' + ', '.join(meta['patches']) if meta['patches'] else ''}) to {path.parent}",
                  soft_wrap=True, markup=False)
    console.print(f"load: gandistill.students.export.load_backbone({str(path.parent)!r})", soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``export``."""
    app.command("export")(export_cmd)
