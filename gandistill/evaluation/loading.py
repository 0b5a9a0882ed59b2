"""Rebuild a student for evaluation from a run folder, a checkpoint, or ``random:<timm-name>``.

A checkpoint is a pair written by the engine: ``<stem>.safetensors`` (the ``Student`` state
dict) and a JSON naming the student and its ``create_student`` keyword arguments. A run folder
holds ``config.json`` (the resolved fit config) and such a checkpoint. Weights are read with
``safetensors`` only (no pickle) and loaded strictly: a missing or unexpected key or a shape
mismatch is an error, never silently skipped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from torch import nn

from gandistill.io.errors import GandistillError
from gandistill.io.files import inside, is_regular, user_path
from gandistill.io.formats import EVAL_CHECKPOINT, RUN_CONFIG
from gandistill.io.schema import ANY, Schema, load_json
from gandistill.io.tensors import check_state, read_safetensors, read_safetensors_header
from gandistill.students import create_student

RANDOM_PREFIX = "random:"
# keys under which the checkpoint JSON may hold create_student's kwargs (the engine writes the first)
KWARG_KEYS = ("student_kwargs", "kwargs", "create_student")
WEIGHT_KEYS = ("weights", "file", "safetensors")
CKPT_JSON_NAMES = ("student.json", "checkpoint.json", "ckpt.json", "last.json")
MAX_CANDIDATES = 32                 # JSON files a run folder is searched through for its checkpoint
MAX_PROBE_BYTES = 2 ** 20           # a checkpoint JSON is a few hundred bytes


class CheckpointError(GandistillError):
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


def _read_json(path: Path, schema: Schema = ANY, what: str = "checkpoint JSON") -> Dict[str, Any]:
    try:
        data = load_json(path, schema, what=what, error=CheckpointError)
    except FileNotFoundError:
        raise CheckpointError(f"missing file: {path}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{what} should hold a JSON object, got {type(data).__name__}", path=path)
    return data


def _is_ckpt_json(path: Path) -> bool:
    """True for a regular file holding a JSON object that names a student (never blocks on a FIFO)."""
    if not is_regular(path):
        return False
    try:
        d = load_json(path, what="checkpoint JSON", error=CheckpointError, max_bytes=MAX_PROBE_BYTES)
    except (OSError, GandistillError):
        return False
    return isinstance(d, dict) and "student" in d


def find_checkpoint_json(path: Path) -> Path:
    """The checkpoint JSON for a run folder, a ``.json`` or a ``.safetensors`` path."""
    if path.is_dir():
        candidates = [path / n for n in CKPT_JSON_NAMES]
        candidates += sorted(p for p in path.glob("*.json") if p.name != "config.json")
        for sub in ("checkpoints", "ckpt", "last", "final"):
            candidates += sorted((path / sub).glob("*.json")) if (path / sub).is_dir() else []
        for c in candidates[:MAX_CANDIDATES]:   # a folder of many large JSONs cannot make this slow
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
    """The weights a checkpoint JSON names: a file inside the JSON's folder (no absolute path, no '..')."""
    if given is not None and given.suffix == ".safetensors":
        return given
    for k in WEIGHT_KEYS:
        if isinstance(meta.get(k), str):
            return inside(json_path.parent, meta[k], "weights file", where=json_path)
    same = json_path.with_suffix(".safetensors")
    return same if os.path.lexists(same) else json_path.parent / "student.safetensors"


def check_widths(kwargs: Dict[str, Any], weights: Path) -> None:
    """Refuse projector widths in ``kwargs`` that the weights' shapes contradict, before any network is
    built (a hostile JSON could otherwise make the rebuild allocate gigabytes)."""
    if not os.path.lexists(weights):
        raise CheckpointError(f"missing weights file: {weights}")
    entries, _ = read_safetensors_header(weights, "weights file", CheckpointError)
    check_projector(entries, "projector.", int(kwargs.get("proj_layers", 5)), kwargs.get("proj_hidden", 512),
                    int(kwargs.get("proj_out", 2048)), weights, CheckpointError)


def check_projector(entries: Dict[str, Any], prefix: str, layers: int, hidden: Optional[int], out: int,
                    where: Path, error: type = CheckpointError, in_dim: Optional[int] = None) -> None:
    """The Linear weights ``<prefix><i>.weight`` in a safetensors header (``entries``) are exactly those of
    ``build_projector(in_dim, layers, hidden, out)``; else one ``error`` line."""
    linear = sorted((int(k[len(prefix):].split(".")[0]), e["shape"]) for k, e in entries.items()
                    if k.startswith(prefix) and k.endswith(".weight") and len(e["shape"]) == 2
                    and k[len(prefix):].split(".")[0].isdigit())
    if len(linear) != layers:
        raise error(f"the JSON says proj_layers={layers} but the weights hold {len(linear)} projector layers",
                    path=where)
    if not layers:
        return
    dim = linear[0][1][1] if in_dim is None else int(in_dim)
    hid = dim if hidden is None else int(hidden)
    want = [[hid, dim]] + [[hid, hid]] * (layers - 2) if layers > 1 else []
    want.append([int(out), hid if layers > 1 else dim])
    for (idx, got), w in zip(linear, want):
        if list(got) != w:
            raise error(f"the JSON's projector widths (in={dim}, hidden={hidden}, out={out}) do not match "
                        f"tensor '{prefix}{idx}.weight' of shape {tuple(got)}", path=where)


def _student_kwargs(meta: Dict[str, Any], json_path: Path) -> Dict[str, Any]:
    for k in KWARG_KEYS:
        if k in meta:
            if not isinstance(meta[k], dict):
                raise CheckpointError(f"'{k}' in {json_path} should be an object of create_student kwargs")
            return dict(meta[k])
    return {}


def load_student_weights(model: nn.Module, weights: Path) -> None:
    """Strictly load a safetensors file into ``model``: read (not mapped), same keys, shapes and dtypes
    (a wrong dtype is refused, not cast), finite values; one :class:`CheckpointError` line otherwise."""
    if not os.path.lexists(weights):
        raise CheckpointError(f"missing weights file: {weights}")
    state, _ = read_safetensors(weights, "weights file", CheckpointError)
    check_state(state, model.state_dict(), weights, CheckpointError, "weights")
    model.load_state_dict(state, strict=True)


def load_student(run_or_ckpt: Union[str, Path], *, img_size: Optional[int] = None,
                 student_kwargs: Optional[Dict[str, Any]] = None, seed: Optional[int] = None) -> LoadedStudent:
    """Rebuild the student named by ``run_or_ckpt``.

    ``random:<timm-name>`` builds a randomly initialised student (a baseline; ``img_size``
    selects the CIFAR stem as in ``create_student``, ``student_kwargs`` adds others, ``seed``
    makes the initialisation reproducible without touching the global RNG); a run folder, a
    checkpoint JSON or its ``.safetensors`` rebuilds the named student with its saved kwargs
    (``student_kwargs`` of the engine's ``checkpoint.json``) and loads the weights strictly.
    """
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

    path = user_path(run_or_ckpt, "checkpoint path")
    if not path.exists():
        raise CheckpointError(
            f"no such run folder or checkpoint: {path} (use 'random:<name>' for a randomly initialised student)"
        )
    json_path = find_checkpoint_json(path)
    meta = _read_json(json_path, EVAL_CHECKPOINT)
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
    weights = _weights_path(meta, json_path, path if path.is_file() else None)
    check_widths(kwargs, weights)
    try:
        model = create_student(name, **kwargs)
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{json_path}: cannot rebuild student '{name}' with {kwargs}: {e}") from None
    load_student_weights(model, weights)
    run_dir = path if path.is_dir() else json_path.parent
    run_config = (_read_json(run_dir / "config.json", RUN_CONFIG, "run config")
                  if os.path.lexists(run_dir / "config.json") else {})
    return LoadedStudent(model, name, kwargs, "checkpoint", weights, run_config, meta)
