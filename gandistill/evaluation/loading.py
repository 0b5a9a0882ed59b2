"""Rebuild a student for evaluation from a run folder, a checkpoint, or ``random:<timm-name>``.

A checkpoint is a pair written by the engine: ``<stem>.safetensors`` (the ``Student`` state
dict) and a JSON naming the student and its ``create_student`` keyword arguments. A run folder
holds ``config.json`` (the resolved fit config) and such a checkpoint. Weights are read with
``safetensors`` only (no pickle) and loaded strictly: a missing or unexpected key or a shape
mismatch is an error, never silently skipped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from torch import nn

RANDOM_PREFIX = "random:"
# keys under which the checkpoint JSON may hold create_student's kwargs (the engine writes the first)
KWARG_KEYS = ("student_kwargs", "kwargs", "create_student")
WEIGHT_KEYS = ("weights", "file", "safetensors")
CKPT_JSON_NAMES = ("student.json", "checkpoint.json", "ckpt.json", "last.json")


class CheckpointError(ValueError):
    """A checkpoint or run folder is missing, corrupt, or does not fit the student it names."""


@dataclass
class LoadedStudent:
    """A student ready for evaluation and where it came from."""

    model: nn.Module
    name: str
    kwargs: Dict[str, Any]
    source: str                                   # "random" | "checkpoint"
    weights: Optional[Path] = None
    run_config: Dict[str, Any] = field(default_factory=dict)   # the run's config.json ({} if none)
    meta: Dict[str, Any] = field(default_factory=dict)         # the checkpoint JSON ({} for random)


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"missing file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"corrupt JSON in {path}: {e}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} should hold a JSON object, got {type(data).__name__}")
    return data


def _is_ckpt_json(path: Path) -> bool:
    try:
        return path.is_file() and isinstance(d := json.loads(path.read_text()), dict) and "student" in d
    except (OSError, ValueError):
        return False


def find_checkpoint_json(path: Path) -> Path:
    """The checkpoint JSON for a run folder, a ``.json`` or a ``.safetensors`` path."""
    if path.is_dir():
        candidates = [path / n for n in CKPT_JSON_NAMES]
        candidates += sorted(p for p in path.glob("*.json") if p.name != "config.json")
        for sub in ("checkpoints", "ckpt", "last", "final"):
            candidates += sorted((path / sub).glob("*.json")) if (path / sub).is_dir() else []
        for c in candidates:
            if _is_ckpt_json(c):
                return c
        cfg = path / "config.json"
        if _is_ckpt_json(cfg):
            return cfg
        found = ", ".join(sorted(p.name for p in path.iterdir())) or "(empty folder)"
        raise CheckpointError(
            f"no student checkpoint in run folder {path}: expected a JSON naming the student next to its "
            f".safetensors weights; found {found}"
        )
    if path.suffix == ".safetensors":
        for c in (path.with_suffix(".json"), *(path.parent / n for n in CKPT_JSON_NAMES)):
            if _is_ckpt_json(c):
                return c
        raise CheckpointError(f"no checkpoint JSON (student name + kwargs) next to {path}")
    if path.suffix == ".json":
        if not path.exists():
            raise CheckpointError(f"missing file: {path}")
        return path
    raise CheckpointError(f"expected a run folder, a checkpoint .json/.safetensors or 'random:<name>', got {path}")


def _weights_path(meta: Dict[str, Any], json_path: Path, given: Optional[Path]) -> Path:
    if given is not None and given.suffix == ".safetensors":
        return given
    for k in WEIGHT_KEYS:
        if isinstance(meta.get(k), str):
            return json_path.parent / meta[k]
    same = json_path.with_suffix(".safetensors")
    return same if same.exists() else json_path.parent / "student.safetensors"


def _student_kwargs(meta: Dict[str, Any], json_path: Path) -> Dict[str, Any]:
    for k in KWARG_KEYS:
        if k in meta:
            if not isinstance(meta[k], dict):
                raise CheckpointError(f"'{k}' in {json_path} should be an object of create_student kwargs")
            return dict(meta[k])
    return {}


def load_student_weights(model: nn.Module, weights: Path) -> None:
    """Strictly load a safetensors state dict into ``model`` with readable errors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not weights.exists():
        raise CheckpointError(f"missing weights file: {weights}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"corrupt or unreadable safetensors file {weights}: {e}") from None
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
           for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if bad:
            parts.append(f"{len(bad)} shape mismatches (e.g. {'; '.join(bad[:3])})")
        raise CheckpointError(f"{weights} does not fit the student it names: " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def load_student(run_or_ckpt: Union[str, Path], *, img_size: Optional[int] = None,
                 student_kwargs: Optional[Dict[str, Any]] = None, seed: Optional[int] = None) -> LoadedStudent:
    """Rebuild the student named by ``run_or_ckpt``.

    ``random:<timm-name>`` builds a randomly initialised student (a baseline; ``img_size``
    selects the CIFAR stem as in ``create_student``, ``student_kwargs`` adds others, ``seed``
    makes the initialisation reproducible without touching the global RNG); a run folder, a
    checkpoint JSON or its ``.safetensors`` rebuilds the named student with its saved kwargs
    (``student_kwargs`` of the engine's ``checkpoint.json``) and loads the weights strictly.
    """
    from gandistill.students import create_student

    if isinstance(run_or_ckpt, str) and run_or_ckpt.startswith(RANDOM_PREFIX):
        name = run_or_ckpt[len(RANDOM_PREFIX):].strip()
        if not name:
            raise CheckpointError("'random:' needs a student name, e.g. random:resnet18")
        kwargs = dict(student_kwargs or {})
        kwargs.pop("pretrained", None)
        if img_size is not None:
            kwargs["img_size"] = img_size
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            model = create_student(name, **kwargs)
        return LoadedStudent(model, name, kwargs, "random")

    path = Path(run_or_ckpt).expanduser()
    if not path.exists():
        raise CheckpointError(
            f"no such run folder or checkpoint: {path} (use 'random:<name>' for a randomly initialised student)"
        )
    json_path = find_checkpoint_json(path)
    meta = _read_json(json_path)
    fmt = meta.get("format", "gandistill-student")
    if fmt != "gandistill-student":
        raise CheckpointError(f"{json_path} is a '{fmt}' file, not a gandistill student checkpoint")
    name = meta.get("student")
    if isinstance(name, dict):       # {"student": {"name": ..., **kwargs}}
        kwargs = {k: v for k, v in name.items() if k != "name"}
        name = name.get("name")
    else:
        kwargs = _student_kwargs(meta, json_path)
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"{json_path} does not name the student (key 'student')")
    kwargs.pop("pretrained", None)   # weights come from the checkpoint, never a download
    if kwargs.get("name", name) != name:
        raise CheckpointError(f"{json_path}: names student '{name}' but its kwargs say '{kwargs['name']}'")
    kwargs.pop("name", None)
    if kwargs.get("name", name) != name:
        raise CheckpointError(f"{json_path}: student '{name}' but kwargs name '{kwargs['name']}'")
    kwargs.pop("name", None)
    weights = _weights_path(meta, json_path, path if path.is_file() else None)
    try:
        model = create_student(name, **kwargs)
    except TypeError as e:
        raise CheckpointError(f"{json_path}: cannot rebuild student '{name}' with {kwargs}: {e}") from None
    load_student_weights(model, weights)
    run_dir = path if path.is_dir() else json_path.parent
    run_config = _read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
    return LoadedStudent(model, name, kwargs, "checkpoint", weights, run_config, meta)
