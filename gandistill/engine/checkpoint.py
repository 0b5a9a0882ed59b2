"""The run folder's last checkpoint: writing it (every file atomically, the JSON last), checking it
is finite, and resuming the loop from it.

``checkpoint.json`` names ``student.safetensors``, the head (``squeeze.safetensors`` /
``predictor.safetensors``) and ``train_state.pt`` (optimizer, RNG states, real-stream position).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # pragma: no cover
    from gandistill.engine.parts import Parts
    from gandistill.engine.plan import Plan

CKPT_JSON = "checkpoint.json"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` a temporary next to ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, data: Dict[str, Any]) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def _state_cpu(m: nn.Module) -> Dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in m.state_dict().items()}


def save_checkpoint(run_dir: Path, step: int, student: nn.Module, head: Optional[nn.Module], head_kind: Optional[str],
                    optimizer: Optional[torch.optim.Optimizer], meta: Dict[str, Any],
                    extra_state: Optional[Dict[str, Any]] = None) -> Path:
    """Write the last checkpoint atomically (each file tmp + os.replace; the JSON last)."""
    from safetensors.torch import save_file

    run_dir.mkdir(parents=True, exist_ok=True)
    md = {"step": str(step)}
    atomic_write(run_dir / "student.safetensors", lambda p: save_file(_state_cpu(student), str(p), metadata=md))
    head_file = None
    if head is not None and len(list(head.state_dict())) > 0:
        head_file = f"{head_kind}.safetensors"
        atomic_write(run_dir / head_file, lambda p: save_file(_state_cpu(head), str(p), metadata=md))
    state_file = None
    if optimizer is not None:
        state_file = "train_state.pt"
        state = {"step": step, "optimizer": optimizer.state_dict(), **(extra_state or {})}
        atomic_write(run_dir / state_file, lambda p: torch.save(state, p))
    cfg = getattr(student, "config", None)
    skw = cfg.to_dict() if cfg is not None else {}
    name = skw.pop("name", None) or meta.get("student")
    data = {"format": "gandistill-student", "version": 1, "student": name, "student_kwargs": skw,
            "weights": "student.safetensors", "head": head_file, "head_kind": head_kind if head_file else None,
            "train_state": state_file, "step": step, "saved": _dt.datetime.now().isoformat(timespec="seconds"),
            **meta}
    write_json(run_dir / CKPT_JSON, data)
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
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(path)), strict=True)


def check_run_dir(plan: "Plan") -> None:
    """A resumed run needs a checkpoint; a new run must not overwrite one."""
    run_dir = plan.run_dir
    if plan.resume and not (run_dir / CKPT_JSON).exists():
        raise FileNotFoundError(f"--resume: no checkpoint in {run_dir} (expected {CKPT_JSON})")
    if not plan.resume and (run_dir / CKPT_JSON).exists():
        raise ValueError(f"{run_dir} already holds a run (checkpoint.json); pass --resume to continue it "
                         "or choose another --out")


def resume(plan: "Plan", parts: "Parts") -> int:
    """Load the last checkpoint of ``plan.run_dir`` into ``parts``; returns the step to continue from."""
    run_dir = plan.run_dir
    try:
        meta = json.loads((run_dir / CKPT_JSON).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"--resume: {run_dir / CKPT_JSON} is unreadable or corrupt ({type(e).__name__}: {e})") from None
    spec, name = plan.spec, plan.student_name
    if meta.get("method") != spec.name or meta.get("student") != name:
        raise ValueError(f"--resume: {run_dir} was a '{meta.get('method')}' run of '{meta.get('student')}', "
                         f"not '{spec.name}' of '{name}'")
    load_weights(parts.model.student, run_dir / meta["weights"])
    if parts.head is not None and meta.get("head"):
        load_weights(parts.head, run_dir / meta["head"])
    if not meta.get("train_state"):
        raise ValueError(f"--resume: {run_dir} has no optimizer state")
    state = torch.load(run_dir / meta["train_state"], map_location="cpu", weights_only=True)
    parts.opt.load_state_dict(state["optimizer"])
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
