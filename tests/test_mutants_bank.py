"""Fast targeted tests for the `bank` mutation group: gandistill/teachers/bank.py.

A fake teacher with known, exactly quantisable samples writes tiny banks (a few hundred bytes); the file
layout, the header checks, the teacher-settings match (every setting one by one) and the positioned reads
are checked against the format as the module docstring states it, written out here independently
(hashlib, struct, numpy), never by calling the module twice.
"""
import dataclasses
import datetime
import hashlib
import json
import os
import struct

import numpy as np
import pytest
import torch

from gandistill.io.errors import GandistillError
from gandistill.teachers.bank import (BANK_FILE, BankError, BankExpectation, BankTeacher, bank_file, build_bank,
                                      check_bank, checkpoint_fingerprint, read_header)
from gandistill.teachers.base import TeacherSample

MAGIC = b"GDBANK01"


class FakeTeacher:
    """Images k / 127.5 - 1 for integer k (so the 8-bit code is exactly k), targets of width 2 + 3."""

    target_names = ("a", "b")
    target_dims = (2, 3)
    img_channels = 1
    img_resolution = 2

    def __init__(self, c_dim=0, extra=0, fail_at=None, describe=None):
        self.c_dim, self.extra, self.fail_at = c_dim, extra, fail_at
        self.calls = []
        self._describe = {"class": "Fake", "c_dim": c_dim} if describe is None else describe

    def sample(self, n, generator=None):
        self.calls.append(n)
        if self.fail_at is not None and len(self.calls) > self.fail_at:
            raise RuntimeError("teacher broke")
        m = n + self.extra                               # a teacher may return more than asked
        k = torch.randint(0, 256, (m, 1, 2, 2), generator=generator)
        imgs = k.float() / 127.5 - 1.0
        t1 = torch.randn(m, 2, 1, 1, generator=generator)        # 4-d targets are flattened
        t2 = torch.randn(m, 3, generator=generator)
        labels = torch.randint(0, self.c_dim, (m,), generator=generator).int() if self.c_dim else None
        return TeacherSample(images=imgs, targets=[t1, t2], labels=labels, ws=None)

    def describe(self):
        return self._describe


def _reference(n, batch, seed, c_dim=0):
    """What the bank must hold: the teacher's samples for ``seed`` in batches of ``batch`` (the first batch
    min(batch, n), then min(batch, what is left)), quantised as the format says."""
    t, g = FakeTeacher(c_dim), torch.Generator().manual_seed(seed)
    imgs, tgts, labs, left = [], [], [], n
    while left > 0:
        s = t.sample(min(batch, left), generator=g)
        imgs.append(s.images)
        tgts.append(torch.cat([s.targets[0].reshape(-1, 2), s.targets[1]], 1))
        if c_dim:
            labs.append(s.labels)
        left -= s.images.shape[0]
    x = torch.cat(imgs).double().numpy()
    u8 = np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)
    f16 = torch.cat(tgts).numpy().astype(np.float16)
    lab = torch.cat(labs).numpy().astype(np.int64) if c_dim else None
    return u8, f16, lab


@pytest.fixture()
def ckpt(tmp_path):
    p = tmp_path / "teacher.pkl"
    p.write_bytes(b"weights of the teacher")
    return p


def _build(tmp_path, ckpt, name="bank", n=7, batch=3, seed=5, c_dim=0, **kw):
    t = FakeTeacher(c_dim)
    build_bank(t, n, tmp_path / name, teacher_name="fake", ckpt=ckpt, batch=batch, seed=seed, **kw)
    return tmp_path / name, t


def _fds():
    return len(os.listdir("/proc/self/fd"))


# --- fingerprints --------------------------------------------------------------------------------------

def test_fingerprint_of_a_file_is_sha256_of_its_name_and_bytes(tmp_path):
    f = tmp_path / "G.pkl"
    data = bytes(range(256)) * 4097 + b"tail"              # more than one 1 MiB chunk
    f.write_bytes(data)
    assert checkpoint_fingerprint(f) == hashlib.sha256(b"G.pkl" + data).hexdigest()
    assert checkpoint_fingerprint(str(f)) == checkpoint_fingerprint(f)
    g = tmp_path / "other.pt"
    g.write_bytes(data)
    assert checkpoint_fingerprint(g) != checkpoint_fingerprint(f)          # the name counts


def test_fingerprint_reads_checkpoints_of_any_size(tmp_path):
    f = tmp_path / "big.pt"
    with open(f, "wb") as fh:                      # 5 MiB of zeros, over the 4 MiB cap of small JSON files
        fh.truncate(5 * 2 ** 20)
    assert checkpoint_fingerprint(f) == hashlib.sha256(b"big.pt" + bytes(5 * 2 ** 20)).hexdigest()


@pytest.mark.timeout(30)          # refused before reading: a mutant that reads the 1 TiB fails here, not hours later
def test_fingerprint_refuses_a_checkpoint_over_a_tebibyte(tmp_path):
    f = tmp_path / "huge.pkl"
    with open(f, "wb") as fh:                      # sparse: nothing is written, nothing is read
        fh.truncate(2 ** 40 + 1)
    with pytest.raises(GandistillError, match=r"the teacher checkpoint file is .*over the 1048576\.0 MiB limit"):
        checkpoint_fingerprint(f)


def test_fingerprint_of_a_folder_covers_weights_and_its_json_only(tmp_path):
    d = tmp_path / "teacher"
    d.mkdir()
    files = {"G.safetensors": b"g", "D.pt": b"d", "gandistill_sg2.json": b"{}", "x.pth": b"x", "y.pkl": b"y"}
    for k, v in files.items():
        (d / k).write_bytes(v)
    for k in ("README.md", "grid.png", ".hidden.pt", "a.pkl.bak", "meta.json"):      # do not count
        (d / k).write_bytes(b"ignored")
    (d / "sub.pt").mkdir()                                                             # not a file
    h = hashlib.sha256()
    for k in sorted(files):                 # sorted by name: D.pt G.safetensors gandistill_sg2.json x.pth y.pkl
        h.update(k.encode() + files[k])
    assert checkpoint_fingerprint(d) == h.hexdigest()
    assert checkpoint_fingerprint(d / "gandistill_sg2.json") == h.hexdigest()     # the folder given by its json
    (d / "README.md").write_bytes(b"changed")
    assert checkpoint_fingerprint(d) == h.hexdigest()
    (d / "D.pt").write_bytes(b"changed")
    assert checkpoint_fingerprint(d) != h.hexdigest()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_bytes(b"x")
    with pytest.raises(BankError, match="teacher checkpoint .*empty has no files to fingerprint"):
        checkpoint_fingerprint(empty)


def test_fingerprint_of_special_files(tmp_path):
    d = tmp_path / "t"
    d.mkdir()
    os.mkfifo(d / "G.pkl")                                 # a FIFO in a folder is not a weight file: no hang
    with pytest.raises(BankError, match="has no files to fingerprint"):
        checkpoint_fingerprint(d)
    with pytest.raises(BankError, match="G.pkl is neither a file nor a folder"):    # nor given by itself
        checkpoint_fingerprint(d / "G.pkl")


# --- writing -------------------------------------------------------------------------------------------

def test_build_bank_layout_header_and_items(tmp_path, ckpt):
    logs = []
    out, t = _build(tmp_path, ckpt, n=7, batch=3, seed=5, teacher_kwargs={"z": (1, 2), "a": 1}, log=logs.append)
    assert t.calls == [3, 3, 1] and logs == ["bank: 3/7", "bank: 6/7", "bank: 7/7"]
    assert sorted(os.listdir(out)) == [BANK_FILE]                      # the temp file is gone
    raw = (out / BANK_FILE).read_bytes()
    assert raw[:8] == MAGIC
    (size,) = struct.unpack("<Q", raw[8:16])
    h = json.loads(raw[16:16 + size])
    off = h["offsets"]
    created = h.pop("created")
    assert len(created) == 19 and datetime.datetime.fromisoformat(created)      # seconds precision
    assert h == {
        "format": "gandistill-bank", "version": 1, "n": 7, "teacher": "fake", "teacher_ckpt": str(ckpt),
        "teacher_fingerprint": hashlib.sha256(b"teacher.pkl" + b"weights of the teacher").hexdigest(),
        "teacher_kwargs": {"a": 1, "z": [1, 2]}, "teacher_describe": {"c_dim": 0, "class": "Fake"},
        "img_resolution": 2, "img_channels": 1, "target_names": ["a", "b"], "target_dims": [2, 3],
        "images": {"dtype": "uint8", "shape": [7, 1, 2, 2], "encoding": "round((x + 1) * 127.5)"},
        "targets": {"dtype": "float16", "shape": [7, 5]}, "labels": None, "seed": 5,
        "offsets": {"images": 4096, "targets": 4096 + 28, "labels": None},
    }
    assert list(json.loads(raw[16:16 + size])["teacher_kwargs"]) == ["a", "z"]       # sorted keys
    assert all(b == 0 for b in raw[16 + size:4096])                                  # zero padding
    assert len(raw) == 4096 + 7 * 4 + 7 * 5 * 2
    u8, f16, _ = _reference(7, 3, 5)
    assert np.array_equal(np.frombuffer(raw, np.uint8, 28, 4096).reshape(7, 1, 2, 2), u8)
    assert np.array_equal(np.frombuffer(raw, "<f2", 35, 4096 + 28).reshape(7, 5), f16)
    assert read_header(out) == {**h, "created": created}


def test_build_bank_quantises_images_with_clamping(tmp_path, ckpt):
    class Edge(FakeTeacher):
        def sample(self, n, generator=None):
            v = torch.tensor([-3.0, -1.0, -0.999, 0.0, 0.5, 0.999, 1.0, 4.0])
            imgs = v.reshape(2, 1, 2, 2)[:n]
            return TeacherSample(images=imgs.half(), targets=[torch.zeros(n, 2), torch.zeros(n, 3)], labels=None)

    build_bank(Edge(), 2, tmp_path / "e", teacher_name="fake", ckpt=ckpt, batch=2)
    raw = (tmp_path / "e" / BANK_FILE).read_bytes()
    # round((x + 1) * 127.5), x clamped to [-1, 1] (fp16 input: -0.999 is -0.999023.., 0.999 is 0.999023..)
    assert list(raw[4096:4104]) == [0, 0, 0, 128, 191, 255, 255, 255]


def test_build_bank_with_labels_and_a_teacher_giving_more(tmp_path, ckpt):
    t = FakeTeacher(c_dim=4, extra=2)
    out = build_bank(t, 5, tmp_path / "deep" / "er", teacher_name="fake", ckpt=ckpt, batch=2, seed=1)
    # the first call returns 4 items (2 asked + 2), all kept; the second is asked for the 1 left and returns 3
    assert out == tmp_path / "deep" / "er" / BANK_FILE and t.calls == [2, 1]
    raw = out.read_bytes()
    (size,) = struct.unpack("<Q", raw[8:16])
    h = json.loads(raw[16:16 + size])
    assert h["labels"] == {"dtype": "int64", "shape": [5]}
    assert h["offsets"] == {"images": 4096, "targets": 4096 + 20, "labels": 4096 + 20 + 50}
    assert len(raw) == 4096 + 20 + 50 + 40
    # each batch keeps only the first items it needs
    g = torch.Generator().manual_seed(1)
    ref = [FakeTeacher(4, extra=2).sample(k, generator=g) for k in (2, 1)]
    lab = np.concatenate([s.labels[:k].numpy() for s, k in zip(ref, (4, 1))]).astype(np.int64)
    assert np.array_equal(np.frombuffer(raw, "<i8", 5, 4096 + 70), lab)
    u8 = np.concatenate([np.rint((s.images[:k].double().numpy() + 1) * 127.5) for s, k in zip(ref, (4, 1))])
    assert np.array_equal(np.frombuffer(raw, np.uint8, 20, 4096).reshape(5, 1, 2, 2), u8.astype(np.uint8))
    bt = BankTeacher(out.parent)
    assert np.array_equal(bt.stored_labels(), lab) and bt.c_dim == 4


def test_build_bank_big_header_moves_the_data_to_the_next_4096_bound(tmp_path, ckpt):
    out, _ = _build(tmp_path, ckpt, n=2, batch=2, teacher_kwargs={"long": "x" * 5000})
    raw = (out / BANK_FILE).read_bytes()
    (size,) = struct.unpack("<Q", raw[8:16])
    assert 4096 < 16 + size <= 8192 and json.loads(raw[16:16 + size])["offsets"]["images"] == 8192
    assert len(raw) == 8192 + 2 * 4 + 2 * 10


def test_build_bank_any_header_length_fits_its_reserved_space(tmp_path, ckpt):
    """Header lengths around the first 4096 bound: the data always starts at the first aligned offset that
    leaves room for the header (never an internal error, never a header overlapping the images)."""
    out, _ = _build(tmp_path, ckpt, name="probe", n=2, batch=2, teacher_kwargs={"p": ""})
    base = 16 + struct.unpack("<Q", (out / BANK_FILE).read_bytes()[8:16])[0]
    seen = set()
    for extra in range(4096 - base - 45, 4096 - base + 5):     # every length: the probe and the header differ by 36
        out, _ = _build(tmp_path, ckpt, name=f"s{extra}", n=2, batch=2, teacher_kwargs={"p": "x" * extra})
        h = read_header(out)
        end = 16 + struct.unpack("<Q", (out / BANK_FILE).read_bytes()[8:16])[0]
        off = h["offsets"]["images"]
        assert off % 4096 == 0 and end <= off < end + 4096 + 64
        seen.add(off)
    assert seen == {4096, 8192}


def test_build_bank_refusals_and_cleanup(tmp_path, ckpt):
    with pytest.raises(BankError, match="a bank needs at least 2 items, got n=1"):
        build_bank(FakeTeacher(), 1, tmp_path / "x", teacher_name="fake", ckpt=ckpt)
    assert not (tmp_path / "x").exists()
    out, _ = _build(tmp_path, ckpt, name="two", n=2, batch=8)
    assert read_header(out)["n"] == 2

    class NoSample(FakeTeacher):
        can_sample = False

    with pytest.raises(BankError, match="teacher 'fake' does not sample images, so it has no bank"):
        build_bank(NoSample(), 4, tmp_path / "y", teacher_name="fake", ckpt=ckpt)
    # a teacher that breaks half-way leaves no bank and no temp file behind
    with pytest.raises(RuntimeError, match="teacher broke"):
        build_bank(FakeTeacher(fail_at=1), 6, tmp_path / "z", teacher_name="fake", ckpt=ckpt, batch=2)
    assert os.listdir(tmp_path / "z") == []
    # the defaults: batch 256 (one call for 7 items), seed 0, no teacher settings
    t = FakeTeacher()
    build_bank(t, 7, tmp_path / "d", teacher_name="fake", ckpt=ckpt)
    h = read_header(tmp_path / "d")
    assert t.calls == [7] and h["seed"] == 0 and h["teacher_kwargs"] == {}
    u8, _, _ = _reference(7, 256, 0)
    raw = (tmp_path / "d" / BANK_FILE).read_bytes()
    assert np.array_equal(np.frombuffer(raw, np.uint8, 28, 4096).reshape(7, 1, 2, 2), u8)
    t = FakeTeacher()                                          # the default batch is 256 items a call
    build_bank(t, 300, tmp_path / "b", teacher_name="fake", ckpt=ckpt)
    assert t.calls == [256, 44]


# --- reading the header --------------------------------------------------------------------------------

def _header(h0=4096, n=2, **over):
    h = {"format": "gandistill-bank", "version": 1, "n": n, "teacher": "t", "teacher_ckpt": "c",
         "teacher_fingerprint": "f", "img_resolution": 1, "img_channels": 1, "target_names": ["a"],
         "target_dims": [1], "offsets": {"images": h0, "targets": h0 + n, "labels": None}}
    h.update(over)
    return h


def _write(path, header, size=None, total=None, magic=MAGIC, raw=None):
    raw = json.dumps(header).encode() if raw is None else raw
    data = magic + struct.pack("<Q", len(raw) if size is None else size) + raw
    if total is not None:
        data = data + b"\0" * (total - len(data)) if total >= len(data) else data[:total]
    path.mkdir(parents=True, exist_ok=True)
    (path / BANK_FILE).write_bytes(data)
    return path / BANK_FILE


def test_read_header_accepts_the_exact_layout(tmp_path):
    # 2 items of 1 byte, targets 2 x 1 x fp16 = 4 bytes: the file ends at 4096 + 6
    _write(tmp_path / "ok", _header(), total=4096 + 6)
    n0 = _fds()
    assert read_header(tmp_path / "ok")["n"] == 2
    assert read_header(tmp_path / "ok" / BANK_FILE)["n"] == 2
    assert _fds() == n0                                           # the descriptor is closed
    with pytest.raises(BankError, match=r"truncated or inconsistent \(4101 bytes, the header needs 4102\)"):
        _write(tmp_path / "short", _header(), total=4096 + 5)
        read_header(tmp_path / "short")
    assert _fds() == n0


def test_read_header_accepts_a_bank_of_any_size(tmp_path):
    path = _write(tmp_path / "big", _header(), total=4096 + 6)
    with open(path, "r+b") as f:                  # sparse: 16 GiB on paper, nothing on disk
        f.truncate(16 * 2 ** 30)
    assert read_header(tmp_path / "big")["n"] == 2


def test_read_header_layout_boundaries(tmp_path):
    size = len(json.dumps(_header(100)).encode())         # offsets of 3 digits: the same header length
    end = 16 + size                                        # the header's end: the images may start there
    _write(tmp_path / "a", _header(end), total=end + 6)
    assert read_header(tmp_path / "a")["offsets"]["images"] == end
    _write(tmp_path / "b", _header(end - 1), total=end + 6)
    with pytest.raises(BankError, match="inconsistent header: the arrays overlap the header or each other"):
        read_header(tmp_path / "b")
    # targets starting inside the images; gaps are fine
    for t_off, ok in ((4096 + 1, False), (4096 + 2, True), (4096 + 9, True)):
        h = _header(offsets={"images": 4096, "targets": t_off})
        _write(tmp_path / f"t{t_off}", h, total=t_off + 4)
        if ok:
            assert read_header(tmp_path / f"t{t_off}")["offsets"]["targets"] == t_off
        else:
            with pytest.raises(BankError, match="overlap"):
                read_header(tmp_path / f"t{t_off}")
    # labels: after the targets (4096 + 2 + 4), 2 x 8 bytes
    for l_off, ok in ((4096 + 5, False), (4096 + 6, True)):
        h = _header(labels={"shape": [2]}, offsets={"images": 4096, "targets": 4098, "labels": l_off})
        _write(tmp_path / f"l{l_off}", h, total=l_off + 16)
        if ok:
            assert read_header(tmp_path / f"l{l_off}")["labels"] == {"shape": [2]}
        else:
            with pytest.raises(BankError, match="overlap"):
                read_header(tmp_path / f"l{l_off}")
    h = _header(labels={"shape": [2]}, offsets={"images": 4096, "targets": 4098, "labels": 4102})
    _write(tmp_path / "lshort", h, total=4102 + 15)
    with pytest.raises(BankError, match=r"\(4117 bytes, the header needs 4118\)"):
        read_header(tmp_path / "lshort")
    # multi-channel, multi-resolution, several targets: n * c * r * r image bytes, n * sum(dims) * 2 target bytes
    h = _header(n=3, img_channels=2, img_resolution=3, target_names=["a", "b"], target_dims=[2, 5],
                offsets={"images": 4096, "targets": 4096 + 54})
    _write(tmp_path / "m", h, total=4096 + 54 + 42)
    assert read_header(tmp_path / "m")["n"] == 3
    _write(tmp_path / "m1", {**h, "offsets": {"images": 4096, "targets": 4096 + 53}}, total=4096 + 54 + 42)
    with pytest.raises(BankError, match="overlap"):
        read_header(tmp_path / "m1")
    _write(tmp_path / "m2", h, total=4096 + 54 + 41)
    with pytest.raises(BankError, match="the header needs 4192"):
        read_header(tmp_path / "m2")


def test_read_header_labels_declared_and_offsets(tmp_path):
    # labels declared, no labels offset
    for offs in ({"images": 4096, "targets": 4098}, {"images": 4096, "targets": 4098, "labels": None}):
        _write(tmp_path / "x", _header(labels={"shape": [2]}, offsets=offs), total=5000)
        with pytest.raises(BankError, match="the header declares labels but no labels offset"):
            read_header(tmp_path / "x")
    # no labels declared: a labels offset is ignored (and may even point past the end)
    for lab in (None, {}):
        _write(tmp_path / "y", _header(labels=lab, offsets={"images": 4096, "targets": 4098, "labels": 10 ** 9}),
               total=4102)
        assert read_header(tmp_path / "y")["n"] == 2


def test_read_header_names_and_widths_must_pair(tmp_path):
    _write(tmp_path / "x", _header(target_names=["a", "b"], target_dims=[1]), total=5000)
    with pytest.raises(BankError, match="2 target names for 1 target widths") as e:
        read_header(tmp_path / "x")
    assert e.value.path == str(tmp_path / "x" / BANK_FILE)


def test_read_header_refuses_what_is_not_a_bank(tmp_path):
    for name, data in (("empty", b""), ("short", MAGIC + b"\0" * 7), ("other", b"GDBANK02" + b"\0" * 64),
                       ("zip", b"PK\x03\x04" + b"\0" * 64)):
        (tmp_path / name).mkdir()
        (tmp_path / name / BANK_FILE).write_bytes(data)
        with pytest.raises(BankError, match=r"not a gandistill feature bank \(bad magic\)"):
            read_header(tmp_path / name)
    # magic and a length, but the header is cut short (also when the length is exactly the cap)
    for size in (10, 1 << 20):
        _write(tmp_path / f"cut{size}", _header(), size=size, raw=b'{"format"')
        with pytest.raises(BankError, match="truncated inside its header"):
            read_header(tmp_path / f"cut{size}")
    _write(tmp_path / "huge", _header(), size=(1 << 20) + 1, raw=b"{}")
    with pytest.raises(BankError, match=r"implausible header length 1048577 \(at most 1048576\)"):
        read_header(tmp_path / "huge")
    _write(tmp_path / "json", None, raw=b"{not json", total=5000)
    with pytest.raises(BankError, match=r"bank\.bin: bank header: ") as e:       # what was refused, exactly
        read_header(tmp_path / "json")
    assert e.value.path == str(tmp_path / "json" / BANK_FILE)                   # the refusal names the file
    _write(tmp_path / "neg", _header(), size=2 ** 64 - 1, raw=b"{}")         # the length is unsigned
    with pytest.raises(BankError, match="implausible header length 18446744073709551615"):
        read_header(tmp_path / "neg")
    _write(tmp_path / "schema", _header(n=1), total=5000)
    with pytest.raises(BankError, match="n"):
        read_header(tmp_path / "schema")


def test_read_header_format_and_version(tmp_path):
    _write(tmp_path / "f", _header(format="other-bank" + "y" * 50), total=5000)
    with pytest.raises(BankError, match=r"unsupported bank format 'other-banky{30}' v1"):
        read_header(tmp_path / "f")
    for v in (0, 2):
        _write(tmp_path / f"v{v}", _header(version=v), total=5000)
        with pytest.raises(BankError, match=f"unsupported bank format 'gandistill-bank' v{v}"):
            read_header(tmp_path / f"v{v}")


def test_read_header_refuses_special_files_without_blocking(tmp_path):
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / BANK_FILE)
    with pytest.raises(BankError, match="the feature bank is a FIFO / named pipe, not a regular file"):
        read_header(tmp_path / "fifo")
    os.symlink("/dev/null", tmp_path / "null.bin")
    with pytest.raises(BankError, match="not a regular file"):
        read_header(tmp_path / "null.bin")


def test_bank_file_resolves_folder_file_and_missing(tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    (d / BANK_FILE).write_bytes(b"x")
    assert bank_file(d) == d / BANK_FILE and bank_file(str(d)) == d / BANK_FILE
    assert bank_file(d / BANK_FILE) == d / BANK_FILE
    other = tmp_path / "mine.bin"
    other.write_bytes(b"x")
    assert bank_file(other) == other                                   # any file name
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    assert bank_file(tmp_path / "dangling") == tmp_path / "dangling"   # exists as a link: refused when opened
    with pytest.raises(FileNotFoundError, match=r"no feature bank at .*nowhere \(expected .*nowhere/bank.bin; "
                                                "build one with `gandistill bank build"):
        bank_file(tmp_path / "nowhere")
    with pytest.raises(GandistillError, match="the bank path contains a NUL byte"):
        bank_file("a\0b")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(FileNotFoundError, match="emptydir/bank.bin"):
        bank_file(tmp_path / "emptydir")


# --- the teacher-settings match, one setting at a time ---------------------------------------------------

def _hdr(ckpt, **over):
    h = {"teacher": "sg2-generator", "img_resolution": 16, "teacher_kwargs": {"blocks": ["b4", "b8"], "mode": "multi"},
         "teacher_ckpt": "/built/from/G.pkl", "teacher_fingerprint": checkpoint_fingerprint(ckpt)}
    h.update(over)
    return h


def _ok(h, **want):
    check_bank(h, BankExpectation(**want), "B")


def _refused(h, match, **want):
    with pytest.raises(BankError, match=match) as e:
        check_bank(h, BankExpectation(**want), "B")
    return str(e.value)


def test_check_bank_teacher_name(ckpt):
    h = _hdr(ckpt)
    _ok(h, teacher="sg2-generator", ckpt=ckpt)
    _ok(h, teacher=None, ckpt=ckpt)                                       # not asked: not checked
    _refused(h, r"teacher 'sg2-generator' \(the run's is 'sg2-latent'\)", teacher="sg2-latent", ckpt=ckpt)


def test_check_bank_resolution(ckpt):
    h = _hdr(ckpt)
    _ok(h, img_resolution=16, ckpt=ckpt)
    _ok(h, img_resolution=None, ckpt=ckpt)
    for r in (8, 15, 17, 32):
        _refused(h, rf"resolution 16 px \(the run trains at {r} px\)", img_resolution=r, ckpt=ckpt)


def test_check_bank_teacher_settings_one_by_one(ckpt):
    h = _hdr(ckpt)
    same = {"blocks": ("b4", "b8"), "mode": "multi"}                     # a tuple is stored as a JSON list
    _ok(h, teacher_kwargs=same, ckpt=ckpt)
    _ok(h, teacher_kwargs={"mode": "multi", "blocks": ["b4", "b8"]}, ckpt=ckpt)   # key order does not matter
    _ok(h, teacher_kwargs=None, ckpt=ckpt)                                 # not asked: not checked
    wrong = [
        {"blocks": ("b4", "b8"), "mode": "single"},                        # one value differs
        {"blocks": ("b4",), "mode": "multi"},                              # a list differs
        {"blocks": ("b8", "b4"), "mode": "multi"},                         # order inside a list matters
        {"mode": "multi"},                                                 # a setting missing in the run
        {"blocks": ("b4", "b8"), "mode": "multi", "psi": 0.7},            # a setting the bank lacks
        {},                                                                # the run has none at all
    ]
    for kw in wrong:
        msg = _refused(h, "teacher settings", teacher_kwargs=kw, ckpt=ckpt)
        assert "{'blocks': ['b4', 'b8'], 'mode': 'multi'} (the run's are " in msg
    # a bank built without settings: the run's settings must be empty too
    h0 = _hdr(ckpt, teacher_kwargs={})
    _ok(h0, teacher_kwargs={}, ckpt=ckpt)
    _refused(h0, r"teacher settings \{\} \(the run's are \{'psi': 0.5\}\)", teacher_kwargs={"psi": 0.5}, ckpt=ckpt)
    # an old header without the field counts as "no settings"
    h1 = {k: v for k, v in h.items() if k != "teacher_kwargs"}
    _ok(h1, teacher_kwargs={}, ckpt=ckpt)
    _refused(h1, r"teacher settings None \(the run's are \{'mode': 'multi'\}\)", teacher_kwargs={"mode": "multi"},
             ckpt=ckpt)


def test_check_bank_without_a_bank_name(ckpt):
    with pytest.raises(BankError) as e:
        check_bank(_hdr(ckpt), BankExpectation(teacher="x", check_ckpt=False))
    assert str(e.value).startswith("feature bank  was built from another teacher than this run's: teacher ")


def test_check_bank_checkpoint_weights(ckpt, tmp_path):
    h = _hdr(ckpt)
    _ok(h, ckpt=ckpt)
    _ok(h, ckpt=str(ckpt))
    other = tmp_path / "b" / "teacher.pkl"                   # same name, other bytes
    other.parent.mkdir()
    other.write_bytes(b"other weights of the teacher")
    _refused(h, r"checkpoint /built/from/G.pkl \(the run's teacher checkpoint .*b/teacher.pkl has other weights\)",
             ckpt=other)
    _ok(h, ckpt=other, check_ckpt=False)                     # the run asked not to compare weights
    assert BankExpectation().check_ckpt is True
    assert BankExpectation() == BankExpectation(None, None, None, None, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        BankExpectation().check_ckpt = False


def test_check_bank_names_every_mismatch_in_one_line(ckpt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                             # short paths: the whole line stays under the cap
    other = tmp_path / "o.pkl"
    other.write_bytes(b"o")
    h = _hdr(ckpt, teacher_kwargs={"m": 1}, teacher_ckpt="G.pkl")
    with pytest.raises(BankError) as e:
        check_bank(h, BankExpectation("sg2-latent", "o.pkl", 32, {"m": 2}), "B")
    msg = str(e.value)
    assert msg == ("feature bank B was built from another teacher than this run's: teacher 'sg2-generator' (the "
                   "run's is 'sg2-latent'); resolution 16 px (the run trains at 32 px); teacher settings {'m': 1} "
                   "(the run's are {'m': 2}); checkpoint G.pkl (the run's teacher checkpoint o.pkl has other "
                   "weights). Build a matching bank with `gandistill bank build` or drop --bank.")


# --- replaying a bank ------------------------------------------------------------------------------------

def test_bank_teacher_attributes_and_describe(tmp_path, ckpt):
    out, _ = _build(tmp_path, ckpt, n=7, c_dim=3)
    bt = BankTeacher(out)
    assert (bt.n, bt.img_channels, bt.img_resolution) == (7, 1, 2)
    assert bt.target_names == ("a", "b") and bt.target_dims == (2, 3)
    assert bt.ckpt_path == str(ckpt) and bt.teacher_name == "fake" and bt.c_dim == 3
    assert bt.path == out / BANK_FILE and bt.device == torch.device("cpu")
    assert not bt.training and list(bt.parameters()) == []
    d = bt.describe()
    assert d["bank"] == str(out / BANK_FILE) and d["n"] == 7 and d["teacher"] == "fake" and d["ckpt"] == str(ckpt)
    assert d["teacher_fingerprint"] == checkpoint_fingerprint(ckpt) and d["c_dim"] == 3
    assert d["class"] == "BankTeacher" and d["target_dims"] == [2, 3] and d["img_resolution"] == 2


def test_bank_teacher_c_dim_without_describe(tmp_path, ckpt):
    for i, desc in enumerate(({"class": "Fake"}, {"c_dim": None}, {})):
        t = FakeTeacher(describe=desc)
        build_bank(t, 2, tmp_path / f"d{i}", teacher_name="fake", ckpt=ckpt)
        assert BankTeacher(tmp_path / f"d{i}").c_dim == 0


def test_bank_teacher_of_a_minimal_header(tmp_path):
    # only the required fields: no describe (c_dim 0), no labels, no settings
    _write(tmp_path / "m", _header(), total=4096 + 6)
    bt = BankTeacher(tmp_path / "m")
    assert bt.c_dim == 0 and bt.stored_labels() is None and bt.n == 2 and bt.target_dims == (1,)
    assert bt.sample(3).images.tolist() == [[[[-1.0]]]] * 3                  # zero bytes: code 0 is -1


def test_bank_teacher_checks_only_when_asked(tmp_path, ckpt):
    out, _ = _build(tmp_path, ckpt, n=3)
    assert BankTeacher(out).teacher_name == "fake"                             # no expectation: no check
    assert BankTeacher(out, BankExpectation("fake", ckpt, 2, {})).n == 3
    with pytest.raises(BankError, match=r"feature bank \S*/bank\.bin was built .*: resolution 2 px"):
        BankTeacher(out, BankExpectation("fake", ckpt, 4))
    with pytest.raises(BankError, match="teacher settings"):
        BankTeacher(out, BankExpectation("fake", ckpt, 2, {"mode": "x"}))


def test_bank_teacher_sample_replays_the_stored_items(tmp_path, ckpt):
    out, _ = _build(tmp_path, ckpt, n=7, batch=3, seed=5, c_dim=3)
    u8, f16, lab = _reference(7, 3, 5, c_dim=3)
    bt = BankTeacher(out)
    idx = torch.randint(7, (11,), generator=torch.Generator().manual_seed(9)).numpy()    # uniform, replacement
    assert np.array_equal(bt.indices(11, torch.Generator().manual_seed(9)).numpy(), idx)
    s = bt.sample(11, generator=torch.Generator().manual_seed(9))
    assert s.images.dtype == torch.float32 and s.images.shape == (11, 1, 2, 2)
    assert np.allclose(s.images.numpy(), u8[idx].astype(np.float64) / 127.5 - 1.0, rtol=0, atol=1e-6)
    assert [t.shape for t in s.targets] == [(11, 2), (11, 3)] and all(t.dtype == torch.float32 for t in s.targets)
    want = f16[idx].astype(np.float32)
    assert np.array_equal(s.targets[0].numpy(), want[:, :2]) and np.array_equal(s.targets[1].numpy(), want[:, 2:])
    assert s.labels.dtype == torch.int64 and np.array_equal(s.labels.numpy(), lab[idx]) and s.ws is None
    assert np.array_equal(bt.stored_labels(), lab)
    # the image codes 0 and 255 are exactly -1 and 1
    assert float(s.images.min()) >= -1.0 and float(s.images.max()) <= 1.0
    unc, _ = _build(tmp_path, ckpt, name="u", n=4)
    bu = BankTeacher(unc)
    assert bu.sample(3).labels is None and bu.stored_labels() is None


def test_bank_teacher_refuses_non_finite_targets(tmp_path, ckpt):
    out, _ = _build(tmp_path, ckpt, n=2, batch=2)
    path = out / BANK_FILE
    raw = bytearray(path.read_bytes())
    t0 = 4096 + 2 * 4
    for code, bad in ((0x7BFF, False), (0xFBFF, False), (0x0001, False), (0x7C00, True), (0xFC00, True),
                      (0x7E00, True), (0x7C01, True), (0xFFFF, True)):
        for row in range(2):
            raw[t0 + row * 10 + 6:t0 + row * 10 + 8] = struct.pack("<H", code)     # target 3 of each row
        path.write_bytes(bytes(raw))
        bt = BankTeacher(out)
        if bad:
            with pytest.raises(BankError, match=r"the bank holds non-finite targets \(NaN or inf\)"):
                bt.sample(2)
        else:
            v = bt.sample(2).targets[1][:, 1]
            want = float(np.frombuffer(struct.pack("<H", code), "<f2")[0])
            assert v.tolist() == [want, want]


def test_bank_teacher_device_moves(tmp_path, ckpt):
    out, _ = _build(tmp_path, ckpt, n=3, c_dim=2)
    bt = BankTeacher(out, device="meta")
    assert bt.device == torch.device("meta")
    s = bt.sample(2)
    assert s.images.device.type == "meta" and s.targets[0].device.type == "meta" and s.labels.device.type == "meta"
    assert bt.to("cpu") is bt and bt.device == torch.device("cpu")
    assert bt.to(torch.float16) is bt and bt.device == torch.device("cpu")       # not a device: nothing moves
    assert bt.to(device="meta") is bt and bt.device == torch.device("meta")
    assert bt.to(torch.device("cpu")).device == torch.device("cpu")
    assert bt.to().device == torch.device("cpu")
    assert bt.sample(2).images.device.type == "cpu"


def test_bank_truncated_while_in_use_is_a_clean_error(tmp_path, ckpt):
    out, _ = _build(tmp_path, ckpt, n=4, c_dim=2)
    bt = BankTeacher(out)
    assert bt.sample(4).images.shape[0] == 4
    with open(out / BANK_FILE, "r+b") as f:
        f.truncate(4096 + 10)
    with pytest.raises(BankError, match="the feature bank is shorter than expected"):
        bt.sample(32, generator=torch.Generator().manual_seed(0))
    with pytest.raises(BankError, match="shorter than expected"):
        bt.stored_labels()
