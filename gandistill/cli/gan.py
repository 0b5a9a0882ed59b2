"""``gandistill gan train`` and ``gandistill gan sample``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import typer
from rich.table import Table

from gandistill.cli.console import console, say
from gandistill.cli.options import Flag, Logger, given, logger_names, parse_kv, print_config, with_field_flags
from gandistill.gan.diagnostics import teacher_diagnostics
from gandistill.gan.config import GAN_CONFIGS, GanConfig, gan_config
from gandistill.gan.loop import train_gan
from gandistill.gan.sample import bundled_teacher_path, sample_grid
from gandistill.gan.score import ScoreError, score_generator
from gandistill.io.config_file import check_fields, merge_config

gan_app = typer.Typer(help="Train a StyleGAN2-ADA teacher on your data, or sample one.", no_args_is_help=True)


GAN_FLAGS: Dict[str, Flag] = {
    "data": Flag("dataset name (gandistill list datasets)"),
    "out": Flag("run folder (snapshots, grids, metrics.jsonl)"),
    "kimg": Flag("training length in thousands of real images (default: the preset's)"),
    "data_root": Flag("dataset root (imagefolder / torchvision sets)"),
    "split": Flag("dataset split"),
    "resolution": Flag("resize images to this power-of-two size"),
    "cond": Flag("class-conditional G/D (one-hot labels)"),
    "grey": Flag("tie G's RGB outputs (R=G=B); default: on when the data is greyscale", decls=("--grey/--colour",)),
    "clamp_fakes": Flag("D sees G's images clamped to [-1, 1] (straight-through gradient), as the teacher's images "
                        "are used"),
    "range_weight": Flag("with --clamp-fakes: weight of sum relu(|x| - margin)"),
    "range_margin": Flag("with --clamp-fakes: free overshoot of raw outputs"),
    "batch": Flag("batch size (default: the preset's)"),
    "pack": Flag("PacGAN: D judges this many images at once, stacked along channels (against mode dropping)"),
    "glr": Flag("G learning rate (default: the preset's)"),
    "dlr": Flag("D learning rate (default: the preset's)"),
    "gamma": Flag("R1 weight gamma (default: the preset's)", field="r1_gamma"),
    "ema_kimg": Flag("G EMA half-life in kimg (default: the preset's)"),
    "mixing": Flag("style mixing probability (default: the preset's)", field="style_mixing_prob"),
    "augment": Flag("ada | fixed | none", type=Literal["ada", "fixed", "none"]),
    "augment_p": Flag("initial (ada) or fixed augmentation probability"),
    "ada_target": Flag("ADA target of r_t = mean sign(D(real))"),
    "ada_kimg": Flag("ADA speed: p can go 0 -> 1 in this many kimg"),
    "snap_kimg": Flag("snapshot every N kimg (default: the preset's)"),
    "keep_snapshots": Flag("keep only the newest N snapshots (0 = all)"),
    "tick_kimg": Flag("log a metrics line every N kimg (default: the preset's)"),
    "net": Flag("network override KEY=VALUE (channel_base, channel_max, map_layers, z_dim, w_dim, mbstd_group), "
                "repeatable", type=List[str], field="net_overrides"),
    "resume": Flag("run folder or snapshot to continue from"),
    "seed": Flag("random seed"),
    "threads": Flag("torch CPU threads"),
    "device": Flag("cpu | cuda"),
    "precision": Flag("fp32 | bf16 (autocast for the G/D main passes; R1 and EMA in fp32)",
                      type=Literal["fp32", "bf16"]),
    "logger": Flag("also log to TensorBoard / W&B (repeatable; optional extras)", type=List[Logger],
                   field="loggers"),
}
GAN_FLAGS_FIELDS = {name: (f.field or name) for name, f in GAN_FLAGS.items()}


def gan_config_from(preset: Optional[str], config: Optional[str], flags: Dict[str, Any]) -> GanConfig:
    """Preset (``--preset``, default tiny), then the ``--config`` file, then the flags given."""
    if config is not None and config in GAN_CONFIGS and not Path(config).exists():
        preset, config = config, None                 # the older `--config tiny` spelling of --preset
    flags = dict(flags)
    if flags.get("net") is not None:
        flags["net"] = parse_kv(flags["net"], "--net") or None
    flags["logger"] = logger_names(flags.get("logger"))
    for k in ("cond", "clamp_fakes"):                # flags that only switch on
        flags[k] = flags.get(k) or None
    file_values = merge_config(GanConfig, config, {})
    base = gan_config(preset or file_values.get("arch", "tiny")).to_dict()
    values = {**check_fields(GanConfig, base), **file_values,
              **check_fields(GanConfig, given(flags, GanConfig, GAN_FLAGS_FIELDS), where="command line")}
    return GanConfig.from_dict(values).validate()


@gan_app.command("train")
@with_field_flags(GanConfig, GAN_FLAGS)
def train_cmd(
    ctx: typer.Context,
    preset: Optional[Literal[tuple(GAN_CONFIGS)]] = typer.Option(None, "--preset", help="tiny | cifar | stl "
                                                                 "[default: tiny]"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML / JSON file of GanConfig fields, or a GAN "
                                         "run's config.json; flags given here override it"),
    print_cfg: bool = typer.Option(False, "--print-config", help="print the complete config as commented YAML"),
    dry_run: bool = typer.Option(False, "--dry-run", help="check the config and print it without training"),
    **flags: Any,
) -> None:
    """Train StyleGAN2 (ADA objective) on a dataset; resumable, snapshots every --snap-kimg."""
    cfg = gan_config_from(preset, config, flags)
    if print_cfg:
        print_config(GanConfig, cfg.to_dict(), ctx.command, "gandistill gan train config (gan train --config FILE)",
                     GAN_FLAGS_FIELDS)
        return
    if dry_run:
        say(json.dumps(cfg.to_dict(), indent=1))
        say("dry run: config checked; nothing trained")
        return
    run = train_gan(cfg)
    say(f"done: {run}")


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
    path = sample_grid(ckpt or bundled_teacher_path(), n=n, out=out, seed=seed, truncation_psi=trunc)
    say(f"wrote {path}")


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
    try:
        res = score_generator(ckpt, n=n, data=data, data_root=data_root, split=split, space=space,
                              inception=inception, seed=seed, truncation_psi=trunc)
    except ScoreError as e:
        say(f"error: {e}")
        raise typer.Exit(2)
    text = json.dumps(res, indent=1)
    say(f"feature space: {res['feature_space']} ({res['feature_source']})")
    say(f"FD {res['fd']:.3f}   KID {res['kid']:.5f} +- {res['kid_std']:.5f}   "
               f"({res['n_fake']} generated vs {res['n_real']} real {res['real']})")
    if "generated_labels" in res:
        g = res["generated_labels"]
        say(f"judge classes of generated images: {g['class_histogram']} (min share {g['class_share_min']:.3f}, "
                   f"confident {g['share_confident_0.9']:.3f})")
    if res.get("conditional"):
        say("label-conditioned generator: labels cycle through the classes")
    if diagnostics:
        res["diagnostics"] = diag = teacher_diagnostics(ckpt, n=diag_n, labeller=labeller, seed=seed)
        text = json.dumps(res, indent=1)
        _print_diagnostics(diag)
    if out:
        Path(out).write_text(text + "\n")
        say(f"wrote {out}")


def _print_diagnostics(diag: dict) -> None:
    """The diagnostics as a rich table: one row per representation, few-shot and kNN columns."""
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
    console.print(tab)
    for note in diag["notes"]:
        say(f"note: {note}")


def register(app: typer.Typer) -> None:
    """Add the ``gan`` sub-app (``gan train``, ``gan sample``, ``gan score``) to the main CLI."""
    app.add_typer(gan_app, name="gan")


__all__ = ["register", "gan_app", "gan_config_from"]
