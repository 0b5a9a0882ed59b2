"""Builders of hostile files for the reading layer's tests, fuzz script and benchmark (no pytest here).

Each builder writes one file (or folder) that attacks one reader: FIFOs where files are expected, banks
with malformed headers, safetensors with huge headers or garbage values, a deflate-bombed
train_state.pt, CIFAR batches with colliding dict keys, decompression-bomb images, checkpoints naming
files outside their folder or widths that would allocate gigabytes.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import struct
import traceback
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch

MAGIC = b"GDBANK01"


# ------------------------------------------------------------------------------------------------ runner


def _child(conn, fn, args) -> None:
    try:
        fn(*args)
        conn.send(("ok", "", ""))
    except BaseException as e:  # noqa: BLE001 - report every outcome to the parent
        conn.send(("raised", type(e).__name__ + "|" + "|".join(c.__name__ for c in type(e).__mro__),
                   str(e)[:2000] + "\n" + traceback.format_exc()[-1500:]))
    finally:
        conn.close()
        os._exit(0)


def run_bounded(fn: Callable, *args: Any, timeout: float = 20.0) -> Dict[str, Any]:
    """Run ``fn(*args)`` in a forked child; returns ``{"outcome": "ok"|"raised"|"timeout"|"crash", ...}``
    (``types``: the exception's class and its bases, ``message``, ``exitcode`` for a crash)."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(child, fn, args))
    p.start()
    child.close()
    if parent.poll(timeout):
        try:
            outcome, types, msg = parent.recv()
        except EOFError:
            outcome, types, msg = "crash", "", ""
        p.join(5)
        if outcome != "crash":
            return {"outcome": outcome, "types": types.split("|") if types else [], "message": msg}
    else:
        p.join(0.1)
    if p.is_alive():
        p.kill()
        p.join()
        return {"outcome": "timeout", "types": [], "message": ""}
    return {"outcome": "crash", "types": [], "message": "", "exitcode": p.exitcode}


# ------------------------------------------------------------------------------------------------ banks


def bank_header(n: int = 4, c: int = 3, r: int = 4, dims=(5,), labels: bool = False) -> Dict[str, Any]:
    """A valid bank header for ``n`` items (offsets laid out after a 4096-byte header block)."""
    img, tgt = n * c * r * r, n * sum(dims) * 2
    offsets = {"images": 4096, "targets": 4096 + img, "labels": 4096 + img + tgt if labels else None}
    return {"format": "gandistill-bank", "version": 1, "n": n, "teacher": "sg2-generator", "teacher_ckpt": "x",
            "teacher_fingerprint": "0" * 64, "teacher_kwargs": {}, "teacher_describe": {"c_dim": 0},
            "img_resolution": r, "img_channels": c, "target_names": [f"t{i}" for i in range(len(dims))],
            "target_dims": list(dims), "images": {"dtype": "uint8", "shape": [n, c, r, r]},
            "targets": {"dtype": "float16", "shape": [n, sum(dims)]},
            "labels": {"dtype": "int64", "shape": [n]} if labels else None, "seed": 0, "created": "now",
            "offsets": offsets}


def bank_size(h: Dict[str, Any]) -> int:
    n, c, r = h["n"], h["img_channels"], h["img_resolution"]
    return 4096 + n * c * r * r + n * sum(h["target_dims"]) * 2 + (n * 8 if h.get("labels") else 0)


def write_bank(folder: Path, header: Any, raw_header: Optional[bytes] = None, size: Optional[int] = None,
               fill: bytes = b"\0") -> Path:
    """``folder/bank.bin`` with ``header`` (or ``raw_header`` bytes) and ``size`` bytes in all."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = raw_header if raw_header is not None else json.dumps(header).encode()
    body = MAGIC + struct.pack("<Q", len(raw)) + raw
    if size is None:
        size = bank_size(header) if isinstance(header, dict) else len(body)
    with open(folder / "bank.bin", "wb") as f:
        f.write(body)
        if size > len(body):
            f.write(fill * (size - len(body)) if fill != b"\0" else b"")
            f.truncate(size)
    return folder / "bank.bin"


# ------------------------------------------------------------------------------------------------ safetensors


def safetensors_bytes(header: Dict[str, Any], data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def empty_tensor_flood(n: int = 200_000) -> bytes:
    """A safetensors file of ``n`` empty tensors (a 60-byte entry each)."""
    header = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(n)}
    return safetensors_bytes(header)


def deflate_bomb_state(path: Path, step: int, optimizer: Dict[str, Any], mb: int = 64, extra: Optional[dict] = None) -> None:
    """A ``torch.save`` training state re-zipped with DEFLATE, holding ``mb`` MB of zeros (~1000x smaller)."""
    plain = path.with_suffix(".plain")
    torch.save({"step": step, "optimizer": optimizer, "ballast": torch.zeros(mb * 2 ** 18), **(extra or {})}, plain)
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info), compress_type=zipfile.ZIP_DEFLATED)
    plain.unlink()


# ------------------------------------------------------------------------------------------------ pickles / images


def colliding_int_dict_pickle(n: int = 60_000) -> bytes:
    """A protocol-2 pickle of a dict whose ``n`` int keys all hash alike (multiples of 2**61 - 1)."""
    p = (1 << 61) - 1
    out = [b"\x80\x02}q\x00("]
    for k in range(1, n + 1):
        v = (k * p).to_bytes(((k * p).bit_length() + 8) // 8, "little", signed=True)
        out.append(b"\x8a" + bytes([len(v)]) + v + b"K\x00")
    out.append(b"u.")
    return b"".join(out)


def png_bomb(path: Path, side: int = 10_000) -> None:
    """A 1-bit PNG of ``side`` x ``side`` pixels: a few hundred KB on disk, ``3 * side**2`` bytes as RGB."""
    from PIL import Image

    Image.new("1", (side, side)).save(path, optimize=False)


def mkfifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    os.mkfifo(path)
    return path


def stl10_root(root: Path, n: int = 64) -> Path:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for part, k in (("train", n), ("test", 2)):
        (folder / f"{part}_X.bin").write_bytes(rng.integers(0, 256, k * 3 * 96 * 96, dtype=np.uint8).tobytes())
        (folder / f"{part}_y.bin").write_bytes(rng.integers(1, 11, k, dtype=np.uint8).tobytes())
    (folder / "unlabeled_X.bin").write_bytes(rng.integers(0, 256, 2 * 3 * 96 * 96, dtype=np.uint8).tobytes())
    return root
