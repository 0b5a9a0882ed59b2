"""Fast, deterministic tests of ``teachers/stylegan2/nvlabs_pickle.py`` and ``io/numpy_objects.py``, written
against the mutants of mutation testing (group ``nvlabs``, docs/mutation/nvlabs.md).

Every record, blob and pickle here is built by hand (or by ``tests/nvlabs_writer.py`` for a one-layer
network); each expectation is stated independently of the code (byte layouts, element counts, offsets
worked by hand). No CPU-time assertions: the tests must pass under mutmut's trampoline.
"""
from __future__ import annotations

import collections
import io
import math
import pickle
import struct
import warnings

import pytest
import torch
from torch import nn

import nvlabs_writer as W
from gandistill.io import numpy_objects as NO
from gandistill.io.safe_pickle import (Allowed, Budget, ForbiddenError, Global, Limits, NumpyDType, SafeLoadError,
                                       codecs_encode)
from gandistill.teachers.stylegan2 import nvlabs_pickle as NP
from gandistill.teachers.stylegan2.nvlabs_pickle import (PersistentRecord, SG2LoadError, UnsafePickleError,
                                                         load_storage_blob)

P = pickle
MAGIC = 0x1950A86A20F9469CFC6C
INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}


@pytest.fixture(autouse=True)
def _fresh_header_cache(monkeypatch):
    """Every test starts with no validated blob header cached (so each blob's header is checked)."""
    monkeypatch.setattr(NP, "_BLOB_HEADERS", [])


def G(module: str, name: str, allowed: Allowed = Allowed()) -> Global:
    return Global(module, name, allowed)


# ------------------------------------------------------------------------------------------------ numpy objects


def test_strict_numpy_scalar_float64_and_bool():
    f8 = NumpyDType("<f8")
    assert NO.strict_numpy_scalar(f8, struct.pack("<d", 1.25)) == 1.25
    assert type(NO.strict_numpy_scalar(f8, struct.pack("<d", -3.5))) is float
    assert NO.strict_numpy_scalar(f8, bytearray(struct.pack("<d", 2.0))) == 2.0
    # protocols 0-2 give the bytes as latin-1 text
    assert NO.strict_numpy_scalar(f8, struct.pack("<d", 0.5).decode("latin1")) == 0.5
    assert NO.strict_numpy_scalar(NumpyDType(">f8"), struct.pack(">d", 7.0)) == 7.0
    b1 = NumpyDType("|b1")
    assert NO.strict_numpy_scalar(b1, b"\x01") is True
    assert NO.strict_numpy_scalar(b1, b"\x00") is False
    assert NO.strict_numpy_scalar(b1, "\x01") is True


@pytest.mark.parametrize("code,data", [("f8", b"\x00" * 7), ("f8", b"\x00" * 9), ("b1", b"\x02"), ("b1", b""),
                                       ("b1", b"\x00\x00"), ("f4", b"\x00" * 4), ("i8", b"\x00" * 8)])
def test_strict_numpy_scalar_refuses_other_dtypes_and_lengths(code, data):
    with pytest.raises(ForbiddenError, match=rf"dtype '{code}' with {len(data)} bytes; only float64"):
        NO.strict_numpy_scalar(NumpyDType(code), data)


@pytest.mark.parametrize("dtype,data", [("f8", struct.pack("<d", 1.0)), (NumpyDType("f8"), None),
                                        (NumpyDType("f8"), 1.0), (NumpyDType("f8"), [1])])
def test_strict_numpy_scalar_refuses_malformed_calls(dtype, data):
    with pytest.raises(SafeLoadError, match="malformed numpy scalar") as info:
        NO.strict_numpy_scalar(dtype, data)
    assert type(info.value) is SafeLoadError
    with pytest.raises(SafeLoadError, match="malformed numpy scalar"):
        NO.strict_numpy_scalar(NumpyDType("f8"))  # the default data: none


def test_int64_pair_before_and_after_build():
    arr = NO.numpy_reconstruct(G("numpy", "ndarray"), (0,), b"b")
    assert type(arr) is NO.Int64Pair and len(arr) == 2 and repr(arr) == "Int64Pair([])"
    for read in (arr.tolist, lambda: arr[0], lambda: list(arr), lambda: arr.values):
        with pytest.raises(SafeLoadError, match="never filled"):
            read()
    NO.int64_pair_build(arr, (1, (2,), NumpyDType("<i8"), False, struct.pack("<qq", 640, -480)), None)
    assert arr.values == (640, -480) and arr.tolist() == [640, -480] and arr[1] == -480 and list(arr) == [640, -480]
    assert type(arr.tolist()) is list and repr(arr) == "Int64Pair([640, -480])" and len(arr) == 2
    big = NO.numpy_reconstruct(G("numpy", "ndarray"), (0,), "b")  # text typecode (protocols 0-2)
    NO.int64_pair_build(big, (1, (2,), NumpyDType(">i8"), False, struct.pack(">qq", 3, 2 ** 40).decode("latin1")),
                        None)
    assert big.values == (3, 2 ** 40)
    zero = NO.numpy_reconstruct(G("numpy", "ndarray"), (0,), b"b")
    NO.int64_pair_build(zero, (1, (2,), NumpyDType("i8"), False, bytearray(16)), None)
    assert zero.values == (0, 0)
    with pytest.raises(ForbiddenError, match="built twice"):
        NO.int64_pair_build(arr, (1, (2,), NumpyDType("i8"), False, b"\x00" * 16), None)
    assert arr.values == (640, -480)


@pytest.mark.parametrize("args", [
    (G("numpy", "ndarray"), (1,), b"b"), (G("numpy", "ndarray"), (0,), b"B"), (G("numpy", "ndarray"), [0], b"b"),
    (G("numpy", "ndarrayx"), (0,), b"b"), (G("numpyx", "ndarray"), (0,), b"b"), ("numpy.ndarray", (0,), b"b"),
    (G("numpy", "ndarray"), None, b"b"), (G("numpy", "ndarray"), (0,), None)])
def test_numpy_reconstruct_refuses_other_calls(args):
    with pytest.raises(ForbiddenError, match=r"other than \(numpy.ndarray"):
        NO.numpy_reconstruct(*args)


def test_numpy_reconstruct_defaults_are_refused():
    with pytest.raises(ForbiddenError):
        NO.numpy_reconstruct(G("numpy", "ndarray"), (0,))
    with pytest.raises(ForbiddenError):
        NO.numpy_reconstruct(G("numpy", "ndarray"))


RAW = b"\x01" * 16


@pytest.mark.parametrize("state,shape,dtype", [
    ((2, (2,), NumpyDType("i8"), False, RAW), "(2,)", "i8"),
    ((1, (3,), NumpyDType("i8"), False, RAW), "(3,)", "i8"),
    ((1, (2, 1), NumpyDType("i8"), False, RAW), "(2, 1)", "i8"),
    ((1, (2,), NumpyDType("i4"), False, RAW), "(2,)", "i4"),
    ((1, (2,), "i8", False, RAW), "(2,)", "?"),
    ((1, (2,), NumpyDType("i8"), True, RAW), "(2,)", "i8"),
    ((1, (2,), NumpyDType("i8"), 0, RAW), "(2,)", "i8"),
    ((1, (2,), NumpyDType("i8"), False, RAW[:15]), "(2,)", "i8"),
    ((1, (2,), NumpyDType("i8"), False, RAW + b"\x00"), "(2,)", "i8"),
    ((1, (2,), NumpyDType("i8"), False, 5), "(2,)", "i8"),
    ((1, (2,), NumpyDType("i8"), False, RAW, None), "(2,)", "i8"),
    ((1, (2,), NumpyDType("i8"), False), "(2,)", "i8"),
    ([1, (2,), NumpyDType("i8"), False, RAW], "None", "?"),
    ((1,), "None", "?"),
    ((1, (2,)), "(2,) and", "?"),
    ((1, (3,), NumpyDType("i8")), "(3,) and", "i8"),
    ((1, (2 ** 39,) * 8), repr((2 ** 39,) * 8) + " and", "?"),
    ((1, (2 ** 39,) * 9), repr((2 ** 39,) * 9)[:40] + "... and", "?"),
    ((1, (1, 2, 3, 4, 5, 6, 7, 8)), r"(1, 2, 3, 4, 5, 6, 7, 8)", "?"),
    ((1, (1, 2, 3, 4, 5, 6, 7, 8, 9)), "(1, 2, 3, 4, 5, 6, 7, 8, 9) and", "?"),
    ((1, (2 ** 40 - 1,)), "(1099511627775,)", "?"),
    ((1, (-(2 ** 40) + 1,)), "(-1099511627775,)", "?"),
    ((1, (2 ** 40,)), "(1099511627776) and", "?"),
    ((1, (1.0,)), "(1.0) and", "?"),
    ((1, [2]), "[2]", "?"),
    (None, "None", "?"),
])
def test_int64_pair_build_refuses_other_states(state, shape, dtype):
    arr = NO.numpy_reconstruct(G("numpy", "ndarray"), (0,), b"b")
    with pytest.raises(ForbiddenError) as info:
        NO.int64_pair_build(arr, state, None)
    msg = str(info.value)
    assert msg.startswith(f"a numpy array of shape {shape}"), msg
    assert f"and dtype '{dtype}'; only int64" in msg, msg
    assert arr._values == ()


# ------------------------------------------------------------------------------------------------ small stand-ins


def test_easydict_attributes_and_build():
    d = NP.EasyDict(a=1)
    assert d.a == 1 and isinstance(d, dict)
    with pytest.raises(AttributeError, match="^b$"):
        d.b

    class VM:
        calls = []

        def set_items(self, obj, items):
            self.calls.append((obj, items))
            obj.update(items)

    vm = VM()
    NP._easydict_build(d, None, vm)
    assert vm.calls == [] and d == {"a": 1}
    NP._easydict_build(d, {"x": 2, "y": 3}, vm)
    assert d == {"a": 1, "x": 2, "y": 3} and vm.calls[0][1] == [("x", 2), ("y", 3)] and vm.calls[0][0] is d
    with pytest.raises(SG2LoadError, match="EasyDict state is a list, expected a dict"):
        NP._easydict_build(d, [("z", 1)], vm)


def meta(**kw):
    m = dict(type="class", version=6, module_src="import os", class_name="Gen", state={"_init_kwargs": {"z": 1}})
    m.update(kw)
    return {k: v for k, v in m.items() if v is not ...}


def test_reconstruct_persistent_obj_keeps_the_state_unchanged():
    state = {"_init_kwargs": {"z": 1}, "_init_args": (), "w": 3}
    rec = NP._reconstruct_persistent_obj(meta(state=state))
    assert type(rec) is PersistentRecord and rec.class_name == "Gen" and rec.version == 6
    assert rec.state is state and rec.init_kwargs is state["_init_kwargs"] and rec.init_args == ()
    args = tuple(range(3))
    rec = NP._reconstruct_persistent_obj(meta(state={"_init_args": args}))
    assert rec.init_args is args and rec.init_kwargs == {}
    rec = NP._reconstruct_persistent_obj(meta(state={"_init_args": list(range(100)), "_init_kwargs": None}))
    assert rec.init_args == tuple(range(64)) and rec.init_kwargs == {}
    rec = NP._reconstruct_persistent_obj(meta(state={"_init_args": None, "_init_kwargs": {}}))
    assert rec.init_args == () and type(rec.init_args) is tuple and rec.init_kwargs == {}
    assert PersistentRecord("X", {}).version == 6 and PersistentRecord("X", {}).init_args == ()
    assert PersistentRecord("X", {}).init_kwargs == {}


@pytest.mark.parametrize("m,match", [
    ([("class_name", "G")], "malformed persistent object"),
    (meta(class_name=...), "malformed persistent object"),
    (meta(class_name=b"G"), "malformed persistent object"),
    (meta(type="function"), "persistent object 'Gen' has type 'function'; only"),
    (meta(type=...), "persistent object 'Gen' has type None"),
    (meta(version=5), "has persistence version 5; only version 6"),
    (meta(version=7), "has persistence version 7"),
    (meta(version=6.0), r"has persistence version 6.0;"),
    (meta(version=True), "has persistence version True"),
    (meta(version=...), "has persistence version None"),
    (meta(state=[]), "persistent object 'Gen' has no state dict"),
    (meta(state=...), "has no state dict"),
    (meta(state={"_init_kwargs": [1]}), "malformed _init_args/_init_kwargs"),
    (meta(state={"_init_args": {"a": 1}}), "malformed _init_args/_init_kwargs"),
    (meta(state={"_init_args": "ab"}), "malformed _init_args/_init_kwargs"),
])
def test_reconstruct_persistent_obj_refusals(m, match):
    with pytest.raises(SG2LoadError, match=match):
        NP._reconstruct_persistent_obj(m)


def test_record_children():
    assert PersistentRecord("X", {}).children == {}
    assert PersistentRecord("X", {"_modules": None}).children == {}
    mods = collections.OrderedDict(a=1)
    ch = PersistentRecord("X", {"_modules": mods}).children
    assert ch == {"a": 1} and type(ch) is dict and ch is not mods


def test_ordered_dict_and_small_set():
    od = NP._ordered_dict()
    assert type(od) is collections.OrderedDict and od == {}
    with pytest.raises(UnsafePickleError, match="OrderedDict with arguments"):
        NP._ordered_dict([("a", 1)])
    assert NP._small_set() == set() and type(NP._small_set()) is set
    names = [f"n{i}" for i in range(64)]
    assert NP._small_set(names) == set(names)
    assert NP._small_set(tuple(names)) == set(names)
    assert NP._small_set(["x" * 256]) == {"x" * 256}
    with pytest.raises(UnsafePickleError, match=r"builtins.set with a list of 65 items; refusing \(the snapshot "
                                                r"format only builds sets of at most 64 names\)"):
        NP._small_set(names + ["x"])
    with pytest.raises(UnsafePickleError, match=r"builtins.set with a tuple of 65 items"):
        NP._small_set(tuple(names + ["x"]))
    with pytest.raises(UnsafePickleError, match=r"builtins.set with a frozenset; refusing"):
        NP._small_set(frozenset(["a"]))
    with pytest.raises(UnsafePickleError, match=r"builtins.set with a str; refusing"):
        NP._small_set("abc")
    for bad in (["x" * 257], [1], [b"a"], ["a", None]):
        with pytest.raises(UnsafePickleError, match="other than short names"):
            NP._small_set(bad)


def test_reconstructor():
    ed = G("dnnlib.util", "EasyDict", Allowed(new=NP.EasyDict))
    for base in (G("builtins", "dict"), G("__builtin__", "dict")):
        out = NP._reconstructor(ed, base, {"a": 1})
        assert type(out) is NP.EasyDict and out == {"a": 1}
    bad = [(G("dnnlib.util", "EasyDict", Allowed(new=dict)), G("builtins", "dict"), {}),
           (NP.EasyDict, G("builtins", "dict"), {}),
           (ed, G("builtins", "list"), {}), (ed, G("copyreg", "dict"), {}), (ed, G("__builtin__", "set"), {}),
           (ed, ("builtins", "dict"), {}), (ed, G("builtins", "dict"), NP.EasyDict()),
           (ed, G("builtins", "dict"), [("a", 1)])]
    for args in bad:
        with pytest.raises(UnsafePickleError, match="something other than"):
            NP._reconstructor(*args)
    with pytest.raises(UnsafePickleError):
        NP._reconstructor(ed, G("builtins", "dict"))  # the default state (None)


# ------------------------------------------------------------------------------------------------ tensor blobs


def legacy_blob(values: torch.Tensor, *, view=None, key="k", numel=None, count=None, keys=None,
                magic=MAGIC, protocol=1001, info=INFO, stype=torch.FloatStorage, extra=b"") -> bytes:
    """A legacy ``torch.save`` blob of one storage, written field by field (the layout
    ``load_storage_blob`` reads: magic, protocol, sys info, storage record, key list, count, raw data)."""
    marker = object()
    n = values.numel() if numel is None else numel

    class _P(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is marker:
                return ("storage", stype, key, "cpu", n, view)
            return None

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for obj in (magic, protocol, info):
            pickle.dump(obj, buf, protocol=2)
        _P(buf, protocol=2).dump(marker)
        pickle.dump([key] if keys is None else keys, buf, protocol=2)
    buf.write(struct.pack("<q", values.numel() if count is None else count))
    buf.write(values.contiguous().view(torch.uint8).numpy().tobytes())
    return buf.getvalue() + extra


def test_torch_blob_reads_exactly():
    values = torch.arange(10, dtype=torch.float32) - 3.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buf = io.BytesIO()
        torch.save(values.storage(), buf, _use_new_zipfile_serialization=False)
    s = load_storage_blob(buf.getvalue())
    assert type(s) is NP._Storage and s.claimed == 0 and s.data.dtype == torch.float32
    assert torch.equal(s.data, values) and repr(s) == "<storage torch.float32 x10>"


@pytest.mark.parametrize("stype,dtype", [(torch.DoubleStorage, torch.float64), (torch.HalfStorage, torch.float16),
                                         (torch.LongStorage, torch.int64), (torch.IntStorage, torch.int32),
                                         (torch.ShortStorage, torch.int16), (torch.CharStorage, torch.int8),
                                         (torch.ByteStorage, torch.uint8), (torch.BoolStorage, torch.bool),
                                         (torch.BFloat16Storage, torch.bfloat16)])
def test_storage_dtypes(stype, dtype):
    values = (torch.arange(6) % 2).to(dtype)
    s = load_storage_blob(legacy_blob(values, stype=stype))
    assert s.data.dtype == dtype and torch.equal(s.data, values)


def test_blob_views_and_bounds():
    v = torch.arange(20, dtype=torch.float32)
    assert torch.equal(load_storage_blob(legacy_blob(v, view=("view", 5, 10))).data, v[5:15])
    assert torch.equal(load_storage_blob(legacy_blob(v, view=("view", 0, 20))).data, v)
    assert torch.equal(load_storage_blob(legacy_blob(v, view=("view", 20, 0))).data, v[20:])
    assert load_storage_blob(legacy_blob(v, view=("view", 19, 1))).data.tolist() == [19.0]
    for view in (("view", 11, 10), ("view", -1, 5), ("view", 0, -1), ("view", 0, 21), ("view", 21, 0)):
        with pytest.raises(SG2LoadError, match="storage view is out of bounds"):
            load_storage_blob(legacy_blob(v, view=view))
    for view in (("view", 1), ("view", 1, 2, 3), ["view", 1, 2], ("view", 1.0, 2), ("view", 1, "2")):
        with pytest.raises(SG2LoadError, match="malformed storage view record"):
            load_storage_blob(legacy_blob(v, view=view))
    assert torch.equal(load_storage_blob(legacy_blob(v, view=(None, 2, 3))).data, v[2:5])  # view[0] unused


def test_blob_types():
    v = torch.arange(4, dtype=torch.float32)
    blob = legacy_blob(v)
    for ok in (blob, bytearray(blob), memoryview(blob), memoryview(bytearray(blob))):
        assert torch.equal(load_storage_blob(ok).data, v)
    for bad in ("text", None, [1], memoryview(blob).cast("B", (1, len(blob))), memoryview(bytearray(8)).cast("q")):
        with pytest.raises(SG2LoadError, match="not a byte string"):
            load_storage_blob(bad)


def test_blob_storage_data_views_and_copies(monkeypatch):
    v = torch.arange(1000, dtype=torch.float32)
    blob = legacy_blob(v)
    # bytes: a copy, its own memory
    s = load_storage_blob(blob, Budget(len(blob)))
    assert torch.equal(s.data, v)
    buf = bytearray(blob)
    ctx = NP.BlobContext(Budget(len(blob)))
    assert ctx.seen == {} and ctx.budget is not None
    mv = memoryview(buf)
    s = load_storage_blob(mv, ctx=ctx)
    assert torch.equal(s.data, v) and id(mv) in ctx.seen
    base = torch.frombuffer(buf, dtype=torch.uint8).data_ptr()
    ptr = s.data.data_ptr()
    assert base <= ptr < base + len(buf) and ptr % 64 == 0  # a view of the buffer, aligned
    at = ptr - base + 4 * 999
    buf[at:at + 4] = struct.pack("<f", 5.5)  # writes show through the view
    assert s.data[-1].item() == 5.5
    with pytest.raises(SG2LoadError, match="read twice"):
        load_storage_blob(mv, ctx=ctx)
    # a writable buffer without a context: a copy
    buf2 = bytearray(blob)
    s2 = load_storage_blob(memoryview(buf2))
    buf2[-4:] = struct.pack("<f", 9.0)
    assert s2.data[-1].item() == 999.0
    # a read-only memoryview with a context: a copy too
    ro = memoryview(bytes(blob))
    s3 = load_storage_blob(ro, ctx=NP.BlobContext(Budget(len(blob))))
    assert torch.equal(s3.data, v)


def test_storage_data_alignment_shift():
    v = torch.arange(8, dtype=torch.float64) + 0.5
    raw = v.numpy().tobytes()
    for pre in range(0, 80, 7):
        buf = bytearray(b"\xee" * pre + raw + b"\xff" * 3)
        base = torch.frombuffer(buf, dtype=torch.uint8).data_ptr()
        t = NP._storage_data(memoryview(buf), pre, 8, torch.float64, NP.BlobContext(Budget(100)))
        assert torch.equal(t, v), pre
        shift = (base + pre) % 64
        if shift <= pre:  # moved back onto the boundary, inside the buffer
            assert t.data_ptr() == base + pre - shift and t.data_ptr() % 64 == 0
            assert bytes(buf[pre - shift:pre - shift + len(raw)]) == raw
        else:  # no room before it: a copy, the buffer untouched
            assert not (base <= t.data_ptr() < base + len(buf))
            assert bytes(buf[pre:pre + len(raw)]) == raw
        assert bytes(buf[-3:]) == b"\xff" * 3
    e = NP._storage_data(b"abc", 1, 0, torch.int16, None)
    assert e.dtype == torch.int16 and e.numel() == 0
    c = NP._storage_data(b"\x01\x00\x02\x00\x03\x00", 2, 2, torch.int16, None)
    assert c.tolist() == [2, 3]


def test_storage_data_exact_move():
    """The data is moved by exactly ``shift`` bytes, and exactly ``nbytes`` of them."""
    raw = bytes(range(1, 33))
    for pre in range(1, 64):
        buf = bytearray(b"\x00" * 64 + b"\x00" * pre + raw + b"\x00" * 64)
        base = torch.frombuffer(buf, dtype=torch.uint8).data_ptr()
        start = 64 + pre
        shift = (base + start) % 64
        t = NP._storage_data(memoryview(buf), start, 8, torch.int32, NP.BlobContext(Budget(100)))
        assert bytes(t.numpy().tobytes()) == raw
        assert t.data_ptr() == base + start - shift
        new = start - shift
        assert bytes(buf[new:new + 32]) == raw
        # bytes after the moved range keep their old values
        if 0 < shift <= 32:
            assert bytes(buf[new + 32:start + 32]) == raw[32 - shift:]


@pytest.mark.parametrize("kw,match", [
    (dict(magic=MAGIC + 1), "wrong magic number"),
    (dict(protocol=1000), "unsupported serialization protocol"),
    (dict(info={**INFO, "little_endian": False}), "only little-endian"),
    (dict(info={**INFO, "little_endian": 1}), "only little-endian"),
    (dict(info=[1]), "only little-endian"),
    (dict(count=3), r"element count 3 != declared 4"),
    (dict(keys=["k", "k"]), "no valid storage key list"),
    (dict(keys=("k",)), "no valid storage key list"),
    (dict(keys=[1.0]), "no valid storage key list"),
    (dict(keys=["other"]), "unknown or repeated storage key 'other'"),
    (dict(keys=[]), "storage has no data"),
    (dict(numel=5), r"element count 4 != declared 5"),
])
def test_blob_refusals(kw, match):
    with pytest.raises(SG2LoadError, match=match):
        load_storage_blob(legacy_blob(torch.arange(4, dtype=torch.float32), **kw))


def test_blob_info_without_byte_order_and_int_keys():
    v = torch.arange(4, dtype=torch.float32)
    assert torch.equal(load_storage_blob(legacy_blob(v, info={"protocol_version": 1001})).data, v)
    assert torch.equal(load_storage_blob(legacy_blob(v, key=7, keys=[7])).data, v)
    assert torch.equal(load_storage_blob(legacy_blob(v, key=7, keys=["7"])).data, v)


def test_blob_truncation_at_every_boundary():
    v = torch.arange(4, dtype=torch.float32)
    blob = legacy_blob(v)
    assert torch.equal(load_storage_blob(blob).data, v)
    for cut in (1, 2, 8, 15, 16, 17, 23, 24):
        with pytest.raises(SG2LoadError):
            load_storage_blob(blob[:-cut])
    with pytest.raises(SG2LoadError, match="tensor blob is truncated"):
        load_storage_blob(blob[:-1])
    with pytest.raises(SG2LoadError, match="tensor blob is truncated"):
        load_storage_blob(blob[:-16])  # the data gone, the count's 8 bytes left
    with pytest.raises(SG2LoadError, match="tensor blob is truncated"):
        load_storage_blob(blob[:-17])  # one byte of the count missing
    # the whole data and nothing more: reads; extra bytes after it are ignored
    assert torch.equal(load_storage_blob(blob + b"junk").data, v)


def test_blob_declares_more_than_it_holds():
    v = torch.arange(4, dtype=torch.float32)
    blob = legacy_blob(v)
    # numel * itemsize > len(blob): refused before anything is read
    n = len(blob) // 4 + 1
    with pytest.raises(SG2LoadError, match=rf"declares {n} elements, more than its {len(blob)} bytes hold"):
        NP._storage_record({}, len(blob), ("storage", G("torch", "FloatStorage"), "k", "cpu", n, None))
    n = len(blob) // 4
    st = {}
    ref = NP._storage_record(st, n * 4, ("storage", G("torch", "FloatStorage"), "k", "cpu", n, None))
    assert st == {"k": [torch.float32, n, None]} and ref.key == "k" and ref.view is None


def test_storage_record_checks():
    st = {}
    ref = NP._storage_record(st, 100, ("storage", G("torch", "DoubleStorage"), 3, "cpu", 2, ("v", 1, 1)))
    assert type(ref) is NP._BlobRef and ref.key == "3" and ref.view == (1, 1) and st["3"] == [torch.float64, 2, None]
    same = NP._storage_record(st, 100, ("storage", G("torch", "DoubleStorage"), "3", "cpu", 2, None))
    assert same.key == "3" and st["3"] == [torch.float64, 2, None]
    with pytest.raises(SG2LoadError, match="declares storage '3' twice, differently"):
        NP._storage_record(st, 100, ("storage", G("torch", "FloatStorage"), "3", "cpu", 2, None))
    with pytest.raises(SG2LoadError, match="declares storage '3' twice, differently"):
        NP._storage_record(st, 100, ("storage", G("torch", "DoubleStorage"), "3", "cpu", 3, None))
    z = NP._storage_record(st, 0, ("storage", G("torch", "ByteStorage"), "z", "cpu", 0, None))
    assert z.key == "z" and st["z"] == [torch.uint8, 0, None]
    for pid in (["storage", G("torch", "FloatStorage"), "k", "cpu", 1, None],
                ("storage", G("torch", "FloatStorage"), "k", "cpu", 1),
                ("storage", G("torch", "FloatStorage"), "k", "cpu", 1, None, None),
                ("storagex", G("torch", "FloatStorage"), "k", "cpu", 1, None)):
        with pytest.raises(SG2LoadError, match="unexpected persistent id in a tensor blob"):
            NP._storage_record({}, 100, pid)
    for pid in (("storage", "FloatStorage", "k", "cpu", 1, None),
                ("storage", G("torch", "Storage"), "k", "cpu", 1, None),
                ("storage", G("torch", "FloatStorage"), 1.0, "cpu", 1, None),
                ("storage", G("torch", "FloatStorage"), "k", "cpu", 1.0, None),
                ("storage", G("torch", "FloatStorage"), "k", "cpu", True, None),
                ("storage", G("torch", "FloatStorage"), "k", "cpu", -1, None)):
        with pytest.raises(SG2LoadError, match="malformed storage record"):
            NP._storage_record({}, 100, pid)


def test_blob_find_class():
    for name in NP._STORAGE_DTYPES:
        a = NP._blob_find_class("torch", name)
        assert a.call is None and a.new is None
    for module, name in (("torch", "Tensor"), ("torchx", "FloatStorage"), ("os", "system")):
        with pytest.raises(UnsafePickleError, match=rf"wants to import {module}.{name}; refusing"):
            NP._blob_find_class(module, name)


def test_blob_header_cache(monkeypatch):
    v = torch.arange(4, dtype=torch.float32)
    blob = legacy_blob(v)
    load_storage_blob(blob)
    assert len(NP._BLOB_HEADERS) == 1 and blob.startswith(NP._BLOB_HEADERS[0])
    hdr = NP._BLOB_HEADERS[0]
    expected = b"".join(pickle.dumps(o, protocol=2) for o in (MAGIC, 1001, INFO))
    assert hdr == expected
    load_storage_blob(blob)  # the same header: not cached twice
    assert len(NP._BLOB_HEADERS) == 1
    # a cached header still reads the record that follows it
    assert torch.equal(load_storage_blob(legacy_blob(v * 2)).data, v * 2)
    # eight headers at most
    for i in range(12):
        load_storage_blob(legacy_blob(v, info={**INFO, "n": "x" * i}))
    assert len(NP._BLOB_HEADERS) == 8
    # long headers are never cached
    monkeypatch.setattr(NP, "_BLOB_HEADERS", [])
    load_storage_blob(legacy_blob(v, info={**INFO, "pad": "x" * 600}))
    assert NP._BLOB_HEADERS == []
    info = {**INFO, "pad": ""}
    base = len(b"".join(pickle.dumps(o, protocol=2) for o in (MAGIC, 1001, info)))
    info512 = {**INFO, "pad": "x" * (512 - base)}
    assert len(b"".join(pickle.dumps(o, protocol=2) for o in (MAGIC, 1001, info512))) == 512
    load_storage_blob(legacy_blob(v, info=info512))
    assert len(NP._BLOB_HEADERS) == 1 and len(NP._BLOB_HEADERS[0]) == 512
    monkeypatch.setattr(NP, "_BLOB_HEADERS", [])
    info513 = {**INFO, "pad": "x" * (513 - base)}
    load_storage_blob(legacy_blob(v, info=info513))
    assert NP._BLOB_HEADERS == []


def test_blob_budget_is_used():
    """The blob's pickles are charged to the context's budget if there is one, else to the given one."""
    blob = legacy_blob(torch.arange(4, dtype=torch.float32))
    b = Budget(len(blob))
    load_storage_blob(blob, b)
    assert b.ops < b.max_ops and b.mem < b.max_mem
    given, ctx = Budget(len(blob)), NP.BlobContext(Budget(len(blob)))
    load_storage_blob(memoryview(bytearray(blob)), given, ctx)
    assert given.ops == given.max_ops and ctx.budget.ops < ctx.budget.max_ops
    tiny = Budget(0, Limits(ops_floor=3))
    with pytest.raises(SafeLoadError):
        load_storage_blob(blob, tiny)


# ------------------------------------------------------------------------------------------------ tensor records


def storage(n=12, dtype=torch.float32):
    return NP._Storage(torch.arange(n, dtype=dtype))


def test_rebuild_tensor_views():
    s = storage(12)
    t = NP._rebuild_tensor_v2(s, 1, (2, 3), (4, 1))
    assert t.tolist() == [[1, 2, 3], [5, 6, 7]] and s.claimed == 6
    assert t.data_ptr() == s.data.data_ptr() + 4  # a view, no copy
    s = storage(12)
    t = NP._rebuild_tensor_v2(s, 0, [3, 4], [4, 1])  # lists are accepted
    assert t.shape == (3, 4) and t[2, 3].item() == 11 and s.claimed == 12
    s = storage(12)
    t = NP._rebuild_tensor_v2(s, 11, (), ())  # a scalar at the last element
    assert t.shape == () and t.item() == 11 and s.claimed == 1
    s = storage(12)
    t = NP._rebuild_tensor_v2(s, 0, (0, 5), (5, 1))
    assert t.shape == (0, 5) and s.claimed == 1  # an empty view claims one element
    s = storage(12)
    t = NP._rebuild_tensor_v2(s, 9, (3, 1), (1, 0))  # a zero stride on a size-1 axis
    assert t.flatten().tolist() == [9, 10, 11]
    # a view of a storage view: offsets counted from the view's start
    root = torch.arange(20, dtype=torch.float32)
    t = NP._rebuild_tensor_v2(NP._Storage(root[5:15]), 2, (3,), (1,))
    assert t.tolist() == [7, 8, 9]
    t = NP._rebuild_tensor_v2(NP._Storage(root[5:15]), 1, (2, 2), (2, 1))
    assert t.tolist() == [[6, 7], [8, 9]]


@pytest.mark.parametrize("args,match", [
    ((torch.zeros(3), 0, (3,), (1,)), "does not reference a storage"),
    (("S", 1.0, (3,), (1,)), "size/stride must be tuples"),
    (("S", True, (3,), (1,)), "size/stride must be tuples"),
    (("S", 0, 3, (1,)), "size/stride must be tuples"),
    (("S", 0, (3,), 1), "size/stride must be tuples"),
    (("S", 0, (1,) * 17, (1,) * 17), "more than 16 dimensions"),
    (("S", 0, (1,) * 17, (1,)), "more than 16 dimensions"),
    (("S", 0, (1,), (1,) * 17), "more than 16 dimensions"),
    (("S", 0, (3.0,), (1,)), "entries must be ints"),
    (("S", 0, (3,), (True,)), "entries must be ints"),
    (("S", 0, (3,), (1, 1)), "malformed tensor record"),
    (("S", -1, (3,), (1,)), "malformed tensor record"),
    (("S", 0, (-1,), (1,)), "malformed tensor record"),
    (("S", 0, (2, -1), (1, 1)), "malformed tensor record"),
    (("S", 0, (3,), (-1,)), "malformed tensor record"),
    (("S", 0, (3, 1), (1, -1)), "malformed tensor record"),
    (("S", 0, (13,), (1,)), "of 13 elements is larger than its storage \\(12\\)"),
    (("S", 0, (4, 4), (0, 0)), "of 16 elements is larger"),
    (("S", 1, (12,), (1,)), "reaches past the end"),
    (("S", 12, (), ()), "reaches past the end"),
    (("S", 0, (2, 3), (10, 1)), "reaches past the end"),
    (("S", 0, (3, 2), (1, 10)), "reaches past the end"),
    (("S", 10, (2, 2), (1, 1)), "reaches past the end"),
])
def test_rebuild_tensor_refusals(args, match):
    args = (storage(12) if args[0] == "S" else args[0],) + args[1:]
    with pytest.raises(SG2LoadError, match=match):
        NP._rebuild_tensor_v2(*args)


def test_rebuild_tensor_limits_are_inclusive():
    t = NP._rebuild_tensor_v2(storage(12), 0, (1,) * 16, (1,) * 16)
    assert t.dim() == 16
    assert NP._rebuild_tensor_v2(storage(12), 0, (12,), (1,)).numel() == 12
    assert NP._rebuild_tensor_v2(storage(12), 0, (2, 3), (9, 1))[1, 2].item() == 11
    assert NP._rebuild_tensor_v2(storage(12), 0, (3, 2), (1, 9))[2, 1].item() == 11
    assert NP._rebuild_tensor_v2(storage(12), 9, (2, 2), (1, 1)).tolist() == [[9, 10], [10, 11]]
    assert NP._rebuild_tensor_v2(storage(12), 0, (12, 0), (0, 1)).numel() == 0
    assert NP._rebuild_tensor_v2(storage(12), 500, (0,), (1,)).numel() == 0  # empty: the offset is not checked


def test_rebuild_tensor_claims():
    s = storage(12)
    NP._rebuild_tensor_v2(s, 0, (6,), (1,))
    NP._rebuild_tensor_v2(s, 6, (6,), (1,))
    assert s.claimed == 12
    with pytest.raises(SG2LoadError, match="share one storage of 12 elements and claim 13"):
        NP._rebuild_tensor_v2(s, 0, (), ())
    s = storage(12)
    NP._rebuild_tensor_v2(s, 0, (11,), (1,))
    with pytest.raises(SG2LoadError, match="claim 13"):
        NP._rebuild_tensor_v2(s, 0, (2,), (1,))
    e = NP._Storage(torch.zeros(0))
    assert NP._rebuild_tensor_v2(e, 0, (0,), (1,)).numel() == 0 and e.claimed == 1
    with pytest.raises(SG2LoadError, match="share one storage of 0 elements and claim 2"):
        NP._rebuild_tensor_v2(e, 0, (0,), (1,))
    one = NP._Storage(torch.zeros(1))
    NP._rebuild_tensor_v2(one, 0, (1,), (1,))
    with pytest.raises(SG2LoadError, match="claim 2"):
        NP._rebuild_tensor_v2(one, 0, (0,), (1,))


def test_rebuild_tensor_defaults_and_parameter():
    t = NP._rebuild_tensor_v2(storage(4), 0, (4,), (1,), True, collections.OrderedDict(), None)
    assert t.requires_grad is False
    x = torch.ones(2)
    assert NP._rebuild_parameter(x) is x
    assert NP._rebuild_parameter(x, True, collections.OrderedDict()) is x
    with pytest.raises(SG2LoadError, match="parameter record does not hold a tensor"):
        NP._rebuild_parameter(storage(2))


# ------------------------------------------------------------------------------------------------ outer unpickler


def test_snapshot_find_class():
    ctx = NP.BlobContext(Budget(10))
    for key, allowed in NP.ALLOWED_GLOBALS.items():
        got = NP._snapshot_find_class(ctx, *key)
        if allowed.call is load_storage_blob:
            assert got.call.func is load_storage_blob and got.call.keywords == {"ctx": ctx}
        else:
            assert got is allowed
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        assert NP._snapshot_find_class(ctx, module, "scalar").call is NO.strict_numpy_scalar
        assert NP._snapshot_find_class(ctx, module, "_reconstruct").call is NO.numpy_reconstruct
    assert NP._snapshot_find_class(ctx, "numpy", "ndarray").call is None
    assert NP.BUILD_HANDLERS[NO.Int64Pair] is NO.int64_pair_build
    with pytest.raises(UnsafePickleError, match="dnnlib.tflib.network.Network: it is a TensorFlow StyleGAN pickle"):
        NP._snapshot_find_class(ctx, "dnnlib.tflib.network", "Network")
    with pytest.raises(UnsafePickleError, match=r"import dnnlib.tflib; refusing \(not part"):
        NP._snapshot_find_class(ctx, "dnnlib", "tflib")  # module "dnnlib": the general refusal
    for module in ("dill", "timm.models", "pg_modules.blocks", "feature_networks"):
        with pytest.raises(UnsafePickleError, match=rf"import {module}.X: it looks like a StyleGAN-XL snapshot"):
            NP._snapshot_find_class(ctx, module, "X")
    for module, name in (("os", "system"), ("dillx", "X"), ("xdnnlib.tflib", "X"), ("torch", "FloatStorage")):
        with pytest.raises(UnsafePickleError, match=rf"import {module}.{name}; refusing \(not part"):
            NP._snapshot_find_class(ctx, module, name)


def tiny_snapshot(protocol: int = 4, **kw) -> bytes:
    torch.manual_seed(0)
    net = nn.Linear(32, 40)  # a weight of 5120 bytes: over BIG_BYTES, read as a view of the file
    net.register_buffer("avg", torch.arange(3, dtype=torch.float32))
    return net, W.dumps(W.snapshot(G_ema=net, augment_p=None, **kw), protocol)


@pytest.mark.parametrize("protocol", [0, 1, 2, 4])
def test_read_snapshot_round_trip(protocol):
    net, data = tiny_snapshot(protocol)
    snap = NP.read_snapshot(data)
    rec = snap["G_ema"]
    assert type(rec) is PersistentRecord and rec.class_name == "Linear"
    classes = {}
    state = NP.flatten_state(rec, classes=classes)
    assert list(state) == ["weight", "bias", "avg"] and classes == {"": "Linear"}
    for k, v in net.state_dict().items():
        assert torch.equal(state[k], v), k
    assert snap["training_set_kwargs"]["resolution"] == 32 and type(snap["training_set_kwargs"]) is NP.EasyDict
    assert snap["augment_pipe"] is None


def test_read_snapshot_views_a_bytearray():
    net, data = tiny_snapshot(4)
    buf = bytearray(data)
    state = NP.flatten_state(NP.read_snapshot(buf)["G_ema"])
    base = torch.frombuffer(buf, dtype=torch.uint8).data_ptr()
    w = state["weight"]
    assert base <= w.data_ptr() < base + len(buf)  # a view of the file's buffer
    assert not (base <= state["bias"].data_ptr() < base + len(buf))  # a small blob: a copy
    for k, t in state.items():
        assert torch.equal(t, net.state_dict()[k])
    state2 = NP.flatten_state(NP.read_snapshot(bytes(data))["G_ema"])
    assert all(not (base <= t.data_ptr() < base + len(buf)) for t in state2.values())


def _glob(module: str, name: str) -> bytes:
    return P.GLOBAL + f"{module}\n{name}\n".encode()


def _u(s: str) -> bytes:
    b = s.encode()
    return P.SHORT_BINUNICODE + bytes([len(b)]) + b


HEAD = P.PROTO + b"\x04"


@pytest.mark.parametrize("data,kind,match", [
    (b"PK\x03\x04rest", SG2LoadError, "zip archive"),
    (b"", SG2LoadError, "not a pickle file"),
    (b"X", SG2LoadError, "not a pickle file"),
    (b"\x81\x04", SG2LoadError, "not a pickle file"),
    (HEAD + _glob("os", "system") + P.STOP, UnsafePickleError, r"import os.system; refusing"),
    (HEAD + _glob("numpy.core.multiarray", "scalar") + _glob("numpy", "dtype") + _u("i8") + P.TUPLE1 + P.REDUCE
     + P.SHORT_BINBYTES + b"\x08" + b"\x00" * 8 + P.TUPLE2 + P.REDUCE + P.STOP, UnsafePickleError,
     r"dtype 'i8' with 8 bytes"),
    (HEAD + P.EMPTY_DICT, SG2LoadError, r"."),
    (HEAD + P.EMPTY_DICT + P.STOP, SG2LoadError, r"holds a dict with keys \[\], expected a dict with 'G'"),
    (pickle.dumps({"a": 1, "G": 2}, protocol=2), SG2LoadError, r"holds a dict with keys \[\"'a'\", \"'G'\"\], expected"),
    (pickle.dumps({f"k{i}": 1 for i in range(10)}, protocol=0), SG2LoadError,
     r"with keys \[\"'k0'\", \"'k1'\", \"'k2'\", \"'k3'\", \"'k4'\", \"'k5'\", \"'k6'\", \"'k7'\"\], expected"),
    (pickle.dumps([1], protocol=2), SG2LoadError, r"holds a list, expected"),
    (pickle.dumps(7, protocol=4), SG2LoadError, r"holds a int, expected"),
])
def test_read_snapshot_refusals(data, kind, match):
    with pytest.raises(kind, match=match) as info:
        NP.read_snapshot(data)
    if kind is SG2LoadError:
        assert type(info.value) is SG2LoadError
    assert "\n" not in str(info.value)


def test_read_snapshot_any_network_key():
    for key in ("G", "D", "G_ema"):
        data = W.dumps({key: W.Record("Net", {"_init_kwargs": {}}), "other": 1}, 4)
        snap = NP.read_snapshot(data)
        assert type(snap[key]) is PersistentRecord and snap["other"] == 1
        assert NP.read_snapshot(bytearray(data))[key].class_name == "Net"
    with pytest.raises(SG2LoadError, match="not a StyleGAN2-ADA network snapshot"):
        NP.read_snapshot(W.dumps({"g": W.Record("Net", {})}, 4))
    # protocol 1 starts with "}" (EMPTY_DICT)
    data = W.dumps({"G": W.Record("Net", {})}, 1)
    assert data[:1] == b"}" and NP.read_snapshot(data)["G"].class_name == "Net"
    data = W.dumps({"G": W.Record("Net", {})}, 0)
    assert data[:1] == b"(" and NP.read_snapshot(data)["G"].class_name == "Net"


# ------------------------------------------------------------------------------------------------ module trees


def R(name, **state):
    return PersistentRecord(name, state)


def test_flatten_state_names_order_and_classes():
    t = {k: torch.full((2,), float(i)) for i, k in enumerate("abcdef")}
    child = R("Child", _parameters={"w": t["d"]}, _buffers=None)
    grand = R("Grand", _buffers={"q": t["e"]})
    child.state["_modules"] = {"g": grand}
    root = R("Root", _parameters=collections.OrderedDict(w=t["a"], n=None),
             _buffers=collections.OrderedDict(b=t["b"], np=t["c"], none=None),
             _non_persistent_buffers_set={"np", "w"},
             _modules=collections.OrderedDict(c=child, empty=None, z=R("Z")))
    classes = {}
    out = NP.flatten_state(root, classes=classes)
    assert list(out) == ["w", "b", "c.w", "c.g.q"]  # parameters, then buffers, then submodules, depth first
    assert out["w"] is t["a"] and out["b"] is t["b"] and out["c.w"] is t["d"] and out["c.g.q"] is t["e"]
    assert classes == {"": "Root", "c": "Child", "c.g": "Grand", "z": "Z"}
    assert NP.flatten_state(R("E")) == {}
    # the non-persistent set as a list/tuple/frozenset, non-strings in it ignored
    for skip in (["np", 1], ("np",), frozenset({"np"})):
        out = NP.flatten_state(R("R", _buffers={"np": t["c"], "k": t["f"]}, _non_persistent_buffers_set=skip))
        assert list(out) == ["k"]
    for skip in ("np", {"np": 1}, 3):
        with pytest.raises(SG2LoadError, match=r"_non_persistent_buffers_set of 'R' is not a set"):
            NP.flatten_state(R("R", _buffers={"np": t["c"]}, _non_persistent_buffers_set=skip))


def test_flatten_state_refusals():
    x = torch.zeros(2)
    with pytest.raises(SG2LoadError, match=r"^_parameters of <root> \(R\) is not a dict"):
        NP.flatten_state(R("R", _parameters=[("w", x)]))
    with pytest.raises(SG2LoadError, match=r"^_modules of c. \(C\) is not a dict"):
        NP.flatten_state(R("R", _modules={"c": R("C", _modules=[1])}))
    with pytest.raises(SG2LoadError, match=r"^_buffers of c. \(C\) is not a dict"):
        NP.flatten_state(R("R", _modules={"c": R("C", _buffers="b")}))
    with pytest.raises(SG2LoadError, match=r"^c\.'w' in 'C' is not a tensor"):
        NP.flatten_state(R("R", _modules={"c": R("C", _parameters={"w": 1.0})}))
    with pytest.raises(SG2LoadError, match=r"^'b' in 'R' is not a tensor"):
        NP.flatten_state(R("R", _buffers={"b": [1.0]}))
    with pytest.raises(SG2LoadError, match=r"^submodule c\.'d' is not a StyleGAN2-ADA network object"):
        NP.flatten_state(R("R", _modules={"c": R("C", _modules={"d": {"_parameters": {}}})}))
    loop = R("L")
    loop.state["_modules"] = {"self": loop}
    with pytest.raises(SG2LoadError, match=r"^submodule self \('L'\) appears twice"):
        NP.flatten_state(loop)
    shared = R("S", _parameters={"w": x})
    with pytest.raises(SG2LoadError, match=r"^submodule b \('S'\) appears twice"):
        NP.flatten_state(R("R", _modules={"a": shared, "b": shared}))
    with pytest.raises(SG2LoadError, match=r"^submodule <root> \('R'\) appears twice"):
        root = R("R")
        NP.flatten_state(root, _seen={id(root)})


def chain(depth: int) -> PersistentRecord:
    root = node = R("N0")
    for i in range(depth):
        nxt = R(f"N{i + 1}")
        node.state["_modules"] = {"m": nxt}
        node = nxt
    node.state["_parameters"] = {"w": torch.zeros(1)}
    return root


def test_flatten_state_depth_limit():
    out = NP.flatten_state(chain(63))
    assert list(out) == ["m." * 63 + "w"]
    with pytest.raises(SG2LoadError, match="nests more than 64 deep"):
        NP.flatten_state(chain(64))


def test_child_names():
    x = torch.zeros(1)
    ok = NP.flatten_state(R("R", _parameters={"a" * 256: x}))
    assert list(ok) == ["a" * 256]
    for name, shown in (("a" * 257, "'a"), ("", "''"), ("a.b", "'a.b'"), (1, "1"), (None, "None")):
        with pytest.raises(SG2LoadError, match=r"^<root> \('R'\) has a parameter, buffer or submodule named "
                                               + shown.replace(".", r"\.")):
            NP.flatten_state(R("R", _parameters={name: x}))
    with pytest.raises(SG2LoadError, match=r"^a\.b \('C'\) has a parameter, buffer or submodule named 'c\.d'"):
        NP.flatten_state(R("R", _modules={"a": R("X", _modules={"b": R("C", _buffers={"c.d": x})})}))
    for state in (dict(_parameters={"x": x}, _buffers={"x": x}), dict(_parameters={"x": x}, _modules={"x": R("C")}),
                  dict(_buffers={"x": None}, _modules={"x": None}), dict(_parameters={"x": None}, _buffers={"x": x})):
        with pytest.raises(SG2LoadError, match=r"^<root> \('R'\) has two parameters, buffers or submodules named 'x'"):
            NP.flatten_state(R("R", **state))
    with pytest.raises(SG2LoadError, match=r"^c \('C'\) has two"):
        NP.flatten_state(R("R", _modules={"c": R("C", _parameters={"y": x}, _buffers={"y": x})}))
    used = set()
    assert NP._child_name("q", "", R("R"), used) == "q" and used == {"q"}
    long_prefix = "p" * 200 + "."
    with pytest.raises(SG2LoadError) as info:
        NP._child_name("", long_prefix, R("R"), set())
    assert str(info.value).startswith("p" * 120 + " ('R') has")


def test_storage_use():
    base = torch.arange(4, dtype=torch.float32)
    NP.check_storage_use({"a": base[:2], "b": base[2:]})  # exactly the storage: fine
    NP.check_storage_use({"a": base, "c": torch.zeros(8)})
    with pytest.raises(SG2LoadError, match=r"^tensor 'b' shares its storage with other tensors \(together 20 bytes "
                                           r"of a 16-byte storage\)"):
        NP.check_storage_use({"a": base, "b": base[:1]})
    # two submodules viewing one storage: only the whole tree sees it
    t = torch.zeros(3)
    with pytest.raises(SG2LoadError, match=r"^tensor 'c2.w' shares its storage"):
        NP.flatten_state(R("R", _modules={"c1": R("C", _parameters={"w": t}), "c2": R("C", _parameters={"w": t})}))
    NP.flatten_state(R("R", _modules={"c1": R("C", _parameters={"w": t[:1]}),
                                      "c2": R("C", _parameters={"w": t[1:]})}))


# ------------------------------------------------------------------------------------------------ plain values


def test_plain_values():
    a = [1]
    got = NP.plain(NP.EasyDict(x=collections.OrderedDict(y=(1, 2.5, True, None, "s")), s=frozenset({"b", "a"}),
                               z={"c", "a", "b"}, shared=[a, a], t=torch.zeros(1), n={1: "i", None: 2, False: 3}))
    assert got == {"x": {"y": [1, 2.5, True, None, "s"]}, "s": ["a", "b"], "z": ["a", "b", "c"], "shared": [[1], [1]],
                   "t": "<Tensor>", "n": {"1": "i", "None": 2, "False": 3}}
    assert type(got) is dict and type(got["x"]) is dict and type(got["x"]["y"]) is list
    assert NP.plain({(1, 2): 3}) == {"(1, 2)": 3}
    assert NP.plain(b"xy") == "<bytes>" and NP.plain(NumpyDType("f8")) == "<NumpyDType>"
    assert math.isnan(NP.plain(float("nan"))) and NP.plain({"a": float("inf")}) == {"a": float("inf")}
    assert NP.plain(3) == 3 and NP.plain("x") == "x" and NP.plain(None) is None and NP.plain(False) is False


@pytest.mark.parametrize("obj,where", [
    (float("nan"), "a value is nan"), ({"a": {"b": float("-inf")}}, "a.b is -inf"),
    ([1.0, float("inf")], r"\[1\] is inf"), ({"a": [0.0, {"c": float("nan")}]}, r"a\[1\]\.c is nan"),
])
def test_plain_finite(obj, where):
    with pytest.raises(SG2LoadError, match=rf"^{where}; refusing non-finite kwargs"):
        NP.plain(obj, finite=True)
    NP.plain(obj)  # allowed when finiteness is not asked for


def test_plain_finite_names_are_bounded():
    with pytest.raises(SG2LoadError) as info:
        NP.plain({"k" * 300: float("nan")}, finite=True)
    assert str(info.value) == "k" * 120 + " is nan; refusing non-finite kwargs"
    deep = {"a" * 150: {"b" * 100: [float("nan")]}}
    with pytest.raises(SG2LoadError) as info:
        NP.plain(deep, finite=True)
    name = ("a" * 150 + "." + "b" * 100)[:200]
    assert str(info.value) == f"{(name + '[0]')[:200][:120]} is nan; refusing non-finite kwargs"
    assert NP.plain(1.5, finite=True) == 1.5 and NP.plain(True, finite=True) is True


def test_plain_self_reference_and_depth():
    loop = []
    loop.append(loop)
    with pytest.raises(SG2LoadError, match="contains itself"):
        NP.plain(loop)
    d = {}
    d["d"] = [d]
    with pytest.raises(SG2LoadError, match="contains itself"):
        NP.plain(d)

    def nest(n):
        o = 1
        for _ in range(n):
            o = [o]
        return o

    assert NP.plain(nest(64)) == nest(64)
    with pytest.raises(SG2LoadError, match="nests more than 64 deep"):
        NP.plain(nest(65))
    assert NP.plain({"s": nest(62)}) == {"s": nest(62)}
    assert NP.plain(nest(63) and [{"a": 1}]) == [{"a": 1}]


def test_plain_node_budget(monkeypatch):
    monkeypatch.setattr(NP, "MAX_PLAIN_NODES", 5)
    assert NP.plain([None, None]) == [None, None]  # 1 + 2 (its length) + 2 (its items) = 5
    with pytest.raises(SG2LoadError, match="more than 5 entries"):
        NP.plain([None, None, None])
    assert NP.plain({"a": 1, "b": 2}) == {"a": 1, "b": 2}
    with pytest.raises(SG2LoadError, match="more than 5 entries"):
        NP.plain({"a": [1, 2]})  # 1 + 1 + 1 (the list) + 2 + 1 = 6
    assert NP.plain({"a": [1]}) == {"a": [1]}  # 1 + 1 + 1 + 1 + 1 = 5
    monkeypatch.setattr(NP, "MAX_PLAIN_NODES", 3)
    assert NP.plain(frozenset({"a"})) == ["a"]  # 1 + 1 + 1
    with pytest.raises(SG2LoadError, match="more than 3 entries"):
        NP.plain(frozenset({"a", "b"}))
    monkeypatch.setattr(NP, "MAX_PLAIN_NODES", 4)
    with pytest.raises(SG2LoadError, match="more than 4 entries"):
        NP.plain([{"a"}])  # 1 + 1 + 1 + 1 + 1 (the string in the set)


def test_plain_char_budget(monkeypatch):
    monkeypatch.setattr(NP, "MAX_PLAIN_CHARS", 5)
    assert NP.plain("abcde") == "abcde"
    assert NP.plain({"ab": "cde"}) == {"ab": "cde"}
    assert NP.plain({12: "cde"}) == {"12": "cde"}
    assert NP.plain([b"ab", "cde"]) == ["<bytes>", "cde"]
    for obj in ("abcdef", {"abc": "cde"}, {123: "cde"}, [b"abc", "cde"], {"ab": {"cd": "ef"}}, {"x", "abcde"},
                {(1, 2, 3): 1}):
        with pytest.raises(SG2LoadError, match="more than 5 characters of strings"):
            NP.plain(obj)


def test_plain_set_order_uses_summary():
    assert NP.plain({"b", "a", "c" * 300}) == ["a", "b", "c" * 300]


def test_record_kwargs_and_describe():
    rec = PersistentRecord("Gen", {}, init_kwargs=NP.EasyDict(z_dim=4, mapping=NP.EasyDict(lr=0.01)))
    kw = NP.record_kwargs(rec)
    assert kw == {"z_dim": 4, "mapping": {"lr": 0.01}} and type(kw["mapping"]) is dict
    with pytest.raises(SG2LoadError, match=r"^mapping.lr is nan; refusing"):
        NP.record_kwargs(PersistentRecord("Gen", {}, init_kwargs={"mapping": {"lr": float("nan")}}))
    with pytest.raises(SG2LoadError, match=r"^'Gen' was constructed with positional arguments"):
        NP.record_kwargs(PersistentRecord("Gen", {}, init_args=(1,)))
    assert NP.describe_record(None) == "nothing"
    assert NP.describe_record(PersistentRecord("Gen", {})) == "a 'Gen'"


# ------------------------------------------------------------------------------------------------ survivors of pass 1


def test_plain_other_keys_are_summarised():
    k = tuple(range(100))
    assert NP.plain({k: 1}) == {repr(k)[:80] + "...": 1}  # a bounded repr, not str(k)
    assert NP.plain({None: 1, 2: 3, "s": 4, False: 5}) == {"None": 1, "2": 3, "s": 4, "False": 5}


def test_plain_sets_of_tuples_and_mixed_types():
    assert NP.plain({(1, 2)}) == [[1, 2]]
    assert NP.plain(frozenset({(3, (4,))})) == [[3, [4]]]
    assert NP.plain({1, "a"}) == ["a", 1]  # ordered by their repr: "'a'" < "1"
    with pytest.raises(SG2LoadError, match=r"^s is nan; refusing"):
        NP.plain({"s": {float("nan")}}, finite=True)


def test_plain_sets_are_sorted_on_200_characters():
    items = ["x" * 100 + chr(ord("a") + i) for i in range(10)]
    assert NP.plain(set(reversed(items))) == items


def test_describe_record_is_bounded():
    assert NP.describe_record(PersistentRecord("C" * 100, {})) == "a '" + "C" * 59 + "..."


def test_empty_storage_blob_ends_after_its_count():
    blob = legacy_blob(torch.zeros(0))
    s = load_storage_blob(blob)
    assert s.data.numel() == 0 and s.data.dtype == torch.float32
    with pytest.raises(SG2LoadError, match="tensor blob is truncated"):
        load_storage_blob(blob[:-1])


def test_storage_data_moves_onto_the_blob_start():
    """Data at ``pos`` whose misalignment equals ``pos`` moves exactly to the blob's first byte."""
    raw = bytes(range(100, 132))
    big = bytearray(256)
    off = -torch.frombuffer(big, dtype=torch.uint8).data_ptr() % 64
    for pos in (0, 1, 8, 63):
        big[:] = bytes(256)
        blob = memoryview(big)[off:off + 128]
        blob[pos:pos + 32] = raw
        start = torch.frombuffer(blob, dtype=torch.uint8).data_ptr()
        assert start % 64 == 0
        t = NP._storage_data(blob, pos, 8, torch.int32, NP.BlobContext(Budget(100)))
        assert t.data_ptr() == start and t.numpy().tobytes() == raw, pos
        assert bytes(blob[:32]) == raw


def test_read_snapshot_charges_one_budget_per_file(monkeypatch):
    """One budget of the file's size and the module's limits, charged by the outer pickle and every blob."""
    import pickletools

    made = []

    class Recording(Budget):
        def __init__(self, size, limits=Limits()):
            super().__init__(size, limits)
            made.append((self, size, limits))

    monkeypatch.setattr(NP, "Budget", Recording)
    net, data = tiny_snapshot(4)
    NP.read_snapshot(data)
    assert len(made) == 1 and made[0][1] == len(data) and made[0][2] is NP.LIMITS
    outer = sum(1 for _ in pickletools.genops(data))
    used = made[0][0].max_ops - made[0][0].ops
    assert used > outer + 3 * 5, (used, outer)  # the outer opcodes and at least 5 per blob (3 blobs)
    monkeypatch.setattr(NP, "LIMITS", Limits(ops_floor=outer, bytes_per_op=10 ** 9))
    with pytest.raises(SG2LoadError, match=rf"more than {outer} opcodes"):
        NP.read_snapshot(data)


def test_read_snapshot_builds_numpy_scalars_and_names_the_format():
    snap = NP.read_snapshot(W.dumps(W.snapshot(G_ema=nn.Linear(1, 1), augment_p=0.25), 4))
    pipe = snap["augment_pipe"]
    assert pipe.class_name == "AugmentPipe" and pipe.state["xflip"] == 1.0 and type(pipe.state["xflip"]) is float
    with pytest.raises(UnsafePickleError, match="persistent ids, which the StyleGAN2-ADA snapshot format does not"):
        NP.read_snapshot(HEAD + P.NONE + P.BINPERSID + P.STOP)


def test_read_snapshot_uses_the_module_limits(monkeypatch):
    monkeypatch.setattr(NP, "LIMITS", Limits(max_depth=3))
    with pytest.raises(SG2LoadError, match="nests deeper than 3 levels"):
        NP.read_snapshot(HEAD + P.EMPTY_LIST * 6 + P.APPEND * 5 + P.STOP)


def test_read_snapshot_names_keys_briefly():
    with pytest.raises(SG2LoadError) as info:
        NP.read_snapshot(pickle.dumps({"k" * 50: 1}, protocol=4))
    msg = str(info.value)
    assert "k" * 29 + "..." in msg and "k" * 30 not in msg


def test_child_name_where_keeps_the_prefix_letters():
    with pytest.raises(SG2LoadError, match=r"^convX \('C'\) has a parameter"):
        NP._child_name("", "convX.", R("C"), set())


def test_persistent_obj_names_in_messages():
    with pytest.raises(SG2LoadError, match=r"^persistent object 'XGenX' has type 'x'"):
        NP._reconstruct_persistent_obj(meta(class_name="XGenX", type="x"))
    with pytest.raises(SG2LoadError) as info:
        NP._reconstruct_persistent_obj(meta(class_name="N" * 100, type="x"))
    assert str(info.value).startswith("persistent object '" + "N" * 79 + "...' has type 'x'")


def test_persistent_obj_keeps_a_long_args_tuple():
    args = tuple(range(100))
    assert NP._reconstruct_persistent_obj(meta(state={"_init_args": args})).init_args is args


def test_storage_data_never_views_immutable_bytes():
    raw = struct.pack("<4f", 1, 2, 3, 4)
    for pre in range(0, 70, 3):
        blob = b"\x00" * pre + raw
        keep = bytes(bytearray(blob))
        t = NP._storage_data(blob, pre, 4, torch.float32, NP.BlobContext(Budget(100)))
        assert t.tolist() == [1, 2, 3, 4]
        t.add_(10)
        assert blob == keep


def test_child_name_where_bounds_the_class_name():
    with pytest.raises(SG2LoadError) as info:
        NP._child_name("", "", R("C" * 100), set())
    assert str(info.value).startswith("<root> ('" + "C" * 59 + "...) has a parameter")


def test_flatten_state_module_paths():
    x = torch.zeros(1)
    classes = {}
    NP.flatten_state(R("R", _modules={"convX": R("C", _modules={"aX": R("D")})}), classes=classes)
    assert classes == {"": "R", "convX": "C", "convX.aX": "D"}
    with pytest.raises(SG2LoadError, match=r"^a \('X'\) has two parameters, buffers or submodules named 'm'"):
        NP.flatten_state(R("R", _modules={"a": R("X", _parameters={"m": x}, _modules={"m": R("C")})}))


def test_blob_count_is_signed():
    with pytest.raises(SG2LoadError, match=r"element count -1 != declared 4"):
        load_storage_blob(legacy_blob(torch.arange(4, dtype=torch.float32), count=-1))


def test_blob_with_two_storages_reads_each_in_turn():
    """Two storages listed in one blob: each count is read right after the previous data (the blob is then
    refused only because its record is not one storage)."""
    a, b = object(), object()

    class _P(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is a:
                return ("storage", torch.FloatStorage, "a", "cpu", 2, None)
            if obj is b:
                return ("storage", torch.ShortStorage, "b", "cpu", 3, None)
            return None

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for obj in (MAGIC, 1001, INFO):
            pickle.dump(obj, buf, protocol=2)
        _P(buf, protocol=2).dump((a, b))
        pickle.dump(["a", "b"], buf, protocol=2)
    buf.write(struct.pack("<q2f", 2, 1.0, 2.0) + struct.pack("<q3h", 3, 7, 8, 9))
    with pytest.raises(SG2LoadError, match="tensor blob does not hold a storage"):
        load_storage_blob(buf.getvalue())
    with pytest.raises(SG2LoadError, match="tensor blob is truncated"):
        load_storage_blob(buf.getvalue()[:-1])


def test_distinct_blobs_through_one_context():
    """The context keeps each blob it has read, so a later blob can never reuse a freed blob's id."""
    blob = legacy_blob(torch.arange(4, dtype=torch.float32))
    ctx = NP.BlobContext(Budget(10 * len(blob)))
    for _ in range(6):
        assert load_storage_blob(memoryview(bytearray(blob)), ctx=ctx).data.tolist() == [0, 1, 2, 3]
    assert len(ctx.seen) == 6 and all(type(v) is memoryview for v in ctx.seen.values())


def test_blob_default_budget(monkeypatch):
    made = []

    class Recording(Budget):
        def __init__(self, size, limits=Limits()):
            super().__init__(size, limits)
            made.append((self, size, limits))

    monkeypatch.setattr(NP, "Budget", Recording)
    blob = legacy_blob(torch.arange(4, dtype=torch.float32))
    load_storage_blob(blob)
    assert len(made) == 1 and made[0][1] == len(blob) and made[0][2] is NP.LIMITS
    assert made[0][0].ops < made[0][0].max_ops


def test_blob_pickles_use_the_module_limits_and_name_the_blob(monkeypatch):
    deep = P.PROTO + b"\x02" + P.EMPTY_LIST * 4 + P.APPEND * 3 + P.STOP
    monkeypatch.setattr(NP, "LIMITS", Limits(max_depth=2))
    with pytest.raises(SafeLoadError, match="nests deeper than 2 levels"):
        load_storage_blob(deep + b"\x00" * 64)
    monkeypatch.setattr(NP, "LIMITS", Limits())
    with pytest.raises(SafeLoadError, match=r"\(not part of a tensor blob\) at byte 4"):
        load_storage_blob(P.PROTO + b"\x02" + P.NONE + P.EMPTY_DICT + P.BUILD + P.STOP + b"\x00" * 64)
