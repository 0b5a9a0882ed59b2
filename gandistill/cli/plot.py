"""``gandistill plot embed RUN_OR_TEACHER``: Fig. 2 (2-D embeddings of D features, w and G features)."""
from __future__ import annotations

from typing import Optional

import typer

from gandistill.cli.console import say
from gandistill.compare.embed import plot_embed

plot_app = typer.Typer(help="Figures: 2-D embeddings of a GAN's representations (Fig. 2).", no_args_is_help=True)


@plot_app.command("embed")
def embed_cmd(
    target: str = typer.Argument("bundled", help="teacher checkpoint (SG2 folder / .pkl), 'bundled', or a student run"),
    out: str = typer.Option("embed.png", help="PNG to write"),
    n: int = typer.Option(1000, help="synthetic images (and real test images for a run)"),
    dataset: Optional[str] = typer.Option(None, help="real data for the labels (default: the run's, else digits)"),
    data_root: Optional[str] = typer.Option(None),
    reducer: str = typer.Option("auto", help="auto (UMAP > t-SNE > PCA, whichever is installed) | umap | tsne | pca"),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu"),
) -> None:
    """Draw h^d, w and h^g of synthetic images coloured by class (plus the student's features for a run)."""
    res = plot_embed(target, out, n, dataset=dataset, data_root=data_root, reducer=reducer, seed=seed, device=device)
    say(f"wrote {res['png']} ({res['reducer']}; {res['labels']}; panels: {', '.join(res['panels'])})")


def register(app: typer.Typer) -> None:
    """Add the ``plot`` sub-app."""
    app.add_typer(plot_app, name="plot")
