"""``gandistill fit``: a thin shell over :func:`gandistill.engine.fit`.
Each flag maps onto one :class:`~gandistill.engine.FitConfig` field.

``gandistill fit`` with no options distils the bundled digits teacher into a small student with
Squeeze-and-Span on CPU in about three minutes, then prints the linear-probe top-1 next to a
randomly initialised student's and where the checkpoint is.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

import typer
from rich.console import Console

console = Console()



def _parse_value(v: str) -> Any:
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def _parse_kv(items: Optional[List[str]], what: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for it in items or []:
        if "=" not in it:
            raise typer.BadParameter(f"{what} expects KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip().replace("-", "_")] = _parse_value(v.strip())
    return out


def fit_cmd(
    method: str = typer.Option("sns", help="method name (gandistill list methods)"),
    teacher: Optional[str] = typer.Option(None, help="teacher name (default: the method's; gandistill list teachers)"),
    teacher_ckpt: Optional[str] = typer.Option(None, "--teacher-ckpt", help="SG2 checkpoint: NVlabs .pkl or gandistill folder (default: bundled digits teacher)"),
    bank: Optional[str] = typer.Option(None, "--bank", help="feature bank folder (gandistill bank build): sampled instead of running G"),
    teacher_opt: Optional[List[str]] = typer.Option(None, "--teacher-opt", help="teacher option KEY=VALUE (repeatable), e.g. mode=single"),
    student: Optional[str] = typer.Option(None, help="any timm model name (default: resnet10t, standard stem)"),
    cifar_stem: Optional[bool] = typer.Option(None, "--cifar-stem/--no-cifar-stem", help="3x3 stride-1 stem for ResNets (default: auto at <= 64 px; off for the default student)"),
    dataset: str = typer.Option("digits", help="dataset name (gandistill list datasets)"),
    data_root: Optional[str] = typer.Option(None, help="dataset root folder"),
    train_split: str = typer.Option("train", help="split of the training images (stl10: train+unlabeled)"),
    download: bool = typer.Option(False, "--download", help="fetch cifar10 / cifar100 / stl10 into --data-root if missing"),
    img_size: Optional[int] = typer.Option(None, help="student input size (default: the dataset's resolution)"),
    batch: int = typer.Option(64, help="global batch (synthetic + real)"),
    steps: Optional[int] = typer.Option(None, help="training steps (default 250 unless --epochs)"),
    epochs: Optional[float] = typer.Option(None, help="epochs of len(train)//batch steps"),
    base_lr: Optional[float] = typer.Option(None, help="lr = base_lr * batch / 256 (default: the method's)"),
    wd: Optional[float] = typer.Option(None, help="weight decay (default: the method's)"),
    sim: Optional[float] = typer.Option(None, help="invariance weight lambda"),
    var: Optional[float] = typer.Option(None, help="variance weight mu"),
    cov: Optional[float] = typer.Option(None, help="covariance weight nu"),
    alpha: Optional[float] = typer.Option(None, help="synthetic share of the batch"),
    squeeze_depth: Optional[int] = typer.Option(None, help="squeeze MLP depth (0 = vanilla concatenation)"),
    dim: Optional[int] = typer.Option(None, help="embedding width"),
    proj_layers: Optional[int] = typer.Option(None, help="student projector depth"),
    proj_hidden: Optional[int] = typer.Option(None, help="student projector hidden width"),
    squeeze_hidden: int = typer.Option(2048, help="squeeze module T_phi hidden width"),
    var_cov_on: Optional[str] = typer.Option(None, help="student (SnS) | both (Eq. 11 as printed)"),
    augment: Optional[str] = typer.Option(None, help="augmentation preset (gandistill list augmentations)"),
    shared_aug: bool = typer.Option(False, help="one augmentation per synthetic batch, as SnS"),
    encoder_input: str = typer.Option("normalised", help="encoder method: normalised | raw (G's [-1, 1], as SnS)"),
    precision: str = typer.Option("auto", help="auto | fp32 | bf16 | fp16"),
    channels_last: bool = typer.Option(False, help="channels_last memory format"),
    sync_bn: bool = typer.Option(False, help="SyncBatchNorm under torchrun"),
    gather: bool = typer.Option(False, "--gather/--no-gather", help="var/cov over the global batch under torchrun (all ranks' rows)"),
    seed: int = typer.Option(0),
    out: Optional[str] = typer.Option(None, help="run folder (default runs/<method>-<dataset>-<time>)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    workers: int = typer.Option(0, help="DataLoader workers for on-disk datasets"),
    log_every: int = typer.Option(10),
    ckpt_every: Optional[int] = typer.Option(None, help="checkpoint interval in steps (default: max(50, total/10); always the last step)"),
    collapse_threshold: float = typer.Option(0.02, help="embedding spread below which a step counts as collapsed"),
    collapse_patience: int = typer.Option(20, help="consecutive collapsed steps that stop the run"),
    eval: str = typer.Option("fewshot,knn,fast", "--eval", help="closing probes: none, or comma-separated fewshot,knn,fast,linear | all | both (linear + --eval-fast = fast)"),
    eval_fast: bool = typer.Option(True, "--eval-fast/--eval-full", help="cached-feature probe or the paper protocol"),
    eval_epochs: Optional[int] = typer.Option(None, help="probe epochs (default 90)"),
    eval_random: bool = typer.Option(True, "--eval-random/--no-eval-random", help="also probe a random-init student"),
    eval_max_train: Optional[int] = typer.Option(None, help="probe on the first N train images"),
    eval_max_test: Optional[int] = typer.Option(None, help="test on the first N test images"),
    eval_raw_pixels: bool = typer.Option(True, "--eval-raw-pixels/--no-eval-raw-pixels", help="closing table: also probe the raw pixels"),
    resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint; "
                                "'--resume auto': the latest run of this config (or a new one)"),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="progress bar (default: on a TTY)"),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="print the resolved config and exit"),
    resume_mode: Optional[str] = typer.Argument(None, hidden=True, metavar="[auto]", help="'auto' after --resume"),
) -> None:
    """Distil a GAN teacher into a student (default: Squeeze-and-Span, bundled digits teacher, ~3 min on CPU)."""
    from gandistill.engine import CheckpointWriteError, FitConfig, TrainingStopped, fit, resolved_config

    if resume_mode is not None and (not resume or resume_mode != "auto"):
        raise typer.BadParameter(f"unexpected argument {resume_mode!r} (the only one is 'auto', after --resume)")
    resume_value: Any = "auto" if resume_mode == "auto" else resume
    if resume_value is True and not out:
        raise typer.BadParameter("--resume needs --out RUN_FOLDER (or '--resume auto' for the latest run of this config)")
    cfg = FitConfig(
        method=method, teacher=teacher, teacher_ckpt=teacher_ckpt, teacher_kwargs=_parse_kv(teacher_opt, "--teacher-opt"),
        bank=bank,
        student=student, cifar_stem=cifar_stem, dataset=dataset, data_root=data_root, train_split=train_split,
        download=download, img_size=img_size, batch=batch,
        steps=steps, epochs=epochs, base_lr=base_lr,
        wd=wd, sim=sim, var=var, cov=cov, alpha=alpha, squeeze_depth=squeeze_depth, dim=dim, proj_layers=proj_layers,
        proj_hidden=proj_hidden, squeeze_hidden=squeeze_hidden, gather=gather,
        var_cov_on=var_cov_on, augment=augment, shared_aug=shared_aug, encoder_input=encoder_input,
        precision=precision,
        channels_last=channels_last, sync_bn=sync_bn, seed=seed, out=out, device=device, workers=workers,
        log_every=log_every, ckpt_every=ckpt_every, collapse_threshold=collapse_threshold,
        collapse_patience=collapse_patience, eval=eval, eval_fast=eval_fast, eval_epochs=eval_epochs,
        eval_random=eval_random, eval_max_train=eval_max_train, eval_max_test=eval_max_test,
        eval_raw_pixels=eval_raw_pixels, resume=resume_value,
        progress=progress,
    )
    if dry_run:
        console.print_json(json.dumps(resolved_config(cfg), default=str))
        raise typer.Exit(0)
    try:
        res = fit(cfg, log=lambda s: console.print(s, highlight=False, soft_wrap=True, markup=False))
    except TrainingStopped as e:
        console.print(str(e), style="red", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(3)
    except CheckpointWriteError as e:
        console.print(f"error: {e.strerror}", style="red", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(4)
    if int(os.environ.get("RANK", "0")) == 0:      # torchrun: only rank 0 reports
        _print_result(res)


CONDITIONAL_BANNER = "label-conditioned teacher: not self-supervised"


def _print_result(res) -> None:
    method = res.config.get("config", {}).get("method", "")
    if getattr(res, "teacher_conditional", False):
        console.print(f"[yellow]{CONDITIONAL_BANNER}[/yellow]")
    if getattr(res, "probes", None):
        from gandistill.evaluation.suite import ProbeTable, render_probe_table

        console.print(render_probe_table(ProbeTable.from_dict(res.probes), f"gandistill fit: {method}"))
    if res.eval and res.eval.get("top1") is not None:
        kind = "linear top-1" if any(k in res.eval for k in ("fast", "linear")) or "knn" not in res.eval else "top-1"
        line = f"{kind} (%): {res.eval.get('student', 'student')} (distilled) {res.eval['top1']:.2f}"
        if res.eval_random and res.eval_random.get("top1") is not None:
            line += f", random init {res.eval_random['top1']:.2f}"
        console.print(line)
    console.print(f"steps: {res.steps}  train: {res.train_time_s:.1f}s  total: {res.time_s:.1f}s")
    if res.checkpoint:
        console.print(f"checkpoint: {res.checkpoint}", soft_wrap=True, markup=False)
    console.print(f"run folder: {res.run_dir}", soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``fit`` to the ``gandistill`` app (``eval`` lives in :mod:`gandistill.cli_eval`)."""
    app.command("fit")(fit_cmd)
