"""Where a run's numbers and pictures go: ``metrics.jsonl`` always, TensorBoard and Weights & Biases when
asked (``--logger tensorboard`` / ``--logger wandb``, repeatable).

One small interface for the training loops (:class:`RunLoggers`)::

    log_scalars(step, {"loss": ..., "lr": ...})   # every loss term, lr, images/s, the guards' spread
    log_images(step, "teacher", images)           # N x C x H x W, any range (each image min-max scaled)
    log_table("probes", rows)                     # the closing probe table (a list of dicts)
    log_event(step, {"stopped": ..., ...})        # a guard stopped the run (jsonl + text)
    close()

TensorBoard writes event files under ``RUN/tb``; W&B writes its run under ``RUN/wandb`` and is offline
unless the user configured it (``WANDB_MODE`` set, e.g. ``online``). Both packages are optional extras
(``pip install 'gandistill[tensorboard]'`` / ``'gandistill[wandb]'``) imported only when chosen.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, IO, Iterable, List, Mapping, Optional, Sequence

import torch
from torchvision.utils import make_grid

from gandistill.io.errors import ConfigError

#: logger name -> the package it needs and the extra that installs it
OPTIONAL = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb")}
KNOWN = ("jsonl",) + tuple(OPTIONAL)


def check_loggers(names: Iterable[str]) -> None:
    """A :class:`ConfigError` for an unknown logger or one whose optional package is not installed."""
    for name in names:
        if name not in KNOWN:
            raise ConfigError(f"unknown logger {name!r}; choose from {', '.join(KNOWN)}")
        if name in OPTIONAL and importlib.util.find_spec(OPTIONAL[name][0]) is None:
            pkg, extra = OPTIONAL[name]
            raise ConfigError(f"--logger {name} needs the '{pkg}' package: pip install 'gandistill[{extra}]'")


def _numbers(values: Mapping[str, Any]) -> Dict[str, float]:
    out = {}
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(float(v)):
            out[k] = float(v)
    return out


def image_grid(images: torch.Tensor, nrow: Optional[int] = None) -> torch.Tensor:
    """A 3 x H x W grid in [0, 1] of ``images`` (N x C x H x W, any range; each image min-max scaled)."""
    x = images.detach().float().cpu()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return make_grid(x[:, :3], nrow=nrow or int(math.ceil(math.sqrt(len(x)))), padding=1, normalize=True,
                     scale_each=True)


class _TensorBoard:
    def __init__(self, run_dir: Path, config: Mapping[str, Any]):
        # lazy: tensorboard is an optional extra, imported only when --logger tensorboard is chosen
        from torch.utils.tensorboard import SummaryWriter

        self.w = SummaryWriter(log_dir=str(run_dir / "tb"))
        if config:
            self.w.add_text("config", "```\n" + json.dumps(config, indent=1, default=str) + "\n```", 0)

    def scalars(self, step: int, values: Dict[str, float]) -> None:
        for k, v in values.items():
            self.w.add_scalar(k, v, step)

    def image(self, step: int, name: str, grid: torch.Tensor) -> None:
        self.w.add_image(name, grid, step)

    def table(self, name: str, rows: List[Dict[str, Any]]) -> None:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        md += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
        self.w.add_text(name, "\n".join(md), 0)
        for r in rows:
            label = str(r.get(cols[0], "row")) if cols else "row"
            for k, v in _numbers({c: r.get(c) for c in cols[1:]}).items():
                self.w.add_scalar(f"{name}/{label}/{k}", v, 0)

    def text(self, step: int, name: str, text: str) -> None:
        self.w.add_text(name, text, step)

    def close(self) -> None:
        self.w.flush()
        self.w.close()


class _WandB:
    def __init__(self, run_dir: Path, config: Mapping[str, Any], name: str):
        # lazy: wandb is an optional extra, imported only when --logger wandb is chosen
        wandb = importlib.import_module("wandb")
        self.wandb = wandb
        mode = os.environ.get("WANDB_MODE") or "offline"     # offline unless the user configured W&B
        (run_dir / "wandb").mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(dir=str(run_dir), mode=mode, name=name, config=dict(config), reinit=True)

    def scalars(self, step: int, values: Dict[str, float]) -> None:
        self.run.log(values, step=step)

    def image(self, step: int, name: str, grid: torch.Tensor) -> None:
        self.run.log({name: self.wandb.Image(grid.permute(1, 2, 0).numpy())}, step=step)

    def table(self, name: str, rows: List[Dict[str, Any]]) -> None:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        self.run.log({name: self.wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows])})

    def text(self, step: int, name: str, text: str) -> None:
        self.run.summary[name] = text

    def close(self) -> None:
        self.run.finish()


class RunLoggers:
    """Fan-out to ``metrics.jsonl`` (when ``jsonl`` is a path) and the optional loggers in ``names``."""

    def __init__(self, run_dir: Path, names: Sequence[str] = (), *, jsonl: Optional[Path] = None,
                 append: bool = False, config: Optional[Mapping[str, Any]] = None, name: str = ""):
        names = [n for n in dict.fromkeys(names) if n != "jsonl"]
        check_loggers(names)
        run_dir = Path(run_dir)
        self.jsonl: Optional[IO[str]] = open(jsonl, "a" if append else "w") if jsonl is not None else None
        self.backends: List[Any] = []
        for n in names:
            self.backends.append(_TensorBoard(run_dir, config or {}) if n == "tensorboard"
                                 else _WandB(run_dir, config or {}, name or run_dir.name))

    @property
    def wants_images(self) -> bool:
        """Images only go to the optional loggers (none of them: nothing to draw)."""
        return bool(self.backends)

    def log_scalars(self, step: int, values: Mapping[str, Any]) -> None:
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({"step": step, **values}) + "\n")
            self.jsonl.flush()
        nums = _numbers(values)
        for b in self.backends:
            b.scalars(step, nums)

    def log_images(self, step: int, name: str, images: torch.Tensor) -> None:
        if self.backends:
            grid = image_grid(images)
            for b in self.backends:
                b.image(step, name, grid)

    def log_table(self, name: str, rows: List[Dict[str, Any]]) -> None:
        for b in self.backends:
            b.table(name, rows)

    def log_event(self, step: int, values: Mapping[str, Any]) -> None:
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({"step": step, **values}) + "\n")
            self.jsonl.flush()
        for b in self.backends:
            b.text(step, "event", json.dumps(dict(values), default=str))

    def close(self) -> None:
        if self.jsonl is not None:
            self.jsonl.close()
            self.jsonl = None
        for b in self.backends:
            b.close()
        self.backends = []


__all__ = ["RunLoggers", "check_loggers", "image_grid", "KNOWN", "OPTIONAL"]
