"""Teacher feature bank: a finite synthetic set {(G(w), h(w))} written once, read instead of running G.

``build_bank(teacher, n, out)`` samples ``n`` images from a sampling teacher and stores, in ONE file
``<out>/bank.bin``::

    b"GDBANK01" | uint64 little-endian header length | JSON header | zero padding to 4096 bytes
    | images  uint8 [n, C, R, R]   (x_u8 = round((x + 1) * 127.5), x in [-1, 1])
    | targets fp16  [n, sum(C_i)]  (the teacher's targets h^g / w, concatenated)
    | labels  int64 [n]            (conditional teachers only)

The header (``read_header``) records the teacher (name, checkpoint path and a SHA-256 fingerprint of
its files, ``describe()``), the resolution, the target names/widths and the byte offsets; it is read
under a size cap and checked against :data:`gandistill.io.formats.BANK_HEADER` (types, ranges, the
offsets and sizes consistent with the file). Items are read with positioned reads
(:class:`gandistill.io.files.RegionReader`), not a memory map: a bank larger than memory works,
nothing is loaded up front, and a bank truncated while in use is a clean :class:`BankError`, never a
``SIGBUS`` (``benchmarks/bench_hostile.py`` measures what the reads cost against a memory map).

:class:`BankTeacher` is a :class:`~gandistill.teachers.base.Teacher`: ``sample(n, generator)`` draws
``n`` stored items uniformly with replacement (from ``generator``, so runs repeat and resume) and
returns them as the teacher would (images in [-1, 1], fp32 targets). It refuses a bank built from
another teacher, checkpoint, teacher settings or resolution than the run's.

Trade-off: a bank replaces fresh samples w ~ P(w) by a fixed set of ``n`` samples, i.e. the student
sees each synthetic image many times (the augmentation still differs per view) -- cheaper per step
(no G forward) but a finite synthetic training set; images are quantised to 8 bits as a PNG would be
and targets to fp16. ``benchmarks/bench_step.py`` measures both effects (speed and accuracy).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from gandistill.io.errors import GandistillError, UnsafeFileError
from gandistill.io.files import CAPS, RegionReader, open_regular, user_path
from gandistill.io.formats import BANK_HEADER
from gandistill.io.jsonable import jsonable
from gandistill.io.schema import check_raw
from gandistill.teachers.base import Teacher, TeacherSample, resolve_ckpt

MAGIC = b"GDBANK01"
FORMAT = "gandistill-bank"
VERSION = 1
BANK_FILE = "bank.bin"
_ALIGN = 4096
PathLike = Union[str, Path]


class BankError(GandistillError):
    """A missing, corrupt or mismatched feature bank."""


# --- fingerprints ----------------------------------------------------------------------------------

_WEIGHT_SUFFIXES = (".safetensors", ".pkl", ".pt", ".pth")


def checkpoint_fingerprint(path: PathLike) -> str:
    """SHA-256 over a checkpoint's bytes: the file itself, or a checkpoint folder's weight files and its
    ``gandistill_sg2.json`` (names and contents, sorted; model cards and sample grids do not count)."""
    p = Path(path)
    if p.is_file() and p.suffix == ".json":  # our format given by its gandistill_sg2.json
        p = p.parent
    if not p.is_file() and not p.is_dir():   # a FIFO, socket or device: one clean refusal, not iterdir's OSError
        raise BankError(f"teacher checkpoint {p} is neither a file nor a folder")
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                                           and (f.suffix in _WEIGHT_SUFFIXES or f.name == "gandistill_sg2.json"))
    if not files:
        raise BankError(f"teacher checkpoint {p} has no files to fingerprint")
    for f in files:
        h.update(str(f.relative_to(p) if f != p else f.name).encode())
        fd, _ = open_regular(f, "teacher checkpoint file", max_bytes=2 ** 40)   # never blocks on a FIFO
        with os.fdopen(fd, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _jsonable(v: Any) -> Any:
    return jsonable(v, sort_keys=True)


# --- writing --------------------------------------------------------------------------------------

def _to_u8(x: Tensor) -> np.ndarray:
    return ((x.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).cpu().numpy()


def build_bank(teacher: Teacher, n: int, out: PathLike, *, teacher_name: str, ckpt: Optional[PathLike] = None,
               teacher_kwargs: Optional[Dict[str, Any]] = None, batch: int = 256, seed: int = 0,
               log: Optional[Any] = None) -> Path:
    """Sample ``n`` items from ``teacher`` into ``<out>/bank.bin`` (written to a temp file, then renamed).

    ``teacher_name``/``ckpt``/``teacher_kwargs`` are what a run will be checked against
    (``ckpt=None``: the bundled teacher). Returns the file's path.
    """
    if n < 2:
        raise BankError(f"a bank needs at least 2 items, got n={n}")
    if not getattr(teacher, "can_sample", True):
        raise BankError(f"teacher '{teacher_name}' does not sample images, so it has no bank")

    ckpt_path = resolve_ckpt(ckpt)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dims = [int(d) for d in teacher.target_dims]
    c, r = int(teacher.img_channels), int(teacher.img_resolution)
    gen = torch.Generator().manual_seed(seed)
    first = teacher.sample(min(batch, n), generator=gen)
    has_labels = first.labels is not None
    img_bytes, tgt_bytes = n * c * r * r, n * sum(dims) * 2
    header: Dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "n": int(n),
        "teacher": teacher_name, "teacher_ckpt": str(ckpt_path), "teacher_fingerprint": checkpoint_fingerprint(ckpt_path),
        "teacher_kwargs": _jsonable(dict(teacher_kwargs or {})), "teacher_describe": _jsonable(teacher.describe()),
        "img_resolution": r, "img_channels": c, "target_names": list(teacher.target_names), "target_dims": dims,
        "images": {"dtype": "uint8", "shape": [n, c, r, r], "encoding": "round((x + 1) * 127.5)"},
        "targets": {"dtype": "float16", "shape": [n, sum(dims)]},
        "labels": {"dtype": "int64", "shape": [n]} if has_labels else None,
        "seed": seed, "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    # offsets need the header length, which contains them: fix the data start at an aligned bound
    probe = json.dumps({**header, "offsets": {"images": 10 ** 15, "targets": 10 ** 15, "labels": 10 ** 15}}).encode()
    data0 = -(-(len(MAGIC) + 8 + len(probe)) // _ALIGN) * _ALIGN
    offsets = {"images": data0, "targets": data0 + img_bytes,
               "labels": data0 + img_bytes + tgt_bytes if has_labels else None}
    header["offsets"] = offsets
    raw = json.dumps(header).encode()
    if len(MAGIC) + 8 + len(raw) > data0:
        raise BankError("internal error: bank header does not fit its reserved space")
    total = offsets["targets"] + tgt_bytes + (n * 8 if has_labels else 0)
    tmp = out / f".{BANK_FILE}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(MAGIC + struct.pack("<Q", len(raw)) + raw)
        fh.truncate(total)
    try:
        mm = np.memmap(tmp, mode="r+", dtype=np.uint8, offset=0, shape=(total,))
        images = mm[offsets["images"]:offsets["images"] + img_bytes].reshape(n, c, r, r)
        targets = mm[offsets["targets"]:offsets["targets"] + tgt_bytes].view(np.float16).reshape(n, sum(dims))
        labels = (mm[offsets["labels"]:offsets["labels"] + n * 8].view(np.int64) if has_labels else None)
        done, s = 0, first
        while True:
            k = min(s.images.shape[0], n - done)
            images[done:done + k] = _to_u8(s.images[:k])
            targets[done:done + k] = torch.cat([t[:k].float().reshape(k, -1) for t in s.targets], 1).half().cpu().numpy()
            if labels is not None:
                labels[done:done + k] = s.labels[:k].long().cpu().numpy()
            done += k
            if log is not None:
                log(f"bank: {done}/{n}")
            if done >= n:
                break
            s = teacher.sample(min(batch, n - done), generator=gen)
        mm.flush()
        del mm, images, targets, labels
        os.replace(tmp, out / BANK_FILE)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out / BANK_FILE


# --- reading --------------------------------------------------------------------------------------

def bank_file(path: PathLike) -> Path:
    """``DIR`` or ``DIR/bank.bin`` -> the bank file (``FileNotFoundError`` if absent)."""
    p = user_path(path, "bank path")
    f = p / BANK_FILE if p.is_dir() else p
    if not os.path.lexists(f):
        raise FileNotFoundError(f"no feature bank at {p} (expected {p / BANK_FILE}; build one with "
                                "`gandistill bank build --teacher NAME --n N --out DIR`)")
    return f


def read_header(path: PathLike) -> Dict[str, Any]:
    """The checked JSON header of a bank: one :class:`BankError` line if the file is not a regular file,
    not a gandistill bank, truncated, or its header is malformed or inconsistent with the file."""
    f = bank_file(path)
    try:
        fd, st = open_regular(f, "feature bank", max_bytes=2 ** 62)
    except UnsafeFileError as e:
        raise BankError(str(e)) from None
    try:
        head = os.pread(fd, len(MAGIC) + 8, 0)
        if len(head) < len(MAGIC) + 8 or head[: len(MAGIC)] != MAGIC:
            raise BankError("not a gandistill feature bank (bad magic)", path=f)
        (size,) = struct.unpack("<Q", head[len(MAGIC):])
        if size > CAPS["bank_header"]:
            raise BankError(f"implausible header length {size} (at most {CAPS['bank_header']})", path=f)
        raw = os.pread(fd, size, len(MAGIC) + 8)
    finally:
        os.close(fd)
    if len(raw) != size:
        raise BankError("truncated inside its header", path=f)
    header = check_raw(raw, BANK_HEADER, f, BankError, "bank header")
    if header["format"] != FORMAT or header["version"] != VERSION:
        raise BankError(f"unsupported bank format {str(header['format'])[:40]!r} v{header['version']}", path=f)
    _check_layout(header, f, st.st_size, len(MAGIC) + 8 + size)
    return header


def _check_layout(h: Dict[str, Any], f: Path, file_size: int, header_end: int) -> None:
    """The arrays the header declares lie after the header, in order, without overlap, inside the file."""
    n, c, r = h["n"], h["img_channels"], h["img_resolution"]
    if len(h["target_names"]) != len(h["target_dims"]):
        raise BankError(f"{len(h['target_names'])} target names for {len(h['target_dims'])} target widths", path=f)
    off = h["offsets"]
    img_end = off["images"] + n * c * r * r
    tgt_end = off["targets"] + n * sum(h["target_dims"]) * 2
    has_labels = bool(h.get("labels"))
    if has_labels and off.get("labels") is None:
        raise BankError("the header declares labels but no labels offset", path=f)
    end = off["labels"] + n * 8 if has_labels else tgt_end
    if off["images"] < header_end or img_end > off["targets"] or (has_labels and tgt_end > off["labels"]):
        raise BankError("inconsistent header: the arrays overlap the header or each other", path=f)
    if file_size < end:
        raise BankError(f"truncated or inconsistent ({file_size} bytes, the header needs {end})", path=f)


@dataclass(frozen=True)
class BankExpectation:
    """What a run needs from a bank: the teacher it would otherwise run and the training resolution."""

    teacher: Optional[str] = None
    ckpt: Optional[PathLike] = None          # None: the bundled teacher
    img_resolution: Optional[int] = None
    teacher_kwargs: Optional[Dict[str, Any]] = None
    check_ckpt: bool = True


def check_bank(header: Dict[str, Any], want: BankExpectation, where: PathLike = "") -> None:
    """Raise :class:`BankError` naming every mismatch between a bank's header and ``want``."""
    bad: List[str] = []
    if want.teacher is not None and header["teacher"] != want.teacher:
        bad.append(f"teacher '{header['teacher']}' (the run's is '{want.teacher}')")
    if want.img_resolution is not None and int(header["img_resolution"]) != int(want.img_resolution):
        bad.append(f"resolution {header['img_resolution']} px (the run trains at {want.img_resolution} px)")
    if want.teacher_kwargs is not None and header.get("teacher_kwargs", {}) != _jsonable(dict(want.teacher_kwargs)):
        bad.append(f"teacher settings {header.get('teacher_kwargs')} (the run's are {_jsonable(dict(want.teacher_kwargs))})")
    if want.check_ckpt:
        path = resolve_ckpt(want.ckpt)
        if checkpoint_fingerprint(path) != header["teacher_fingerprint"]:
            bad.append(f"checkpoint {header['teacher_ckpt']} (the run's teacher checkpoint {path} has other weights)")
    if bad:
        raise BankError(f"feature bank {where} was built from another teacher than this run's: " + "; ".join(bad)
                        + ". Build a matching bank with `gandistill bank build` or drop --bank.")


class BankTeacher(Teacher):
    """A sampling teacher that replays a bank (see module docstring); frozen, no parameters."""

    def __init__(self, bank: PathLike, expect: Optional[BankExpectation] = None, device: Any = "cpu") -> None:
        super().__init__()
        self.path = bank_file(bank)
        self.header = h = read_header(self.path)
        if expect is not None:
            check_bank(h, expect, self.path)
        self.n = int(h["n"])
        self.img_channels, self.img_resolution = int(h["img_channels"]), int(h["img_resolution"])
        self.target_names = tuple(h["target_names"])
        self.target_dims = tuple(int(d) for d in h["target_dims"])
        self.ckpt_path = h["teacher_ckpt"]
        self.teacher_name = h["teacher"]
        self._device = torch.device(device)
        self._offsets = dict(h["offsets"])
        self._has_labels = bool(h.get("labels"))
        self._file = RegionReader(self.path, "feature bank", BankError)
        self.c_dim = int(h.get("teacher_describe", {}).get("c_dim") or 0)
        self.freeze()

    @property
    def device(self) -> torch.device:  # no parameters: the device the samples are sent to
        return self._device

    def to(self, device: Any = None, *args: Any, **kwargs: Any) -> "BankTeacher":
        """Samples go to ``device`` from now on (there is nothing else to move)."""
        device = kwargs.get("device", device)
        if isinstance(device, (str, torch.device)):
            self._device = torch.device(device)
        return self

    def indices(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """``n`` item indices drawn uniformly with replacement."""
        return torch.randint(self.n, (n,), generator=generator)

    def _rows(self, idx: np.ndarray, key: str, row_bytes: int) -> bytes:
        """The ``row_bytes``-long records ``idx`` of one array, by positioned reads (no memory map)."""
        return self._file.read_rows(self._offsets[key], row_bytes, idx.tolist())

    def stored_labels(self) -> Optional[np.ndarray]:
        """All stored class labels (int64 ``[n]``), or ``None`` for an unconditional bank."""
        if not self._has_labels:
            return None
        return np.frombuffer(self._file.read(self._offsets["labels"], self.n * 8), dtype="<i8").copy()

    @torch.no_grad()
    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> TeacherSample:
        idx = self.indices(n, generator).numpy()
        c, r, d = self.img_channels, self.img_resolution, sum(self.target_dims)
        img_u8 = np.frombuffer(self._rows(idx, "images", c * r * r), dtype=np.uint8).reshape(n, c, r, r)
        img = torch.from_numpy(img_u8.copy()).to(self._device)
        img = img.float().mul_(1.0 / 127.5).sub_(1.0)
        bits = np.frombuffer(self._rows(idx, "targets", d * 2), dtype="<u2").reshape(n, d)
        if ((bits & 0x7C00) == 0x7C00).any():           # fp16 exponent all ones: inf or NaN
            raise BankError("the bank holds non-finite targets (NaN or inf)", path=self.path)
        flat = torch.from_numpy(bits.view("<f2").copy()).to(self._device).float()
        targets = list(flat.split(list(self.target_dims), dim=1))
        labels = None
        if self._has_labels:
            lab = np.frombuffer(self._rows(idx, "labels", 8), dtype="<i8").copy()
            labels = torch.from_numpy(lab).to(self._device)
        return TeacherSample(images=img, targets=targets, labels=labels, ws=None)

    def describe(self) -> dict:
        d = super().describe()
        d.update(bank=str(self.path), n=self.n, teacher=self.teacher_name, ckpt=self.ckpt_path,
                 teacher_fingerprint=self.header["teacher_fingerprint"], c_dim=self.c_dim)
        return d


__all__ = ["BANK_FILE", "BankError", "BankExpectation", "BankTeacher", "bank_file", "build_bank", "check_bank",
           "checkpoint_fingerprint", "read_header"]
