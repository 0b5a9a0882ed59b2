"""Take the backbone anywhere: a trained run as a bare timm backbone in safetensors.

``gandistill export RUN --out DIR`` writes::

    DIR/backbone.safetensors   the backbone's state dict, timm's own keys (no "backbone." prefix)
    DIR/backbone.json          timm name + create kwargs, the patches to re-apply (e.g. the CIFAR
                               stem), input size and normalisation, where it came from
    DIR/projector.safetensors  (--projector) the projector g of z = g(f(x)), with its shape in the JSON

It loads into plain timm (``strict=True``) after one line that re-applies the recorded patches::

    model = patch_backbone(timm.create_model(name, num_classes=0), DIR)
    model.load_state_dict(safetensors.torch.load_file(DIR / "backbone.safetensors"), strict=True)

or all at once: ``model = load_backbone(DIR)``.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Dict, Optional, Union

import timm
import torch
from safetensors.torch import save_file
from torch import nn

from gandistill.data.stats import NORM_STATS
from gandistill.evaluation.loading import CheckpointError, check_projector, load_student
from gandistill.io.errors import GandistillError
from gandistill.io.files import atomic_write_json, inside, user_path
from gandistill.io.formats import BACKBONE, STUDENT_KWARGS, TIMM_KWARGS
from gandistill.io.schema import check, load_json
from gandistill.io.tensors import check_state, read_safetensors, read_safetensors_header
from gandistill.students.cifar_stem import apply_cifar_stem
from gandistill.students.projector import build_projector

FORMAT = "gandistill-backbone"
BACKBONE_FILE = "backbone.safetensors"
PROJECTOR_FILE = "projector.safetensors"
META_FILE = "backbone.json"
PATCHES = ("cifar_stem",)

PathLike = Union[str, Path]


class ExportError(GandistillError):
    """The run cannot be exported, or an export folder is incomplete or of another kind."""


def _timm_kwargs(name: str, img_size: int, extra: Dict[str, Any]) -> Dict[str, Any]:
    """The create kwargs the student's backbone was built with (``img_size`` only for models that take it)."""
    kw = {k: v for k, v in extra.items() if k in TIMM_KWARGS}
    try:
        timm.create_model(name, pretrained=False, num_classes=0, img_size=img_size, **kw)
        return {"img_size": img_size, **kw}
    except TypeError as err:
        if "img_size" not in str(err):
            raise
    return kw


def _normalisation(run_config: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    res = run_config.get("resolved") or {}
    if res.get("normalise"):
        return res["normalise"]

    stats = NORM_STATS.get(str((run_config.get("config") or {}).get("dataset", "")).lower())
    return {"mean": list(stats[0]), "std": list(stats[1])} if stats else None


def export_backbone(run: PathLike, out: PathLike, *, projector: bool = False, overwrite: bool = False) -> Path:
    """Write the bare backbone of ``run`` (a run folder or checkpoint) to ``out``; returns the JSON path."""
    try:
        loaded = load_student(run)
    except CheckpointError as e:
        raise ExportError(f"export: {run} is not a gandistill student run or checkpoint ({e})") from None
    student = loaded.model
    backbone = getattr(student, "backbone", None)
    if backbone is None:
        raise ExportError(f"export: {run} does not hold a gandistill Student")
    out = user_path(out, "export folder")
    if (out / META_FILE).exists() and not overwrite:
        raise ExportError(f"export: {out} already holds an export ({META_FILE}); pass --force to replace it")
    out.mkdir(parents=True, exist_ok=True)
    cfg = student.config.to_dict() if getattr(student, "config", None) is not None else dict(loaded.kwargs)
    run_cfg = loaded.run_config or {}
    extra = dict((run_cfg.get("config") or {}).get("student_kwargs") or {})
    # only known create_student / timm options reach backbone.json (load_student already refused others)
    check(extra, STUDENT_KWARGS, "config.json", ExportError, "run config student_kwargs")
    patches = ["cifar_stem"] if (getattr(backbone, "gandistill_cifar_stem", False) or cfg.get("cifar_stem")) else []
    state = {k: v.detach().cpu().contiguous().clone() for k, v in backbone.state_dict().items()}
    meta_st = {"format": FORMAT, "timm_name": loaded.name}
    save_file(state, str(out / BACKBONE_FILE), metadata=meta_st)
    proj_meta = None
    if projector:
        pstate = {k: v.detach().cpu().contiguous().clone() for k, v in student.projector.state_dict().items()}
        if pstate:
            save_file(pstate, str(out / PROJECTOR_FILE), metadata=meta_st)
        proj_meta = {"file": PROJECTOR_FILE if pstate else None, "in_dim": int(student.num_features),
                     "layers": int(cfg.get("proj_layers", 0)), "hidden": cfg.get("proj_hidden"),
                     "out": int(student.proj_out), "final_bn": bool(cfg.get("proj_final_bn", False))}
    img_size = int(cfg.get("img_size", 32))
    meta = {
        "format": FORMAT, "version": 1, "timm_name": loaded.name,
        "timm_kwargs": _timm_kwargs(loaded.name, img_size, extra), "num_classes": 0, "patches": patches,
        "weights": BACKBONE_FILE, "num_features": int(student.num_features), "img_size": img_size,
        "input": {"range": "[0, 1], then (x - mean) / std", **(_normalisation(run_cfg) or {})},
        "projector": proj_meta,
        "source": {"run": str(run), "step": loaded.meta.get("step"), "method": loaded.meta.get("method"),
                   "dataset": loaded.meta.get("dataset"), "teacher": loaded.meta.get("teacher")},
        "teacher_conditional": run_cfg.get("teacher_conditional"),
        "exported": _dt.datetime.now().isoformat(timespec="seconds"),
        "load": "gandistill.students.export.load_backbone(DIR)  # = patch_backbone(timm.create_model(timm_name, "
                "num_classes=0, **timm_kwargs), DIR) + load_state_dict(strict=True)",
    }
    check(meta, BACKBONE, out / META_FILE, ExportError, "backbone.json (self-check)")
    atomic_write_json(out / META_FILE, meta, indent=2, default=None)
    return out / META_FILE


def read_export(path: PathLike) -> Dict[str, Any]:
    """The ``backbone.json`` of an export folder (or the JSON itself), checked against its schema."""
    p = user_path(path, "export path")
    p = p / META_FILE if p.is_dir() else p
    try:
        meta = load_json(p, what="backbone export", error=ExportError)
    except FileNotFoundError:
        raise ExportError(f"no {META_FILE} in {p.parent} (not a gandistill export folder)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        kind = meta.get("format") if isinstance(meta, dict) else None
        raise ExportError(f"not a gandistill backbone export (format {str(kind)[:40]!r})", path=p)
    return check(meta, BACKBONE, p, ExportError, "backbone export")


def _load_strict(module: nn.Module, folder: Path, name: Any) -> None:
    path = inside(folder, name, "weights file", where=folder / META_FILE)
    try:
        state, _ = read_safetensors(path, "weights file", ExportError)
    except FileNotFoundError:
        raise ExportError(f"missing weights file {path}") from None
    check_state(state, module.state_dict(), path, ExportError)
    module.load_state_dict(state, strict=True)


def patch_backbone(model: nn.Module, export: Union[PathLike, Dict[str, Any]]) -> nn.Module:
    """Re-apply the patches an export recorded (e.g. the CIFAR stem) to a fresh timm model; returns it."""
    meta = export if isinstance(export, dict) else read_export(export)
    for patch in meta.get("patches", []):
        if patch == "cifar_stem":
            apply_cifar_stem(model)
        else:
            raise ExportError(f"unknown patch {patch!r} in the export (known: {PATCHES})")
    return model


def load_backbone(export: PathLike, device: Any = "cpu") -> nn.Module:
    """timm.create_model(name, num_classes=0) + the recorded patches + the weights (strict); eval mode."""
    folder = user_path(export, "export path")
    folder = folder if folder.is_dir() else folder.parent
    meta = read_export(folder)
    if not timm.is_model(meta["timm_name"]):
        raise ExportError(f"unknown timm model {meta['timm_name'][:80]!r}", path=folder / META_FILE)
    model = patch_backbone(timm.create_model(meta["timm_name"], num_classes=0, **meta.get("timm_kwargs", {})), meta)
    _load_strict(model, folder, meta.get("weights", BACKBONE_FILE))
    return model.to(device).eval()


def load_projector(export: PathLike, device: Any = "cpu") -> nn.Module:
    """The exported projector g (needs an export written with ``projector=True``); eval mode."""
    folder = user_path(export, "export path")
    folder = folder if folder.is_dir() else folder.parent
    p = read_export(folder).get("projector")
    if not p:
        raise ExportError(f"{folder} has no projector (export with --projector)")
    kw = {"final_bn": True} if p.get("final_bn") else {}
    if p.get("file"):  # widths checked against the weights' shapes before anything is allocated

        wpath = inside(folder, p["file"], "projector file", where=folder / META_FILE)
        entries, _ = read_safetensors_header(wpath, "projector file", ExportError)
        check_projector(entries, "", p["layers"], p.get("hidden"), p["out"], wpath, ExportError, p["in_dim"])
    elif p["layers"] > 1 or p.get("final_bn"):
        raise ExportError("the export's projector has parameters but names no weights file", path=folder / META_FILE)
    proj = build_projector(p["in_dim"], p["layers"], p["hidden"], p["out"], **kw)
    if p.get("file"):
        _load_strict(proj, folder, p["file"])
    return proj.to(device).eval()


__all__ = ["export_backbone", "load_backbone", "load_projector", "patch_backbone", "read_export", "ExportError",
           "FORMAT"]
