"""The SSL twin of a run: the same student, real data, steps, batch, augmentation and seed, trained by
the method's plain self-supervised counterpart (:data:`gandistill.methods.TWINS`), so that the closing
table shows what the teacher adds ("teacher's contribution" = distilled minus twin).

The twin lives in ``<run>/twin/``: a run folder of its own (config, checkpoints, ``summary.json``)
written by the same engine, so an interrupted twin resumes from its last checkpoint and a finished
one is reused, never trained twice.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch

from gandistill.engine.config import FitConfig
from gandistill.io.files import open_append
from gandistill.methods import get_method

TWIN_DIR = "twin"

# settings that belong to the distilling method (its teacher and loss), not to the shared protocol:
# the twin takes its own method's defaults for them
_METHOD_FIELDS = dict(teacher=None, teacher_kwargs={}, alpha=None, sim=None, var=None, cov=None, squeeze_depth=None,
                      var_cov_on=None)


def default_twin_on(cfg: FitConfig) -> bool:
    """``ssl_twin=None``: on for the embedded default teacher run (digits, the bundled teacher, probes on)."""
    return cfg.dataset == "digits" and not cfg.teacher_ckpt and not cfg.bank and cfg.eval != "none"


def twin_method(cfg: FitConfig) -> Optional[str]:
    """The twin's method name when this run trains one, else None (``ValueError`` when asked for a twin
    the method does not have)."""
    spec = get_method(cfg.method)
    want = default_twin_on(cfg) if cfg.ssl_twin is None else bool(cfg.ssl_twin)
    if not want:
        return None
    if spec.twin is None:
        if cfg.ssl_twin:
            raise ValueError(f"method {spec.name} has no SSL twin (it is self-supervised itself or trains "
                             "nothing); drop --ssl-twin")
        return None
    if cfg.eval == "none" and cfg.ssl_twin:
        raise ValueError("--ssl-twin compares probes; it needs --eval other than none")
    return spec.twin


def twin_config(cfg: FitConfig, run_dir: Path) -> Optional[FitConfig]:
    """The twin's :class:`FitConfig` (``None`` when the run has no twin): ``cfg`` with the twin's method,
    the method-specific settings at the twin's defaults, no probes of its own, in ``run_dir/twin``."""
    name = twin_method(cfg)
    if name is None:
        return None
    twin = get_method(name)
    keep_teacher = twin.uses_synthetic          # VICReg on the same teacher's images keeps the checkpoint
    same_teacher = keep_teacher and (cfg.teacher or get_method(cfg.method).teacher) == twin.teacher
    out = Path(run_dir) / TWIN_DIR
    fields = dict(_METHOD_FIELDS, teacher_kwargs=dict(cfg.teacher_kwargs) if same_teacher else {})
    return replace(cfg, method=name, **fields,
                   teacher_ckpt=cfg.teacher_ckpt if keep_teacher else None,
                   bank=cfg.bank if keep_teacher else None,
                   out=str(out), eval="none", ssl_twin=False, progress=False, resume=twin_resume_state(out) == "resume")


def twin_resume_state(out: Path) -> str:
    """``done`` (a finished twin: reuse it), ``resume`` (a checkpoint without summary) or ``new``."""
    if (out / "summary.json").exists() and (out / "checkpoint.json").exists():
        return "done"
    if (out / "checkpoint.json").exists():
        return "resume"
    return "new"


def finished_twin(out: Path) -> Optional[Dict[str, Any]]:
    """The summary of a finished twin in ``out`` (None when not finished)."""
    if twin_resume_state(out) != "done":
        return None
    try:
        return json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return None


# --- training the twin: beside the main run (a second process, CPU) or after it ---------------------

def _twin_process(cfg: FitConfig, threads: int, log_path: str, fit: Callable[..., Any]) -> None:
    """Entry point of the twin's process: train ``cfg`` by ``fit`` (``engine.run.fit``, handed in so this
    module does not import the run that imports it) with ``threads`` intra-op threads, log to a file."""
    parent = os.getppid()

    def orphan_watch() -> None:             # the run was killed (not interrupted): stop, keep the checkpoint
        while True:
            time.sleep(2.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=orphan_watch, daemon=True, name="twin-orphan-watch").start()
    torch.set_num_threads(max(1, threads))
    with open_append(log_path, "twin log") as f:
        fit(cfg, log=lambda s: f.write(s + "\n"))


def split_threads(device_type: str, world: int) -> int:
    """Threads per training when the twin trains beside the main run, or 0 to train it afterwards.

    One training of the default run does not use two cores well (small batches of 32 px images), so
    on a CPU with >= 2 cores the twin trains at the same time in a second process and each takes
    half the cores (``GANDISTILL_TWIN_PARALLEL=0`` turns this off, ``=1`` forces it). GPUs and torchrun: afterwards.
    """
    mode = os.environ.get("GANDISTILL_TWIN_PARALLEL", "auto")
    if device_type != "cpu" or world > 1 or mode == "0":
        return 0
    if mode == "1":                              # forced (tests): a second process even on one core
        return max(1, torch.get_num_threads() // 2)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cores = min(cores, torch.get_num_threads()) if os.environ.get("OMP_NUM_THREADS") else cores
    return cores // 2 if cores >= 2 else 0


class TwinRun:
    """The twin's training, started with :meth:`start` and finished with :meth:`join`."""

    def __init__(self, cfg: FitConfig, threads: int, fit: Callable[..., Any]) -> None:
        self.cfg, self.threads, self.proc, self.state = cfg, threads, None, twin_resume_state(Path(cfg.out or "."))
        self.fit = fit                      # engine.run.fit: what the twin's process runs

    @property
    def out(self) -> Path:
        return Path(self.cfg.out or ".")

    def start(self, say) -> None:
        if self.state == "done":
            say(f"SSL twin ({self.cfg.method}): finished earlier in {self.out}, reused")
            return
        if not self.threads:
            return

        self.out.mkdir(parents=True, exist_ok=True)
        self._threads_before = torch.get_num_threads()
        ctx = mp.get_context("spawn")
        self.proc = ctx.Process(target=_twin_process, args=(self.cfg, self.threads, str(self.out / "log.txt"), self.fit),
                                daemon=True, name="gandistill-ssl-twin")
        self.proc.start()
        torch.set_num_threads(max(1, self._threads_before - self.threads))
        say(f"SSL twin ({self.cfg.method}) {'resuming' if self.cfg.resume else 'training'} beside the run in a "
            f"second process ({self.threads} thread(s) each): {self.out} (log: {self.out / 'log.txt'})")

    def join(self, train_here, say) -> Dict[str, Any]:
        """Wait for the twin (or train it now with ``train_here(cfg)``); its summary."""
        if self.state != "done":
            if self.proc is not None:
                self.proc.join()
                torch.set_num_threads(self._threads_before)
                if self.proc.exitcode != 0:
                    tail = ""
                    try:
                        tail = (self.out / "log.txt").read_text().strip().splitlines()[-1]
                    except (OSError, IndexError):
                        pass
                    raise RuntimeError(f"the SSL twin's training ({self.cfg.method}, {self.out}) failed with exit "
                                       f"code {self.proc.exitcode}" + (f": {tail}" if tail else "")
                                       + "; rerun with --resume to continue it, or --no-ssl-twin")
            else:
                say(f"SSL twin ({self.cfg.method}): {'resuming' if self.cfg.resume else 'training'} in {self.out}")
                train_here(self.cfg)
        got = finished_twin(self.out)
        if got is None:
            raise RuntimeError(f"the SSL twin in {self.out} left no summary.json")
        return got
