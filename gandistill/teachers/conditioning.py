"""Whether a teacher checkpoint is class-conditional (``c_dim > 0``), read before anything is built.

A student distilled from a label-conditioned generator has learnt from labels: it is not
self-supervised. NVlabs' published ``cifar10.pkl`` is such a teacher; SnS distilled an unconditional
one (NVlabs' ``paper-fig11b-cifar10/cifar10u-cifar-ada-best-fid.pkl``). :func:`checkpoint_c_dim` lets
``fit`` and ``compare`` say so before step 1 (and in ``--dry-run``) instead of in the closing table.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

from gandistill.teachers.base import resolve_ckpt
from gandistill.teachers.stylegan2.checkpoint import JSON_NAME, available_nets, load_sg2

PathLike = Union[str, Path]
NET_ORDER = ("G_ema", "G", "D")


def _c_dim_of_ours(path: Path) -> Optional[int]:
    """c_dim from a gandistill SG2 folder's (or JSON file's) recorded constructor kwargs."""
    jpath = path / JSON_NAME if path.is_dir() else path
    try:
        nets = json.loads(jpath.read_text(encoding="utf-8")).get("nets") or {}
    except (OSError, ValueError, AttributeError):
        return None
    for name in NET_ORDER:
        kw = (nets.get(name) or {}).get("kwargs") if isinstance(nets.get(name), dict) else None
        if isinstance(kw, dict) and isinstance(kw.get("c_dim"), int):
            return int(kw["c_dim"])
    return None


def checkpoint_c_dim(ckpt: Optional[PathLike]) -> Optional[int]:
    """The label dimension of a StyleGAN2 checkpoint (``None``: the bundled teacher), or ``None`` when
    the file cannot tell (the teacher's own loading then reports the problem)."""
    try:
        path = resolve_ckpt(ckpt)
    except FileNotFoundError:          # the teacher's own loading says so, where the caller handles it
        return None
    if path.is_dir() or path.suffix == ".json":
        return _c_dim_of_ours(path)

    try:
        have = available_nets(path)
        net = next(n for n in NET_ORDER if n in have)
        return int(load_sg2(path, nets=(net,)).c_dim)
    except Exception:  # noqa: BLE001 -- unreadable here means "unknown"; build_teacher raises the real error
        return None


def conditional_warning(teacher: Optional[str], ckpt: Optional[PathLike]) -> Optional[Dict[str, Any]]:
    """``{"teacher", "ckpt", "c_dim", "message"}`` when the run's teacher is class-conditional, else None."""
    if teacher is None:
        return None
    c_dim = checkpoint_c_dim(ckpt)
    if not c_dim:
        return None
    where = str(ckpt) if ckpt else "the bundled teacher"
    msg = (f"teacher {teacher} ({where}) is class-conditional (c_dim={c_dim}): the student learns from labels "
           "and is not self-supervised; use an unconditional teacher (README: 'Conditional teachers')")
    return {"teacher": teacher, "ckpt": where, "c_dim": c_dim, "message": msg}
