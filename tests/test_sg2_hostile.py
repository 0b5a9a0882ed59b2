"""Hostile StyleGAN2 checkpoints: every one must end in ``SG2LoadError`` naming the file, fast and small.

One test per class of issue 11: hashing/nesting bombs, memory bombs, storage-sharing amplification,
non-regular files and links, and error hygiene (type, path, one line, allow-list). Each file is built
here; each load is measured (CPU time, and peak RSS growth where ``/proc/self/clear_refs`` lets us
reset the high-water mark).
"""
from __future__ import annotations

import collections
import json
import os
import pickle
import re
import sys
import time
import types
import warnings
from pathlib import Path

import pytest
import torch

from gandistill.io.safe_pickle import brief, summary
from gandistill.teachers.stylegan2 import Generator, sg2_kwargs
from gandistill.teachers.stylegan2.checkpoint import (
    JSON_NAME,
    MAX_SNAPSHOT_BYTES,
    SG2LoadError,
    UnsafePickleError,
    available_nets,
    load_sg2,
    save_sg2,
)

P = pickle
MAX_CPU_S = 1.0
MAX_PEAK_MB = 64
FIXTURE = Path(__file__).parent / "fixtures" / "sg2-tiny-uncond.pkl"


@pytest.fixture(scope="module", autouse=True)
def _warm(tmp_path_factory):
    """Pay the one-off costs (safetensors import, first meta-device build) before anything is timed."""
    load_sg2(FIXTURE)
    G_kwargs, _ = sg2_kwargs("tiny")
    load_sg2(save_sg2(tmp_path_factory.mktemp("warm") / "ck", G_ema=Generator(**G_kwargs)))


# ------------------------------------------------------------------------------------------------ measuring


def _rss_kb(field: str) -> int:
    m = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(m.group(1))


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def refused(path: Path, match: str, *, kind=SG2LoadError, call=load_sg2, **kw) -> SG2LoadError:
    """``call(path)`` must raise ``kind`` naming ``path``, on one line, within MAX_CPU_S and MAX_PEAK_MB."""
    can_measure = sys.platform.startswith("linux") and _reset_peak()
    base = _rss_kb("VmRSS") if can_measure else 0
    t0 = time.process_time()
    with pytest.raises(kind) as info:
        call(path, **kw)
    cpu = time.process_time() - t0
    msg = str(info.value)
    assert msg.startswith(str(path)), msg
    assert "\n" not in msg and "Exception raised from" not in msg and len(msg) < 2000, msg
    assert re.search(match, msg), msg
    assert cpu < MAX_CPU_S, f"{path.name}: {cpu:.2f} s CPU"
    if can_measure:
        peak_mb = (_rss_kb("VmHWM") - base) / 1024
        assert peak_mb < MAX_PEAK_MB, f"{path.name}: peak RSS grew by {peak_mb:.0f} MB"
    return info.value


def _write(tmp_path: Path, name: str, body: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(body)
    return p


def _u(s: str) -> bytes:
    b = s.encode()
    return P.BINUNICODE + len(b).to_bytes(4, "little") + b


def _get(i: int) -> bytes:
    return P.LONG_BINGET + i.to_bytes(4, "little")


def _put(i: int) -> bytes:
    return P.LONG_BINPUT + i.to_bytes(4, "little")


def _glob(module: str, name: str) -> bytes:
    return P.GLOBAL + f"{module}\n{name}\n".encode()


HEAD = P.PROTO + b"\x04"
# a persistent record around a dict built by the caller: GLOBAL reconstruct, MARK, <meta dict>, TUPLE, REDUCE
RECONSTRUCT = _glob("torch_utils.persistence", "_reconstruct_persistent_obj")


# ------------------------------------------------------------------------------------------------ class 1


def test_nested_and_shared_keys_never_hashed(tmp_path):
    """Deeply nested or heavily shared tuples (as dict keys, set elements or values) are refused before any
    hash: a 200 KB file once crashed the interpreter, an 88-byte one kept a core busy for hours."""
    deep = HEAD + P.EMPTY_DICT + P.EMPTY_TUPLE + P.TUPLE1 * 200_000 + P.NONE + P.SETITEM + P.STOP
    refused(_write(tmp_path, "deep_key.pkl", deep), r"nests deeper than 100 levels")
    shared = P.EMPTY_TUPLE + (P.DUP + P.TUPLE2) * 40  # 2**40 leaves
    small = HEAD + P.EMPTY_DICT + shared + P.NONE + P.SETITEM + P.STOP
    assert len(small) < 100
    refused(_write(tmp_path, "shared_key.pkl", small), r"dict key / set element is a tuple; only strings")
    as_set = HEAD + P.EMPTY_SET + P.MARK + shared + P.ADDITEMS + P.STOP
    refused(_write(tmp_path, "shared_elem.pkl", as_set), r"is a tuple; only strings", kind=UnsafePickleError)
    as_frozenset = HEAD + P.MARK + shared + P.FROZENSET + P.STOP
    refused(_write(tmp_path, "shared_frozen.pkl", as_frozenset), r"is a tuple; only strings")
    # depth built by re-opening memoised lists (x_i.append(x_{i+1}) after x_{i+1} already holds x_{i+2})
    n = 5000
    chain = HEAD + b"".join(P.EMPTY_LIST + _put(i) + P.POP for i in range(n))
    chain += b"".join(_get(i) + _get(i + 1) + P.APPEND + P.POP for i in range(n - 1)) + P.NONE + P.STOP
    refused(_write(tmp_path, "reopened.pkl", chain), r"modifies a list after placing it inside another object",
            kind=UnsafePickleError)
    # a 2**40-leaf DAG as a plain value passes the pickle (it is only 40 deep) but is never walked in full
    dag = b"".join([P.EMPTY_LIST] + [_put(0) + P.POP + P.MARK + _get(0) + _get(0) + P.LIST for _ in range(40)])
    value = HEAD + P.EMPTY_DICT + _u("training_set_kwargs") + dag + P.SETITEM + P.STOP
    refused(_write(tmp_path, "dag_value.pkl", value), r"not a StyleGAN2-ADA network snapshot")


# ------------------------------------------------------------------------------------------------ class 2


def _blob(t: torch.Tensor) -> bytes:
    import io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        buf = io.BytesIO()
        torch.save(t.storage(), buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def _tensor_record(n: int = 1000) -> bytes:
    """Opcodes pushing one real tensor of ``n`` floats (blob -> storage -> _rebuild_tensor_v2)."""
    blob = _blob(torch.zeros(n))
    storage = (_glob("torch.storage", "_load_from_bytes") + P.BINBYTES + len(blob).to_bytes(4, "little") + blob
               + P.TUPLE1 + P.REDUCE)
    return (_glob("torch._utils", "_rebuild_tensor_v2") + P.MARK + storage + P.BININT2 + b"\x00\x00"
            + P.MARK + P.BININT2 + n.to_bytes(2, "little") + P.TUPLE + P.MARK + P.BININT1 + b"\x01" + P.TUPLE
            + P.NEWFALSE + P.TUPLE + P.REDUCE)


@pytest.mark.parametrize("case,body,match", [
    ("appends_on_tensor", _tensor_record() + P.MARK + P.NONE * 50 + P.APPENDS,
     r"append to a Tensor object; only lists can be"),
    ("additems_on_ordereddict", _glob("collections", "OrderedDict") + P.EMPTY_TUPLE + P.REDUCE + P.MARK + P.NONE
     + P.ADDITEMS, r"add items to a OrderedDict object; only sets"),
    ("setitems_on_tensor", _tensor_record() + P.MARK + P.NONE + P.NONE + P.SETITEMS, r"set items of a Tensor"),
    ("append_on_dtype", _glob("numpy", "dtype") + _u("f8") + P.NEWFALSE + P.NEWTRUE + P.TUPLE3 + P.REDUCE
     + P.NONE + P.APPEND, r"append to a NumpyDType"),
    ("ordereddict_of_tensor", _glob("collections", "OrderedDict") + _tensor_record() + P.TUPLE1 + P.REDUCE,
     r"calls collections.OrderedDict with arguments"),
    ("easydict_of_tensor", _glob("dnnlib.util", "EasyDict") + _tensor_record() + P.TUPLE1 + P.NEWOBJ,
     r"EasyDict is instantiated with arguments"),
    ("easydict_called", _glob("dnnlib.util", "EasyDict") + _tensor_record() + P.TUPLE1 + P.REDUCE,
     r"wants to call dnnlib.util.EasyDict"),
    ("dtype_of_tensor", _glob("numpy", "dtype") + _tensor_record() + P.TUPLE1 + P.REDUCE,
     r"unsupported numpy dtype <Tensor>"),
    ("blob_of_tensor", _glob("torch.storage", "_load_from_bytes") + _tensor_record() + P.TUPLE1 + P.REDUCE,
     r"tensor blob is not a byte string"),
    ("tensor_as_storage", _glob("torch._utils", "_rebuild_tensor_v2") + P.MARK + _tensor_record() + P.BININT1
     + b"\x00" + P.MARK + P.BININT1 + b"\x05" + P.TUPLE + P.MARK + P.BININT1 + b"\x01" + P.TUPLE + P.TUPLE
     + P.REDUCE, r"does not reference a storage"),
    ("call_a_tensor", _tensor_record() + P.EMPTY_TUPLE + P.REDUCE, r"wants to call a Tensor object"),
    ("set_of_tensor", _glob("builtins", "set") + _tensor_record() + P.TUPLE1 + P.REDUCE,
     r"calls builtins.set with a Tensor"),
])
def test_memory_bombs_on_tensors_and_allowed_classes(tmp_path, case, body, match):
    """Container opcodes aimed at tensors / stand-ins, and allowed callables applied to a tensor, are refused
    (they would create one object per element outside any budget)."""
    refused(_write(tmp_path, f"{case}.pkl", HEAD + body + P.STOP), match)


def _meta(fields: bytes) -> bytes:
    """``_reconstruct_persistent_obj({...fields...})`` as opcodes (fields: key/value opcodes)."""
    return RECONSTRUCT + P.EMPTY_DICT + P.MARK + fields + P.SETITEMS + P.TUPLE1 + P.REDUCE


def test_messages_never_format_huge_structures(tmp_path):
    """A 2**40-leaf DAG where an error message (type, version, dtype, persistent id, kwargs) would
    ``str()`` it: messages are bounded summaries."""
    dag = b"".join([P.EMPTY_LIST] + [_put(0) + P.POP + P.MARK + _get(0) + _get(0) + P.LIST for _ in range(40)])
    base = _u("class_name") + _u("Generator") + _u("version") + P.BININT1 + b"\x06"
    for name, fields, match in [
        ("type", base + _u("type") + dag, r"has type \[\[\[\["),
        ("version", _u("class_name") + _u("Generator") + _u("type") + _u("class") + _u("version") + dag,
         r"persistence version \[\["),
        ("kwargs", base + _u("type") + _u("class") + _u("state") + P.EMPTY_DICT + P.MARK + _u("_init_kwargs")
         + P.EMPTY_DICT + P.MARK + _u("z_dim") + P.BININT1 + b"\x05" + _u("junk") + dag + P.SETITEMS + P.SETITEMS,
         r"more than \d+ entries"),
    ]:
        body = HEAD + P.EMPTY_DICT + _u("G_ema") + _meta(fields) + P.SETITEM + P.STOP
        err = refused(_write(tmp_path, f"fmt_{name}.pkl", body), match)
        assert len(str(err)) < 600
    body = HEAD + _glob("numpy", "dtype") + dag + P.TUPLE1 + P.REDUCE + P.STOP
    refused(_write(tmp_path, "fmt_dtype.pkl", body), r"unsupported numpy dtype \[\[")
    # a 1 MB string shared 10,000 times in the constructor kwargs would be a 10 GB str()/json.dumps
    shared = _u("x" * 2 ** 20) + _put(9) + P.POP + P.EMPTY_LIST + P.MARK + _get(9) * 10_000 + P.APPENDS
    fields = (base + _u("type") + _u("class") + _u("state") + P.EMPTY_DICT + P.MARK + _u("_init_kwargs")
              + P.EMPTY_DICT + P.MARK + _u("names") + shared + P.SETITEMS + P.SETITEMS)
    body = HEAD + P.EMPTY_DICT + _u("G_ema") + _meta(fields) + P.SETITEM + P.STOP
    refused(_write(tmp_path, "shared_string.pkl", body), r"more than \d+ characters of strings")


# ------------------------------------------------------------------------------------------------ class 3


@pytest.fixture()
def fake_persistence(monkeypatch):
    """Make ``torch_utils.persistence._reconstruct_persistent_obj`` picklable by name, as NVlabs' files name it."""
    mod, pkg = types.ModuleType("torch_utils.persistence"), types.ModuleType("torch_utils")

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - never called by the safe loader
        raise AssertionError("the real reconstruct hook must not run")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    pkg.persistence = mod
    monkeypatch.setitem(sys.modules, "torch_utils", pkg)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", mod)

    class Persistent:
        def __init__(self, class_name, state):
            self.meta = dict(type="class", version=6, module_src="", class_name=class_name, state=state)

        def __reduce__(self):
            return (mod._reconstruct_persistent_obj, (self.meta,))

    return Persistent


class _View:
    """Pickles as ``_rebuild_parameter(_rebuild_tensor_v2(storage, 0, shape, contiguous stride))``."""

    def __init__(self, storage, shape):
        self.storage, self.shape = storage, tuple(shape)

    def __reduce__(self):
        stride, acc = [], 1
        for n in reversed(self.shape):
            stride.insert(0, acc)
            acc *= n
        inner = (torch._utils._rebuild_tensor_v2, (self.storage, 0, self.shape, tuple(stride), False,
                                                   collections.OrderedDict()))
        return (torch._utils._rebuild_parameter, (_Reduced(inner), False, collections.OrderedDict()))


class _Reduced:
    def __init__(self, red):
        self.red = red

    def __reduce__(self):
        return self.red


def test_tensors_sharing_one_small_storage_are_refused(tmp_path):
    """All G_ema tensors viewing one small storage pass a shape-only check and would cost ~500x the file."""
    import nvlabs_writer as W

    G_kwargs, _ = sg2_kwargs("tiny")
    G = Generator(**G_kwargs)
    shapes = {k: v.shape for k, v in G.state_dict().items()}
    biggest = max(v.numel() for v in shapes.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = torch.zeros(biggest).storage()  # one small storage, memoised
    snap = W.snapshot(G_ema=G, augment_p=None, tensor_fn=lambda name, t: _View(storage, t.shape))
    path = W.write_snapshot(tmp_path / "shared_storage.pkl", snap)
    total = sum(v.numel() for v in shapes.values()) * 4
    assert total > 5 * path.stat().st_size  # what building it would have cost, vs the file
    refused(path, r"share one storage of \d+ elements and claim")
    # the same tensor object (memoised) behind every same-shaped parameter: caught after unpickling
    first: dict = {}
    snap = W.snapshot(G_ema=G, augment_p=None, tensor_fn=lambda name, t: first.setdefault(tuple(t.shape), t))
    path = W.write_snapshot(tmp_path / "shared_tensor.pkl", snap)
    refused(path, r"shares its storage with other tensors")
    # control: the same structure with each tensor its own storage loads
    ok = W.write_snapshot(tmp_path / "honest.pkl", W.snapshot(G_ema=G, augment_p=None))
    assert load_sg2(ok).G_ema is not None


# ------------------------------------------------------------------------------------------------ class 4


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero")
def test_fifos_devices_links_and_size_cap(tmp_path):
    fifo = tmp_path / "fifo.pkl"
    os.mkfifo(fifo)
    refused(fifo, r"is a FIFO / named pipe, not a regular file")
    refused(fifo, r"FIFO", call=available_nets)
    zero = tmp_path / "zero.pkl"
    zero.symlink_to("/dev/zero")
    refused(zero, r"is a character device, not a regular file")
    huge = tmp_path / "huge.pkl"
    with open(huge, "wb") as f:  # sparse: costs no disk
        f.truncate(MAX_SNAPSHOT_BYTES + 1)
    refused(huge, r"over the 1024.0 MiB limit")
    # own format: weights symlinked out of the folder, or a FIFO / device inside it
    G_kwargs, _ = sg2_kwargs("tiny")
    out = save_sg2(tmp_path / "ck", G_ema=Generator(**G_kwargs))
    secret = tmp_path / "elsewhere.safetensors"
    (out / "G_ema.safetensors").rename(secret)
    (out / "G_ema.safetensors").symlink_to(secret)
    refused(out, r"resolves to .*elsewhere.safetensors, outside the folder")
    (out / "G_ema.safetensors").unlink()
    (out / "G_ema.safetensors").symlink_to("/dev/zero")
    refused(out, r"outside the folder")
    (out / "G_ema.safetensors").unlink()
    os.mkfifo(out / "G_ema.safetensors")
    refused(out, r"G_ema.safetensors: the weights file is a FIFO")
    (out / "G_ema.safetensors").unlink()
    (out / "G_ema.safetensors").symlink_to(out / JSON_NAME)  # a link that stays inside is followed
    refused(out, r"corrupt or truncated safetensors")
    jfifo = tmp_path / "j" / JSON_NAME
    jfifo.parent.mkdir()
    os.mkfifo(jfifo)
    refused(jfifo.parent, r"checkpoint JSON is a FIFO")


# ------------------------------------------------------------------------------------------------ class 5


def test_errors_are_clean_and_name_the_file(tmp_path):
    """No raw RuntimeError/ValueError/MemoryError, always the path, one line, no C++ backtrace."""
    G_kwargs, _ = sg2_kwargs("tiny")
    out = save_sg2(tmp_path / "ck", G_ema=Generator(**G_kwargs))
    info = json.loads((out / JSON_NAME).read_text())
    raw = (out / JSON_NAME).read_text().replace('"version": 1', '"version": 1' + "0" * 5000)
    (out / JSON_NAME).write_text(raw)  # an integer too long to parse: ValueError inside json
    refused(out, r"corrupt JSON \(ValueError: Exceeds the limit")
    (out / JSON_NAME).write_text("[" * 100_000)
    refused(out, r"corrupt JSON")
    info["nets"]["G_ema"]["kwargs"]["z_dim"] = -5  # torch RuntimeError while building
    (out / JSON_NAME).write_text(json.dumps(info))
    refused(out, r"cannot build G_ema \(Generator\) .*RuntimeError")
    info["nets"]["G_ema"]["kwargs"]["z_dim"] = 64
    (out / JSON_NAME).write_text(json.dumps(info))
    w = out / "G_ema.safetensors"
    hdr = json.dumps({"x": {"dtype": "F32", "shape": [2 ** 40], "data_offsets": [0, 2 ** 42]}}).encode()
    w.write_bytes(len(hdr).to_bytes(8, "little") + hdr)
    refused(out, r"G_ema.safetensors: corrupt or truncated safetensors file")
    # pickles: opcodes no snapshot uses, persistent ids, protocol 6+, a huge LONG4, an unknown opcode
    for name, body, match in [
        ("inst", P.PROTO + b"\x02" + P.INST + b"os\nsystem\n" + P.STOP, r"opcode INST"),
        ("ext", HEAD + P.EXT1 + b"\x01" + P.STOP, r"opcode EXT1"),
        ("persid", HEAD + P.NONE + P.BINPERSID + P.STOP, r"persistent ids"),
        ("proto", P.PROTO + b"\x07" + P.STOP, r"unsupported pickle protocol 7"),
        ("long4", HEAD + P.LONG4 + (10 ** 6).to_bytes(4, "little") + b"\x01" * 10 ** 6 + P.STOP, r"integer of"),
        ("unknown", HEAD + b"\xfe" + P.STOP, r"unknown pickle opcode"),
        ("empty_stack", HEAD + P.APPEND + P.STOP, r"stack is empty"),
        ("bad_utf8", HEAD + P.SHORT_BINUNICODE + b"\x02\xff\xfe" + P.STOP,
         r"corrupt at byte 2 \(UnicodeDecodeError: 'utf-8' codec can't decode"),
        ("frame", HEAD + P.FRAME + (2 ** 62).to_bytes(8, "little") + P.STOP, r"truncated or corrupt"),
        ("reduce_args", HEAD + _glob("torch._utils", "_rebuild_parameter") + P.NONE + P.REDUCE + P.STOP,
         r"REDUCE arguments are a NoneType"),
        ("too_many_args", HEAD + _glob("torch._utils", "_rebuild_parameter") + P.MARK + P.NONE * 9 + P.TUPLE
         + P.REDUCE + P.STOP, r"TypeError: _rebuild_parameter\(\) takes"),
        ("codecs", HEAD + _glob("_codecs", "decode") + P.STOP, r"wants to import _codecs.decode"),
        ("set", HEAD + _glob("builtins", "frozenset") + P.STOP, r"wants to import builtins.frozenset"),
        ("getattr", HEAD + _glob("builtins", "getattr") + P.STOP, r"wants to import builtins.getattr"),
    ]:
        refused(_write(tmp_path, f"{name}.pkl", body), match)


def test_safe_unpickler_matches_pickle_on_plain_data():
    """The interpreter is a pickle VM: plain data of protocols 0-5 reads back as ``pickle.loads`` does."""
    from gandistill.io.safe_pickle import Allowed, ForbiddenError, SafeUnpickler, codecs_encode

    def find_class(module, name):  # protocols 0-2 spell bytes as _codecs.encode(str, 'latin1')
        if (module, name) == ("_codecs", "encode"):
            return Allowed(call=codecs_encode)
        raise ForbiddenError(f"{module}.{name}")

    shared = [1, 2]
    base = {"a": [1, 2.5, -3, 2 ** 70, -2 ** 100, True, None, "sn\u00f6w\n", b"\x00\xff" * 3, (1, (2, "x")), shared,
                  shared], "t": (), "d": {"1": "one", b"23": [4], "k": {}}, "long": "x" * 300, "i4": 2 ** 31 - 1,
            "inf": float("inf"), "neg": -1}
    for proto in range(6):
        obj = dict(base)
        if proto >= 4:  # earlier protocols spell sets as a call of builtins.set
            obj.update(s={"1", b"2", "z"}, f=frozenset({"1", "a"}))
        if proto >= 5:
            obj["ba"] = bytearray(b"qq")
        data = pickle.dumps(obj, protocol=proto)
        got = SafeUnpickler(data, find_class=find_class).load()
        assert got == pickle.loads(data) and got["a"][-1] is got["a"][-2], proto


def test_brief_and_summary_are_bounded():
    cpp = RuntimeError("shape '[2]' is invalid\nException raised from view at aten/src/x.cpp:42\nframe #0: ...")
    assert brief(cpp) == "RuntimeError: shape '[2]' is invalid"
    loop = [1]
    for _ in range(60):
        loop = [loop, loop]
    assert brief(KeyError(loop)).startswith("KeyError: [[[[") and len(brief(KeyError(loop))) < 300
    assert len(summary(loop, 50)) < 60 and len(summary("y" * 10 ** 6)) < 80
    assert summary(10 ** 1000) == "<int of 3322 bits>" and summary({"a": (1, b"x")}) == "{'a': (1, b'x')}"
