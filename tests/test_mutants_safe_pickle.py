"""Deterministic rules of the whitelisting pickle interpreter (``gandistill/io/safe_pickle.py``), stated
independently of the code, for mutation testing (``scripts/mutation.sh safe_pickle``).

Every pickle here is written byte by byte from the opcode table of the pickle protocol (``pickle.X``
constants, documented in ``pickletools``), so each test says exactly which opcodes run. Each limit is
checked at its boundary and one past it; each charge to the budget is checked against the cost table
the module documents (``MEM_OBJECT``, ``MEM_SLOT``, ``MEM_TRACKED``, ``MEM_OTHER``); each refusal by its
message. No timing, no randomness, no torch: the whole file runs in about a second.
"""
from __future__ import annotations

import collections
import gc
import mmap
import os
import pickle
import re
import struct
import sys

import pytest

from gandistill.io import safe_pickle as S
from gandistill.io.errors import GandistillError
from gandistill.io.safe_pickle import (
    Allowed,
    Budget,
    ForbiddenError,
    Global,
    Limits,
    NumpyDType,
    SafeLoadError,
    SafeUnpickler,
    brief,
    codecs_encode,
    data_of,
    mem_of,
    numpy_dtype_build,
    numpy_scalar,
    payload_of,
    read_regular_file,
    regular_size,
    resolve_inside,
    summary,
)

P = pickle
MB = 1 << 20
# the cost table of the module docstring, written out (bytes of CPython objects)
OBJ = {"list": 56, "tuple": 40, "dict": 64, "set": 216, "frozenset": 216, "bytearray": 57, "str": 49,
       "bytes": 33, "int": 28, "float": 24}
TRACKED, OTHER, NUMBER, MARK = 120, 96, 32, 56 + 8
# /proc/self/fd, FIFOs, glibc error texts, descriptor 0 tricks
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux-only file checks")


# ------------------------------------------------------------------------------------------------ helpers


def nofind(module, name):
    raise ForbiddenError(f"wants to import {module}.{name}")


def vm(data: bytes, **kw) -> SafeUnpickler:
    kw.setdefault("find_class", nofind)
    return SafeUnpickler(data, **kw)


def load(data: bytes, **kw):
    return vm(data, **kw).load()


def refused(data: bytes, match: str, kind=SafeLoadError, **kw) -> str:
    with pytest.raises(kind) as info:
        load(data, **kw)
    msg = str(info.value)
    assert isinstance(info.value, GandistillError)
    assert re.search(match, msg), msg
    return msg


def costs(data: bytes, **kw):
    """(result, mem, data, payload, ops) charged for running ``data``."""
    v = vm(data, **kw)
    b = v.budget
    m0, d0, p0, o0 = b.mem, b.data, b.payload, b.ops
    out = v.load()
    return out, m0 - b.mem, d0 - b.data, p0 - b.payload, o0 - b.ops


def su(s: str) -> bytes:
    b = s.encode()
    return P.SHORT_BINUNICODE + bytes([len(b)]) + b


def glob(module: str, name: str) -> bytes:
    return P.GLOBAL + module.encode() + b"\n" + name.encode() + b"\n"


def finder(table):
    def find(module, name):
        try:
            return table[(module, name)]
        except KeyError:
            raise ForbiddenError(f"wants to import {module}.{name}") from None
    return find


def nest(depth: int) -> bytes:
    """A list nested ``depth`` deep ([[[]]] is 3), built with EMPTY_LIST / APPEND."""
    return P.EMPTY_LIST * depth + P.APPEND * (depth - 1) + P.STOP


# ------------------------------------------------------------------------------------------------ summary


@pytest.mark.parametrize("obj, want", [
    (None, "None"), (True, "True"), (1.5, "1.5"), (7, "7"), (-3, "-3"),
    (2 ** 128 - 1, repr(2 ** 128 - 1)), (2 ** 128, "<int of 129 bits>"), (-(2 ** 128), "<int of 129 bits>"),
    ("abc", "'abc'"), (b"ab", "b'ab'"), (bytearray(b"ab"), "bytearray(b'ab')"),
    ([1, "a", None], "[1, 'a', None]"), ((1,), "(1)"), ((1, 2), "(1, 2)"), ([], "[]"),
    ({"a": 1, "b": [2]}, "{'a': 1, 'b': [2]}"), ({"a"}, "{'a'}"), (frozenset({"a"}), "{'a'}"),
    (collections.OrderedDict([("a", 1)]), "OrderedDict{'a': 1}"), (object(), "<object>"),
    ([1, [2, [3, [4, [5]]]]], "[1, [2, [3, [4, <list of 1>]]]]"),
    ({"k": {"k": {"k": {"k": {}}}}}, "{'k': {'k': {'k': {'k': <dict of 0>}}}}"),
])
def test_summary_of_small_objects_is_their_repr(obj, want):
    assert summary(obj) == want


def test_summary_of_subclasses_names_the_type():
    class Seq(list):
        pass

    class Tup(tuple):
        pass

    assert summary(Seq([1])) == "Seq[1]"
    assert summary(Tup((1,))) == "Tup(1)"
    assert summary(collections.defaultdict(int)) == "defaultdict{}"


def test_summary_truncates_at_the_limit():
    # a string longer than the budget: its first `limit` characters' repr, cut at `limit`, then "..."
    assert summary("x" * 100, 10) == "'xxxxxxxxx..."
    assert summary("x" * 10, 10) == "'xxxxxxxxx..."
    assert summary("x" * 5, 10) == "'xxxxx'"
    # exactly `limit` characters used: the budget is spent, so it is marked as cut
    assert summary("x" * 6, 8) == "'xxxxxx'..."
    assert summary("x" * 5, 8) == "'xxxxx'"
    # the budget is at least 8 characters, the text at most `limit` (+ "...")
    assert summary("x" * 20, 2) == "'x..."
    assert summary(list(range(100)), 20) == "[0, 1, 2, 3, 4, 5, 6..."
    assert summary({"aaaaaaaaaa": 1, "b": 2}, 12) == "{'aaaaaaaaaa..."
    assert summary({"a": "v" * 50}, 10) == "{'a': 'vvv..."
    assert summary(b"y" * 10 ** 6) == "b'" + "y" * 58 + "..."
    assert len(summary("y" * 10 ** 6)) == 63


def test_summary_stops_walking_when_the_budget_is_spent():
    walked = []

    class Spy:
        def __len__(self):
            walked.append(1)
            return 0

    big = [Spy()] * 1000
    summary(big, 20)
    assert walked == []  # a Spy is formatted as <Spy> without len()
    deep = [[[["leaf" * 3]]]]
    assert summary(deep, 8) == "[[[['lea..."


# ------------------------------------------------------------------------------------------------ brief


def test_brief_takes_the_os_error_text():
    assert brief(OSError(2, "No such file or directory")) == "FileNotFoundError: No such file or directory"
    assert brief(OSError("plain")) == "OSError: plain"
    assert brief(OSError()) == "OSError"


def test_brief_of_unicode_errors_names_the_position():
    try:
        b"a\xff".decode("utf-8")
    except UnicodeDecodeError as e:
        assert brief(e) == "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 1: invalid start byte"


def test_brief_keeps_the_first_non_blank_line_bounded():
    assert brief(ValueError("\n\n  first  \nsecond")) == "ValueError: first"
    assert brief(ValueError("x" * 300)) == "ValueError: " + "x" * 200
    assert brief(ValueError("x" * 300), limit=5) == "ValueError: xxxxx"
    assert brief(ValueError()) == "ValueError"
    assert brief(ValueError("")) == "ValueError"
    assert brief(ValueError("  \n ")) == "ValueError"


def test_brief_summarises_non_string_arguments():
    assert brief(KeyError(("a", 1))) == "KeyError: ('a', 1)"
    assert brief(KeyError(7, "second")) == "KeyError: 7"
    assert brief(KeyError(list(range(100))), limit=10) == "KeyError: [0, 1, 2, "


# ------------------------------------------------------------------------------------------------ files


def test_read_regular_file_reads_up_to_the_cap(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"0123456789")
    assert read_regular_file(p, 10) == b"0123456789"
    assert type(read_regular_file(p, 10)) is bytes
    assert read_regular_file(str(p), 11) == b"0123456789"
    with pytest.raises(SafeLoadError, match=r"f\.bin: the snapshot is 0\.0 MiB, over the 0\.0 MiB limit; refusing"):
        read_regular_file(p, 9, what="snapshot")


def test_read_regular_file_size_message_in_mib(tmp_path):
    p = tmp_path / "big.bin"
    p.write_bytes(b"\0" * (3 * MB // 2))
    with pytest.raises(SafeLoadError, match=r"the file is 1\.5 MiB, over the 1\.0 MiB limit"):
        read_regular_file(p, MB)


def test_read_regular_file_empty(tmp_path):
    p = tmp_path / "e"
    p.write_bytes(b"")
    assert read_regular_file(p, 0) == b""
    got = read_regular_file(p, 0, mutable=True)
    assert type(got) is bytearray and len(got) == 0


def test_read_regular_file_mutable_is_a_writable_buffer(tmp_path):
    p = tmp_path / "m"
    p.write_bytes(b"abcdef")
    got = read_regular_file(p, 6, mutable=True)
    assert isinstance(got, mmap.mmap) and len(got) == 6 and bytes(got) == b"abcdef"
    got[0:1] = b"z"
    assert got[:2] == b"zb" and got.find(b"def") == 3
    assert p.read_bytes() == b"abcdef"


@linux
def test_read_regular_file_refuses_non_regular_files(tmp_path):
    with pytest.raises(SafeLoadError, match=r"the folder is a directory, not a regular file; refusing to read it"):
        read_regular_file(tmp_path, 10 ** 9, what="folder")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SafeLoadError, match=r"a FIFO / named pipe, not a regular file"):
        read_regular_file(fifo, 10)


@linux
def test_read_regular_file_closes_what_it_opens(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(SafeLoadError):
            read_regular_file(tmp_path, 10)
        with pytest.raises(SafeLoadError):
            read_regular_file(__file__, 1)
    assert len(os.listdir("/proc/self/fd")) == before


@linux
def test_read_regular_file_links(tmp_path):
    target = tmp_path / "t"
    target.write_bytes(b"x")
    link = tmp_path / "l"
    link.symlink_to(target)
    assert read_regular_file(link, 1) == b"x"
    assert read_regular_file(link, 1, follow_symlinks=True) == b"x"
    with pytest.raises(SafeLoadError, match=r"l: the model is a symbolic link; refusing to follow it"):
        read_regular_file(link, 1, follow_symlinks=False, what="model")
    assert read_regular_file(target, 1, follow_symlinks=False) == b"x"
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(SafeLoadError, match=r"a: cannot open the file \(OSError: Too many levels"):
        read_regular_file(tmp_path / "a", 1)


@linux
def test_read_regular_file_open_errors(tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"x")
    with pytest.raises(SafeLoadError, match=r"cannot open the thing \(NotADirectoryError: Not a directory\)"):
        read_regular_file(f / "below", 1, what="thing")
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing", 1)


def _fake_size(monkeypatch, delta):
    real = os.fstat

    def fstat(fd):
        st = real(fd)
        fields = list(st)
        fields[6] = st.st_size + delta
        return os.stat_result(fields)

    monkeypatch.setattr(os, "fstat", fstat)


@pytest.mark.parametrize("mutable", [False, True])
def test_read_regular_file_refuses_a_file_that_grows(tmp_path, monkeypatch, mutable):
    p = tmp_path / "g"
    p.write_bytes(b"abcd")
    _fake_size(monkeypatch, -1)  # fstat says 3 bytes, 4 are there
    with pytest.raises(SafeLoadError, match=r"g: the file grew while being read; refusing"):
        read_regular_file(p, 10, mutable=mutable)


def test_read_regular_file_refuses_a_file_that_shrinks(tmp_path, monkeypatch):
    p = tmp_path / "s"
    p.write_bytes(b"abcd")
    _fake_size(monkeypatch, 2)  # fstat says 6 bytes, 4 are there
    with pytest.raises(SafeLoadError, match=r"s: the blob shrank while being read; refusing"):
        read_regular_file(p, 10, mutable=True, what="blob")
    # the plain read returns what is there (a shorter file is not a bigger one)
    assert read_regular_file(p, 10) == b"abcd"


def test_read_regular_file_reads_in_several_chunks(tmp_path, monkeypatch):
    p = tmp_path / "c"
    p.write_bytes(bytes(range(200)))
    real = os.fdopen

    class Short:  # a file whose readinto returns at most 7 bytes per call
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

        def readinto(self, view):
            return self.f.readinto(view[:7])

        def read(self, n=-1):
            return self.f.read(n)

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: Short(real(*a, **k)))
    got = read_regular_file(p, 200, mutable=True)
    assert bytes(got) == bytes(range(200))


def test_regular_size(tmp_path):
    p = tmp_path / "r"
    p.write_bytes(b"12345")
    assert regular_size(p) == 5
    with pytest.raises(SafeLoadError, match=r"the dir is a directory, not a regular file"):
        regular_size(tmp_path, what="dir")
    with pytest.raises(FileNotFoundError):
        regular_size(tmp_path / "nope")


def test_resolve_inside(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x").write_bytes(b"")
    assert resolve_inside(tmp_path, "sub/x") == (tmp_path / "sub" / "x").resolve()
    assert resolve_inside(tmp_path, ".") == tmp_path.resolve()
    with pytest.raises(SafeLoadError, match=r"the net resolves to .*, outside the folder .*; refusing to follow it"):
        resolve_inside(tmp_path / "sub", "../sub2/y", what="net")
    (tmp_path / "sub" / "esc").symlink_to(tmp_path)
    with pytest.raises(SafeLoadError, match="outside the folder"):
        resolve_inside(tmp_path / "sub", "esc/other")
    with pytest.raises(SafeLoadError, match="outside the folder"):
        resolve_inside(tmp_path / "sub", "..")


# ------------------------------------------------------------------------------------------------ budget


def test_limits_defaults():
    L = Limits()
    assert (L.max_depth, L.max_key_len, L.max_int_bytes, L.max_line, L.max_name) == (100, 1024, 256, 4096, 256)
    assert L.max_memo_index == 2 ** 32 - 1
    assert (L.mem_per_byte, L.mem_cap, L.mem_slack) == (8, 64 * MB, 2 * MB)
    assert (L.data_per_byte, L.data_slack, L.payload_per_byte, L.payload_slack) == (4, MB, 2, 65536)
    assert (L.ops_floor, L.bytes_per_op, L.ops_cap) == (200_000, 16, 1_000_000)


def test_budget_scales_with_the_size():
    b = Budget(1000)
    assert (b.mem, b.max_mem) == (8000 + 2 * MB, 8000 + 2 * MB)
    assert b.data == 4000 + MB
    assert b.payload == 2000 + 65536
    assert (b.ops, b.max_ops) == (200_000 + 62, 200_000 + 62)
    assert b.nodes == (8000 + 2 * MB) // 48
    big = Budget(100 * MB)  # memory and opcodes are capped, data and payload are not
    assert big.mem == 64 * MB + 2 * MB
    assert big.ops == 200_000 + 1_000_000
    assert big.data == 400 * MB + MB and big.payload == 200 * MB + 65536
    at_cap = Budget(8 * MB)
    assert at_cap.mem == 64 * MB + 2 * MB
    assert Budget(16 * 1_000_000).ops == 1_200_000 and Budget(16 * 1_000_000 + 16).ops == 1_200_000
    assert Budget(15).ops == 200_000 and Budget(16).ops == 200_001
    custom = Budget(10, Limits(mem_per_byte=1, mem_cap=5, mem_slack=1, data_per_byte=3, data_slack=2,
                               payload_per_byte=5, payload_slack=7, ops_floor=11, bytes_per_op=2, ops_cap=4))
    assert (custom.mem, custom.data, custom.payload, custom.ops) == (6, 32, 57, 15)


def test_budget_charge_exactly_to_zero_and_past_it():
    b = Budget(0, Limits(mem_slack=100, data_slack=10, payload_slack=5))
    b.charge(nodes=1, mem=52)  # 48 per node
    assert b.mem == 0 and b.nodes == 0
    b.charge(data=10, payload=5)
    assert (b.data, b.payload) == (0, 0)
    b.charge()
    with pytest.raises(SafeLoadError, match="far more memory than its size justifies"):
        Budget(0, Limits(mem_slack=1)).charge(mem=2)
    with pytest.raises(SafeLoadError, match="far more memory"):
        Budget(0, Limits(data_slack=1)).charge(data=2)
    with pytest.raises(SafeLoadError, match=r"far more work than its size justifies \(a memory bomb or a time bomb\?\)"):
        Budget(0, Limits(payload_slack=1)).charge(payload=2)
    with pytest.raises(SafeLoadError, match="far more memory"):
        Budget(0, Limits(mem_slack=47)).charge(nodes=1)


def test_budget_nodes_view():
    b = Budget(0, Limits(mem_slack=100))
    assert b.nodes == 2
    b.charge(mem=5)
    assert b.nodes == 1


def test_payload_of():
    assert payload_of(b"abc") == 3 and payload_of("ab") == 2 and payload_of(bytearray(4)) == 4
    assert payload_of(5) == 0 and payload_of(None) == 0
    assert payload_of(memoryview(b"x" * 1000)) == 64
    assert payload_of(("ab", b"cde", 7)) == 3 + 2 + 3
    assert payload_of(["ab", {"k": 1}]) == 2 + 2 + 1
    assert payload_of(({"a": 1, "b": 2}, {"c"}, frozenset({"d", "e"}))) == 3 + 2 + 1 + 2
    assert payload_of((memoryview(b"x" * 9),)) == 1 + 64
    assert payload_of({"a": ("xx", "yy")}) == 1  # only a top-level tuple/list's items are counted
    assert payload_of((("xx", "yy"),)) == 1 + 2

    class T(tuple):
        pass

    assert payload_of(T(("xxx",))) == 1


def test_mem_of():
    assert mem_of([]) == 56 and mem_of([], 3) == 56 + 24
    assert mem_of((), 2) == 40 + 16
    assert mem_of({}, 2) == 64 + 96
    assert mem_of(set(), 1) == 216 + 40 and mem_of(frozenset(), 2) == 216 + 80
    assert mem_of("abc", 5) == 49 and mem_of(b"abc", 5) == 33 and mem_of(bytearray(), 5) == 57
    assert mem_of(1) == 28 and mem_of(1.0) == 24 and mem_of(7, 2) == 28 + 16
    assert mem_of(collections.OrderedDict()) == 96 and mem_of(collections.OrderedDict(), 2) == 96 + 96


def test_data_of():
    assert data_of("") == sys.getsizeof("") - 49
    assert data_of("a" * 100) == sys.getsizeof("a" * 100) - 49
    assert data_of("\U0001f600" * 10) == sys.getsizeof("\U0001f600" * 10) - 49
    assert data_of(b"x" * 10) == sys.getsizeof(b"x" * 10) - 49
    assert data_of(bytearray(b"x" * 10)) == sys.getsizeof(bytearray(b"x" * 10)) - 49
    assert data_of(5) == 0 and data_of(["abc"]) == 0
    assert data_of("a" * 1000) - data_of("a" * 10) == 990


def test_global_and_allowed():
    g = Global("m.sub", "Name", Allowed())
    assert repr(g) == "<global m.sub.Name>"
    assert (g.module, g.name) == ("m.sub", "Name")
    assert Allowed().call is None and Allowed().new is None


# ------------------------------------------------------------------------------------------------ driver


def test_plain_values_and_costs():
    assert costs(P.NONE + P.STOP) == (None, 0, 0, 0, 2)
    assert costs(P.NEWTRUE + P.STOP)[:2] == (True, 0)
    assert costs(P.NEWFALSE + P.STOP)[:2] == (False, 0)
    assert costs(P.EMPTY_TUPLE + P.STOP)[:2] == ((), 0)
    assert costs(P.EMPTY_LIST + P.STOP) == ([], 56 + TRACKED, 0, 0, 2)
    assert costs(P.EMPTY_DICT + P.STOP) == ({}, 64 + TRACKED, 0, 0, 2)
    assert costs(P.EMPTY_SET + P.STOP) == (set(), 216 + TRACKED, 0, 0, 2)
    assert costs(P.PROTO + b"\x04" + P.NONE + P.STOP)[4] == 3


def test_opcode_budget_boundary():
    data = P.NONE + P.POP + P.NONE + P.STOP  # four opcodes
    v = vm(data)
    v.budget.ops = 4
    assert v.load() is None and v.budget.ops == 0
    v = vm(data)
    v.budget.ops = 3
    with pytest.raises(SafeLoadError, match=r"^the pickle has more than 200000 opcodes, far more than a file of its "
                                            r"size needs; refusing$"):
        v.load()


def test_default_budget_is_sized_from_pos():
    data = b"x" * 64 + P.NONE + P.STOP
    v = vm(data, pos=64)
    assert v.budget.max_ops == 200_000 and v.budget.max_mem == 16 + 2 * MB
    assert v.load() is None and v.pos == 66
    v = vm(P.NONE + P.STOP + b"x" * 64)
    assert v.budget.max_ops == 200_004
    shared = Budget(10 ** 6)
    v = vm(P.NONE + P.STOP, budget=shared)
    assert v.budget is shared
    v.load()
    assert shared.ops == shared.max_ops - 2


def test_two_pickles_in_one_buffer():
    data = P.NONE + P.STOP + P.NEWTRUE + P.STOP
    first = vm(data)
    assert first.load() is None and first.pos == 2
    second = vm(data, pos=first.pos, budget=first.budget)
    assert second.load() is True and second.pos == 4


def test_truncated_and_unknown():
    assert refused(P.NONE, "truncated") == ("the pickle is truncated or corrupt (it reaches the end of the data, "
                                            "before STOP at byte 0)")
    assert refused(b"", "truncated") == ("the pickle is truncated or corrupt (it reaches the end of the data, before "
                                         "STOP at byte 0)")
    assert refused(P.NONE + b"\xff", "unknown") == "the pickle is corrupt at byte 1: unknown pickle opcode b'\\xff'"
    assert refused(P.NONE + P.NONE + b"\x00", "unknown").startswith("the pickle is corrupt at byte 2:")


def test_stand_in_failures_become_safe_load_errors():
    def boom(exc):
        def f(*a):
            raise exc
        return f

    for exc, match in [(RecursionError("deep"), r"^the pickle nests too deep \(at byte 6\); refusing$"),
                       (MemoryError(), r"^out of memory while reading the pickle \(at byte 6\)$"),
                       (TypeError("bad\nsecond"), r"^the pickle is corrupt at byte 6 \(TypeError: bad\)$")]:
        data = glob("m", "f") + P.EMPTY_TUPLE + P.REDUCE + P.STOP
        msg = refused(data, match, find_class=finder({("m", "f"): Allowed(call=boom(exc))}))
        assert "second" not in msg
    # a SafeLoadError (e.g. a ForbiddenError of a stand-in) goes through unchanged
    with pytest.raises(ForbiddenError) as info:
        load(glob("m", "f") + P.EMPTY_TUPLE + P.REDUCE + P.STOP,
             find_class=finder({("m", "f"): Allowed(call=boom(ForbiddenError("mine")))}))
    assert str(info.value) == "mine"


def test_garbage_collector_is_paused_while_loading_and_restored():
    seen = []

    def spy():
        seen.append(gc.isenabled())
        return 1

    data = glob("m", "f") + P.EMPTY_TUPLE + P.REDUCE + P.STOP
    find = finder({("m", "f"): Allowed(call=spy)})
    was = gc.isenabled()
    try:
        gc.enable()
        assert load(data, find_class=find) == 1
        assert gc.isenabled() and seen == [False]
        with pytest.raises(SafeLoadError):
            load(P.NONE, find_class=find)
        assert gc.isenabled()
        gc.disable()
        load(data, find_class=find)
        assert not gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()


def test_error_messages():
    v = vm(b"")
    v._op_pos = 17
    e = v._error("boom")
    assert type(e) is SafeLoadError and str(e) == "the pickle is corrupt at byte 17: boom"
    f = v._error("no", forbidden=True)
    assert type(f) is ForbiddenError and str(f) == "no at byte 17; refusing"
    assert str(v._truncated("here")) == "the pickle is truncated or corrupt (it reaches here at byte 17)"
    assert str(v._too_deep()) == "the pickle nests deeper than 100 levels (at byte 17); refusing"


# ------------------------------------------------------------------------------------------------ reading


def test_take_and_its_charges():
    # SHORT_BINBYTES of 2 bytes: one bytes object (33) and 2 bytes of data
    assert costs(P.SHORT_BINBYTES + b"\x02ab" + P.STOP) == (b"ab", 33, 2, 0, 2)
    # of 1 or 0 bytes: CPython caches those, nothing is charged
    assert costs(P.SHORT_BINBYTES + b"\x01a" + P.STOP) == (b"a", 0, 0, 0, 2)
    assert costs(P.SHORT_BINBYTES + b"\x00" + P.STOP) == (b"", 0, 0, 0, 2)


def test_take_at_the_end_of_the_data():
    assert load(P.SHORT_BINBYTES + b"\x03abc" + P.STOP) == b"abc"
    # exactly to the end: the bytes are read, then STOP is missing
    refused(P.SHORT_BINBYTES + b"\x03abc", r"reaches the end of the data, before STOP at byte 0\)$")
    assert refused(P.SHORT_BINBYTES + b"\x04abc", "truncated") == (
        "the pickle is truncated or corrupt (it reaches past the end of the data at byte 0)")
    refused(P.BINBYTES + struct.pack("<I", 2 ** 32 - 1) + b"ab", r"reaches past the end of the data at byte 0\)")


def test_big_bytes_are_zero_copy_views():
    data = P.SHORT_BINBYTES + b"\x04abcd" + P.STOP
    v = vm(data, big_bytes=4)
    out = v.load()
    assert type(out) is memoryview and out.obj is data and bytes(out) == b"abcd"
    assert v.budget.max_mem - v.budget.mem == 2 * OTHER and v.budget.max_ops - v.budget.ops == 2
    assert type(load(data, big_bytes=5)) is bytes
    assert type(load(data)) is bytes
    assert load(P.SHORT_BINBYTES + b"\x00" + P.STOP, big_bytes=0).tobytes() == b""
    refused(P.SHORT_BINBYTES + b"\x06abcd" + P.STOP, r"reaches past the end of the data at byte 0\)", big_bytes=1)
    # a bytearray is never a view
    assert type(load(P.BYTEARRAY8 + struct.pack("<Q", 4) + b"abcd" + P.STOP, big_bytes=1)) is bytearray


def test_view_bounds():
    v = vm(b"abc", big_bytes=0)
    v.pos = 1
    assert bytes(v._view(2)) == b"bc" and v.pos == 3
    assert bytes(v._view(0)) == b""
    v.pos = 1
    with pytest.raises(SafeLoadError, match="past the end"):
        v._view(3)
    with pytest.raises(SafeLoadError, match="past the end"):
        v._view(-1)
    with pytest.raises(SafeLoadError, match="past the end"):
        v._take(-1)
    assert v.pos == 1


def test_unpack_at_the_end():
    assert load(P.BININT + struct.pack("<i", -5) + P.STOP) == -5
    refused(P.BININT + b"\x01\x02\x03", r"past the end of the data at byte 0\)$")
    refused(P.BININT + b"\x01\x02\x03\x04", r"the end of the data, before STOP at byte 0\)$")


def test_byte_at_the_end():
    refused(P.BININT1, r"past the end of the data at byte 0\)$")
    refused(P.BININT1 + b"\x05", r"before STOP")
    refused(P.BINGET, r"past the end of the data at byte 0\)$")


def test_line_limits():
    lim = Limits(max_line=4)
    assert load(P.INT + b"1234\n" + P.STOP, limits=lim) == 1234
    # a line of max_line + 1 bytes with its newline right after: too long
    refused(P.INT + b"12345\n" + P.STOP, r"corrupt at byte 0: a text argument is longer than 4 bytes$", limits=lim)
    refused(P.INT + b"12345", r"longer than 4 bytes", limits=lim)
    # no newline before the end of the data: truncated
    refused(P.INT + b"1234", r"reaches the end of the data inside a text argument at byte 0\)$", limits=lim)
    refused(P.INT + b"123", r"inside a text argument", limits=lim)
    refused(P.INT + b"12\x00", r"inside a text argument", limits=lim)
    refused(P.INT + b"\n" + P.STOP, r"corrupt at byte 0 \(ValueError", limits=Limits(max_line=0))  # empty line fits
    refused(P.INT + b"1\n" + P.STOP, r"longer than 0 bytes", limits=Limits(max_line=0))


def test_unbounded_lines_for_strings():
    s = "x" * 50
    data = P.UNICODE + s.encode() + b"\n" + P.STOP
    assert load(data, limits=Limits(max_line=4)) == s
    data = P.STRING + b"'" + b"y" * 50 + b"'\n" + P.STOP
    assert load(data, limits=Limits(max_line=4)) == b"y" * 50
    refused(P.UNICODE + b"abc", "inside a text argument", limits=Limits(max_line=1))


# ------------------------------------------------------------------------------------------------ stack, marks


def test_stack_underflow_messages():
    assert refused(P.STOP, "empty") == "the pickle is corrupt at byte 0: the stack is empty"
    refused(P.DUP + P.STOP, "corrupt at byte 0: the stack is empty")
    refused(P.APPENDS, "corrupt at byte 0: no MARK to pop to")
    refused(P.POP_MARK, "no MARK to pop to")
    refused(P.POP, "no MARK to pop to")
    refused(P.TUPLE, "no MARK to pop to")


def test_mark_pop_and_dup():
    assert load(P.MARK + P.NONE + P.POP_MARK + P.NEWTRUE + P.STOP) is True
    # POP on an empty frame pops the MARK
    assert load(P.NEWTRUE + P.MARK + P.POP + P.STOP) is True
    assert load(P.NEWTRUE + P.NEWFALSE + P.POP + P.STOP) is True
    assert load(P.NEWTRUE + P.DUP + P.TUPLE2 + P.STOP) == (True, True)
    assert costs(P.MARK + P.TUPLE + P.STOP) == ((), MARK, 0, 0, 3)


def test_mark_budget_boundary():
    data = P.MARK + P.TUPLE + P.STOP
    v = vm(data, budget=Budget(0, Limits(mem_slack=MARK)))
    assert v.load() == () and v.budget.mem == 0
    with pytest.raises(SafeLoadError, match="far more memory"):
        load(data, budget=Budget(0, Limits(mem_slack=MARK - 1)))


# ------------------------------------------------------------------------------------------------ numbers


def test_numbers_and_their_cost():
    assert costs(P.BININT + struct.pack("<i", -2 ** 31) + P.STOP)[:2] == (-2 ** 31, NUMBER)
    assert costs(P.BININT1 + b"\xff" + P.STOP)[:2] == (255, 0)
    assert costs(P.BININT2 + b"\x01\x80" + P.STOP)[:2] == (0x8001, NUMBER)
    assert costs(P.BINFLOAT + struct.pack(">d", -2.5) + P.STOP)[:2] == (-2.5, NUMBER)
    assert costs(P.FLOAT + b"1.25\n" + P.STOP)[:2] == (1.25, NUMBER)
    assert costs(P.INT + b"-17\n" + P.STOP)[:2] == (-17, NUMBER)
    assert costs(P.INT + b"01\n" + P.STOP)[:2] == (True, 0)
    assert costs(P.INT + b"00\n" + P.STOP)[:2] == (False, 0)
    assert load(P.INT + b"1\n" + P.STOP) == 1 and type(load(P.INT + b"1\n" + P.STOP)) is int
    assert load(P.INT + b"001\n" + P.STOP) == 1 and type(load(P.INT + b"001\n" + P.STOP)) is int
    assert load(P.LONG + b"123L\n" + P.STOP) == 123
    assert load(P.LONG + b"-9\n" + P.STOP) == -9
    assert costs(P.LONG + b"5L\n" + P.STOP)[:2] == (5, NUMBER)


def test_number_budget_boundary():
    data = P.BININT2 + b"\x01\x00" + P.STOP
    assert load(data, budget=Budget(0, Limits(mem_slack=NUMBER))) == 1
    with pytest.raises(SafeLoadError, match="far more memory"):
        load(data, budget=Budget(0, Limits(mem_slack=NUMBER - 1)))


def test_long_opcodes():
    assert costs(P.LONG1 + b"\x02\xff\x7f" + P.STOP) == (0x7FFF, NUMBER + 33, 2, 0, 2)
    assert load(P.LONG1 + b"\x01\xff" + P.STOP) == -1
    assert load(P.LONG1 + b"\x00" + P.STOP) == 0
    assert load(P.LONG4 + struct.pack("<i", 2) + b"\x00\x80" + P.STOP) == -0x8000
    lim = Limits(max_int_bytes=3)
    assert load(P.LONG1 + b"\x03\x01\x00\x00" + P.STOP, limits=lim) == 1
    msg = refused(P.LONG1 + b"\x04\x01\x00\x00\x00" + P.STOP, "integer", ForbiddenError, limits=lim)
    assert msg == "an integer of 4 bytes (more than 3) at byte 0; refusing"
    assert refused(P.LONG4 + struct.pack("<i", -1) + P.STOP, "negative") == (
        "the pickle is corrupt at byte 0: negative LONG length")
    v = 2 ** 2039 - 1  # 256 bytes signed: the default limit, exactly
    assert load(P.LONG4 + struct.pack("<i", 256) + v.to_bytes(256, "little", signed=True) + P.STOP) == v
    refused(P.LONG4 + struct.pack("<i", 257) + b"\0" * 257 + P.STOP, "an integer of 257 bytes", ForbiddenError)


# ------------------------------------------------------------------------------------------------ strings


def test_bytes_opcodes():
    assert load(P.BINBYTES + struct.pack("<I", 3) + b"abc" + P.STOP) == b"abc"
    assert load(P.BINBYTES8 + struct.pack("<Q", 3) + b"abc" + P.STOP) == b"abc"
    out, mem, data, _, _ = costs(P.BYTEARRAY8 + struct.pack("<Q", 3) + b"abc" + P.STOP)
    assert type(out) is bytearray and out == b"abc"
    # the read (33 + 3 data), then the bytearray (57, its data, tracked: mutable)
    assert mem == 33 + 57 + TRACKED and data == 3 + data_of(bytearray(b"abc"))


def test_python2_strings():
    s8 = P.SHORT_BINSTRING + b"\x02\xe9a" + P.STOP
    assert load(s8) == b"\xe9a"
    assert load(s8, str8="latin1") == "\xe9a"
    assert load(P.BINSTRING + struct.pack("<i", 2) + b"\xe9a" + P.STOP, str8="latin1") == "\xe9a"
    assert load(P.BINSTRING + struct.pack("<i", 0) + P.STOP) == b""
    assert refused(P.BINSTRING + struct.pack("<i", -1) + b"xx" + P.STOP, "negative") == (
        "the pickle is corrupt at byte 0: negative BINSTRING length")
    refused(P.BINSTRING + struct.pack("<i", 3) + b"xx", "past the end")


@pytest.mark.parametrize("arg, want", [(b"'ab'", b"ab"), (b'"ab"', b"ab"), (b"''", b""), (b"'a\\nb'", b"a\nb"),
                                       (b"'\\xe9'", b"\xe9"), (b"'\"'", b'"')])
def test_string_text(arg, want):
    assert load(P.STRING + arg + b"\n" + P.STOP) == want


@pytest.mark.parametrize("arg", [b"ab", b"'ab\"", b"'", b"", b"\"ab'", b"xabx", b"'ab", b"ab'"])
def test_string_text_must_be_quoted(arg):
    assert refused(P.STRING + arg + b"\n" + P.STOP, "quoted") == (
        "the pickle is corrupt at byte 0: STRING argument is not quoted")


def test_unicode_opcodes_and_cost():
    out, mem, data, _, _ = costs(su("héllo") + P.STOP)
    assert out == "héllo"
    # the UTF-8 bytes read (33 + 6), then the str (49 + its characters)
    assert mem == 33 + 49 and data == 6 + data_of("héllo")
    assert load(P.BINUNICODE + struct.pack("<I", 2) + b"ab" + P.STOP) == "ab"
    assert load(P.BINUNICODE8 + struct.pack("<Q", 2) + b"ab" + P.STOP) == "ab"
    assert load(P.SHORT_BINUNICODE + b"\x03\xed\xa0\x80" + P.STOP) == "\ud800"  # surrogatepass
    assert load(P.UNICODE + b"a\\u00e9\n" + P.STOP) == "a\u00e9"
    _, mem, data, _, _ = costs(P.UNICODE + b"\\U0001f600\n" + P.STOP)
    assert mem == 49 and data == data_of("\U0001f600")
    refused(P.SHORT_BINUNICODE + b"\x01\xff" + P.STOP, r"corrupt at byte 0 \(UnicodeDecodeError")


def test_data_budget_boundary():
    s = P.SHORT_BINBYTES + b"\x08" + b"x" * 8 + P.STOP
    assert load(s, budget=Budget(0, Limits(data_slack=8))) == b"x" * 8
    with pytest.raises(SafeLoadError, match="far more memory"):
        load(s, budget=Budget(0, Limits(data_slack=7)))


# ------------------------------------------------------------------------------------------------ containers


def test_tuples():
    assert load(P.NONE + P.TUPLE1 + P.STOP) == (None,)
    assert load(P.NONE + P.NEWTRUE + P.TUPLE2 + P.STOP) == (None, True)
    assert load(P.NONE + P.NEWTRUE + P.NEWFALSE + P.TUPLE3 + P.STOP) == (None, True, False)
    assert load(P.NONE + P.MARK + P.NEWTRUE + P.NEWFALSE + P.TUPLE + P.TUPLE2 + P.STOP) == (None, (True, False))
    assert load(P.MARK + P.TUPLE + P.STOP) == ()
    refused(P.NONE + P.TUPLE2 + P.STOP, "corrupt at byte 1: the stack is empty")
    refused(P.NONE + P.NONE + P.TUPLE3 + P.STOP, "corrupt at byte 2: the stack is empty")
    refused(P.TUPLE1 + P.STOP, "the stack is empty")
    # the items come from the current frame only
    refused(P.NONE + P.MARK + P.NONE + P.TUPLE2 + P.STOP, "the stack is empty")


def test_tuple_costs():
    # a tuple of primitives: its object and slots, not tracked
    assert costs(P.NONE + P.NONE + P.TUPLE2 + P.STOP)[1] == 40 + 16
    assert costs(P.MARK + P.NONE + P.NONE + P.NONE + P.TUPLE + P.STOP)[1] == MARK + 40 + 24
    # a tuple holding a container: tracked
    assert costs(P.EMPTY_LIST + P.TUPLE1 + P.STOP)[1] == (56 + TRACKED) + (40 + 8 + TRACKED)
    # a tuple holding a tuple of primitives: nesting, tracked
    assert costs(P.NONE + P.TUPLE1 + P.TUPLE1 + P.STOP)[1] == (40 + 8) + (40 + 8 + TRACKED)


def test_list_dict_set_frozenset():
    assert load(P.MARK + P.NONE + P.NEWTRUE + P.LIST + P.STOP) == [None, True]
    assert costs(P.MARK + P.NONE + P.NEWTRUE + P.LIST + P.STOP)[1] == MARK + 56 + 16 + TRACKED
    assert load(P.MARK + su("a") + P.NONE + su("b") + P.NEWTRUE + P.DICT + P.STOP) == {"a": None, "b": True}
    assert load(P.MARK + P.DICT + P.STOP) == {}
    assert refused(P.MARK + su("a") + P.DICT + P.STOP, "odd") == (
        "the pickle is corrupt at byte 4: DICT with an odd number of items")
    fs = load(P.MARK + su("a") + su("b") + P.FROZENSET + P.STOP)
    assert type(fs) is frozenset and fs == {"a", "b"}
    assert costs(P.MARK + P.FROZENSET + P.STOP)[1] == MARK + 216 + TRACKED
    _, mem, _, _, _ = costs(P.MARK + P.SHORT_BINBYTES + b"\x01a" + P.FROZENSET + P.STOP)
    assert mem == MARK + 216 + 40 + TRACKED
    refused(P.MARK + P.NONE + P.FROZENSET + P.STOP, "NoneType; only strings", ForbiddenError)


def test_dict_costs():
    _, mem, _, _, _ = costs(P.MARK + P.SHORT_BINBYTES + b"\x01a" + P.NONE + P.DICT + P.STOP)
    assert mem == MARK + 64 + TRACKED + 48


def test_append_and_appends():
    assert load(P.EMPTY_LIST + P.NONE + P.APPEND + P.STOP) == [None]
    assert costs(P.EMPTY_LIST + P.NONE + P.APPEND + P.STOP)[1] == 56 + TRACKED + 8
    assert load(P.EMPTY_LIST + P.MARK + P.NONE + P.NEWTRUE + P.APPENDS + P.STOP) == [None, True]
    assert costs(P.EMPTY_LIST + P.MARK + P.NONE + P.NEWTRUE + P.APPENDS + P.STOP)[1] == 56 + TRACKED + MARK + 16
    assert refused(P.EMPTY_DICT + P.NONE + P.APPEND + P.STOP, "append") == (
        "this file wants to append to a dict object; only lists can be (not part of this file format) at byte 2; "
        "refusing")
    refused(P.EMPTY_TUPLE + P.MARK + P.APPENDS + P.STOP, "append to a tuple object; only lists", ForbiddenError,
            fmt="x")
    refused(P.NONE + P.APPEND + P.STOP, "the stack is empty")
    msg = refused(P.EMPTY_SET + P.MARK + P.APPENDS + P.STOP, "not part of my format", ForbiddenError, fmt="my format")
    assert msg.startswith("this file wants to append to a set object")


def test_setitem_setitems():
    assert load(P.EMPTY_DICT + su("k") + P.NONE + P.SETITEM + P.STOP) == {"k": None}
    assert costs(P.EMPTY_DICT + su("k") + P.NONE + P.SETITEM + P.STOP)[1] == 64 + TRACKED + 49 + 48
    data = P.EMPTY_DICT + P.MARK + su("a") + P.NONE + su("b") + P.NEWTRUE + P.SETITEMS + P.STOP
    assert load(data) == {"a": None, "b": True}
    assert refused(P.EMPTY_DICT + P.MARK + su("a") + P.SETITEMS + P.STOP, "odd") == (
        "the pickle is corrupt at byte 5: SETITEMS with an odd number of items")
    refused(P.EMPTY_LIST + su("k") + P.NONE + P.SETITEM + P.STOP, "set items of a list object; only dicts can be",
            ForbiddenError)
    refused(su("k") + P.NONE + P.SETITEM + P.STOP, "the stack is empty")
    refused(P.NONE + P.SETITEM + P.STOP, "the stack is empty")


def test_setitems_onto_other_dict_types():
    od = collections.OrderedDict
    find = finder({("collections", "OrderedDict"): Allowed(call=od)})
    data = glob("collections", "OrderedDict") + P.EMPTY_TUPLE + P.REDUCE + su("k") + P.NONE + P.SETITEM + P.STOP
    out = load(data, find_class=find, dict_types=(od,))
    assert type(out) is od and out == {"k": None}
    refused(data, "set items of a OrderedDict object; only dicts", ForbiddenError, find_class=find)
    # an OrderedDict slot is charged as any other object (96), a dict slot 48
    _, mem1, _, _, _ = costs(data, find_class=find, dict_types=(od,))
    two = data[:-1] + su("j") + P.NONE + P.SETITEM + P.STOP
    _, mem2, _, _, _ = costs(two, find_class=find, dict_types=(od,))
    assert mem2 - mem1 == 49 + OTHER


def test_additems():
    out = load(P.EMPTY_SET + P.MARK + su("a") + su("b") + P.ADDITEMS + P.STOP)
    assert out == {"a", "b"}
    _, mem, _, _, _ = costs(P.EMPTY_SET + P.MARK + P.SHORT_BINBYTES + b"\x01a" + P.ADDITEMS + P.STOP)
    assert mem == 216 + TRACKED + MARK + 40
    refused(P.EMPTY_LIST + P.MARK + P.ADDITEMS + P.STOP, "add items to a list object; only sets can be", ForbiddenError)
    refused(P.EMPTY_SET + P.MARK + P.NONE + P.ADDITEMS + P.STOP, "a NoneType; only strings", ForbiddenError)
    refused(P.EMPTY_SET + P.MARK + P.EMPTY_TUPLE + P.ADDITEMS + P.STOP, "a tuple; only strings", ForbiddenError)


@pytest.mark.parametrize("key, ok", [("k", True), (b"k", True), ("", True), (1, False), (1.0, False),
                                     ((), False), (True, False), (bytearray(b"k"), False), (None, False)])
def test_check_key_types(key, ok):
    v = vm(b"")
    if ok:
        v.check_key(key)
    else:
        with pytest.raises(ForbiddenError, match=rf"a dict key / set element is a {type(key).__name__}; only strings"):
            v.check_key(key)


def test_check_key_length_boundary():
    v = vm(b"", limits=Limits(max_key_len=3))
    v.check_key("abc")
    v.check_key(b"abc")
    with pytest.raises(ForbiddenError, match=r"^a dict key / set element of 4 characters \(more than 3\) at byte 0; "
                                             r"refusing$"):
        v.check_key("abcd")
    with pytest.raises(ForbiddenError, match="of 4 characters"):
        v.check_key(b"abcd")
    refused(P.EMPTY_DICT + su("abcd") + P.NONE + P.SETITEM + P.STOP, "of 4 characters", ForbiddenError,
            limits=Limits(max_key_len=3))
    refused(P.EMPTY_DICT + P.BININT1 + b"\x01" + P.NONE + P.SETITEM + P.STOP, "is a int", ForbiddenError)


# ------------------------------------------------------------------------------------------------ depth, cycles


def test_depth_limit_boundary():
    lim = Limits(max_depth=3)
    assert load(nest(3), limits=lim) == [[[]]]
    assert refused(nest(4), "deeper", limits=lim) == "the pickle nests deeper than 3 levels (at byte 6); refusing"
    assert load(nest(100)) is not None
    refused(nest(101), "deeper than 100 levels")


def test_depth_through_appends_and_setitems():
    lim = Limits(max_depth=2)
    assert load(P.EMPTY_LIST + P.MARK + P.EMPTY_LIST + P.APPENDS + P.STOP, limits=lim) == [[]]
    refused(P.EMPTY_LIST + P.MARK + P.EMPTY_LIST + P.EMPTY_LIST + P.APPEND + P.APPENDS + P.STOP, "deeper than 2",
            limits=lim)
    assert load(P.EMPTY_DICT + su("k") + P.EMPTY_LIST + P.SETITEM + P.STOP, limits=lim) == {"k": []}
    refused(P.EMPTY_DICT + su("k") + P.EMPTY_LIST + P.EMPTY_LIST + P.APPEND + P.SETITEM + P.STOP, "deeper than 2",
            limits=lim)
    refused(P.MARK + su("k") + P.EMPTY_LIST + P.EMPTY_LIST + P.APPEND + P.DICT + P.STOP, "deeper than 2",
            limits=lim)
    assert load(P.MARK + su("k") + P.EMPTY_LIST + P.DICT + P.STOP, limits=lim) == {"k": []}


def test_depth_of_tuples():
    lim = Limits(max_depth=2)
    # a tuple of primitives is one level, a tuple holding it two
    assert load(P.NONE + P.TUPLE1 + P.TUPLE1 + P.STOP, limits=lim) == ((None,),)
    refused(P.NONE + P.TUPLE1 + P.TUPLE1 + P.TUPLE1 + P.STOP, "deeper than 2", limits=lim)
    refused(P.NONE + P.TUPLE1 + P.TUPLE1 + P.EMPTY_LIST + P.TUPLE2 + P.TUPLE1 + P.STOP, "deeper than 2", limits=lim)
    # depth is the deepest child + 1, whichever position it has
    refused(P.NONE + P.TUPLE1 + P.TUPLE1 + P.NONE + P.TUPLE2 + P.STOP, "deeper than 2", limits=lim)
    refused(P.NONE + P.NONE + P.TUPLE1 + P.TUPLE1 + P.TUPLE2 + P.STOP, "deeper than 2", limits=lim)
    refused(P.EMPTY_LIST + P.NONE + P.TUPLE1 + P.TUPLE1 + P.APPEND + P.STOP, "deeper than 2", limits=lim)
    # untracked non-primitives (a global) count as one level
    find = finder({("m", "g"): Allowed()})
    assert load(glob("m", "g") + P.TUPLE1 + P.STOP, find_class=find, limits=Limits(max_depth=2))[0].name == "g"
    refused(glob("m", "g") + P.TUPLE1 + P.TUPLE1 + P.STOP, "deeper than 2", find_class=find, limits=lim)


def test_depth_grows_when_a_deeper_child_is_added_later():
    lim = Limits(max_depth=3)
    # [x, [[]]]: appending the deep child second still makes the outer list depth 3
    data = (P.EMPTY_LIST + P.NONE + P.APPEND + P.EMPTY_LIST + P.EMPTY_LIST + P.APPEND + P.APPEND
            + P.TUPLE1 + P.STOP)
    refused(data, "deeper than 3", limits=lim)
    assert load(data[:-2] + P.STOP, limits=lim) == [None, [[]]]


def test_cycles_and_frozen_containers():
    assert refused(P.EMPTY_LIST + P.DUP + P.APPEND + P.STOP, "cycle") == (
        "a list is put inside itself (a cycle) at byte 2; refusing")
    # a list placed in another one is frozen: appending to it afterwards is refused
    data = (P.EMPTY_LIST + P.MEMOIZE + P.EMPTY_LIST + P.BINGET + b"\x00" + P.APPEND + P.BINGET + b"\x00"
            + P.NONE + P.APPEND + P.STOP)
    assert refused(data, "after placing") == (
        "this file modifies a list after placing it inside another object (a cycle or a re-opened container) at "
        "byte 9; refusing")
    # the outer one stays open
    data = P.EMPTY_LIST + P.EMPTY_LIST + P.APPEND + P.NONE + P.APPEND + P.STOP
    assert load(data) == [[], None]
    # a dict placed in a tuple is frozen too
    data = P.EMPTY_DICT + P.MEMOIZE + P.TUPLE1 + P.BINGET + b"\x00" + su("k") + P.NONE + P.SETITEM + P.STOP
    refused(data, "modifies a dict after placing it", ForbiddenError)
    # an untracked object can never be frozen or mutated
    refused(P.EMPTY_SET + P.MEMOIZE + P.MARK + P.BINGET + b"\x00" + P.ADDITEMS + P.STOP, "a set; only strings",
            ForbiddenError)


def test_a_container_placed_twice_is_fine_but_frozen():
    data = (P.EMPTY_LIST + P.MEMOIZE + P.POP + P.BINGET + b"\x00" + P.BINGET + b"\x00" + P.TUPLE2 + P.STOP)
    out = load(data)
    assert out == ([], []) and out[0] is out[1]


def test_build_only_on_what_this_vm_created():
    def handler(obj, state, v):
        obj.append(state)

    # BUILD on a tuple of primitives: the type is allowed, but the object is not tracked
    msg = refused(P.NONE + P.TUPLE1 + P.NONE + P.BUILD + P.STOP, "did not create", ForbiddenError,
                  build={tuple: handler})
    assert msg == "this file wants to set the state of a tuple it did not create at byte 3; refusing"


# ------------------------------------------------------------------------------------------------ register


def test_register_charges_and_tracks():
    v = vm(b"", budget=Budget(0, Limits(mem_slack=10 ** 6)))
    b = v.budget
    m = b.mem
    lst = v.register([], (), slots=2)
    assert m - b.mem == 56 + 16 + TRACKED and v._depths[id(lst)] == 1 and v._keep[-1] is lst
    m = b.mem
    assert v.register(lst) is lst and m - b.mem == 56  # already tracked: charged, not tracked twice
    m, d = b.mem, b.data
    v.register("abc")
    assert m - b.mem == 49 and d - b.data == data_of("abc") and id("abc") not in v._depths
    m, d = b.mem, b.data
    v.register(b"ab")
    assert m - b.mem == 33 and d - b.data == data_of(b"ab")
    m = b.mem
    t = v.register((1, 2), (1, 2), slots=2)
    assert m - b.mem == 40 + 16 and id(t) not in v._depths
    m = b.mem
    t2 = v.register((lst,), (lst,), slots=1)
    assert m - b.mem == 40 + 8 + TRACKED and v._depths[id(t2)] == 2 and id(lst) in v._frozen
    m = b.mem
    v.register(5)
    assert m - b.mem == 28


def test_register_budget_boundary():
    v = vm(b"", budget=Budget(0, Limits(mem_slack=49)))
    v.register("x")
    assert v.budget.mem == 0
    v = vm(b"", budget=Budget(0, Limits(mem_slack=48)))
    with pytest.raises(SafeLoadError, match="far more memory"):
        v.register("x")
    v = vm(b"", budget=Budget(0, Limits(mem_slack=49, data_slack=0)))
    with pytest.raises(SafeLoadError, match="far more memory"):
        v.register("x" * 10)
    v = vm(b"", budget=Budget(0, Limits(mem_slack=49, data_slack=data_of("x" * 10))))
    v.register("x" * 10)
    assert v.budget.mem == 0 and v.budget.data == 0


def test_list_budget_boundary():
    data = P.EMPTY_LIST + P.STOP
    v = vm(data, budget=Budget(0, Limits(mem_slack=56 + TRACKED)))
    assert v.load() == [] and v.budget.mem == 0
    # the object itself over budget: refused at once
    with pytest.raises(SafeLoadError, match="far more memory"):
        load(data, budget=Budget(0, Limits(mem_slack=55)))


# ------------------------------------------------------------------------------------------------ memo


def test_memo_opcodes():
    assert load(P.NONE + P.PUT + b"3\n" + P.POP + P.GET + b"3\n" + P.STOP) is None
    assert load(P.NEWTRUE + P.BINPUT + b"\x07" + P.POP + P.BINGET + b"\x07" + P.STOP) is True
    assert load(P.NEWTRUE + P.LONG_BINPUT + struct.pack("<I", 70000) + P.POP + P.LONG_BINGET
                + struct.pack("<I", 70000) + P.STOP) is True
    assert load(P.NEWFALSE + P.MEMOIZE + P.NEWTRUE + P.MEMOIZE + P.POP + P.POP + P.BINGET + b"\x01" + P.STOP) is True
    assert load(P.NEWFALSE + P.MEMOIZE + P.NEWTRUE + P.MEMOIZE + P.POP + P.POP + P.BINGET + b"\x00" + P.STOP) is False
    # the shared object is the same object
    out = load(P.EMPTY_LIST + P.MEMOIZE + P.BINGET + b"\x00" + P.TUPLE2 + P.STOP)
    assert out[0] is out[1]


def test_memo_costs():
    assert costs(P.NONE + P.MEMOIZE + P.STOP)[1] == OTHER
    # overwriting an index costs nothing more
    assert costs(P.NONE + P.BINPUT + b"\x01" + P.BINPUT + b"\x01" + P.STOP)[1] == OTHER
    assert costs(P.NONE + P.BINPUT + b"\x01" + P.BINPUT + b"\x02" + P.STOP)[1] == 2 * OTHER
    data = P.NONE + P.MEMOIZE + P.STOP
    assert load(data, budget=Budget(0, Limits(mem_slack=OTHER))) is None
    with pytest.raises(SafeLoadError, match="far more memory"):
        load(data, budget=Budget(0, Limits(mem_slack=OTHER - 1)))


def test_memo_errors():
    assert refused(P.BINGET + b"\x05" + P.STOP, "before") == (
        "the pickle is corrupt at byte 0: memo entry 5 is used before it is defined")
    refused(P.LONG_BINGET + struct.pack("<I", 9) + P.STOP, "memo entry 9 is used before")
    refused(P.GET + b"4\n" + P.STOP, "memo entry 4 is used before")
    assert refused(P.NONE + P.PUT + b"-1\n" + P.STOP, "range") == (
        "the pickle is corrupt at byte 1: memo index -1 out of range")
    refused(P.MEMOIZE + P.STOP, "corrupt at byte 0: the stack is empty")
    refused(P.BINPUT + b"\x00" + P.STOP, "the stack is empty")
    refused(P.NONE + P.PUT + b"1234567890123\n" + P.STOP, "corrupt at byte 1: memo index out of range$")
    refused(P.GET + b"1234567890123\n" + P.STOP, "corrupt at byte 0: memo index out of range$")
    refused(P.NONE + P.PUT + b"123456789012\n" + P.STOP, "memo index 123456789012 out of range")
    refused(P.GET + b"123456789012\n" + P.STOP, "memo entry 123456789012 is used before")
    refused(P.NONE + P.PUT + b"x\n" + P.STOP, r"corrupt at byte 1 \(ValueError: invalid literal")


def test_memo_index_boundary():
    lim = Limits(max_memo_index=5)
    assert load(P.NONE + P.BINPUT + b"\x05" + P.STOP, limits=lim) is None
    refused(P.NONE + P.BINPUT + b"\x06" + P.STOP, "memo index 6 out of range", limits=lim)
    assert load(P.NONE + P.PUT + b"0\n" + P.STOP, limits=lim) is None
    v = 2 ** 32 - 1
    assert load(P.NONE + P.LONG_BINPUT + struct.pack("<I", v) + P.POP + P.LONG_BINGET + struct.pack("<I", v)
                + P.STOP) is None
    refused(P.NONE + P.PUT + b"4294967296\n" + P.STOP, "memo index 4294967296 out of range")
    assert load(P.NONE + P.PUT + b"4294967295\n" + P.STOP) is None


# ------------------------------------------------------------------------------------------------ globals, calls


def test_globals_are_resolved_by_the_caller():
    seen = []

    def find(module, name):
        seen.append((module, name))
        return Allowed()

    g = load(glob("pkg.mod", "Name") + P.STOP, find_class=find)
    assert type(g) is Global and (g.module, g.name) == ("pkg.mod", "Name") and seen == [("pkg.mod", "Name")]
    g = load(su("pkg.mod") + su("Other") + P.STACK_GLOBAL + P.STOP, find_class=find)
    assert (g.module, g.name) == ("pkg.mod", "Other")
    assert refused(glob("os", "system") + P.STOP, "import", ForbiddenError) == "wants to import os.system"


def test_global_name_checks():
    find = finder({("m" * 3, "n" * 3): Allowed(), ("é", "n"): Allowed()})
    lim = Limits(max_name=3)
    assert load(glob("mmm", "nnn") + P.STOP, find_class=find, limits=lim).name == "nnn"
    assert load(glob("é", "n") + P.STOP, find_class=find).module == "é"
    assert refused(glob("mmmm", "nnn") + P.STOP, "over-long", ForbiddenError, find_class=find, limits=lim) == (
        "a global with an over-long name at byte 0; refusing")
    refused(glob("mmm", "nnnn") + P.STOP, "over-long", ForbiddenError, find_class=find, limits=lim)
    assert refused(P.BININT1 + b"\x01" + su("n") + P.STACK_GLOBAL + P.STOP, "strings") == (
        "the pickle is corrupt at byte 5: a global's module and name must be strings")
    refused(su("m") + P.BININT1 + b"\x01" + P.STACK_GLOBAL + P.STOP, "must be strings")
    refused(su("m") + P.STACK_GLOBAL + P.STOP, "the stack is empty")
    refused(P.GLOBAL + b"m\xff\nn\n" + P.STOP, r"corrupt at byte 0 \(UnicodeDecodeError")


def test_find_class_must_return_allowed():
    refused(glob("m", "n") + P.STOP, r"corrupt at byte 0 \(TypeError: find_class must return an Allowed\)",
            find_class=lambda m, n: object())


def _calls():
    return {("m", "f"): Allowed(call=lambda *a: list(a)), ("m", "g"): Allowed(),
            ("m", "New"): Allowed(new=collections.OrderedDict), ("m", "same"): Allowed(call=lambda x: x)}


def test_reduce():
    find = finder(_calls())
    out = load(glob("m", "f") + su("ab") + P.NONE + P.TUPLE2 + P.REDUCE + P.STOP, find_class=find)
    assert out == ["ab", None]
    # charged: one node (48) and the payload of the arguments (the tuple's 2 items + "ab")
    _, mem, _, payload, _ = costs(glob("m", "f") + su("ab") + P.NONE + P.TUPLE2 + P.REDUCE + P.STOP, find_class=find)
    assert payload == 2 + 2
    # the list result (56 + 2 slots), tracked; the tuple (40 + 16); "ab" (33 + 49); the node (48)
    assert mem == (56 + 16 + TRACKED) + (40 + 16) + (33 + 49) + 48
    # the result replaces the callable on the stack
    assert load(P.NONE + glob("m", "f") + P.EMPTY_TUPLE + P.REDUCE + P.TUPLE2 + P.STOP, find_class=find) == (None, [])


def test_reduce_refusals():
    find = finder(_calls())
    assert refused(glob("m", "g") + P.EMPTY_TUPLE + P.REDUCE + P.STOP, "call", find_class=find) == (
        "this file wants to call m.g (pickle REDUCE), which this file format never calls at byte 6; refusing")
    refused(P.EMPTY_LIST + P.EMPTY_TUPLE + P.REDUCE + P.STOP, "wants to call a list object", ForbiddenError,
            fmt="the format")
    refused(P.EMPTY_LIST + P.EMPTY_TUPLE + P.REDUCE + P.STOP, "which the format never calls", ForbiddenError,
            fmt="the format")
    assert refused(glob("m", "f") + P.EMPTY_LIST + P.REDUCE + P.STOP, "not a tuple", find_class=find) == (
        "the pickle is corrupt at byte 6: REDUCE arguments are a list, not a tuple")
    refused(P.EMPTY_TUPLE + P.REDUCE + P.STOP, "the stack is empty")
    refused(P.REDUCE + P.STOP, "the stack is empty")


def test_reduce_budget_boundary():
    find = finder(_calls())
    data = glob("m", "f") + P.EMPTY_TUPLE + P.REDUCE + P.STOP
    need = 48 + 56 + TRACKED
    assert load(data, find_class=find, budget=Budget(0, Limits(mem_slack=need))) == []
    with pytest.raises(SafeLoadError, match="far more memory"):
        load(data, find_class=find, budget=Budget(0, Limits(mem_slack=47)))
    data = glob("m", "f") + su("abc") + P.TUPLE1 + P.REDUCE + P.STOP
    assert load(data, find_class=find, budget=Budget(0, Limits(payload_slack=4))) == ["abc"]
    with pytest.raises(SafeLoadError, match="far more work"):
        load(data, find_class=find, budget=Budget(0, Limits(payload_slack=3)))


def test_reduce_result_is_charged_for_its_size():
    find = finder({("m", "d"): Allowed(call=lambda: {"a": 1, "b": 2, "c": 3}),
                   ("m", "t"): Allowed(call=lambda: ("x",) * 5), ("m", "s"): Allowed(call=lambda: {"a"}),
                   ("m", "fs"): Allowed(call=lambda: frozenset({"a", "b"})), ("m", "o"): Allowed(call=object)})
    base = 48
    assert costs(glob("m", "d") + P.EMPTY_TUPLE + P.REDUCE + P.STOP, find_class=find)[1] == base + 64 + 3 * 48 + TRACKED
    assert costs(glob("m", "t") + P.EMPTY_TUPLE + P.REDUCE + P.STOP, find_class=find)[1] == base + 40 + 5 * 8
    assert costs(glob("m", "s") + P.EMPTY_TUPLE + P.REDUCE + P.STOP, find_class=find)[1] == base + 216 + 40 + TRACKED
    assert costs(glob("m", "fs") + P.EMPTY_TUPLE + P.REDUCE + P.STOP, find_class=find)[1] == (
        base + 216 + 80 + TRACKED)
    assert costs(glob("m", "o") + P.EMPTY_TUPLE + P.REDUCE + P.STOP, find_class=find)[1] == base + OTHER + TRACKED


def test_reduce_result_depth_counts_its_arguments():
    find = finder(_calls())
    lim = Limits(max_depth=3)
    # same(([],)): the result is the list, already tracked; the args tuple holds the list
    out = load(glob("m", "f") + P.EMPTY_LIST + P.TUPLE1 + P.REDUCE + P.STOP, find_class=find, limits=lim)
    assert out == [[]]
    # f(([[]],)) is [[[]]]: three levels, so a tuple around it is four
    data = glob("m", "f") + P.EMPTY_LIST + P.EMPTY_LIST + P.APPEND + P.TUPLE1 + P.REDUCE
    assert load(data + P.STOP, find_class=find, limits=lim) == [[[]]]
    refused(data + P.TUPLE1 + P.STOP, "deeper than 3", find_class=find, limits=lim)


def test_reduce_identity_result_is_not_tracked_twice():
    find = finder(_calls())
    data = glob("m", "same") + P.EMPTY_LIST + P.TUPLE1 + P.REDUCE + P.STOP
    out, mem, _, _, _ = costs(data, find_class=find)
    # the list (56 + 120), the args tuple (40 + 8 + 120), the node (48), the list again (56): no 2nd tracking
    assert out == [] and mem == (56 + TRACKED) + (40 + 8 + TRACKED) + 48 + 56


def test_newobj():
    find = finder(_calls())
    out, mem, _, _, _ = costs(glob("m", "New") + P.EMPTY_TUPLE + P.NEWOBJ + P.STOP, find_class=find)
    assert type(out) is collections.OrderedDict and out == {}
    assert mem == OTHER + TRACKED
    assert refused(glob("m", "f") + P.EMPTY_TUPLE + P.NEWOBJ + P.STOP, "instantiate", ForbiddenError,
                   find_class=find) == "this file wants to instantiate m.f (pickle NEWOBJ) at byte 6; refusing"
    refused(P.NONE + P.EMPTY_TUPLE + P.NEWOBJ + P.STOP, "instantiate a NoneType object", ForbiddenError)
    assert refused(glob("m", "New") + P.NONE + P.TUPLE1 + P.NEWOBJ + P.STOP, "arguments", ForbiddenError,
                   find_class=find) == "m.New is instantiated with arguments (pickle NEWOBJ) at byte 9; refusing"
    refused(glob("m", "New") + P.NONE + P.NEWOBJ + P.STOP, "with arguments", ForbiddenError, find_class=find)
    refused(P.EMPTY_TUPLE + P.NEWOBJ + P.STOP, "the stack is empty")
    # the instance goes on top of what was below the class
    assert load(P.NONE + glob("m", "New") + P.EMPTY_TUPLE + P.NEWOBJ + P.TUPLE2 + P.STOP, find_class=find) == (
        None, collections.OrderedDict())


class Thing:
    def __init__(self):
        self.state = []


def _thing_build(obj, state, v):
    obj.state.append(state)


def test_build():
    find = finder({("m", "Thing"): Allowed(new=Thing)})
    data = glob("m", "Thing") + P.EMPTY_TUPLE + P.NEWOBJ + su("ab") + P.NONE + P.TUPLE2 + P.BUILD + P.STOP
    out, mem, _, payload, _ = costs(data, find_class=find, build={Thing: _thing_build})
    assert type(out) is Thing and out.state == [("ab", None)]
    assert payload == 2 + 2
    assert mem == (OTHER + TRACKED) + (33 + 49) + (40 + 16) + 48
    assert refused(data, "state", ForbiddenError, find_class=find) == (
        "this file wants to set the state of a Thing object (pickle BUILD) (not part of this file format) at byte "
        "17; refusing")
    refused(data, "not part of fmt", ForbiddenError, find_class=find, build={list: _thing_build}, fmt="fmt")
    refused(P.NONE + P.BUILD + P.STOP, "the stack is empty")
    refused(P.BUILD + P.STOP, "the stack is empty")
    # the BUILD target stays on the stack
    assert load(data[:-1] + P.TUPLE1 + P.STOP, find_class=find, build={Thing: _thing_build})[0].state


def test_build_on_a_frozen_object_and_budget():
    find = finder({("m", "Thing"): Allowed(new=Thing)})
    make = glob("m", "Thing") + P.EMPTY_TUPLE + P.NEWOBJ
    frozen = make + P.MEMOIZE + P.TUPLE1 + P.BINGET + b"\x00" + P.NONE + P.BUILD + P.STOP
    refused(frozen, "modifies a Thing after placing it", ForbiddenError, find_class=find, build={Thing: _thing_build})
    data = make + su("abc") + P.BUILD + P.STOP
    assert load(data, find_class=find, build={Thing: _thing_build},
                budget=Budget(0, Limits(payload_slack=3))).state == ["abc"]
    with pytest.raises(SafeLoadError, match="far more work"):
        load(data, find_class=find, build={Thing: _thing_build}, budget=Budget(0, Limits(payload_slack=2)))


def test_build_of_another_type_with_a_handler():
    # the handler table is by exact type: a subclass needs its own entry
    class Sub(Thing):
        pass

    find = finder({("m", "Sub"): Allowed(new=Sub)})
    data = glob("m", "Sub") + P.EMPTY_TUPLE + P.NEWOBJ + P.NONE + P.BUILD + P.STOP
    refused(data, "set the state of a Sub", ForbiddenError, find_class=find, build={Thing: _thing_build})
    assert load(data, find_class=find, build={Sub: _thing_build}).state == [None]


def test_persistent_ids():
    got = []

    def pl(pid):
        got.append(pid)
        return ["loaded", pid]

    out, mem, _, payload, _ = costs(su("key") + P.BINPERSID + P.STOP, persistent_load=pl)
    assert out == ["loaded", "key"] and got == ["key"]
    assert payload == 3 and mem == (33 + 49) + 48 + (56 + TRACKED)
    assert load(P.PERSID + b"abc\n" + P.STOP, persistent_load=pl) == ["loaded", "abc"]
    assert refused(su("k") + P.BINPERSID + P.STOP, "persistent") == (
        "this file uses persistent ids, which this file format does not at byte 3; refusing")
    refused(P.PERSID + b"k\n" + P.STOP, "persistent ids, which fmt does not", ForbiddenError, fmt="fmt")
    refused(P.PERSID + b"\xe9\n" + P.STOP, r"corrupt at byte 0 \(UnicodeDecodeError", persistent_load=pl)
    refused(P.BINPERSID + P.STOP, "the stack is empty", persistent_load=pl)
    # a list pid nested in the result counts toward depth
    refused(P.EMPTY_LIST + P.EMPTY_LIST + P.APPEND + P.BINPERSID + P.STOP, "deeper than 2",
            persistent_load=lambda pid: ["x"], limits=Limits(max_depth=2))


@pytest.mark.parametrize("op, name", [(P.INST, "INST"), (P.OBJ, "OBJ"), (P.EXT1, "EXT1"), (P.EXT2, "EXT2"),
                                      (P.EXT4, "EXT4"), (P.NEWOBJ_EX, "NEWOBJ_EX"), (P.NEXT_BUFFER, "NEXT_BUFFER"),
                                      (P.READONLY_BUFFER, "READONLY_BUFFER")])
def test_forbidden_opcodes_are_named(op, name):
    assert refused(P.NONE + op + P.STOP, name, ForbiddenError, fmt="fmt") == (
        f"this file uses the pickle opcode {name}, which fmt never needs at byte 1; refusing")


def test_protocol_and_frame():
    assert load(P.PROTO + b"\x05" + P.NONE + P.STOP) is None
    assert load(P.PROTO + b"\x00" + P.NONE + P.STOP) is None
    assert refused(P.PROTO + b"\x06" + P.NONE + P.STOP, "protocol") == (
        "the pickle is corrupt at byte 0: unsupported pickle protocol 6")
    body = P.NONE + P.STOP
    assert load(P.FRAME + struct.pack("<Q", 2) + body) is None
    assert load(P.FRAME + struct.pack("<Q", 0) + body) is None
    assert refused(P.FRAME + struct.pack("<Q", 3) + body, "FRAME") == (
        "the pickle is truncated or corrupt (it reaches past the end of the data (FRAME) at byte 0)")
    refused(P.FRAME + b"\x01\x00", "past the end of the data at byte 0")


def test_every_opcode_is_dispatched():
    table = SafeUnpickler._DISPATCH
    known = {op.code.encode("latin1")[0] for op in __import__("pickletools").opcodes}
    assert set(table) == known  # every opcode of protocols 0-5 is handled or refused by name
    assert table[P.STOP[0]] is SafeUnpickler._stop and table[P.INST[0]] is SafeUnpickler._forbidden
    assert table[P.BINPUT[0]] is SafeUnpickler._binput and table[P.BINGET[0]] is SafeUnpickler._binget


def test_round_trip_of_pickle_dumps_every_protocol():
    find = finder({("_codecs", "encode"): Allowed(call=codecs_encode), ("__builtin__", "set"): Allowed(call=set),
                   ("builtins", "set"): Allowed(call=set)})
    shared = ["s"]
    obj = {"a": [1, -2, 300, 70000, -2 ** 40, 2 ** 70, 1.5, None, True, False], "b": (), "c": ("x",),
           "d": ("x", "y"), "e": ("x", "y", "z"), "f": (1, 2, 3, 4), "g": b"\x00\xff", "h": "h\u00e9\n",
           "i": shared, "j": shared, "k": {"n": {}}}
    for proto in range(6):
        data = pickle.dumps(obj, protocol=proto)
        got = load(data, find_class=find)
        assert got == pickle.loads(data), proto
        assert got["i"] is got["j"]


# ------------------------------------------------------------------------------------------------ numpy stand-ins


@pytest.mark.parametrize("code, size, fmt, nstr", [
    ("f8", 8, "<d", "<f8"), ("<f4", 4, "<f", "<f4"), (">f2", 2, ">e", ">f2"), ("i8", 8, "<q", "<i8"),
    ("=i4", 4, "<i", "<i4"), ("i2", 2, "<h", "<i2"), ("|i1", 1, "<b", "|i1"), ("u8", 8, "<Q", "<u8"),
    (">u4", 4, ">I", ">u4"), ("u2", 2, "<H", "<u2"), ("u1", 1, "<B", "|u1"), ("b1", 1, "<?", "|b1"),
    (b"<f4", 4, "<f", "<f4"), (b">i8", 8, ">q", ">i8"), (">u1", 1, ">B", "|u1")])
def test_numpy_dtype(code, size, fmt, nstr):
    dt = NumpyDType(code)
    assert dt.itemsize == size and dt.struct_format == fmt and dt.numpy_str == nstr
    assert dt.code == (code.decode() if isinstance(code, bytes) else code).lstrip("<>|=")


@pytest.mark.parametrize("code", ["O8", "U4", "f16", "", "<", "S1", 4, None, b"V8", "f8x", "xf8"])
def test_numpy_dtype_refuses_non_numeric(code):
    with pytest.raises(ForbiddenError, match=r"unsupported numpy dtype .* \(only numeric types are allowed\)"):
        NumpyDType(code)


def test_numpy_dtype_build():
    dt = NumpyDType("f4")
    numpy_dtype_build(dt, (3, ">", None), None)
    assert dt.byteorder == ">" and dt.struct_format == ">f"
    numpy_dtype_build(dt, (3, "<"), None)
    assert dt.byteorder == "<"
    dt.byteorder = ">"
    numpy_dtype_build(dt, (3, b"|"), None)
    assert dt.byteorder == "<"
    dt.byteorder = ">"
    numpy_dtype_build(dt, (3, "="), None)
    assert dt.byteorder == "<"
    numpy_dtype_build(dt, (3, b">"), None)
    assert dt.byteorder == ">"
    for bad in [(3,), [3, "<"], "<", None, ()]:
        with pytest.raises(SafeLoadError, match="^malformed numpy dtype state$"):
            numpy_dtype_build(dt, bad, None)
    for bad in [(3, "x"), (3, b"!"), (3, None), (3, "<<")]:
        with pytest.raises(SafeLoadError, match="^malformed numpy dtype byte order"):
            numpy_dtype_build(dt, bad, None)


def test_numpy_scalar():
    assert numpy_scalar(NumpyDType("<f4"), struct.pack("<f", 1.5)) == 1.5
    assert numpy_scalar(NumpyDType(">i2"), b"\x01\x02") == 0x0102
    assert numpy_scalar(NumpyDType("<i2"), bytearray(b"\x01\x02")) == 0x0201
    assert numpy_scalar(NumpyDType("u1"), "\xff") == 255
    assert numpy_scalar(NumpyDType("b1"), b"\x01") is True
    with pytest.raises(SafeLoadError, match=r"^numpy scalar of type f8 has 4 bytes$"):
        numpy_scalar(NumpyDType("f8"), b"\0" * 4)
    with pytest.raises(SafeLoadError, match="^malformed numpy scalar$"):
        numpy_scalar("f8", b"\0" * 8)
    with pytest.raises(SafeLoadError, match="^malformed numpy scalar$"):
        numpy_scalar(NumpyDType("f8"))
    with pytest.raises(SafeLoadError, match="^malformed numpy scalar$"):
        numpy_scalar(NumpyDType("f8"), 5)


def test_codecs_encode():
    assert codecs_encode("\xe9a", "latin1") == b"\xe9a"
    assert codecs_encode("\xff", "latin-1") == b"\xff"
    for args in [("a",), ("a", "utf-8"), (b"a", "latin1"), ("a", "LATIN1")]:
        with pytest.raises(ForbiddenError, match=r"^refusing _codecs.encode with unexpected arguments$"):
            codecs_encode(*args)


# ------------------------------------------------------------------------------------------------ survivors of the
# first mutation pass (each test states one rule the earlier tests left open)


def test_summary_cuts_inside_a_container_and_walks_keys_by_depth():
    # one character of budget left before the 2nd item: the separator's first character is kept, then cut
    assert summary(["abcdef", "x"], 10) == "['abcdef',..."
    # dict keys are walked one level deeper, like values: a tuple key nested 4 deep is abbreviated
    assert summary({((("x",),),): 1}) == "{((('x'))): 1}"
    assert summary({(((("x",),),),): 1}) == "{(((<tuple of 1>))): 1}"


def test_brief_summarises_with_its_own_limit():
    b = brief(KeyError(list(range(100))), limit=100)
    assert len(b) == len("KeyError: ") + 100 and b.endswith(", 25, 26, 2")


@linux
def test_read_regular_file_closes_after_success(tmp_path):
    p = tmp_path / "ok"
    p.write_bytes(b"abc")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        assert read_regular_file(p, 3) == b"abc"
        assert bytes(read_regular_file(p, 3, mutable=True)) == b"abc"
    assert len(os.listdir("/proc/self/fd")) == before


def test_read_regular_file_one_byte_mutable(tmp_path):
    p = tmp_path / "one"
    p.write_bytes(b"z")
    got = read_regular_file(p, 1, mutable=True)
    assert len(got) == 1 and bytes(got) == b"z"


@linux
def test_read_regular_file_without_following_links_still_never_blocks(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # O_NOFOLLOW is added to the other flags (O_NONBLOCK), not instead of them
    with pytest.raises(SafeLoadError, match=r"a FIFO / named pipe, not a regular file"):
        read_regular_file(fifo, 10, follow_symlinks=False)


@pytest.mark.parametrize("mutable", [False, True])
def test_read_regular_file_reads_at_most_one_byte_past_the_size(tmp_path, monkeypatch, mutable):
    """A file that grows while being read is never slurped: at most size + 1 bytes are asked for."""
    p = tmp_path / "grow"
    p.write_bytes(b"abcd" + b"x" * 1000)
    _fake_size(monkeypatch, -1000)  # fstat says 4 bytes, 1004 are there
    asked = []
    real = os.fdopen

    class Spy:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

        def readinto(self, view):
            asked.append(len(view))
            return self.f.readinto(view)

        def read(self, n=-1):
            asked.append(n)
            return self.f.read(n)

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: Spy(real(*a, **k)))
    with pytest.raises(SafeLoadError, match="grew while being read"):
        read_regular_file(p, 10 ** 6, mutable=mutable)
    assert asked and all(n is not None and 0 <= n <= 5 for n in asked), asked
    assert sum(asked) <= 5


def test_default_what_is_file(tmp_path):
    with pytest.raises(SafeLoadError, match=r": the file is a directory, not a regular file"):
        regular_size(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(SafeLoadError, match=r": the file resolves to "):
        resolve_inside(tmp_path / "a", "../b")


def test_refuse_names_work_when_only_the_payload_is_spent():
    b = Budget(0, Limits(mem_slack=0, data_slack=0, payload_slack=0))
    with pytest.raises(SafeLoadError, match=r"far more work than"):
        b.charge(payload=1)
    b = Budget(0, Limits(mem_slack=1, data_slack=0, payload_slack=0))
    with pytest.raises(SafeLoadError, match=r"far more work than"):
        b.charge(payload=1)


def test_default_budget_uses_the_given_limits():
    v = vm(P.NONE + P.STOP, limits=Limits(ops_floor=5, mem_slack=7))
    assert v.budget.max_ops == 5 and v.budget.max_mem == 16 + 7


def test_dict_cycle_and_depth_after_setitem():
    assert refused(P.EMPTY_DICT + P.MEMOIZE + su("k") + P.BINGET + b"\x00" + P.SETITEM + P.STOP, "cycle") == (
        "a dict is put inside itself (a cycle) at byte 7; refusing")
    lim = Limits(max_depth=3)
    d = P.EMPTY_DICT + su("k") + P.EMPTY_LIST + P.EMPTY_LIST + P.APPEND + P.SETITEM  # {"k": [[]]}: 3 levels
    assert load(d + P.STOP, limits=lim) == {"k": [[]]}
    refused(d + P.TUPLE1 + P.STOP, "deeper than 3", limits=lim)
    refused(P.MARK + su("k") + P.EMPTY_LIST + P.EMPTY_LIST + P.APPEND + P.DICT + P.TUPLE1 + P.STOP, "deeper than 3",
            limits=lim)


def test_list_cycle_and_depth_after_appends():
    assert refused(P.EMPTY_LIST + P.MEMOIZE + P.MARK + P.BINGET + b"\x00" + P.APPENDS + P.STOP, "cycle") == (
        "a list is put inside itself (a cycle) at byte 5; refusing")
    lim = Limits(max_depth=3)
    a = P.EMPTY_LIST + P.MARK + P.EMPTY_LIST + P.EMPTY_LIST + P.APPEND + P.APPENDS  # [[[]]]
    assert load(a + P.STOP, limits=lim) == [[[]]]
    refused(a + P.TUPLE1 + P.STOP, "deeper than 3", limits=lim)
    a1 = P.EMPTY_LIST + P.EMPTY_LIST + P.EMPTY_LIST + P.APPEND + P.APPEND
    refused(a1 + P.TUPLE1 + P.STOP, "deeper than 3", limits=lim)


def test_tuple_and_list_from_a_mark_hold_their_items():
    lim = Limits(max_depth=2)
    for close in (P.TUPLE, P.LIST):
        # the items are inside: a list placed in it is frozen, and counts toward depth
        frozen = P.MARK + P.EMPTY_LIST + P.MEMOIZE + close + P.BINGET + b"\x00" + P.NONE + P.APPEND + P.STOP
        refused(frozen, "modifies a list after placing it", ForbiddenError)
        assert load(P.MARK + P.EMPTY_LIST + close + P.STOP, limits=lim) in ([[]], ([],))
        refused(P.MARK + P.EMPTY_LIST + P.EMPTY_LIST + P.APPEND + close + P.STOP, "deeper than 2", limits=lim)


def test_frame_length_is_unsigned():
    refused(P.FRAME + b"\xff" * 8 + P.NONE + P.STOP, r"past the end of the data \(FRAME\)")


def test_long_binput_reads_four_bytes():
    assert load(P.NONE + P.LONG_BINPUT + struct.pack("<I", 3) + P.NEWTRUE + P.STOP) is True
    assert load(P.NONE + P.BINPUT + b"\x03" + P.NEWTRUE + P.STOP) is True
    assert load(P.NONE + P.PUT + b"3\n" + P.NEWTRUE + P.STOP) is True


def test_newobj_names_a_non_global():
    refused(P.EMPTY_LIST + P.EMPTY_TUPLE + P.NEWOBJ + P.STOP, "wants to instantiate a list object", ForbiddenError)


def test_build_handler_gets_this_vm():
    got = []

    def handler(obj, state, v):
        got.append(v)
        v.set_items(obj.d, [("k", state)])

    class Holder:
        def __init__(self):
            self.d = {}

    find = finder({("m", "H"): Allowed(new=Holder)})
    v = vm(glob("m", "H") + P.EMPTY_TUPLE + P.NEWOBJ + P.NONE + P.BUILD + P.STOP, find_class=find,
           build={Holder: handler})
    # the handler's dict must be one the VM created: refused, with the VM's own message
    with pytest.raises(ForbiddenError, match="set items of a dict it did not create"):
        v.load()
    assert got == [v]


def test_dispatch_table_rebuilt():
    saved = SafeUnpickler._DISPATCH
    try:
        SafeUnpickler._DISPATCH = {}
        S._init_dispatch()
        table = SafeUnpickler._DISPATCH
        assert table is not saved and table == saved
        assert table[ord(".")] is SafeUnpickler._stop and table[ord("]")] is SafeUnpickler._empty_list
        assert table[ord("i")] is SafeUnpickler._forbidden and len(table) == 68
    finally:
        SafeUnpickler._DISPATCH = saved


def test_numpy_dtype_strips_only_byte_order_marks():
    for code in ["Xf8", "XXf8", "X<f8"]:
        with pytest.raises(ForbiddenError, match="unsupported numpy dtype"):
            NumpyDType(code)


def test_read_regular_file_opens_close_on_exec(tmp_path, monkeypatch):
    """The descriptor is never inheritable (a child exec'd meanwhile by another thread cannot keep it)."""
    p = tmp_path / "x"
    p.write_bytes(b"x")
    seen = []
    real = os.fstat

    def fstat(fd):
        seen.append(os.get_inheritable(fd))
        return real(fd)

    monkeypatch.setattr(os, "fstat", fstat)
    assert read_regular_file(p, 1) == b"x"
    with pytest.raises(SafeLoadError):
        read_regular_file(tmp_path, 1)
    assert seen == [False, False]


@linux
def test_read_regular_file_closes_descriptor_zero(tmp_path):
    """In a process whose stdin is closed the file may be opened as descriptor 0: it is closed all the same."""
    saved = os.dup(0)
    try:
        os.close(0)
        with pytest.raises(SafeLoadError, match="is a directory"):
            read_regular_file(tmp_path, 1)
        with pytest.raises(OSError):
            os.fstat(0)
    finally:
        os.dup2(saved, 0)
        os.close(saved)
