"""Property tests (hypothesis, structure-aware, a few seconds): whatever a JSON header, a safetensors
header or a run folder holds, the readers either accept it consistently or refuse it with one
GandistillError line -- never another exception type."""
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from io_attacks import bank_header, bank_size, write_bank

from gandistill.io.errors import GandistillError, UnsafeFileError
from gandistill.io.schema import MAX_DEPTH, json_bounded, parse_json
from gandistill.io.tensors import DTYPES, parse_safetensors_header

FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=False),
                    st.text(max_size=20))
json_values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=5),
                                                        st.dictionaries(st.text(max_size=8), c, max_size=5)),
                           max_leaves=30)


@FAST
@given(st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200),
                 st.integers(1, 3 * MAX_DEPTH).map(lambda d: b"[" * d + b"]" * d)))
def test_parse_json_accepts_bounded_values_and_refuses_with_value_error(raw):
    try:
        v = parse_json(raw)
    except ValueError:
        return
    assert json_bounded(v)


def _mutate(d, key, value):
    d = dict(d)
    if value is _DELETE:
        d.pop(key, None)
    else:
        d[key] = value
    return d


_DELETE = object()


@FAST
@given(st.sampled_from(sorted(bank_header())), st.one_of(json_values, st.just(_DELETE)))
def test_bank_header_mutations_are_accepted_or_one_bank_error(tmp_path_factory, key, value):
    from gandistill.teachers.bank import BankError, read_header

    folder = tmp_path_factory.mktemp("bank")
    good = bank_header()
    write_bank(folder, _mutate(good, key, value), size=bank_size(good))
    try:
        h = read_header(folder)
    except BankError as e:
        assert "\n" not in str(e)
        return
    assert h["n"] * h["img_channels"] >= 1


entry = st.fixed_dictionaries({
    "dtype": st.one_of(st.sampled_from(sorted(DTYPES)), st.text(max_size=4), json_values),
    "shape": st.one_of(st.lists(st.integers(-2, 6), max_size=4), scalars),
    "data_offsets": st.one_of(st.lists(st.integers(-4, 200), min_size=2, max_size=2), scalars),
})


@FAST
@given(st.dictionaries(st.text(max_size=10), st.one_of(entry, json_values), max_size=6), st.integers(0, 200))
def test_safetensors_headers_are_consistent_or_refused(header, data_size):
    raw = json.dumps(header).encode()
    blob = struct.pack("<Q", len(raw)) + raw + bytes(data_size)
    try:
        entries, meta, start = parse_safetensors_header(blob, "x.safetensors", data_size=data_size)
    except UnsafeFileError as e:
        assert "\n" not in str(e)
        return
    spans = sorted(e["data_offsets"] for e in entries.values())
    assert all(0 <= a <= b <= data_size for a, b in spans)
    assert all(b0 >= a1 for (_, a1), (b0, _) in zip(spans, spans[1:]))
    from safetensors.torch import load

    load(blob)  # safetensors itself agrees it is well-formed


@pytest.fixture(scope="module")
def run_template(tmp_path_factory):
    from test_hostile_io import student_run

    return student_run(tmp_path_factory.mktemp("tpl") / "r")


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["student", "student_kwargs", "weights", "format", "step", "proj_hidden", "proj_layers",
                        "img_size"]), st.one_of(json_values, st.just(_DELETE)))
def test_run_folder_mutations_load_or_fail_cleanly(run_template, tmp_path_factory, key, value):
    import shutil

    from gandistill.evaluate import load_student

    folder = tmp_path_factory.mktemp("run") / "r"
    shutil.copytree(run_template, folder)
    meta = json.loads((folder / "checkpoint.json").read_text())
    if key in meta["student_kwargs"]:
        meta["student_kwargs"] = _mutate(meta["student_kwargs"], key, value)
    else:
        meta = _mutate(meta, key, value)
    (folder / "checkpoint.json").write_text(json.dumps(meta))
    try:
        load_student(folder)
    except GandistillError as e:
        assert "\n" not in str(e)


@pytest.fixture(scope="module")
def train_state_bytes(tmp_path_factory):
    import torch

    p = tmp_path_factory.mktemp("ts") / "train_state.pt"
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([w])
    w.sum().backward()
    opt.step()
    torch.save({"step": 1, "optimizer": opt.state_dict()}, p)
    return p.read_bytes()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), min_size=1, max_size=4),
       st.one_of(st.none(), st.integers(0, 10 ** 6)))
def test_train_state_byte_mutations_load_or_fail_cleanly(train_state_bytes, tmp_path_factory, flips, cut):
    from gandistill.io.tensors import read_train_state

    b = bytearray(train_state_bytes)
    for pos, val in flips:
        b[pos % len(b)] = val
    if cut is not None:
        b = b[: cut % len(b)]
    p = tmp_path_factory.mktemp("t") / "train_state.pt"
    p.write_bytes(bytes(b))
    try:
        read_train_state(p)
    except GandistillError as e:
        assert "\n" not in str(e)


def test_bundled_files_fit_their_schemas():
    """The schemas accept what gandistill itself writes and ships (they must not drift from the writers)."""
    from pathlib import Path

    import gandistill
    from gandistill.io.formats import JUDGE, TEACHER_FOLDER
    from gandistill.io.schema import load_json

    assets = Path(gandistill.__file__).parent / "assets"
    teachers = sorted(assets.rglob("gandistill_sg2.json"))
    assert len(teachers) >= 2
    for f in teachers:
        load_json(f, TEACHER_FOLDER)
    load_json(assets / "digits-judge" / "judge.json", JUDGE)


def test_atomic_json_write_leaves_the_old_file_when_it_fails(tmp_path):
    from gandistill.io.files import atomic_write, atomic_write_json

    target = tmp_path / "x.json"
    atomic_write_json(target, {"a": 1})

    def half_then_fail(p):
        p.write_text('{"a": 2')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, half_then_fail)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
