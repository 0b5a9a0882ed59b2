"""Property-based tests (hypothesis) of the whitelisting pickle interpreter and the snapshot loader.

Bounded (a few dozen examples each, no deadline flakiness) so the suite stays fast; ``scripts/fuzz_pickle.py``
runs the long version.
"""
from __future__ import annotations

import pickle
import pickletools
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gandistill.io.errors import GandistillError
from gandistill.io.safe_pickle import Allowed, ForbiddenError, SafeLoadError, SafeUnpickler, codecs_encode
from gandistill.teachers.stylegan2.checkpoint import SG2LoadError, load_sg2

FIXTURE = Path(__file__).parent / "fixtures" / "sg2-tiny-uncond.pkl"
OPCODES = sorted({op.code.encode("latin1")[0] for op in pickletools.opcodes})
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                    database=None)


def _empty_bytes(*args):
    if args:
        raise ForbiddenError("bytes() with arguments")
    return b""


def _find_class(module, name):
    if (module, name) == ("_codecs", "encode"):
        return Allowed(call=codecs_encode)
    if (module, name) == ("__builtin__", "bytes"):  # protocols 0-2 spell b"" as a call of bytes()
        return Allowed(call=_empty_bytes)
    raise ForbiddenError(f"{module}.{name}")


keys = st.one_of(st.text(max_size=12), st.binary(max_size=12))
leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30),
                   st.binary(max_size=30))
plain = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=6), st.tuples(inner, inner), st.dictionaries(keys, inner, max_size=6)), max_leaves=30)


@SETTINGS
@given(obj=plain, protocol=st.integers(0, 5))
def test_plain_data_reads_back_as_pickle_does(obj, protocol):
    """The interpreter is a pickle VM: str/bytes-keyed plain data of every protocol reads back equal."""
    data = pickle.dumps(obj, protocol=protocol)
    assert SafeUnpickler(data, find_class=_find_class).load() == pickle.loads(data)


def _op_stream(draw_ops):
    return pickle.PROTO + b"\x04" + b"".join(draw_ops) + pickle.STOP


op_with_arg = st.one_of(
    st.sampled_from(OPCODES).map(lambda c: bytes([c])),
    st.binary(min_size=1, max_size=9).map(lambda b: bytes([pickle.BININT[0]]) + b[:4].ljust(4, b"\0")),
    st.integers(0, 7).map(lambda i: pickle.BINPUT + bytes([i])),
    st.integers(0, 7).map(lambda i: pickle.BINGET + bytes([i])),
    st.text(max_size=8).map(lambda s: pickle.SHORT_BINUNICODE + bytes([len(s.encode())]) + s.encode()),
    st.sampled_from([b"collections\nOrderedDict\n", b"builtins\nset\n", b"os\nsystem\n", b"dnnlib.util\nEasyDict\n",
                     b"numpy\ndtype\n"]).map(lambda s: pickle.GLOBAL + s),
)


@SETTINGS
@given(ops=st.lists(op_with_arg, max_size=60))
def test_random_opcode_streams_only_ever_raise_safe_load_error(ops):
    from gandistill.teachers.stylegan2.nvlabs_pickle import read_snapshot

    data = _op_stream(ops)
    t0 = time.process_time()
    try:
        read_snapshot(data)
    except SafeLoadError as e:
        assert isinstance(e, GandistillError) and "\n" not in str(e) and len(str(e)) <= 400
    assert time.process_time() - t0 < 1.0


@pytest.fixture(scope="module")
def fixture_bytes():
    return FIXTURE.read_bytes()


@SETTINGS
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4))
def test_mutated_fixture_loads_or_is_refused_cleanly(tmp_path_factory, fixture_bytes, edits):
    data = bytearray(fixture_bytes)
    for where, value in edits:
        data[int(where * len(data))] = value
    path = tmp_path_factory.mktemp("mut") / "m.pkl"
    path.write_bytes(bytes(data))
    t0 = time.process_time()
    try:
        load_sg2(path, nets=("G_ema", "D"))
    except SG2LoadError as e:
        msg = str(e)
        assert msg.startswith(str(path)) and "\n" not in msg and len(msg) <= 400, msg
    assert time.process_time() - t0 < 1.0
