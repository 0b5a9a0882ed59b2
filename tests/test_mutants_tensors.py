"""Deterministic rules of the weights layer (``gandistill/io/tensors.py``) and of the atomic writers of
``gandistill/io/files.py``, stated independently of the code (for mutation testing: ``scripts/mutation.sh
tensors``): safetensors headers built byte by byte at exactly each limit and one past it, every dtype's
item size, the tiling rule, the exact refusal messages, the bounded ``train_state.pt`` reader (zip members,
declared sizes, pickle size and float counts), and the write / fsync / rename order of the atomic writer.
Fast: tiny files in ``tmp_path``; the big limits are lowered with ``monkeypatch`` (the module reads them at
call time) and their real values are asserted separately."""
import datetime
import io
import json
import math
import os
import pickle
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

from gandistill.io import files as F
from gandistill.io import tensors as T
from gandistill.io.errors import GandistillError, UnsafeFileError, show_path


class OtherError(GandistillError):
    """A caller's own error type (e.g. ResumeError): every refusal must come as this type."""


# the rule for item sizes, written out (not read from the module)
ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
TORCH_DTYPE = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
               "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
               "BOOL": torch.bool}
P = "w/x.safetensors"


def blob(header, data=b"", n=None, pad=0):
    """A safetensors file: 8-byte little-endian header length, the JSON header (``pad`` trailing spaces),
    then ``data``; ``n`` overrides the length field."""
    hj = json.dumps(header).encode() + b" " * pad
    return struct.pack("<Q", len(hj) if n is None else n) + hj + data


def ent(dtype="U8", shape=(1,), offs=(0, 1)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offs)}


def fail_msg(msg, path=P):
    return f"{show_path(path)} is truncated or corrupt or unreadable as safetensors ({msg})"


def parse(raw, data_size=None, error=UnsafeFileError, path=P):
    return T.parse_safetensors_header(raw, path, error, data_size=data_size)


def refused(raw, data_size=None, error=UnsafeFileError, path=P):
    with pytest.raises(GandistillError) as ei:
        parse(raw, data_size, error, path)
    assert type(ei.value) is error
    return str(ei.value)


# ------------------------------------------------------------------------------------------------ constants


def test_limits_and_dtype_table():
    assert (T.MAX_HEADER, T.MAX_ENTRIES, T.MAX_DIMS) == (8 * 2 ** 20, 20_000, 8)
    assert (T.MAX_PICKLE, T.MAX_PICKLE_FLOATS, T.MAX_ZIP_MEMBERS) == (2 ** 20, 8192, 100_000)
    assert {k: v[1] for k, v in T.DTYPES.items()} == ITEMSIZE
    assert {k: v[0] for k, v in T.DTYPES.items()} == TORCH_DTYPE
    assert T._FLOATY == {"BINFLOAT", "FLOAT", "LONG1", "LONG4", "LONG"}


# ------------------------------------------------------------------------------------------------ header parsing


def test_a_valid_header_is_returned_with_its_metadata_and_data_start():
    h = {"a": ent("F32", (2, 3), (0, 24)), "b": ent("U8", (4,), (24, 28)), "__metadata__": {"step": "7"}}
    raw = blob(h, b"\0" * 28)
    hj_len = len(json.dumps(h).encode())
    entries, meta, start = parse(raw, data_size=28)
    assert entries == {"a": ent("F32", (2, 3), (0, 24)), "b": ent("U8", (4,), (24, 28))}
    assert meta == {"step": "7"}
    assert start == 8 + hj_len
    # without data_size the offsets are checked among themselves only
    assert parse(raw) == (entries, meta, start)


def test_the_error_type_and_path_are_the_callers():
    msg = refused(b"1234567", error=OtherError, path="some/where.st")
    assert msg == fail_msg("shorter than its 8-byte header length", "some/where.st")
    with pytest.raises(OtherError) as ei:
        parse(b"", error=OtherError, path="q.st")
    assert ei.value.path == "q.st"


def test_default_path_and_error_type():
    with pytest.raises(UnsafeFileError) as ei:
        T.parse_safetensors_header(b"\0" * 7)
    assert type(ei.value) is UnsafeFileError
    assert str(ei.value) == fail_msg("shorter than its 8-byte header length", "")


@pytest.mark.parametrize("k", [0, 1, 7])
def test_shorter_than_eight_bytes_is_refused(k):
    assert refused(b"\x00" * k) == fail_msg("shorter than its 8-byte header length")


def test_eight_bytes_are_enough_to_read_the_length():
    # 8 bytes declaring an empty header: the length is read, then the (empty) JSON is refused as JSON
    assert "header: " in refused(struct.pack("<Q", 0))
    assert "shorter" not in refused(struct.pack("<Q", 0))


def test_header_length_limit_exactly_and_one_past(monkeypatch):
    monkeypatch.setattr(T, "MAX_HEADER", 64)
    # exactly the limit: accepted as a length (then: the bytes are missing -> truncated)
    assert refused(struct.pack("<Q", 64)) == fail_msg("truncated inside its header")
    assert refused(struct.pack("<Q", 65)) == fail_msg("a header of 65 bytes (at most 64)")
    # a full header of exactly 64 bytes parses
    hj = json.dumps({"a": ent("U8", (0,), (0, 0))}).encode()
    raw = struct.pack("<Q", 64) + hj + b" " * (64 - len(hj))
    assert parse(raw)[2] == 72


def test_the_real_header_limit_applies_to_the_length_field():
    assert refused(struct.pack("<Q", 8 * 2 ** 20 + 1)) == fail_msg(f"a header of {8 * 2 ** 20 + 1} bytes (at most "
                                                                   f"{8 * 2 ** 20})")
    assert refused(struct.pack("<Q", 8 * 2 ** 20)) == fail_msg("truncated inside its header")
    assert refused(struct.pack("<Q", 2 ** 64 - 1)) == fail_msg(f"a header of {2 ** 64 - 1} bytes (at most {8 * 2 ** 20})")


def test_the_header_length_is_little_endian_and_exact():
    hj = b'{"__metadata__":{"a":"b"}}'
    ok = struct.pack("<Q", len(hj)) + hj
    assert parse(ok) == ({}, {"a": "b"}, 8 + len(hj))
    # one byte missing from the header
    assert refused(ok[:-1]) == fail_msg("truncated inside its header")
    # trailing bytes after the header are data, not header
    assert parse(ok + b"xyz")[2] == 8 + len(hj)
    # the length read big-endian would be huge
    assert "a header of" in refused(struct.pack(">Q", len(hj)) + hj)


def test_header_json_errors_are_wrapped():
    msg = refused(struct.pack("<Q", 3) + b"{x}")
    assert msg.startswith(fail_msg("header: corrupt JSON")[:-1])
    assert msg == fail_msg("header: corrupt JSON (Expecting property name enclosed in double quotes at line 1 column 2)")


@pytest.mark.parametrize("top", [[], "x", 1, None])
def test_header_must_be_an_object(top):
    assert refused(blob(top)) == fail_msg("the header is not a JSON object")


@pytest.mark.parametrize("meta", [[], "x", None, {"a": 1}, {"a": "b", "c": None}, {"a": ["b"]}])
def test_metadata_must_map_strings_to_strings(meta):
    assert refused(blob({"__metadata__": meta})) == fail_msg("__metadata__ must map strings to strings")


def test_metadata_is_optional_and_not_a_tensor():
    assert parse(blob({}), data_size=0) == ({}, {}, 10)
    assert parse(blob({"__metadata__": {}}), data_size=0) == ({}, {}, 8 + len(b'{"__metadata__": {}}'))


def _many(n):
    return {f"t{i}": ent("U8", (0,), (0, 0)) for i in range(n)}


def test_entry_count_limit_exactly_and_one_past(monkeypatch):
    monkeypatch.setattr(T, "MAX_ENTRIES", 5)
    assert len(parse(blob(_many(5)), data_size=0)[0]) == 5
    # the metadata is not a tensor
    assert len(parse(blob({**_many(5), "__metadata__": {"k": "v"}}), data_size=0)[0]) == 5
    assert refused(blob(_many(6)), data_size=0) == fail_msg("6 tensors (at most 5)")


def test_entry_count_limit_is_checked_before_the_entries(monkeypatch):
    monkeypatch.setattr(T, "MAX_ENTRIES", 2)
    assert refused(blob({"a": 1, "b": 2, "c": 3})) == fail_msg("3 tensors (at most 2)")


@pytest.mark.parametrize("e", [1, [], "x", None, {"dtype": "U8", "shape": [1]},
                               {"dtype": "U8", "shape": [1], "data_offsets": [0, 1], "extra": 1},
                               {"dtype": "U8", "shape": [1], "offsets": [0, 1]}])
def test_an_entry_has_exactly_the_three_fields(e):
    assert refused(blob({"w": e})) == fail_msg("tensor 'w': entry must have exactly dtype, shape, data_offsets")


def test_the_tensor_name_is_escaped_and_cut_in_messages():
    name = "a\nb" + "x" * 200
    msg = refused(blob({name: 1}))
    cut = "a\\nb" + "x" * 200
    want_name = cut[:38] + "..." + cut[-39:]   # one_line(name, 80): 38 + '...' + 39 characters
    assert msg == fail_msg(f"tensor {want_name!r}: entry must have exactly dtype, shape, data_offsets")


@pytest.mark.parametrize("dt, shown", [("F8", "'F8'"), ("f32", "'f32'"), (1, "1"), (None, "None"), (["F32"], "['F32']"),
                                       ("F" * 40, "'FFFFFFF...FFFFFFFF'")])
def test_unsupported_dtypes_are_refused(dt, shown):
    e = {"dtype": dt, "shape": [1], "data_offsets": [0, 1]}
    assert refused(blob({"w": e})) == fail_msg(f"tensor 'w': unsupported dtype {shown}")


@pytest.mark.parametrize("dt", sorted(ITEMSIZE))
def test_each_dtype_needs_shape_times_its_item_size(dt):
    size = ITEMSIZE[dt] * 6
    assert parse(blob({"w": ent(dt, (2, 3), (0, size))}), data_size=size)[0]["w"]["dtype"] == dt
    for wrong in (size - 1, size + 1):
        assert refused(blob({"w": ent(dt, (2, 3), (0, wrong))})) == fail_msg(
            f"tensor 'w': offsets span {wrong} bytes, its shape needs {size}")


def test_the_offset_span_is_end_minus_start():
    h = {"a": ent("U8", (2,), (0, 2)), "b": ent("U8", (3,), (2, 5))}
    assert parse(blob(h), data_size=5)[0] == h
    assert refused(blob({"b": ent("U8", (3,), (2, 6))})) == fail_msg("tensor 'b': offsets span 4 bytes, its shape needs 3")


def test_scalar_and_empty_shapes():
    # shape [] is a scalar: one element
    assert parse(blob({"s": ent("F32", (), (0, 4))}), data_size=4)[0]["s"]["shape"] == []
    assert parse(blob({"z": ent("F32", (3, 0), (0, 0))}), data_size=0)[0]["z"]["shape"] == [3, 0]


SHAPE_MSG = "tensor 'w': shape must be at most 8 non-negative integers"


def test_shape_dimension_count_limit():
    assert parse(blob({"w": ent("U8", (1,) * 8, (0, 1))}), data_size=1)[0]["w"]["shape"] == [1] * 8
    assert refused(blob({"w": ent("U8", (1,) * 9, (0, 1))})) == fail_msg(SHAPE_MSG)


@pytest.mark.parametrize("shape", [[-1], [1, -1], [1.0], [True], ["1"], [None], [2 ** 40], [1, 2 ** 40]])
def test_bad_dimensions_are_refused(shape):
    e = {"dtype": "U8", "shape": shape, "data_offsets": [0, 1]}
    assert refused(blob({"w": e})) == fail_msg(SHAPE_MSG)


@pytest.mark.parametrize("shape", [{"a": 1}, 1, "1", None])
def test_shape_must_be_a_list(shape):
    e = {"dtype": "U8", "shape": shape, "data_offsets": [0, 1]}
    assert refused(blob({"w": e})) == fail_msg(SHAPE_MSG)


def test_largest_dimension_is_accepted():
    d = 2 ** 40 - 1
    assert parse(blob({"w": ent("U8", (d,), (0, d))}))[0]["w"]["shape"] == [d]
    assert parse(blob({"w": ent("U8", (0,), (0, 0))}), data_size=0)[0]["w"]["shape"] == [0]


OFFS_MSG = "tensor 'w': data_offsets must be two non-negative integers"


@pytest.mark.parametrize("offs", [[0], [0, 1, 1], [], [-1, 0], [0, -1], [0.0, 1], [0, 1.0], [False, True],
                                  ["0", "1"], [None, 1], [0, 2 ** 62], [2 ** 62, 2 ** 62 + 1], {"a": 0}, 1, None])
def test_bad_offsets_are_refused(offs):
    e = {"dtype": "U8", "shape": [1], "data_offsets": offs}
    assert refused(blob({"w": e})) == fail_msg(OFFS_MSG)


def test_largest_offset_is_accepted():
    end = 2 ** 62 - 1   # = 3 * 715827883 * 2147483647, each factor under 2 ** 40
    shape = (3, 715827883, 2147483647)
    assert math.prod(shape) == end
    assert parse(blob({"w": ent("U8", shape, (0, end))}))[0]["w"]["data_offsets"] == [0, end]
    assert parse(blob({"w": ent("U8", shape, (0, end))}), data_size=end)[0]["w"]["data_offsets"] == [0, end]


def test_data_past_the_end_of_the_file():
    h = {"w": ent("U8", (4,), (0, 4))}
    assert parse(blob(h), data_size=4)[0] == h
    assert refused(blob(h), data_size=3) == fail_msg("tensor 'w': data past the end of the file (truncated?)")
    assert refused(blob(h), data_size=5) == fail_msg("the tensors cover 4 bytes of data, the file holds 5")


def test_the_tensors_must_tile_the_data():
    a, b = ent("U8", (2,), (0, 2)), ent("U8", (3,), (2, 5))
    assert parse(blob({"b": b, "a": a}), data_size=5)[0] == {"b": b, "a": a}   # any order in the JSON
    gap = {"a": a, "b": ent("U8", (3,), (3, 6))}
    overlap = {"a": a, "b": ent("U8", (3,), (1, 4))}
    late = {"a": ent("U8", (2,), (1, 3))}
    same = {"a": a, "b": ent("U8", (2,), (0, 2))}
    for h in (gap, overlap, late, same):
        assert refused(blob(h)) == fail_msg("tensors overlap or leave a gap in the data")
    # empty tensors may sit anywhere inside the tiling, at a boundary
    assert parse(blob({"a": a, "e": ent("U8", (0,), (2, 2)), "b": b}), data_size=5)[0]["e"]["data_offsets"] == [2, 2]


def test_empty_file_data():
    assert parse(blob({}), data_size=0)[0] == {}
    assert refused(blob({}), data_size=1) == fail_msg("the tensors cover 0 bytes of data, the file holds 1")
    assert parse(blob({}))[0] == {}


# ------------------------------------------------------------------------------------------------ reading files


def write(tmp_path, raw, name="m.safetensors"):
    p = tmp_path / name
    p.write_bytes(raw)
    return p


def test_read_header_of_a_real_file(tmp_path):
    t = {"a": torch.arange(6, dtype=torch.float32).view(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    p = write(tmp_path, st_save(t, metadata={"step": "3"}))
    entries, meta = T.read_safetensors_header(p)
    assert meta == {"step": "3"}
    assert entries["a"]["shape"] == [2, 3] and entries["a"]["dtype"] == "F32"
    assert entries["b"]["shape"] == [2] and entries["b"]["dtype"] == "I64"


def test_read_header_with_file_sizes(tmp_path):
    h = {"w": ent("U8", (4,), (0, 4))}
    assert T.read_safetensors_header(write(tmp_path, blob(h, b"abcd"))) == (h, {})
    p = write(tmp_path, blob(h, b"abc"))
    with pytest.raises(UnsafeFileError) as ei:
        T.read_safetensors_header(p)
    assert str(ei.value) == fail_msg("tensor 'w': data past the end of the file (truncated?)", p)
    p = write(tmp_path, blob(h, b"abcde"))
    with pytest.raises(OtherError) as ei:
        T.read_safetensors_header(p, error=OtherError)
    assert str(ei.value) == fail_msg("the tensors cover 4 bytes of data, the file holds 5", p)


def test_read_header_of_a_header_only_file(tmp_path):
    # data size 0: the file ends right after the header
    assert T.read_safetensors_header(write(tmp_path, blob({"__metadata__": {"a": "b"}}))) == ({}, {"a": "b"})


@pytest.mark.parametrize("k", [0, 1, 7])
def test_read_header_of_a_short_file(tmp_path, k):
    p = write(tmp_path, b"\x05" * k)
    with pytest.raises(UnsafeFileError) as ei:
        T.read_safetensors_header(p)
    assert str(ei.value) == fail_msg("shorter than its 8-byte header length", p)


def test_read_header_reads_exactly_the_header(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "MAX_HEADER", 64)
    hj = json.dumps({"w": ent("U8", (3,), (0, 3))}).encode()
    hj += b" " * (64 - len(hj))
    p = write(tmp_path, struct.pack("<Q", 64) + hj + b"abc")
    assert T.read_safetensors_header(p)[0] == {"w": ent("U8", (3,), (0, 3))}
    p = write(tmp_path, struct.pack("<Q", 65) + hj + b" abc")
    with pytest.raises(UnsafeFileError) as ei:
        T.read_safetensors_header(p)
    assert str(ei.value) == fail_msg("a header of 65 bytes (at most 64)", p)


def test_read_header_of_a_huge_length_reads_nothing_more(tmp_path, monkeypatch):
    calls = []
    real = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, off: calls.append((n, off)) or real(fd, n, off))
    p = write(tmp_path, struct.pack("<Q", 2 ** 63) + b"{}")
    with pytest.raises(UnsafeFileError, match="a header of"):
        T.read_safetensors_header(p)
    assert calls == [(8, 0)]
    calls.clear()
    h = {"w": ent("U8", (1,), (0, 1))}
    raw = blob(h, b"z")
    T.read_safetensors_header(write(tmp_path, raw))
    assert calls == [(8, 0), (len(raw) - 9, 8)]


def test_read_header_refuses_non_files_with_the_what(tmp_path):
    with pytest.raises(UnsafeFileError) as ei:
        T.read_safetensors_header(tmp_path, what="student file")
    assert str(ei.value).endswith("the student file is a directory, not a regular file; refusing to read it")
    with pytest.raises(FileNotFoundError, match="missing weights file"):
        T.read_safetensors_header(tmp_path / "nope")


def test_read_header_closes_its_descriptor(tmp_path, monkeypatch):
    closed = []
    real = os.close
    monkeypatch.setattr(os, "close", lambda fd: closed.append(fd) or real(fd))
    T.read_safetensors_header(write(tmp_path, blob({})))
    assert len(closed) == 1


def test_read_safetensors_round_trip(tmp_path):
    t = {k: (torch.arange(6) % 2).to(TORCH_DTYPE[k]).view(2, 3) for k in ITEMSIZE}
    p = write(tmp_path, st_save(t, metadata={"m": "1"}))
    got, meta = T.read_safetensors(p)
    assert meta == {"m": "1"}
    assert set(got) == set(t)
    for k in t:
        assert got[k].dtype == TORCH_DTYPE[k] and torch.equal(got[k], t[k])


def test_read_safetensors_checks_the_header_against_the_file(tmp_path):
    h = {"w": ent("U8", (4,), (0, 4))}
    got, meta = T.read_safetensors(write(tmp_path, blob(h, b"abcd")))
    assert got["w"].tolist() == list(b"abcd") and meta == {}
    p = write(tmp_path, blob(h, b"abcde"))
    with pytest.raises(UnsafeFileError) as ei:
        T.read_safetensors(p)
    assert str(ei.value) == fail_msg("the tensors cover 4 bytes of data, the file holds 5", p)
    p = write(tmp_path, blob(h, b"abc"))
    with pytest.raises(OtherError) as ei:
        T.read_safetensors(p, error=OtherError)
    assert str(ei.value) == fail_msg("tensor 'w': data past the end of the file (truncated?)", p)


def test_read_safetensors_of_a_header_only_file(tmp_path):
    assert T.read_safetensors(write(tmp_path, blob({"__metadata__": {"a": "b"}}))) == ({}, {"a": "b"})


@pytest.mark.parametrize("k", [0, 7])
def test_read_safetensors_of_a_short_file(tmp_path, k):
    p = write(tmp_path, b"\x01" * k)
    with pytest.raises(OtherError) as ei:
        T.read_safetensors(p, error=OtherError)
    assert str(ei.value) == fail_msg("shorter than its 8-byte header length", p)


def test_read_safetensors_of_eight_bytes(tmp_path):
    p = write(tmp_path, struct.pack("<Q", 2))
    with pytest.raises(UnsafeFileError) as ei:
        T.read_safetensors(p)
    assert str(ei.value) == fail_msg("truncated inside its header", p)


def test_read_safetensors_converts_file_refusals_to_the_callers_type(tmp_path):
    with pytest.raises(OtherError) as ei:
        T.read_safetensors(tmp_path, "student file", OtherError)
    assert type(ei.value) is OtherError
    assert str(ei.value).endswith("the student file is a directory, not a regular file; refusing to read it")
    with pytest.raises(UnsafeFileError) as ei:
        T.read_safetensors(tmp_path)
    assert type(ei.value) is UnsafeFileError
    assert "the weights file is a directory" in str(ei.value)


def test_read_safetensors_keeps_a_refusal_already_of_the_callers_type(tmp_path):
    # UnsafeFileError is a subtype of what the caller asked for: re-raised unchanged (same object type)
    with pytest.raises(UnsafeFileError) as ei:
        T.read_safetensors(tmp_path, error=UnsafeFileError)
    assert ei.value.path == str(tmp_path)


def test_read_safetensors_size_cap(tmp_path):
    raw = blob({"w": ent("U8", (4,), (0, 4))}, b"abcd")
    p = write(tmp_path, raw)
    assert T.read_safetensors(p, max_bytes=len(raw))[0]["w"].numel() == 4
    with pytest.raises(OtherError, match="over the"):
        T.read_safetensors(p, error=OtherError, max_bytes=len(raw) - 1)


def test_read_safetensors_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing weights file"):
        T.read_safetensors(tmp_path / "nope")


def test_read_safetensors_wraps_the_library_refusals(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    p = write(tmp_path, blob({}))
    for exc in (SafetensorError("bad\nthing"), ValueError("v"), RuntimeError("r")):
        def boom(raw, exc=exc):
            raise exc
        monkeypatch.setattr(T, "st_load", boom)
        with pytest.raises(OtherError) as ei:
            T.read_safetensors(p, error=OtherError)
        assert str(ei.value) == fail_msg(str(exc).replace("\n", "\\n"), p)
    monkeypatch.setattr(T, "st_load", lambda raw: (_ for _ in ()).throw(KeyError("k")))
    with pytest.raises(KeyError):
        T.read_safetensors(p)


def test_read_safetensors_gives_the_library_the_whole_file(tmp_path, monkeypatch):
    raw = blob({"w": ent("U8", (2,), (0, 2))}, b"hi")
    seen = []
    monkeypatch.setattr(T, "st_load", lambda b: seen.append(b) or {})
    T.read_safetensors(write(tmp_path, raw))
    assert seen == [raw]


# ------------------------------------------------------------------------------------------------ state checks


def test_mismatch_report_exact():
    own = {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(1, 2)}
    assert T.mismatch_report(own, {"a": torch.ones(2), "b": torch.ones(3), "c": torch.ones(1, 2)}) == ""
    stored = {"a": torch.zeros(2), "c": torch.zeros(2, 1), "x": torch.zeros(1)}
    assert T.mismatch_report(own, stored) == ("1 missing keys (e.g. b); 1 unexpected keys (e.g. x); "
                                              "1 shape mismatch (e.g. c (2, 1) != (1, 2))")
    assert T.mismatch_report(own, {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(1, 2),
                                   "y": torch.zeros(1)}) == "1 unexpected keys (e.g. y)"
    assert T.mismatch_report({}, {}) == ""


def test_mismatch_report_examples_are_at_most_three():
    own = {f"k{i}": torch.zeros(1) for i in range(4)}
    assert T.mismatch_report(own, {}) == "4 missing keys (e.g. k0, k1, k2, ...)"
    assert T.mismatch_report(dict(list(own.items())[:3]), {}) == "3 missing keys (e.g. k0, k1, k2)"
    assert T.mismatch_report({}, own) == "4 unexpected keys (e.g. k0, k1, k2, ...)"
    wrong = {k: torch.zeros(2) for k in own}
    assert T.mismatch_report(own, wrong) == ("4 shape mismatch (e.g. k0 (2,) != (1,), k1 (2,) != (1,), "
                                             "k2 (2,) != (1,), ...)")


def test_mismatch_report_escapes_and_cuts_keys():
    key = "q\x1b" + "z" * 200
    out = T.mismatch_report({key: torch.zeros(1)}, {})
    esc = "q\\x1b" + "z" * 200
    assert out == f"1 missing keys (e.g. {esc[:58]}...{esc[-59:]})"


def test_mismatch_report_is_one_bounded_line():
    own = {("n" * 119 + str(i)): torch.zeros(1) for i in range(5)}
    out = T.mismatch_report(own, {"x\ny" * 100: torch.zeros(1)})
    assert len(out) == 400 and "\n" not in out


def test_check_state_accepts_a_fitting_state():
    exp = {"w": torch.zeros(2, 3), "n": torch.zeros((), dtype=torch.int64)}
    T.check_state({"w": torch.ones(2, 3), "n": torch.tensor(5)}, exp)


def test_check_state_refuses_keys_and_shapes_with_the_report():
    exp = {"w": torch.zeros(2, 3)}
    with pytest.raises(OtherError) as ei:
        T.check_state({"w": torch.zeros(3, 2)}, exp, "p/q.st", OtherError, "student weights")
    assert str(ei.value) == ("p/q.st: the student weights do not fit the network: 1 shape mismatch "
                             "(e.g. w (3, 2) != (2, 3))")
    assert ei.value.path == "p/q.st"
    with pytest.raises(UnsafeFileError) as ei:
        T.check_state({}, exp)
    assert str(ei.value) == "the weights do not fit the network: 1 missing keys (e.g. w)"  # show_path("") is ""


def test_check_state_refuses_another_dtype():
    exp = {"a": torch.zeros(2), "w": torch.zeros(2)}
    with pytest.raises(OtherError) as ei:
        T.check_state({"a": torch.zeros(2), "w": torch.zeros(2, dtype=torch.float64)}, exp, "f.st", OtherError, "head")
    assert str(ei.value) == ("f.st: the head do not fit the network: tensor 'w' is torch.float64, the network expects "
                             "torch.float32 (refusing to cast)")
    with pytest.raises(UnsafeFileError, match="tensor 'n' is torch.int32"):
        T.check_state({"n": torch.zeros(1, dtype=torch.int32)}, {"n": torch.zeros(1, dtype=torch.int64)})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_check_state_refuses_non_finite_values(bad, dtype):
    exp = {"a": torch.zeros(3, dtype=dtype), "b": torch.zeros(3, dtype=dtype)}
    state = {"a": torch.zeros(3, dtype=dtype), "b": torch.tensor([0.0, bad, 1.0], dtype=dtype)}
    with pytest.raises(OtherError) as ei:
        T.check_state(state, exp, "g.st", OtherError, "weights")
    assert str(ei.value) == "g.st: the weights hold non-finite values (NaN or inf) in tensor 'b'"


def test_check_state_ignores_integer_tensors_values():
    exp = {"i": torch.zeros(2, dtype=torch.int64), "b": torch.zeros(2, dtype=torch.bool)}
    T.check_state({"i": torch.tensor([2 ** 62, -5]), "b": torch.tensor([True, False])}, exp)


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 3)
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))


def test_load_module_state(tmp_path):
    src = Tiny()
    with torch.no_grad():
        src.lin.weight.copy_(torch.arange(6.0).view(3, 2))
        src.count.fill_(4)
    p = tmp_path / "t.safetensors"
    p.write_bytes(st_save({k: v.contiguous() for k, v in src.state_dict().items()}, metadata={"step": "9"}))
    dst = Tiny()
    assert T.load_module_state(dst, p) == {"step": "9"}
    assert torch.equal(dst.lin.weight, src.lin.weight) and int(dst.count) == 4


def test_load_module_state_refuses_with_the_callers_type_and_words(tmp_path):
    p = tmp_path / "t.safetensors"
    p.write_bytes(st_save({"lin.weight": torch.zeros(3, 2), "lin.bias": torch.full((3,), float("nan")),
                           "count": torch.zeros((), dtype=torch.int64)}))
    dst = Tiny()
    before = dst.lin.bias.clone()
    with pytest.raises(OtherError) as ei:
        T.load_module_state(dst, p, OtherError, "head")
    assert str(ei.value) == f"{show_path(p)}: the head hold non-finite values (NaN or inf) in tensor 'lin.bias'"
    assert torch.equal(dst.lin.bias, before)
    with pytest.raises(OtherError) as ei:
        T.load_module_state(dst, tmp_path, OtherError, "head")
    assert "the head file is a directory" in str(ei.value)
    with pytest.raises(UnsafeFileError) as ei:
        T.load_module_state(dst, tmp_path)
    assert "the weights file is a directory" in str(ei.value)
    p.write_bytes(st_save({"lin.weight": torch.zeros(3, 2)}))
    with pytest.raises(UnsafeFileError) as ei:
        T.load_module_state(dst, p)
    assert "the weights do not fit the network: 2 missing keys (e.g. count, lin.bias)" in str(ei.value)


# ------------------------------------------------------------------------------------------------ train_state.pt


def saved(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def zip_of(members, compress=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def set_declared_size(raw, member, size):
    """Rewrite the central directory's uncompressed size of ``member`` (what ``infolist`` reports)."""
    name = member.encode()
    i = raw.index(b"PK\x01\x02")
    while i >= 0:
        n_len = struct.unpack("<H", raw[i + 28:i + 30])[0]
        if raw[i + 46:i + 46 + n_len] == name:
            return raw[:i + 24] + struct.pack("<I", size) + raw[i + 28:]
        i = raw.find(b"PK\x01\x02", i + 4)
    raise KeyError(member)


def ts(tmp_path, raw, name="train_state.pt"):
    p = tmp_path / name
    p.write_bytes(raw)
    return p


def read_refused(p, error=OtherError, **kw):
    with pytest.raises(GandistillError) as ei:
        T.read_train_state(p, error, **kw)
    assert type(ei.value) is error
    return str(ei.value)


def test_train_state_round_trip(tmp_path):
    state = {"step": 3, "optimizer": {"state": {0: {"exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 0.1}]},
             "rng_cpu": torch.get_rng_state(), "stream": None, "x": 1.5}
    got = T.read_train_state(ts(tmp_path, saved(state)))
    assert got["step"] == 3 and got["x"] == 1.5 and got["stream"] is None
    assert torch.equal(got["optimizer"]["state"][0]["exp_avg"], torch.ones(2))
    assert torch.equal(got["rng_cpu"], state["rng_cpu"])
    assert got["optimizer"]["state"][0]["exp_avg"].device.type == "cpu"


def test_train_state_must_be_a_dict(tmp_path):
    p = ts(tmp_path, saved([1, 2]))
    assert read_refused(p) == f"{show_path(p)}: the training state holds a list, not a dict"
    assert read_refused(ts(tmp_path, saved(None)), UnsafeFileError).endswith("holds a NoneType, not a dict")


def test_train_state_is_loaded_weights_only(tmp_path):
    p = ts(tmp_path, saved({"d": datetime.date(2020, 1, 1)}))
    msg = read_refused(p)
    assert msg.startswith(f"{show_path(p)} is truncated or corrupt (UnpicklingError: ")


def test_train_state_not_a_zip(tmp_path):
    p = ts(tmp_path, b"not a zip at all")
    assert read_refused(p) == (f"{show_path(p)} is truncated or corrupt (not a readable torch.save zip: "
                               "File is not a zip file)")
    assert read_refused(ts(tmp_path, b""), UnsafeFileError).endswith("File is not a zip file)")


def test_train_state_file_refusals_take_the_callers_type(tmp_path):
    msg = read_refused(tmp_path)
    assert msg.endswith("the training state is a directory, not a regular file; refusing to read it")
    with pytest.raises(UnsafeFileError) as ei:
        T.read_train_state(tmp_path)
    assert type(ei.value) is UnsafeFileError and ei.value.path == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing training state"):
        T.read_train_state(tmp_path / "nope")


def test_train_state_size_cap(tmp_path):
    raw = saved({"step": 1})
    p = ts(tmp_path, raw)
    assert T.read_train_state(p, max_bytes=len(raw)) == {"step": 1}
    assert "over the" in read_refused(p, max_bytes=len(raw) - 1)


def test_train_state_compressed_members_are_refused(tmp_path):
    p = ts(tmp_path, zip_of({"a/data.pkl": pickle.dumps({}), "a/x\nz": b"0" * 100}, zipfile.ZIP_DEFLATED))
    assert read_refused(p) == (f"{show_path(p)}: the training state member 'a/data.pkl' is compressed (torch.save "
                               "never compresses; refusing a possible zip bomb)")
    raw = zip_of({"a/data.pkl": pickle.dumps({})})
    buf = io.BytesIO(raw)
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/x\nz", b"0" * 100)
    assert "member 'a/x\\\\nz' is compressed" in read_refused(ts(tmp_path, buf.getvalue()))


def test_train_state_needs_a_data_pkl(tmp_path):
    p = ts(tmp_path, zip_of({"a/data.pk": b"x", "data.pkl": pickle.dumps({}), "a/datapkl": b""}))
    assert read_refused(p) == f"{show_path(p)}: the training state has no data.pkl (not a torch.save file)"


def test_train_state_member_count_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "MAX_ZIP_MEMBERS", 3)
    # exactly three members: not refused for the count (torch.load then fails on the fake archive)
    p = ts(tmp_path, zip_of({"a/data.pkl": pickle.dumps({}), "a/b": b"", "a/c": b""}))
    assert "members" not in read_refused(p)
    p = ts(tmp_path, zip_of({"a/data.pkl": pickle.dumps({}), "a/b": b"", "a/c": b"", "a/d": b""}))
    assert read_refused(p) == f"{show_path(p)}: the training state has 4 members (at most 3)"


def test_train_state_declared_sizes_at_most_the_file(tmp_path):
    raw = zip_of({"a/data.pkl": pickle.dumps({}), "a/big": b"12345"})
    n = len(raw)
    over = set_declared_size(raw, "a/big", n + 1 - len(pickle.dumps({})))
    p = ts(tmp_path, over)
    assert read_refused(p) == f"{show_path(p)}: the training state declares {n + 1} bytes inside a {n}-byte file"
    exact = set_declared_size(raw, "a/big", n - len(pickle.dumps({})))
    msg = read_refused(ts(tmp_path, exact))
    assert "declares" not in msg


def test_train_state_pickle_size_limit_uses_the_declared_size(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "MAX_PICKLE", 64)
    small = pickle.dumps({"k": 1})
    raw = zip_of({"a/data.pkl": small, "a/pad": b"x" * 200})
    # declared 65 bytes although 15 are stored: refused from the declaration, before reading
    p = ts(tmp_path, set_declared_size(raw, "a/data.pkl", 65))
    assert read_refused(p) == f"{show_path(p)}: the training state's pickle is 65 bytes (at most 64)"
    p = ts(tmp_path, set_declared_size(raw, "a/data.pkl", 64))
    assert "at most 64" not in read_refused(p)


def test_train_state_pickle_size_limit_exactly(tmp_path, monkeypatch):
    data = pickle.dumps({"step": 1, "optimizer": {}}, protocol=2)
    monkeypatch.setattr(T, "MAX_PICKLE", len(data))
    assert "at most" not in read_refused(ts(tmp_path, zip_of({"a/data.pkl": data})))
    monkeypatch.setattr(T, "MAX_PICKLE", len(data) - 1)
    p = ts(tmp_path, zip_of({"a/data.pkl": data}))
    assert read_refused(p) == f"{show_path(p)}: the training state's pickle is {len(data)} bytes (at most {len(data) - 1})"


def test_check_pickle_size(monkeypatch):
    monkeypatch.setattr(T, "MAX_PICKLE", 10)
    ok = pickle.dumps([1], protocol=2)
    assert len(ok) <= 10
    T._check_pickle(ok, "st/ts.pt", OtherError)
    data = b"\x80\x02K\x01." + b"." * 6   # 11 bytes
    with pytest.raises(OtherError) as ei:
        T._check_pickle(data, "st/ts.pt", OtherError)
    assert str(ei.value) == "st/ts.pt: the training state's pickle is 11 bytes (at most 10)"
    data = b"\x80\x02K\x01." + b"." * 5   # exactly 10 bytes (trailing bytes after STOP are not read)
    T._check_pickle(data, "st/ts.pt", OtherError)


def _floats(k, op):
    """A pickle (protocol 2) of a list of ``k`` values, each written with opcode ``op``."""
    one = {"BINFLOAT": b"G" + struct.pack(">d", 1.5), "FLOAT": b"F1.5\n", "LONG1": b"\x8a\x01\x05",
           "LONG4": b"\x8b\x01\x00\x00\x00\x05", "LONG": b"L5L\n", "INT": b"I5\n", "BININT1": b"K\x05"}[op]
    return b"\x80\x02]q\x00(" + one * k + b"e."


@pytest.mark.parametrize("op", ["BINFLOAT", "FLOAT", "LONG1", "LONG4", "LONG"])
def test_check_pickle_counts_floats_and_longs(monkeypatch, op):
    monkeypatch.setattr(T, "MAX_PICKLE_FLOATS", 4)
    T._check_pickle(_floats(4, op), "st/ts.pt", OtherError)
    assert len(pickle.loads(_floats(4, op))) == 4
    with pytest.raises(OtherError) as ei:
        T._check_pickle(_floats(5, op), "st/ts.pt", OtherError)
    assert str(ei.value) == "st/ts.pt: the training state holds more than 4 float / long values"


@pytest.mark.parametrize("op", ["INT", "BININT1"])
def test_check_pickle_does_not_count_small_ints(monkeypatch, op):
    monkeypatch.setattr(T, "MAX_PICKLE_FLOATS", 4)
    T._check_pickle(_floats(50, op), "st/ts.pt", OtherError)


def test_check_pickle_counts_across_kinds(monkeypatch):
    monkeypatch.setattr(T, "MAX_PICKLE_FLOATS", 3)
    two = _floats(2, "BINFLOAT")[:-2] + b"L5L\n" + b"\x8a\x01\x05" + b"e."   # 2 + 2 = 4 > 3
    with pytest.raises(OtherError, match="more than 3"):
        T._check_pickle(two, "st/ts.pt", OtherError)


def test_check_pickle_real_limit():
    T._check_pickle(_floats(8192, "BINFLOAT"), "st/ts.pt", OtherError)
    with pytest.raises(OtherError, match="more than 8192 float"):
        T._check_pickle(_floats(8193, "BINFLOAT"), "st/ts.pt", OtherError)


@pytest.mark.parametrize("data", [b"\x80\x02]q\x00(G\x00\x00", b"\xff\xfe", b"\x80\x02K"])
def test_check_pickle_corrupt(data):
    with pytest.raises(OtherError) as ei:
        T._check_pickle(data, "st/ts.pt", OtherError)
    assert str(ei.value).startswith("st/ts.pt: the training state's pickle is corrupt (")


def test_train_state_refuses_many_floats(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "MAX_PICKLE_FLOATS", 3)
    p = ts(tmp_path, saved({"a": [0.5, 1.5, 2.5]}))
    assert T.read_train_state(p) == {"a": [0.5, 1.5, 2.5]}
    p = ts(tmp_path, saved({"a": [0.5, 1.5, 2.5, 3.5]}))
    assert read_refused(p) == f"{show_path(p)}: the training state holds more than 3 float / long values"


def test_train_state_corrupt_pickle_inside_a_zip(tmp_path):
    p = ts(tmp_path, zip_of({"a/data.pkl": b"\x80\x02]q\x00(G\x00"}))
    assert read_refused(p).startswith(f"{show_path(p)}: the training state's pickle is corrupt (")


def test_train_state_torch_load_failure_is_wrapped(tmp_path):
    p = ts(tmp_path, zip_of({"a/data.pkl": pickle.dumps({"k": 1}, protocol=2)}))
    msg = read_refused(p)
    assert msg.startswith(f"{show_path(p)} is truncated or corrupt (")
    assert "not a readable torch.save zip" not in msg


def test_train_state_bad_crc_is_a_zip_error(tmp_path):
    raw = bytearray(zip_of({"a/data.pkl": pickle.dumps({"k": 1}, protocol=2)}))
    i = raw.index(b"\x80\x02")
    raw[i + 3] ^= 0xFF   # a data byte of the stored member: the CRC no longer matches
    p = ts(tmp_path, bytes(raw))
    assert read_refused(p).startswith(f"{show_path(p)} is truncated or corrupt (not a readable torch.save zip: ")


# ------------------------------------------------------------------------------------------------ atomic writers


def test_fsync_path_syncs_an_open_read_only_descriptor(tmp_path, monkeypatch):
    f = tmp_path / "f"
    f.write_text("x")
    synced, closed = [], []
    real_fsync, real_close = os.fsync, os.close
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.fstat(fd).st_ino) or real_fsync(fd))
    monkeypatch.setattr(os, "close", lambda fd: closed.append(fd) or real_close(fd))
    F.fsync_path(f)
    F.fsync_path(tmp_path)
    assert synced == [f.stat().st_ino, tmp_path.stat().st_ino]
    assert len(closed) == 2


def test_fsync_path_opens_read_only(tmp_path, monkeypatch):
    flags = []
    real = os.open
    monkeypatch.setattr(os, "open", lambda p, fl, *a: flags.append(fl) or real(p, fl, *a))
    F.fsync_path(tmp_path)
    assert flags == [os.O_RDONLY]


def test_fsync_path_ignores_what_cannot_be_opened(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    assert F.fsync_path(tmp_path / "missing") is None
    assert synced == []


def test_fsync_path_ignores_a_failing_sync_but_closes(tmp_path, monkeypatch):
    closed = []
    real_close = os.close

    def bad_sync(fd):
        raise OSError(22, "EINVAL")
    monkeypatch.setattr(os, "fsync", bad_sync)
    monkeypatch.setattr(os, "close", lambda fd: closed.append(fd) or real_close(fd))
    assert F.fsync_path(tmp_path) is None
    assert len(closed) == 1


def test_fsync_path_does_not_hide_other_errors(tmp_path, monkeypatch):
    def bad_sync(fd):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "fsync", bad_sync)
    with pytest.raises(KeyboardInterrupt):
        F.fsync_path(tmp_path)


def test_atomic_write_order(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    log = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        log.append(("fsync", "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else os.readlink(f"/proc/self/fd/{fd}"),
                    st.st_size))
        real_fsync(fd)

    def replace(a, b):
        log.append(("replace", str(a), str(b)))
        real_replace(a, b)

    def write(p):
        log.append(("write", str(p), target.read_bytes()))
        p.write_bytes(b"new!")

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    F.atomic_write(target, write)
    tmp = str(tmp_path / f".out.bin.tmp-{os.getpid()}")
    assert log == [("write", tmp, b"old"), ("fsync", tmp, 4), ("replace", tmp, str(target)),
                   ("fsync", "dir", log[-1][2])]
    assert target.read_bytes() == b"new!"
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]


def test_atomic_write_syncs_the_folder(tmp_path, monkeypatch):
    dirs = []
    monkeypatch.setattr(F, "fsync_path", lambda p: dirs.append(Path(p)))
    F.atomic_write(str(tmp_path / "a.txt"), lambda p: p.write_text("hi"))
    assert dirs == [tmp_path]
    assert (tmp_path / "a.txt").read_text() == "hi"


def test_atomic_write_closes_the_temporary(tmp_path, monkeypatch):
    closed = []
    real = os.close
    monkeypatch.setattr(os, "close", lambda fd: closed.append(fd) or real(fd))
    monkeypatch.setattr(F, "fsync_path", lambda p: None)
    F.atomic_write(tmp_path / "a", lambda p: p.write_text("x"))
    assert len(closed) == 1


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt(), OSError(28, "No space left")])
def test_a_failing_write_removes_the_temporary_and_keeps_the_old_file(tmp_path, exc):
    target = tmp_path / "keep.json"
    target.write_text("old")

    def write(p):
        p.write_text("half")
        raise exc
    with pytest.raises(type(exc)) as ei:
        F.atomic_write(target, write)
    assert ei.value is exc
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["keep.json"]


def test_a_write_failing_before_the_temporary_exists_raises_its_own_error(tmp_path):
    def write(p):
        raise RuntimeError("early")
    with pytest.raises(RuntimeError, match="early"):
        F.atomic_write(tmp_path / "x", write)
    assert os.listdir(tmp_path) == []


def test_a_failing_sync_removes_the_temporary(tmp_path, monkeypatch):
    def bad(fd):
        raise OSError(5, "EIO")
    monkeypatch.setattr(os, "fsync", bad)
    with pytest.raises(OSError, match="EIO"):
        F.atomic_write(tmp_path / "x", lambda p: p.write_text("y"))
    assert os.listdir(tmp_path) == []


def test_atomic_write_bytes(tmp_path):
    p = tmp_path / "b.bin"
    F.atomic_write_bytes(p, b"\x00\x01abc")
    assert p.read_bytes() == b"\x00\x01abc"
    F.atomic_write_bytes(str(p), b"")
    assert p.read_bytes() == b""
    assert os.listdir(tmp_path) == ["b.bin"]


def test_atomic_write_json_defaults(tmp_path):
    p = tmp_path / "j.json"
    obj = {"a": [1, 2], "p": Path("x/y"), "nan": float("nan")}
    F.atomic_write_json(p, obj)
    assert p.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "p": "x/y",\n  "nan": NaN\n}\n'
    assert os.listdir(tmp_path) == ["j.json"]


def test_atomic_write_json_options(tmp_path):
    p = tmp_path / "j.json"
    F.atomic_write_json(p, {"a": [1], "b": float("inf")}, indent=None)
    assert p.read_text() == '{"a": [1], "b": Infinity}\n'
    with pytest.raises(TypeError):
        F.atomic_write_json(p, {"p": Path("x")}, default=None)
    F.atomic_write_json(p, {"p": Path("x")}, indent=None, default=lambda o: "<" + str(o) + ">")
    assert p.read_text() == '{"p": "<x>"}\n'


def test_atomic_write_json_mkdir(tmp_path):
    deep = tmp_path / "a" / "b" / "c.json"
    with pytest.raises(FileNotFoundError):
        F.atomic_write_json(deep, {})
    assert not (tmp_path / "a").exists()
    F.atomic_write_json(deep, {"k": 1}, mkdir=True)
    assert json.loads(deep.read_text()) == {"k": 1}
    F.atomic_write_json(str(deep), {"k": 2}, mkdir=True)   # the folder exists already
    assert json.loads(deep.read_text()) == {"k": 2}


# ------------------------------------------------------------------------------------------------ caps and loading


def test_size_caps():
    assert F.CAPS["weights"] == 8 * 2 ** 30 and F.CAPS["train_state"] == 8 * 2 ** 30 and F.CAPS["json"] == 4 * 2 ** 20


def test_weights_are_read_under_the_weights_cap_not_the_json_one(tmp_path, monkeypatch):
    monkeypatch.setitem(F.CAPS, "json", 16)
    monkeypatch.setitem(F.CAPS, "train_state", 16)
    raw = blob({"w": ent("U8", (40,), (0, 40))}, b"x" * 40)
    p = write(tmp_path, raw)
    assert T.read_safetensors_header(p)[0]["w"]["shape"] == [40]
    assert T.read_safetensors(p)[0]["w"].numel() == 40
    monkeypatch.setitem(F.CAPS, "weights", len(raw) - 1)
    with pytest.raises(UnsafeFileError, match="over the"):
        T.read_safetensors_header(p)
    with pytest.raises(UnsafeFileError, match="over the"):
        T.read_safetensors(p)


def test_train_state_is_read_under_its_own_cap(tmp_path, monkeypatch):
    raw = saved({"step": 1})
    monkeypatch.setitem(F.CAPS, "json", 16)
    monkeypatch.setitem(F.CAPS, "weights", 16)
    p = ts(tmp_path, raw)
    assert T.read_train_state(p) == {"step": 1}
    monkeypatch.setitem(F.CAPS, "train_state", len(raw) - 1)
    assert "over the" in read_refused(p)


def _relocated(raw, location):
    """``raw`` (a torch.save zip) with every storage's location string replaced (same length as 'cpu')."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data.pkl"):
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x03\x00\x00\x00" + location)
            z.writestr(info.filename, data)
    return out.getvalue()


def test_train_state_saved_on_another_device_is_mapped_to_the_cpu(tmp_path):
    # a state saved on an accelerator names its device; the reader maps every storage to the CPU
    p = ts(tmp_path, _relocated(saved({"t": torch.ones(2)}), b"mps"))
    got = T.read_train_state(p)
    assert got["t"].device.type == "cpu" and torch.equal(got["t"], torch.ones(2))


def test_train_state_asks_torch_for_weights_only_explicitly(tmp_path, monkeypatch):
    # torch's own default for weights_only changed (False before 2.6; pyproject allows torch>=2.1), so the
    # reader must pass it, and the CPU map, itself
    seen = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda f, **kw: seen.append(kw) or real(f, **kw))
    T.read_train_state(ts(tmp_path, saved({"step": 1})))
    assert seen == [{"map_location": "cpu", "weights_only": True}]
