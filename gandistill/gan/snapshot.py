"""Training snapshots of a GAN run: networks in the gandistill SG2 format plus the training state.

A run folder looks like::

    runs/x/
      config.json                 the resolved GanConfig
      metrics.jsonl               one JSON line per tick
      grid-000012000.png          G_ema samples at each snapshot (cur_nimg in the name)
      latest.json                 {"snapshot": "snapshot-000012000"}
      snapshot-000012000/
        G.safetensors D.safetensors G_ema.safetensors gandistill_sg2.json   (``save_sg2``)
        training_state.pt         optimizer states, RNG states, ADA state, progress
                                  (tensors + plain Python only: loads with ``weights_only=True``)

Each snapshot is written into a temporary folder first and then renamed into place (``os.replace``),
so a run killed at any moment leaves only complete snapshots behind.
"""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from gandistill.io.files import atomic_write_json, inside, read_bytes
from gandistill.io.schema import Obj, Str, load_json
from gandistill.teachers.stylegan2.checkpoint import save_sg2

STATE_FILE = "training_state.pt"
LATEST_FILE = "latest.json"


def snapshot_name(cur_nimg: int) -> str:
    """Folder name of the snapshot taken after ``cur_nimg`` real images."""
    return f"snapshot-{int(cur_nimg):09d}"


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` atomically (:func:`gandistill.io.files.atomic_write_json`)."""
    atomic_write_json(path, obj, indent=1, default=None)


def save_snapshot(run_dir: Union[str, Path], cur_nimg: int, *, G, D, G_ema, state: Dict[str, Any],
                  meta: Dict[str, Any], keep: int = 0) -> Path:
    """Write snapshot ``snapshot-<cur_nimg>`` atomically, point ``latest.json`` at it, prune old ones."""
    run_dir = Path(run_dir)
    final = run_dir / snapshot_name(cur_nimg)
    tmp = run_dir / f".tmp-{final.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_sg2(tmp, G_ema=G_ema, G=G, D=D, meta=meta, half=False)
    torch.save(state, tmp / STATE_FILE)
    if final.exists():
        old = run_dir / f".old-{final.name}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    write_json_atomic(run_dir / LATEST_FILE, {"snapshot": final.name, "cur_nimg": int(cur_nimg)})
    if keep > 0:
        snaps = sorted(p for p in run_dir.glob("snapshot-*") if p.is_dir())
        for p in snaps[:-keep]:
            if p != final:
                shutil.rmtree(p, ignore_errors=True)
    return final


def resolve_snapshot(path: Union[str, Path]) -> Path:
    """A snapshot folder from a snapshot folder or a run folder (its ``latest.json``)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"resume path does not exist: {p}")
    if (p / STATE_FILE).is_file():
        return p
    if (p / LATEST_FILE).is_file():
        latest = load_json(p / LATEST_FILE, Obj(required={"snapshot": Str(255)}), what="latest snapshot pointer")
        snap = inside(p, latest["snapshot"], "snapshot folder", where=p / LATEST_FILE)
        if (snap / STATE_FILE).is_file():
            return snap
        raise FileNotFoundError(f"{p / LATEST_FILE} points at {snap}, which has no {STATE_FILE}")
    snaps = sorted(q for q in p.glob("snapshot-*") if (q / STATE_FILE).is_file())
    if snaps:
        return snaps[-1]
    raise FileNotFoundError(f"{p} is neither a GAN snapshot (no {STATE_FILE}) nor a run folder with snapshots")


def load_state(snapshot: Union[str, Path]) -> Dict[str, Any]:
    """The training state of a snapshot: read through the io layer (a regular file under the train-state cap;
    a FIFO cannot hang it), then ``torch.load(weights_only=True)`` on those bytes."""
    data = read_bytes(Path(snapshot) / STATE_FILE, "GAN training state", kind="train_state")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def generator_checkpoint(path: Union[str, Path]) -> Path:
    """What :func:`~gandistill.teachers.stylegan2.load_sg2` reads for ``path``: a gandistill folder or an
    NVlabs ``.pkl`` as given, a GAN snapshot or run folder through :func:`resolve_snapshot` (its latest)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if not p.is_dir() or (p / "gandistill_sg2.json").exists():
        return p
    try:
        return resolve_snapshot(p)
    except FileNotFoundError:
        raise FileNotFoundError(f"{p} holds neither a gandistill checkpoint nor GAN snapshots") from None


def latest_snapshot(run_dir: Union[str, Path]) -> Optional[Path]:
    """The newest complete snapshot of a run folder, or None."""
    try:
        return resolve_snapshot(run_dir)
    except FileNotFoundError:
        return None
