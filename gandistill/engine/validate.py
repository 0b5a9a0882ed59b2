"""What ``fit --dry-run`` checks before anything trains: every name resolves (method, teacher, student,
augmentation, dataset), every file named exists, and the optional loggers asked for are installed.
Each failure is one :class:`~gandistill.io.errors.ConfigError` line (exit code 2 from the CLI)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional

import timm

from gandistill.augment import PRESETS
from gandistill.data.factory import DATASETS
from gandistill.engine.config import FitConfig
from gandistill.engine.loggers import check_loggers
from gandistill.io.errors import ConfigError, show_path
from gandistill.methods import METHODS
from gandistill.registry import close_matches
from gandistill.teachers import TEACHERS


def _name(kind: str, value: Optional[str], known: Iterable[str], flag: str) -> None:
    names = list(known)
    if value is not None and value not in names:
        hint = close_matches(value, names, n=3)
        raise ConfigError(f"{flag}: unknown {kind} {value!r}" + (f"; did you mean {', '.join(hint)}?" if hint
                                                                 else f"; known: {', '.join(sorted(names))}"))


def _path(value: Optional[str], flag: str) -> None:
    if value is not None and not Path(value).exists():
        raise ConfigError(f"{flag}: no such file or folder", path=value)


def check_fit_config(cfg: FitConfig) -> List[str]:
    """Raise a :class:`ConfigError` for the first problem found without training; return what was checked."""
    _name("method", cfg.method, METHODS.names(), "--method")
    _name("teacher", cfg.teacher, TEACHERS.names(), "--teacher")
    if cfg.student is not None and not timm.is_model(cfg.student):
        hint = close_matches(cfg.student, timm.list_models(), n=3)
        raise ConfigError(f"--student: {cfg.student!r} is not a timm model"
                          + (f"; did you mean {', '.join(hint)}?" if hint else ""))
    _name("augmentation preset", cfg.augment, PRESETS, "--augment")
    _name("dataset", cfg.dataset, DATASETS.names(), "--dataset")
    _path(cfg.teacher_ckpt, "--teacher-ckpt")
    _path(cfg.bank, "--bank")
    _path(cfg.data_root if not cfg.download else None, "--data-root")
    check_loggers(cfg.loggers)
    if cfg.out and cfg.resume is True and not Path(cfg.out).exists():
        raise ConfigError(f"--resume: {show_path(cfg.out)} does not exist")
    return ["method", "teacher", "student", "augment", "dataset", "teacher_ckpt", "bank", "data_root", "loggers"]


__all__ = ["check_fit_config"]
