"""``gandistill fit``: a thin shell over :func:`gandistill.engine.fit`.

Each flag sets one :class:`~gandistill.engine.FitConfig` field and defaults to ``None``: the value of the
``--config`` file when one is given, else the dataclass default (written into ``--help`` from the dataclass).

``gandistill fit`` with no options distils the bundled digits teacher into a small student with
Squeeze-and-Span on CPU (500 steps, a few minutes on 2 cores, closing probes included), then prints the
probe table next to a randomly initialised student's and where the checkpoint is.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Literal, Optional

import typer

from gandistill.augment import list_augmentations
from gandistill.cli.console import console, say
from gandistill.cli.options import (Flag, Logger, comma_choice, given, logger_names, parse_kv, print_config,
                                   registry_choice, with_field_flags)
from gandistill.engine import CheckpointWriteError, FitConfig, TrainingStopped, fit, resolved_config
from gandistill.engine.config import DEFAULT_STEPS, ENCODER_INPUTS, PRECISIONS, config_dict
from gandistill.engine.validate import check_fit_config
from gandistill.evaluation.suite import protocol_words, ProbeConfig, ProbeTable, render_probe_table
from gandistill.io.config_file import merge_config
from gandistill.io.errors import EXIT_STOPPED, EXIT_WRITE
from gandistill.methods import list_methods

#: ``--resume`` values: ``last`` continues the run in --out; ``auto`` the latest run of this config (or a new one)
RESUME_VALUES = {"last": True, "auto": "auto"}


def eval_words() -> tuple:
    """What ``--eval`` takes: every registered probe (plug-ins included), ``all``, ``both`` and ``none``."""
    return protocol_words() + ("none",)

FIT_FLAGS: Dict[str, Flag] = {
    "method": Flag(f"method ({', '.join(list_methods())}; gandistill list methods)",
                   type=str, kw={"parser": registry_choice("method", list_methods)}),
    "teacher": Flag("teacher name (default: the method's; gandistill list teachers)"),
    "teacher_ckpt": Flag("SG2 checkpoint: NVlabs .pkl or gandistill folder (default: bundled digits teacher)",
                         decls=("--teacher-ckpt",)),
    "bank": Flag("feature bank folder (gandistill bank build): sampled instead of running G"),
    "teacher_opt": Flag("teacher option KEY=VALUE (repeatable), e.g. mode=single", type=List[str],
                        decls=("--teacher-opt",), field="teacher_kwargs"),
    "student": Flag("any timm model name (default: resnet10t, standard stem)"),
    "cifar_stem": Flag("3x3 stride-1 stem for ResNets (default: auto at <= 64 px; off for the default student)"),
    "dataset": Flag("dataset name (gandistill list datasets)"),
    "data_root": Flag("dataset root folder"),
    "train_split": Flag("split of the training images (stl10: train+unlabeled)"),
    "download": Flag("fetch cifar10 / cifar100 / stl10 into --data-root if missing"),
    "img_size": Flag("student input size (default: the dataset's resolution)"),
    "batch": Flag("global batch (synthetic + real)"),
    "steps": Flag(f"training steps (default {DEFAULT_STEPS} unless --epochs)"),
    "epochs": Flag("epochs of len(train)//batch steps"),
    "base_lr": Flag("lr = base_lr * batch / 256 (default: the method's)"),
    "wd": Flag("weight decay (default: the method's)"),
    "sim": Flag("invariance weight lambda (default: the method's)"),
    "var": Flag("variance weight mu (default: the method's)"),
    "cov": Flag("covariance weight nu (default: the method's)"),
    "alpha": Flag("synthetic share of the batch (default: the method's)"),
    "squeeze_depth": Flag("squeeze MLP depth (0 = vanilla concatenation; default: the method's)"),
    "squeeze_hidden": Flag("squeeze module T_phi hidden width"),
    "dim": Flag("embedding width (default: the method's)"),
    "proj_layers": Flag("student projector depth (default: the method's)"),
    "proj_hidden": Flag("student projector hidden width (default: the method's)"),
    "var_cov_on": Flag("var/cov terms on the student only (SnS) or on both (Eq. 11 as printed)",
                       type=Literal["student", "both"]),
    "augment": Flag("student augmentation preset (gandistill list augmentations; default: ssl-cifar, ssl-stl for "
                    "stl10, ssl-digits for digits)", type=Literal[tuple(list_augmentations())]),
    "shared_aug": Flag("one augmentation per synthetic batch, as SnS"),
    "encoder_input": Flag("encoder method: normalised, or raw (G's [-1, 1], as SnS)",
                          type=Literal[ENCODER_INPUTS]),
    "precision": Flag("auto = bf16 on GPU, fp32 on CPU", type=Literal[PRECISIONS]),
    "channels_last": Flag("channels_last memory format"),
    "sync_bn": Flag("SyncBatchNorm under torchrun"),
    "gather": Flag("var/cov over the global batch under torchrun (all ranks' rows)"),
    "seed": Flag("random seed"),
    "out": Flag("run folder (default runs/<method>-<dataset>-<time>)"),
    "device": Flag("auto | cpu | cuda | cuda:N"),
    "workers": Flag("DataLoader workers for on-disk datasets"),
    "log_every": Flag("log a metrics line every N steps"),
    "ckpt_every": Flag("checkpoint interval in steps (default: max(50, total/10); always the last step)"),
    "collapse_threshold": Flag("embedding spread below which a step counts as collapsed"),
    "collapse_patience": Flag("consecutive collapsed steps that stop the run"),
    "eval": Flag("closing probes, comma-separated registered probe names (gandistill list probes), all, both "
                 "(= linear + knn) or none", type=str, kw={"parser": comma_choice("probe", eval_words)}),
    "eval_fast": Flag("cached-feature probe or the paper protocol", decls=("--eval-fast/--eval-full",)),
    "eval_epochs": Flag(f"probe epochs (default {ProbeConfig.linear_epochs})"),
    "eval_random": Flag("also probe a random-init student"),
    "eval_max_train": Flag("probe on the first N train images"),
    "eval_max_test": Flag("test on the first N test images"),
    "eval_raw_pixels": Flag("closing table: also probe the raw pixels"),
    "ssl_twin": Flag("also train and probe the method's SSL twin (same data, steps, seed; VICReg on real for sns) "
                     "and print the teacher's contribution (default: on for the embedded default run)",
                     decls=("--ssl-twin/--no-ssl-twin",)),
    "resume": Flag("last: continue the run in --out from its last checkpoint; auto: the latest run of this "
                   "config (or a new one)", type=Literal[tuple(RESUME_VALUES)]),
    "progress": Flag("progress bar (default: on a TTY)"),
    "logger": Flag("also log to TensorBoard / Weights & Biases (repeatable; metrics.jsonl is always written; "
                   "extras: pip install 'gandistill[tensorboard]' / '[wandb]')", type=List[Logger],
                   field="loggers"),
}


def fit_config_from(config: Optional[str], flags: Dict[str, Any]) -> FitConfig:
    """The config a ``fit`` command line asks for: FitConfig defaults, then ``--config``, then the flags given."""
    flags = dict(flags)
    if flags.get("teacher_opt") is not None:
        flags["teacher_opt"] = parse_kv(flags["teacher_opt"], "--teacher-opt") or None
    flags["logger"] = logger_names(flags.get("logger"))
    if flags.get("resume") is not None:
        flags["resume"] = RESUME_VALUES[flags["resume"]]
    values = merge_config(FitConfig, config, given(flags, FitConfig, FIT_FLAGS_FIELDS))
    cfg = FitConfig(**values)
    if cfg.resume is True and not cfg.out:
        raise typer.BadParameter("--resume last needs --out RUN_FOLDER (or '--resume auto' for the latest run of "
                                 "this config)")
    return cfg


@with_field_flags(FitConfig, FIT_FLAGS)
def fit_cmd(
    ctx: typer.Context,
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML file, or a run's config.json, whose "
                                         "values replace the defaults; flags given here override the file"),
    print_cfg: bool = typer.Option(False, "--print-config", help="print the complete config as commented YAML "
                                   "and exit"),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="check the config (names, files, data) and print "
                                 "the resolved plan without training"),
    **flags: Any,
) -> None:
    """Distil a GAN teacher into a student (default: Squeeze-and-Span, bundled digits teacher, {steps} steps,
    with its SSL twin -- VICReg on the same real images -- trained beside it, a few minutes on CPU) and print
    the probe table: distilled, SSL twin, random init, raw pixels and the teacher's contribution."""
    cfg = fit_config_from(config, flags)
    if print_cfg:
        print_config(FitConfig, config_dict(cfg), ctx.command, "gandistill fit config (gandistill fit --config FILE)",
                     FIT_FLAGS_FIELDS)
        return
    if dry_run:
        checked = check_fit_config(cfg)
        plan = resolved_config(cfg)      # also loads the dataset's index and resolves the method's defaults
        note = f"config checked ({', '.join(checked)}, dataset, plan); nothing trained"
        if plan.get("conditional_teacher"):
            say(f"warning: {plan['conditional_teacher']['message']}")
        console.print_json(json.dumps({"dry_run": note, **plan}, default=str))
        return
    try:
        res = fit(cfg, log=say)
    except TrainingStopped as e:
        console.print(f"[red]{e}[/red]", soft_wrap=True)
        raise typer.Exit(EXIT_STOPPED)
    except CheckpointWriteError as e:
        console.print(f"[red]error:[/red] {e.strerror}", soft_wrap=True)
        raise typer.Exit(EXIT_WRITE)
    if int(os.environ.get("RANK", "0")) == 0:      # torchrun: only rank 0 reports
        _print_result(res)


fit_cmd.__doc__ = " ".join((fit_cmd.__doc__ or "").split()).format(steps=DEFAULT_STEPS)  # one paragraph in --help     # the default stated once
FIT_FLAGS_FIELDS = {name: (f.field or name) for name, f in FIT_FLAGS.items()}
CONDITIONAL_BANNER = "label-conditioned teacher: not self-supervised"


def _print_result(res) -> None:
    method = res.config.get("config", {}).get("method", "")
    if getattr(res, "teacher_conditional", False):
        console.print(f"[yellow]{CONDITIONAL_BANNER}[/yellow]")
    if getattr(res, "probes", None):
        console.print(render_probe_table(ProbeTable.from_dict(res.probes), f"gandistill fit: {method}"))
    if res.eval and res.eval.get("top1") is not None:
        kind = "linear top-1" if any(k in res.eval for k in ("fast", "linear")) or "knn" not in res.eval else "top-1"
        line = f"{kind} (%): {res.eval.get('student', 'student')} (distilled) {res.eval['top1']:.2f}"
        if res.eval_random and res.eval_random.get("top1") is not None:
            line += f", random init {res.eval_random['top1']:.2f}"
        tw = (getattr(res, "twin", None) or {}).get("eval") or {}
        if tw.get("top1") is not None:
            line += f", SSL twin ({res.twin['method']}) {tw['top1']:.2f}"
        say(line)
    say(f"steps: {res.steps}  train: {res.train_time_s:.1f}s  total: {res.time_s:.1f}s")
    if res.checkpoint:
        say(f"checkpoint: {res.checkpoint}")
    say(f"run folder: {res.run_dir}")


def register(app: typer.Typer) -> None:
    """Add ``fit``."""
    app.command("fit")(fit_cmd)
