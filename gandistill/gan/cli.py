"""``gandistill gan train`` and ``gandistill gan sample``."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

gan_app = typer.Typer(help="Train a StyleGAN2-ADA teacher on your data, or sample one.", no_args_is_help=True)


def _parse_overrides(items: Optional[List[str]]) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--net expects KEY=VALUE (e.g. channel_max=64), got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


@gan_app.command("train")
def train_cmd(
    data: str = typer.Option("digits", help="dataset name (gandistill list datasets)"),
    config: str = typer.Option("tiny", help="preset: tiny | cifar | stl"),
    out: str = typer.Option("runs/gan", help="run folder (snapshots, grids, metrics.jsonl)"),
    kimg: Optional[float] = typer.Option(None, help="training length in thousands of real images"),
    data_root: Optional[str] = typer.Option(None, help="dataset root (imagefolder / torchvision sets)"),
    split: Optional[str] = typer.Option(None, help="dataset split (default train)"),
    resolution: Optional[int] = typer.Option(None, help="resize images to this power-of-two size"),
    cond: bool = typer.Option(False, "--cond", help="class-conditional G/D (one-hot labels)"),
    grey: Optional[bool] = typer.Option(None, "--grey/--colour", help="tie G's RGB outputs (R=G=B); default: "
                                        "on when the data is greyscale"),
    clamp_fakes: bool = typer.Option(False, "--clamp-fakes", help="D sees G's images clamped to [-1, 1] "
                                     "(straight-through gradient), as the teacher's images are used"),
    range_weight: Optional[float] = typer.Option(None, help="with --clamp-fakes: weight of sum relu(|x| - margin)"),
    range_margin: Optional[float] = typer.Option(None, help="with --clamp-fakes: free overshoot of raw outputs"),
    batch: Optional[int] = typer.Option(None),
    glr: Optional[float] = typer.Option(None, help="G learning rate"),
    dlr: Optional[float] = typer.Option(None, help="D learning rate"),
    gamma: Optional[float] = typer.Option(None, help="R1 weight gamma"),
    ema_kimg: Optional[float] = typer.Option(None, help="G EMA half-life in kimg"),
    mixing: Optional[float] = typer.Option(None, help="style mixing probability"),
    augment: Optional[str] = typer.Option(None, help="ada | fixed | none"),
    augment_p: Optional[float] = typer.Option(None, help="initial (ada) or fixed augmentation probability"),
    ada_target: Optional[float] = typer.Option(None, help="ADA target of r_t = mean sign(D(real))"),
    ada_kimg: Optional[float] = typer.Option(None, help="ADA speed: p can go 0 -> 1 in this many kimg"),
    snap_kimg: Optional[float] = typer.Option(None, help="snapshot every N kimg"),
    keep_snapshots: Optional[int] = typer.Option(None, help="keep only the newest N snapshots (0 = all)"),
    tick_kimg: Optional[float] = typer.Option(None, help="log a metrics line every N kimg"),
    net: Optional[List[str]] = typer.Option(None, help="network override KEY=VALUE (channel_base, channel_max, "
                                            "map_layers, z_dim, w_dim, mbstd_group), repeatable"),
    resume: Optional[str] = typer.Option(None, help="run folder or snapshot to continue from"),
    seed: Optional[int] = typer.Option(None),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads"),
    device: Optional[str] = typer.Option(None, help="cpu | cuda"),
) -> None:
    """Train StyleGAN2 (ADA objective) on a dataset; resumable, snapshots every --snap-kimg."""
    from gandistill.gan.config import gan_config
    from gandistill.gan.loop import train_gan

    cfg = gan_config(
        config, data=data, out=out, kimg=kimg, data_root=data_root, split=split, resolution=resolution,
        cond=cond or None, grey=grey, clamp_fakes=clamp_fakes or None, range_weight=range_weight,
        range_margin=range_margin, batch=batch, glr=glr, dlr=dlr, r1_gamma=gamma, ema_kimg=ema_kimg,
        style_mixing_prob=mixing, augment=augment, augment_p=augment_p, ada_target=ada_target, ada_kimg=ada_kimg, keep_snapshots=keep_snapshots,
        snap_kimg=snap_kimg, tick_kimg=tick_kimg, resume=resume, seed=seed, threads=threads, device=device,
        net_overrides=_parse_overrides(net) or None,
    )
    run = train_gan(cfg)
    typer.echo(f"done: {run}")


@gan_app.command("sample")
def sample_cmd(
    ckpt: Optional[str] = typer.Argument(None, help="gandistill SG2 folder, NVlabs .pkl, or a GAN run folder "
                                         "(default: the bundled digits teacher)"),
    n: int = typer.Option(64, help="number of samples"),
    out: str = typer.Option("grid.png", help="output PNG"),
    seed: int = typer.Option(0),
    trunc: float = typer.Option(1.0, help="truncation psi"),
) -> None:
    """Write a PNG grid of generated samples."""
    from gandistill.gan.sample import bundled_teacher_path, sample_grid

    path = sample_grid(ckpt or bundled_teacher_path(), n=n, out=out, seed=seed, truncation_psi=trunc)
    typer.echo(f"wrote {path}")


@gan_app.command("score")
def score_cmd(
    ckpt: Optional[str] = typer.Argument(None, help="gandistill SG2 folder, NVlabs .pkl, GAN run folder or snapshot "
                                         "(default: the bundled digits teacher)"),
    n: int = typer.Option(2000, help="generated images (and at most this many real ones)"),
    data: str = typer.Option("digits", help="real images: dataset name"),
    data_root: Optional[str] = typer.Option(None, help="dataset root"),
    split: str = typer.Option("train", help="real images: split (the GAN's training split by default)"),
    inception: Optional[str] = typer.Option(None, help="torchvision inception_v3 weights file (.pth/.safetensors): "
                                            "score in Inception pool space instead of the digits judge's"),
    space: str = typer.Option("auto", help="auto | digits-judge | inception"),
    seed: int = typer.Option(123),
    trunc: float = typer.Option(1.0, help="truncation psi"),
    out: Optional[str] = typer.Option(None, help="also write the JSON here"),
    diagnostics: bool = typer.Option(False, "--diagnostics", help="also the teacher diagnostics (Fig. 2 in numbers): "
                                     "1/10-shot and kNN accuracy of h^g, w, D features and raw pixels on the "
                                     "teacher's own images, labelled by the judge"),
    diag_n: int = typer.Option(4000, help="--diagnostics: generated images (3/4 probe train, 1/4 test)"),
    labeller: Optional[str] = typer.Option(None, help="--diagnostics: a judge folder to label the images "
                                           "(default: the shipped digits judge)"),
) -> None:
    """Frechet distance and KID between real and generated images (and, in the digits judge's space, the
    class histogram of the generated digits). The output says which feature space was used.
    ``--diagnostics`` adds how class-structured the teacher's representations are (a table)."""
    from gandistill.gan.score import ScoreError, score_generator

    try:
        res = score_generator(ckpt, n=n, data=data, data_root=data_root, split=split, space=space,
                              inception=inception, seed=seed, truncation_psi=trunc)
    except ScoreError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    text = json.dumps(res, indent=1)
    typer.echo(f"feature space: {res['feature_space']} ({res['feature_source']})")
    typer.echo(f"FD {res['fd']:.3f}   KID {res['kid']:.5f} +- {res['kid_std']:.5f}   "
               f"({res['n_fake']} generated vs {res['n_real']} real {res['real']})")
    if "generated_labels" in res:
        g = res["generated_labels"]
        typer.echo(f"judge classes of generated images: {g['class_histogram']} (min share {g['class_share_min']:.3f}, "
                   f"confident {g['share_confident_0.9']:.3f})")
    if res.get("conditional"):
        typer.echo("label-conditioned generator: labels cycle through the classes")
    if diagnostics:
        from gandistill.gan.diagnostics import teacher_diagnostics

        res["diagnostics"] = diag = teacher_diagnostics(ckpt, n=diag_n, labeller=labeller, seed=seed)
        text = json.dumps(res, indent=1)
        _print_diagnostics(diag)
    if out:
        from pathlib import Path
        Path(out).write_text(text + "\n")
        typer.echo(f"wrote {out}")


def _print_diagnostics(diag: dict) -> None:
    """The diagnostics as a rich table: one row per representation, few-shot and kNN columns."""
    from rich.console import Console
    from rich.table import Table

    shots = sorted({int(k) for row in diag["rows"].values() for k in row["fewshot"]})
    tab = Table(title=f"teacher diagnostics: {diag['n_fit']} / {diag['n_test']} generated images (probe train / "
                      f"test), labelled by the {diag['labeller']}",
                caption="top-1 %; k-shot: mean ± std over draws (L-BFGS logistic regression); "
                        f"kNN: cosine, k={diag['knn_k']}, t=0.1")
    for c in ("representation", "dim", *[f"{k}-shot" for k in shots], f"kNN-{diag['knn_k']}"):
        tab.add_column(c, justify="left" if c == "representation" else "right")
    for name, row in diag["rows"].items():
        cells = [f"{row['fewshot'][str(k)]['mean']:.1f} ± {row['fewshot'][str(k)]['std']:.1f}"
                 if str(k) in row["fewshot"] else "-" for k in shots]
        tab.add_row(name, str(row["dim"]), *cells, f"{row['knn']:.1f}")
    con = Console()
    con.print(tab)
    for note in diag["notes"]:
        con.print(f"note: {note}", markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``gan`` sub-app (``gan train``, ``gan sample``, ``gan score``) to the main CLI."""
    app.add_typer(gan_app, name="gan")


__all__ = ["register", "gan_app"]
