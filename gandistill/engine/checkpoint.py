"""The run folder's last checkpoint: writing it (every file atomically, the JSON last), checking it
is finite, and resuming the loop from it.

``checkpoint.json`` names ``student.safetensors``, the head (``squeeze.safetensors`` /
``predictor.safetensors``) and ``train_state.pt`` (optimizer, RNG states, real-stream position).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, TYPE_CHECKING

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from gandistill.io import files as _files
from gandistill.io.errors import GandistillError, UnsafeFileError, show_path
from gandistill.io.formats import CHECKPOINT, RUN_CONFIG
from gandistill.io.schema import check, load_json
from gandistill.io.tensors import check_state, read_safetensors, read_train_state

if TYPE_CHECKING:  # pragma: no cover
    from gandistill.engine.parts import Parts
    from gandistill.engine.plan import Plan

CKPT_JSON = "checkpoint.json"
CKPT_FORMAT = "gandistill-student"
STAGING = ".checkpoint-next"         # a checkpoint being written (see save_checkpoint)


class ResumeError(GandistillError):
    """A run folder cannot be resumed: its checkpoint is missing a part, corrupt, hostile or of another run."""


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` a temporary next to ``path``, then rename it over ``path`` (:func:`gandistill.io.files.atomic_write`)."""
    _files.atomic_write(path, write)


def write_json(path: Path, data: Dict[str, Any]) -> None:
    _files.atomic_write_json(path, data, indent=2, default=str)


def _state_cpu(m: nn.Module) -> Dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in m.state_dict().items()}


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (e.g. the disk is full); the previous checkpoint is intact."""


def _commit(run_dir: Path) -> None:
    """Move a complete staged checkpoint over the live one, the JSON last (idempotent: :func:`recover`
    finishes a commit a crash interrupted)."""
    stage = run_dir / STAGING
    for name in sorted(os.listdir(stage)):
        if name != CKPT_JSON:
            os.replace(stage / name, run_dir / name)
    if (stage / CKPT_JSON).exists():
        os.replace(stage / CKPT_JSON, run_dir / CKPT_JSON)
    stage.rmdir()
    _files.fsync_path(run_dir)


def recover(run_dir: Path) -> None:
    """Bring ``run_dir`` to a consistent checkpoint after a crash during a write.

    A staged ``checkpoint.json`` is written only after every other staged file, so its presence
    means the staged set is complete: finish moving it in. Without it the write never completed:
    drop the staged files, the live checkpoint is the previous one, untouched.
    """
    stage = Path(run_dir) / STAGING
    if not stage.is_dir():
        return
    if (stage / CKPT_JSON).exists():
        _commit(Path(run_dir))
    else:
        shutil.rmtree(stage, ignore_errors=True)


def save_checkpoint(run_dir: Path, step: int, student: nn.Module, head: Optional[nn.Module], head_kind: Optional[str],
                    optimizer: Optional[torch.optim.Optimizer], meta: Dict[str, Any],
                    extra_state: Optional[Dict[str, Any]] = None) -> Path:
    """Write the last checkpoint so that a crash at any point leaves a loadable one.

    All files go to ``run_dir/.checkpoint-next/`` first (``checkpoint.json`` last, after the others are
    synced); only then are they moved over the live files. A failing write (disk full, a kill) leaves
    the previous checkpoint as it was and raises :class:`CheckpointWriteError`.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    recover(run_dir)
    stage = run_dir / STAGING
    stage.mkdir()
    md = {"step": str(step)}
    try:
        written = []
        save_file(_state_cpu(student), str(stage / "student.safetensors"), metadata=md)
        written.append("student.safetensors")
        head_file = None
        if head is not None and len(list(head.state_dict())) > 0:
            head_file = f"{head_kind}.safetensors"
            save_file(_state_cpu(head), str(stage / head_file), metadata=md)
            written.append(head_file)
        state_file = None
        if optimizer is not None:
            state_file = "train_state.pt"
            state = {"step": step, "optimizer": optimizer.state_dict(), **(extra_state or {})}
            torch.save(state, stage / state_file)
            written.append(state_file)
        for name in written:
            _files.fsync_path(stage / name)
        cfg = getattr(student, "config", None)
        skw = cfg.to_dict() if cfg is not None else {}
        name = skw.pop("name", None) or meta.get("student")
        data = {"format": CKPT_FORMAT, "version": 1, "student": name, "student_kwargs": skw,
                "weights": "student.safetensors", "head": head_file, "head_kind": head_kind if head_file else None,
                "train_state": state_file, "step": step, "saved": _dt.datetime.now().isoformat(timespec="seconds"),
                **meta}
        write_json(stage / CKPT_JSON, data)
        _files.fsync_path(stage / CKPT_JSON)
    except BaseException as e:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(e, OSError):
            raise CheckpointWriteError(e.errno, f"writing the checkpoint of step {step} in {run_dir} failed "
                                                f"({e.strerror or e}); the previous checkpoint is intact") from e
        raise
    _commit(run_dir)
    return run_dir / CKPT_JSON


def checkpoint_meta(plan: "Plan", teacher: Any) -> Dict[str, Any]:
    """The run facts every checkpoint of this run carries."""
    return {"method": plan.spec.name, "teacher": plan.teacher_name, "teacher_ckpt": getattr(teacher, "ckpt_path", None),
            "dataset": plan.dataset, "img_size": plan.img_size, "total_steps": plan.total_steps}


def train_state(parts: "Parts", device: torch.device) -> Dict[str, Any]:
    """What ``resume`` needs beyond the weights and the optimizer: RNG states and the stream position."""
    extra = {"rng_cpu": torch.get_rng_state(), "z_gen": parts.z_gen.get_state(),
             "stream": parts.stream.state() if parts.stream else None,
             "scaler": parts.scaler.state_dict() if parts.scaler is not None else None}
    if device.type == "cuda":
        extra["rng_cuda"] = torch.cuda.get_rng_state(device)
    return extra


def all_finite(module: nn.Module) -> bool:
    """True when every floating-point parameter and buffer of ``module`` is finite."""
    return all(bool(torch.isfinite(t).all()) for t in list(module.parameters()) + list(module.buffers())
               if t.is_floating_point())


def load_weights(module: nn.Module, path: Path) -> None:
    """Load a safetensors file into ``module`` (read, not mapped; keys, shapes, dtypes and finiteness checked)."""
    state, _ = read_safetensors(path, "weights file", UnsafeFileError)
    check_state(state, module.state_dict(), path, UnsafeFileError)
    module.load_state_dict(state, strict=True)


# --- resume -------------------------------------------------------------------------------------

# what makes two runs "the same config" for --resume: the settings that change the trajectory
# (not: run folder, device, workers, logging, guards, eval, teacher_kwargs, world size)
FINGERPRINT_CONFIG = ("method", "teacher_ckpt", "bank", "student_kwargs", "dataset", "train_split", "batch",
                      "squeeze_hidden", "shared_aug", "gather", "seed", "encoder_input")
FINGERPRINT_RESOLVED = ("student", "cifar_stem", "teacher", "img_size", "total_steps", "lr", "weight_decay",
                        "augment", "augment_real", "precision", "proj_layers", "proj_hidden", "proj_final_bn", "dim",
                        "squeeze_depth", "loss_weights")


def fingerprint(record: Dict[str, Any]) -> Dict[str, Any]:
    """The trajectory-relevant settings of a run record (``config.json`` or :func:`plan_dict`)."""
    cfg, res = record.get("config") or {}, record.get("resolved") or {}
    fp = {k: cfg[k] for k in FINGERPRINT_CONFIG if k in cfg}
    fp.update({k: res[k] for k in FINGERPRINT_RESOLVED if k in res})
    return json.loads(json.dumps(fp, default=str))          # tuples -> lists, as read back from JSON


def fingerprint_diff(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """``"key: old -> new"`` for every setting both records have and that differs."""
    return [f"{k}: {old[k]!r} -> {new[k]!r}" for k in new if k in old and old[k] != new[k]]


def read_checkpoint(run_dir: Path, what: str = "--resume") -> Dict[str, Any]:
    """``run_dir/checkpoint.json`` if it is a readable gandistill student checkpoint, else a clear error."""
    path = Path(run_dir) / CKPT_JSON
    try:
        meta = load_json(path, what="checkpoint", error=ResumeError)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what}: no checkpoint in {run_dir} (expected {CKPT_JSON})") from None
    except ResumeError as e:
        detail = str(e)[len(show_path(path)) + 2:] if str(e).startswith(show_path(path) + ": ") else str(e)
        raise ResumeError(f"{what}: {show_path(path)} is unreadable or corrupt ({detail})") from None
    if not isinstance(meta, dict) or meta.get("format") != CKPT_FORMAT:
        kind = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ResumeError(f"{what}: not a gandistill student checkpoint (format {str(kind)[:40]!r}, expected "
                          f"{CKPT_FORMAT!r})", path=path)
    return check(meta, CHECKPOINT, path, ResumeError, f"{what}: checkpoint")


def _read_record(run_dir: Path) -> Optional[Dict[str, Any]]:
    try:
        return load_json(Path(run_dir) / "config.json", RUN_CONFIG, what="run config")
    except (OSError, GandistillError):   # missing, a FIFO, corrupt: not a run of this config
        return None


def _saved_time(run_dir: Path) -> float:
    try:
        return (run_dir / CKPT_JSON).stat().st_mtime
    except OSError:
        return -1.0


def find_latest_run(root: Path, record: Dict[str, Any]) -> Optional[Path]:
    """The run folder under ``root`` with a checkpoint and the same :func:`fingerprint`, newest first."""
    fp = fingerprint(record)
    found = []
    for cand in Path(root).iterdir() if Path(root).is_dir() else []:
        if not (cand / CKPT_JSON).is_file():
            continue
        old = _read_record(cand)
        if old is not None and fingerprint(old) == fp:
            found.append(cand)
    return max(found, key=_saved_time) if found else None


def resolve_resume(plan: "Plan", record: Dict[str, Any], say: Callable[[str], None] = lambda s: None) -> "Plan":
    """``--resume auto``: continue the latest run of this config (in ``--out`` when given, else the newest
    matching folder next to the default run folder), or start a new run when there is none."""
    if not plan.resume_auto:
        return plan
    given = plan.config.get("out")
    if given:
        recover(plan.run_dir)
        found = plan.run_dir if (plan.run_dir / CKPT_JSON).exists() else None
    else:
        found = find_latest_run(plan.run_dir.parent, record)
    if found is None:
        say(f"--resume auto: no earlier run of this config; starting {plan.run_dir}")
        return replace(plan, resume=False, resume_auto=False)
    return replace(plan, run_dir=Path(found), resume=True, resume_auto=False)


def check_run_dir(plan: "Plan", record: Optional[Dict[str, Any]] = None) -> None:
    """A resumed run needs a checkpoint of the same method, student and trajectory settings
    (``record``: this run's :func:`plan_dict`); a new run must not overwrite one."""
    run_dir = plan.run_dir
    if not plan.resume:
        if (run_dir / CKPT_JSON).exists():
            raise ValueError(f"{run_dir} already holds a run (checkpoint.json); pass --resume to continue it "
                             "or choose another --out")
        return
    meta = read_checkpoint(run_dir)
    spec, name = plan.spec, plan.student_name
    if meta.get("method") != spec.name or meta.get("student") != name:
        raise ValueError(f"--resume: {run_dir} was a '{meta.get('method')}' run of '{meta.get('student')}', "
                         f"not '{spec.name}' of '{name}'")
    old = _read_record(run_dir) if record is not None else None
    if old is not None:
        diff = fingerprint_diff(fingerprint(old), fingerprint(record))
        if diff:
            raise ValueError(f"--resume: {run_dir} was trained with a different config ({'; '.join(diff)}); "
                             "resume with the run's own settings or start a new run with another --out")


def _load_safetensors(module: nn.Module, run_dir: Path, name: Any, step: int) -> None:
    """A weights file named by ``checkpoint.json``: inside the run folder, read (no memory map), every
    tensor of the network's shape and dtype and finite, saved at ``step``."""
    path = _files.inside(run_dir, name, "weights file", where=Path(run_dir) / CKPT_JSON)
    try:
        state, md = read_safetensors(path, "--resume: weights file", ResumeError)
    except FileNotFoundError:
        raise FileNotFoundError(f"--resume: {path} is missing") from None
    saved = md.get("step")
    if saved is not None and saved != str(step):
        raise ResumeError(f"--resume: holds step {saved[:40]} but {CKPT_JSON} says step {step} "
                          "(an interrupted checkpoint write from an older version?)", path=path)
    check_state(state, module.state_dict(), path, ResumeError, "--resume: weights")
    module.load_state_dict(state, strict=True)


def _read_state(run_dir: Path, meta: Dict[str, Any], step: int) -> Dict[str, Any]:
    if not meta.get("train_state"):
        raise ResumeError(f"--resume: {run_dir} has no optimizer state")
    path = _files.inside(run_dir, meta["train_state"], "training state", where=Path(run_dir) / CKPT_JSON)
    try:
        state = read_train_state(path, ResumeError)
    except FileNotFoundError:
        raise FileNotFoundError(f"--resume: {path} is missing") from None
    if type(state.get("step")) is not int or state["step"] != step:
        raise ResumeError(f"--resume: holds step {str(state.get('step'))[:40]} but {CKPT_JSON} says step {step}",
                          path=path)
    if type(state.get("optimizer")) is not dict:
        raise ResumeError("--resume: the training state has no optimizer state", path=path)
    for k, v in _tensors(state):
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise ResumeError(f"--resume: the training state holds non-finite values in {k}", path=path)
    return state


def _check_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    """Every per-parameter state tensor (moments) has its parameter's shape and a floating dtype."""
    for group in opt.param_groups:
        for p in group["params"]:
            for k, v in opt.state.get(p, {}).items():
                if isinstance(v, Tensor) and v.ndim > 0 and (v.shape != p.shape or not v.is_floating_point()):
                    raise ResumeError(f"--resume: the optimizer state '{k}' has shape {tuple(v.shape)} / {v.dtype} "
                                      f"for a parameter of shape {tuple(p.shape)}", path=path)


def _tensors(obj: Any, key: str = "", depth: int = 0):
    """``(key, tensor)`` for every tensor inside nested dicts/lists of a training state."""
    if isinstance(obj, Tensor):
        yield key, obj
    elif depth < 8 and isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{key}.{k}" if key else str(k), depth + 1)
    elif depth < 8 and isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{key}[{i}]", depth + 1)


def resume(plan: "Plan", parts: "Parts") -> int:
    """Load the last checkpoint of ``plan.run_dir`` into ``parts``; returns the step to continue from."""
    run_dir = plan.run_dir
    meta = read_checkpoint(run_dir)
    step = int(meta.get("step", -1))
    _load_safetensors(parts.model.student, run_dir, meta["weights"], step)
    if parts.head is not None and meta.get("head"):
        _load_safetensors(parts.head, run_dir, meta["head"], step)
    path = run_dir / str(meta.get("train_state"))
    state = _read_state(run_dir, meta, step)
    impl = [{k: g.get(k) for k in ("fused", "foreach")} for g in parts.opt.param_groups]
    try:
        parts.opt.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
        raise ResumeError(f"--resume: the optimizer state does not fit this run: {type(e).__name__}: {e}",
                          path=path) from None
    _check_optimizer(parts.opt, path)
    for g, flags in zip(parts.opt.param_groups, impl):      # the saved groups carry the old implementation flags
        g.update(flags)
    if state.get("rng_cpu") is not None:
        torch.set_rng_state(state["rng_cpu"])
    if state.get("rng_cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["rng_cuda"])
    if state.get("z_gen") is not None:
        parts.z_gen.set_state(state["z_gen"])
    if parts.stream is not None and state.get("stream"):
        parts.stream.load_state(state["stream"])
    if parts.scaler is not None and state.get("scaler"):
        parts.scaler.load_state_dict(state["scaler"])
    return int(state["step"])
