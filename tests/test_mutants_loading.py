"""Rules of rebuilding a student for evaluation (``gandistill/evaluation/loading.py``) and of the evaluation
splits (``gandistill/evaluation/splits.py``), stated independently of the code (for mutation testing:
``scripts/mutation.sh loading``): which JSON of a run folder is the checkpoint and in which order it is
searched, which weights file a JSON names, the projector widths checked against the weights' header before
anything is built, every refusal with its exact words, ``random:<name>`` students, and ``FirstN``. Fast: one
tiny timm ``test_resnet`` student with a one- or two-layer projector, tiny run folders in ``tmp_path``, a fake
``load_dataset``; no training and no CLI."""
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gandistill.evaluation import loading as L
from gandistill.evaluation import splits as S
from gandistill.evaluation.features import EvalDataError
from gandistill.io.errors import GandistillError, UnsafeFileError, show_path
from gandistill.students import create_student

NAME = "test_resnet"
KW = {"img_size": 16, "proj_layers": 2, "proj_hidden": 3, "proj_out": 4}
_CACHE = {}


def model():
    if "m" not in _CACHE:
        torch.manual_seed(0)
        _CACHE["m"] = create_student(NAME, **KW)
    return _CACHE["m"]


def state():
    return {k: v.clone().contiguous() for k, v in model().state_dict().items()}


def write_ckpt(folder: Path, stem="checkpoint", meta=None, weights=True, st=None):
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"student": NAME, "student_kwargs": dict(KW)} if meta is None else meta
    (folder / f"{stem}.json").write_text(json.dumps(meta))
    if weights:
        save_file(state() if st is None else st, str(folder / f"{stem}.safetensors"))
    return folder / f"{stem}.json"


def msg(excinfo):
    return str(excinfo.value)


def same_weights(m):
    ref = model().state_dict()
    got = m.state_dict()
    return set(got) == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)


# ------------------------------------------------------------------------------------------------ constants


def test_constants():
    assert L.RANDOM_PREFIX == "random:"
    assert L.KWARG_KEYS == ("student_kwargs", "kwargs", "create_student")
    assert L.WEIGHT_KEYS == ("weights", "file", "safetensors")
    assert L.CKPT_JSON_NAMES == ("student.json", "checkpoint.json", "ckpt.json", "last.json")
    assert L.MAX_CANDIDATES == 32
    assert L.MAX_PROBE_BYTES == 1048576
    assert issubclass(L.CheckpointError, GandistillError)


# ------------------------------------------------------------------------------------------------ random:


def test_random_student_name_kwargs_and_seed():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = L.load_student(f"{L.RANDOM_PREFIX}  {NAME} ", img_size=16, seed=7,
                       student_kwargs={"proj_layers": 1, "proj_out": 4, "pretrained": True})
    assert torch.equal(torch.random.get_rng_state(), before)      # global RNG untouched
    assert (a.name, a.source, a.weights, a.meta, a.run_config) == (NAME, "random", None, {}, {})
    assert a.kwargs == {"proj_layers": 1, "proj_out": 4, "img_size": 16}
    assert [tuple(v.shape) for k, v in a.model.state_dict().items() if k.startswith("projector.")] == [(4, 96)]
    b = L.load_student(f"random:{NAME}", img_size=16, seed=7, student_kwargs={"proj_layers": 1, "proj_out": 4})
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    c = L.load_student(f"random:{NAME}", img_size=16, seed=8, student_kwargs={"proj_layers": 1, "proj_out": 4})
    assert not torch.equal(a.model.state_dict()["projector.0.weight"], c.model.state_dict()["projector.0.weight"])


def test_random_without_seed_uses_global_rng_but_restores_it():
    kw = {"proj_layers": 1, "proj_out": 4}
    torch.manual_seed(5)
    a = L.load_student(f"random:{NAME}", student_kwargs=kw)
    torch.manual_seed(5)
    b = L.load_student(f"random:{NAME}", student_kwargs=kw)
    assert torch.equal(a.model.state_dict()["projector.0.weight"], b.model.state_dict()["projector.0.weight"])
    assert a.kwargs == kw                                         # no img_size added when not given
    c = L.load_student(f"random:{NAME}", student_kwargs=kw)       # RNG state restored: the same draw again
    assert torch.equal(a.model.state_dict()["projector.0.weight"], c.model.state_dict()["projector.0.weight"])


def test_random_student_kwargs_not_mutated():
    kw = {"proj_layers": 1, "proj_out": 4, "pretrained": False}
    L.load_student(f"random:{NAME}", student_kwargs=kw, img_size=16)
    assert kw == {"proj_layers": 1, "proj_out": 4, "pretrained": False}


@pytest.mark.parametrize("spec", ["random:", "random:   "])
def test_random_needs_a_name(spec):
    with pytest.raises(L.CheckpointError) as e:
        L.load_student(spec)
    assert msg(e) == "'random:' needs a student name, e.g. random:resnet18"


def test_random_prefix_only_for_str(tmp_path):
    p = tmp_path / "random:x"        # a Path is a path, never a random student
    with pytest.raises(L.CheckpointError) as e:
        L.load_student(p)
    assert msg(e).startswith(f"no such run folder or checkpoint: {p} ")


# ------------------------------------------------------------------------------------------------ load_student


def test_load_run_folder(tmp_path):
    write_ckpt(tmp_path)
    cfg = {"config": {"dataset": "cifar10", "student": NAME}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    got = L.load_student(tmp_path)
    assert isinstance(got, L.LoadedStudent)
    assert (got.name, got.source, got.kwargs) == (NAME, "checkpoint", KW)
    assert got.weights == (tmp_path / "checkpoint.safetensors").resolve()
    assert got.run_config == cfg
    assert got.meta == {"student": NAME, "student_kwargs": KW}
    assert same_weights(got.model)


def test_load_by_json_and_by_safetensors_and_str(tmp_path):
    run = tmp_path / "run"
    j = write_ckpt(run, stem="ck")
    got = L.load_student(str(j))
    assert got.run_config == {} and same_weights(got.model)
    assert got.weights == (run / "ck.safetensors").resolve()
    (run / "config.json").write_text(json.dumps({"config": {}}))
    got = L.load_student(run / "ck.safetensors")
    assert got.weights == run / "ck.safetensors" and got.run_config == {"config": {}}
    assert same_weights(got.model)


def test_given_safetensors_wins_over_json_weights(tmp_path):
    write_ckpt(tmp_path, stem="a", meta={"student": NAME, "student_kwargs": KW, "weights": "nope.safetensors"})
    got = L.load_student(tmp_path / "a.safetensors")
    assert got.weights == tmp_path / "a.safetensors"


def test_missing_path(tmp_path):
    p = tmp_path / "nope"
    with pytest.raises(L.CheckpointError) as e:
        L.load_student(p)
    assert msg(e) == (f"no such run folder or checkpoint: {p} "
                      "(use 'random:<name>' for a randomly initialised student)")


def test_format_must_be_student(tmp_path):
    j = write_ckpt(tmp_path, meta={"student": NAME, "format": "gandistill-bank"}, weights=False)
    with pytest.raises(L.CheckpointError) as e:
        L.load_student(j)
    assert msg(e) == f"{j} is a 'gandistill-bank' file, not a gandistill student checkpoint"
    j = write_ckpt(tmp_path, meta={"student": NAME, "format": "gandistill-student", "student_kwargs": KW})
    assert same_weights(L.load_student(j).model)


def test_student_as_object(tmp_path):
    j = write_ckpt(tmp_path, meta={"student": {"name": NAME, **KW, "pretrained": True}})
    got = L.load_student(j)
    assert got.name == NAME and got.kwargs == KW and same_weights(got.model)


@pytest.mark.parametrize("student", ["", {"img_size": 16}])
def test_student_not_named(tmp_path, student):
    j = tmp_path / "s.json"
    j.write_text(json.dumps({"student": student}))
    with pytest.raises(GandistillError) as e:
        L.load_student(j)
    assert "student" in msg(e)


def test_student_empty_name_exact(tmp_path):
    j = tmp_path / "s.json"
    j.write_text(json.dumps({"student": ""}))
    with pytest.raises(L.CheckpointError) as e:
        L.load_student(j)
    assert msg(e) == f"{j} does not name the student (key 'student')"


def test_kwargs_name_must_agree(tmp_path):
    j = write_ckpt(tmp_path, meta={"student": NAME, "student_kwargs": {**KW, "name": "resnet18"}})
    with pytest.raises(L.CheckpointError) as e:
        L.load_student(j)
    assert msg(e) == f"{j}: names student '{NAME}' but its kwargs say 'resnet18'"
    j = write_ckpt(tmp_path, meta={"student": NAME, "student_kwargs": {**KW, "name": NAME, "pretrained": True}})
    got = L.load_student(j)
    assert got.kwargs == KW and same_weights(got.model)


def test_kwargs_keys_in_order(tmp_path):
    j = write_ckpt(tmp_path, meta={"student": NAME, "kwargs": KW, "create_student": {"proj_layers": 9}})
    assert L.load_student(j).kwargs == KW
    j = write_ckpt(tmp_path, meta={"student": NAME, "create_student": KW})
    assert L.load_student(j).kwargs == KW


def test_student_kwargs_helper(tmp_path):
    j = tmp_path / "c.json"
    assert L._student_kwargs({}, j) == {}
    meta = {"kwargs": {"a": 1}, "create_student": {"b": 2}}
    got = L._student_kwargs(meta, j)
    assert got == {"a": 1}
    got["c"] = 3
    assert meta["kwargs"] == {"a": 1}                      # a copy
    assert L._student_kwargs({"create_student": {"b": 2}}, j) == {"b": 2}
    assert L._student_kwargs({"student_kwargs": {"s": 1}, "kwargs": {"a": 1}}, j) == {"s": 1}
    for k in L.KWARG_KEYS:
        with pytest.raises(L.CheckpointError) as e:
            L._student_kwargs({k: [1]}, j)
        assert msg(e) == f"'{k}' in {j} should be an object of create_student kwargs"


def test_cannot_rebuild(tmp_path):
    # proj_layers=0 and no projector tensors: the widths check passes; create_student refuses the name
    j = write_ckpt(tmp_path, stem="u", meta={"student": "no_such_net_xyz", "student_kwargs": {"proj_layers": 0}},
                   weights=False)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "u.safetensors"))
    with pytest.raises(L.CheckpointError) as e:
        L.load_student(j)
    assert msg(e).startswith(f"{j}: cannot rebuild student 'no_such_net_xyz' with {{'proj_layers': 0}}: ")


def test_strict_weights_refused(tmp_path):
    st = state()
    st.pop("backbone.fc.weight", None)
    extra = dict(st, **{"zzz": torch.zeros(1)})
    j = write_ckpt(tmp_path, st=extra)
    with pytest.raises(L.CheckpointError) as e:
        L.load_student(j)
    assert "zzz" in msg(e)


def test_missing_weights(tmp_path):
    j = write_ckpt(tmp_path, weights=False)
    w = tmp_path / "checkpoint.safetensors"
    with pytest.raises(L.CheckpointError) as e:
        L.load_student(j)
    assert msg(e) == f"missing weights file: {tmp_path / 'student.safetensors'}"
    with pytest.raises(L.CheckpointError) as e:
        L.check_widths({}, w)
    assert msg(e) == f"missing weights file: {w}"
    with pytest.raises(L.CheckpointError) as e:
        L.load_student_weights(model(), w)
    assert msg(e) == f"missing weights file: {w}"


def test_load_student_weights(tmp_path):
    w = tmp_path / "w.safetensors"
    save_file(state(), str(w))
    torch.manual_seed(9)
    m = create_student(NAME, **KW)
    assert not same_weights(m)
    L.load_student_weights(m, w)
    assert same_weights(m)
    st = state()
    st["projector.0.weight"] = st["projector.0.weight"].double()
    save_file(st, str(w))
    with pytest.raises(L.CheckpointError):
        L.load_student_weights(m, w)


def test_run_config_read_and_schema(tmp_path):
    write_ckpt(tmp_path)
    (tmp_path / "config.json").write_text("[1]")
    with pytest.raises(L.CheckpointError) as e:
        L.load_student(tmp_path)
    assert "run config" in msg(e)
    (tmp_path / "config.json").unlink()
    assert L.load_student(tmp_path).run_config == {}


def test_read_json(tmp_path):
    p = tmp_path / "x.json"
    with pytest.raises(L.CheckpointError) as e:
        L._read_json(p)
    assert msg(e) == f"missing file: {p}"
    p.write_text("[1, 2]")
    with pytest.raises(L.CheckpointError) as e:
        L._read_json(p)
    assert msg(e) == f"{p}: checkpoint JSON should hold a JSON object, got list"
    with pytest.raises(L.CheckpointError) as e:
        L._read_json(p, what="run thing")
    assert msg(e) == f"{p}: run thing should hold a JSON object, got list"
    p.write_text('{"a": 1}')
    assert L._read_json(p) == {"a": 1}


# ------------------------------------------------------------------------------------------------ finding the JSON


def j(p: Path, d):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(d))
    return p


def test_is_ckpt_json(tmp_path):
    assert not L._is_ckpt_json(tmp_path / "nope.json")
    (tmp_path / "d.json").mkdir()
    assert not L._is_ckpt_json(tmp_path / "d.json")
    os.mkfifo(tmp_path / "f.json")
    assert not L._is_ckpt_json(tmp_path / "f.json")
    assert not L._is_ckpt_json(j(tmp_path / "l.json", ["student"]))
    assert not L._is_ckpt_json(j(tmp_path / "o.json", {"studentx": 1}))
    (tmp_path / "bad.json").write_text("{")
    assert not L._is_ckpt_json(tmp_path / "bad.json")
    assert L._is_ckpt_json(j(tmp_path / "s.json", {"student": 0}))
    os.symlink(tmp_path / "s.json", tmp_path / "link.json")
    assert L._is_ckpt_json(tmp_path / "link.json")


def test_is_ckpt_json_probe_limit(tmp_path, monkeypatch):
    text = '{"student": "x"}'
    p = tmp_path / "s.json"
    p.write_text(text)
    monkeypatch.setattr(L, "MAX_PROBE_BYTES", len(text))
    assert L._is_ckpt_json(p)
    monkeypatch.setattr(L, "MAX_PROBE_BYTES", len(text) - 1)
    assert not L._is_ckpt_json(p)


def test_folder_search_order(tmp_path):
    s = {"student": NAME}
    j(tmp_path / "config.json", s)
    assert L.find_checkpoint_json(tmp_path) == tmp_path / "config.json"     # last resort
    j(tmp_path / "final" / "z.json", s)
    assert L.find_checkpoint_json(tmp_path) == tmp_path / "final" / "z.json"
    j(tmp_path / "last" / "z.json", s)
    assert L.find_checkpoint_json(tmp_path) == tmp_path / "last" / "z.json"
    j(tmp_path / "ckpt" / "z.json", s)
    assert L.find_checkpoint_json(tmp_path) == tmp_path / "ckpt" / "z.json"
    j(tmp_path / "checkpoints" / "b.json", s)
    j(tmp_path / "checkpoints" / "a.json", s)
    assert L.find_checkpoint_json(tmp_path) == tmp_path / "checkpoints" / "a.json"
    j(tmp_path / "zz.json", s)
    j(tmp_path / "mm.json", s)
    j(tmp_path / "aa.json", {"other": 1})
    assert L.find_checkpoint_json(tmp_path) == tmp_path / "mm.json"
    for n in reversed(L.CKPT_JSON_NAMES):
        j(tmp_path / n, s)
        assert L.find_checkpoint_json(tmp_path) == tmp_path / n


def test_folder_subdir_file_not_dir(tmp_path):
    (tmp_path / "checkpoints").write_text("x")
    (tmp_path / "ckpt").mkdir()
    j(tmp_path / "ckpt" / "c.json", {"student": NAME})
    assert L.find_checkpoint_json(tmp_path) == tmp_path / "ckpt" / "c.json"


def test_folder_candidate_limit(tmp_path, monkeypatch):
    j(tmp_path / "a.json", {"x": 1})
    j(tmp_path / "b.json", {"x": 1})
    j(tmp_path / "c.json", {"student": NAME})
    # candidates: the 4 fixed names (absent), then a, b, c
    monkeypatch.setattr(L, "MAX_CANDIDATES", 7)
    assert L.find_checkpoint_json(tmp_path) == tmp_path / "c.json"
    monkeypatch.setattr(L, "MAX_CANDIDATES", 6)
    with pytest.raises(L.CheckpointError) as e:
        L.find_checkpoint_json(tmp_path)
    assert msg(e) == (f"no student checkpoint in run folder {tmp_path}: expected a JSON naming the student next "
                      "to its .safetensors weights; found a.json, b.json, c.json")


def test_empty_folder(tmp_path):
    with pytest.raises(L.CheckpointError) as e:
        L.find_checkpoint_json(tmp_path)
    assert msg(e).endswith("; found (empty folder)")
    with pytest.raises(L.CheckpointError) as e:
        L.load_student(tmp_path)
    assert msg(e).endswith("; found (empty folder)")


def test_find_from_safetensors(tmp_path):
    w = tmp_path / "x.safetensors"
    with pytest.raises(L.CheckpointError) as e:
        L.find_checkpoint_json(w)
    assert msg(e) == f"no checkpoint JSON (student name + kwargs) next to {w}"
    j(tmp_path / "last.json", {"student": NAME})
    assert L.find_checkpoint_json(w) == tmp_path / "last.json"
    j(tmp_path / "student.json", {"student": NAME})
    assert L.find_checkpoint_json(w) == tmp_path / "student.json"
    j(tmp_path / "x.json", {"nostudent": NAME})
    assert L.find_checkpoint_json(w) == tmp_path / "student.json"
    j(tmp_path / "x.json", {"student": NAME})
    assert L.find_checkpoint_json(w) == tmp_path / "x.json"


def test_find_from_json_and_other(tmp_path):
    p = tmp_path / "c.json"
    with pytest.raises(L.CheckpointError) as e:
        L.find_checkpoint_json(p)
    assert msg(e) == f"missing file: {p}"
    p.write_text("{}")
    assert L.find_checkpoint_json(p) == p                  # any existing .json: its contents are checked later
    q = tmp_path / "c.pt"
    with pytest.raises(L.CheckpointError) as e:
        L.find_checkpoint_json(q)
    assert msg(e) == ("expected a run folder, a checkpoint .json/.safetensors or 'random:<name>', "
                      f"got {q}")


# ------------------------------------------------------------------------------------------------ weights path


def test_weights_path(tmp_path):
    jp = tmp_path / "c.json"
    g = tmp_path / "given.safetensors"
    assert L._weights_path({"weights": "w.safetensors"}, jp, g) == g
    assert L._weights_path({"weights": "w.safetensors"}, jp, tmp_path / "c.json") == \
        (tmp_path / "w.safetensors").resolve()
    assert L._weights_path({"weights": "w", "file": "f"}, jp, None) == (tmp_path / "w").resolve()
    assert L._weights_path({"weights": 3, "file": "f", "safetensors": "s"}, jp, None) == (tmp_path / "f").resolve()
    assert L._weights_path({"safetensors": "s"}, jp, None) == (tmp_path / "s").resolve()
    assert L._weights_path({}, jp, None) == tmp_path / "student.safetensors"
    os.symlink(tmp_path / "nowhere", tmp_path / "c.safetensors")     # a dangling link still counts (lexists)
    assert L._weights_path({}, jp, None) == tmp_path / "c.safetensors"
    with pytest.raises(UnsafeFileError) as e:
        L._weights_path({"weights": "../w.safetensors"}, jp, None)
    assert msg(e).startswith(f"{show_path(jp)}: the weights file ../w.safetensors must be a relative name")


# ------------------------------------------------------------------------------------------------ projector widths


def hdr(*shapes, prefix="projector.", extra=None):
    e = {f"{prefix}{i}.weight": {"shape": list(s)} for i, s in shapes}
    e.update(extra or {})
    return e


def test_check_projector_ok_and_layers(tmp_path):
    w = tmp_path / "w"
    L.check_projector(hdr((0, (3, 8)), (3, (4, 3))), "projector.", 2, 3, 4, w)
    L.check_projector({}, "projector.", 0, 3, 4, w)
    L.check_projector(hdr((0, (4, 8))), "projector.", 1, 999, 4, w)          # one layer: hidden unused
    L.check_projector(hdr((0, (8, 8)), (3, (4, 8))), "projector.", 2, None, 4, w)   # hidden None = in
    L.check_projector(hdr((0, (3, 5)), (3, (3, 3)), (6, (4, 3))), "projector.", 3, 3, 4, w, in_dim=5)
    with pytest.raises(L.CheckpointError) as e:
        L.check_projector(hdr((0, (3, 8)), (3, (4, 3))), "projector.", 3, 3, 4, w)
    assert msg(e) == f"{w}: the JSON says proj_layers=3 but the weights hold 2 projector layers"
    with pytest.raises(UnsafeFileError) as e:
        L.check_projector(hdr((0, (3, 8))), "projector.", 0, 3, 4, w, UnsafeFileError)
    assert msg(e) == f"{w}: the JSON says proj_layers=0 but the weights hold 1 projector layers"


def test_check_projector_counts_only_linear_weights(tmp_path):
    w = tmp_path / "w"
    extra = {"projector.1.bias": {"shape": [3]}, "projector.1.weight": {"shape": [3]},
             "projector.x.weight": {"shape": [3, 3]}, "other.0.weight": {"shape": [3, 3]},
             "projector.0.weightx": {"shape": [3, 3]}, "backbone.projector.7.weight": {"shape": [3, 3]},
             "projector.2.running_mean": {"shape": [3]}, "projector.5.w.weight": {"shape": [9, 9, 9]}}
    L.check_projector(hdr((0, (3, 8)), (3, (4, 3)), extra=extra), "projector.", 2, 3, 4, w)


def test_check_projector_sorted_by_number(tmp_path):
    w = tmp_path / "w"
    # index 10 after 2 (numbers, not strings): [3,8] at 2, [4,3] at 10
    L.check_projector(hdr((2, (3, 8)), (10, (4, 3))), "projector.", 2, 3, 4, w)
    with pytest.raises(L.CheckpointError) as e:
        L.check_projector(hdr((10, (3, 8)), (2, (4, 3))), "projector.", 2, 3, 4, w)
    assert msg(e) == (f"{w}: the JSON's projector widths (in=3, hidden=3, out=4) do not match tensor "
                      "'projector.2.weight' of shape (4, 3)")


@pytest.mark.parametrize("shapes,layers,hidden,out,in_dim,bad", [
    (((0, (3, 8)), (3, (5, 3))), 2, 3, 4, None, "(in=8, hidden=3, out=4) do not match tensor 'projector.3.weight' of shape (5, 3)"),
    (((0, (3, 8)), (3, (4, 3))), 2, 3, 4, 7, "(in=7, hidden=3, out=4) do not match tensor 'projector.0.weight' of shape (3, 8)"),
    (((0, (3, 8)), (3, (4, 3))), 2, 2, 4, None, "(in=8, hidden=2, out=4) do not match tensor 'projector.0.weight' of shape (3, 8)"),
    (((0, (3, 8)), (3, (4, 3))), 2, None, 4, None, "(in=8, hidden=None, out=4) do not match tensor 'projector.0.weight' of shape (3, 8)"),
    (((0, (4, 8)),), 1, 3, 5, None, "(in=8, hidden=3, out=5) do not match tensor 'projector.0.weight' of shape (4, 8)"),
    (((0, (4, 8)),), 1, 3, 4, 9, "(in=9, hidden=3, out=4) do not match tensor 'projector.0.weight' of shape (4, 8)"),
    (((0, (3, 8)), (1, (3, 3)), (2, (3, 4))), 3, 3, 4, None, "(in=8, hidden=3, out=4) do not match tensor 'projector.2.weight' of shape (3, 4)"),
    (((0, (3, 8)), (1, (3, 2)), (2, (4, 3))), 3, 3, 4, None, "(in=8, hidden=3, out=4) do not match tensor 'projector.1.weight' of shape (3, 2)"),
    (((0, (3, 8)), (1, (2, 3)), (2, (4, 3))), 3, 3, 4, None, "(in=8, hidden=3, out=4) do not match tensor 'projector.1.weight' of shape (2, 3)"),
    (((0, (3, 8)), (1, (4, 3))), 2, 3, 4.0, None, None),
])
def test_check_projector_mismatch(tmp_path, shapes, layers, hidden, out, in_dim, bad):
    w = tmp_path / "w"
    if bad is None:
        L.check_projector(hdr(*shapes), "projector.", layers, hidden, out, w, in_dim=in_dim)
        return
    with pytest.raises(L.CheckpointError) as e:
        L.check_projector(hdr(*shapes), "projector.", layers, hidden, out, w, in_dim=in_dim)
    assert msg(e) == f"{w}: the JSON's projector widths {bad}"


def test_check_projector_string_widths(tmp_path):
    # widths given as numbers of another type are compared as ints
    L.check_projector(hdr((0, (3, 8)), (1, (4, 3))), "projector.", 2, "3", "4", tmp_path / "w", in_dim="8")


def test_check_widths_defaults_and_kwargs(tmp_path):
    w = tmp_path / "w.safetensors"
    z = torch.zeros
    save_file({"projector.0.weight": z(512, 6), "projector.3.weight": z(512, 512), "projector.6.weight": z(512, 512),
               "projector.9.weight": z(512, 512), "projector.12.weight": z(2048, 512)}, str(w))
    L.check_widths({}, w)                                       # defaults: 5 layers, 512 hidden, 2048 out
    with pytest.raises(L.CheckpointError) as e:
        L.check_widths({"proj_layers": 4}, w)
    assert msg(e) == f"{w}: the JSON says proj_layers=4 but the weights hold 5 projector layers"
    with pytest.raises(L.CheckpointError) as e:
        L.check_widths({"proj_out": 2047}, w)
    assert "(in=6, hidden=512, out=2047)" in msg(e)
    with pytest.raises(L.CheckpointError) as e:
        L.check_widths({"proj_hidden": 511}, w)
    assert "(in=6, hidden=511, out=2048)" in msg(e)
    save_file({"projector.0.weight": z(6, 6), "projector.1.weight": z(6, 6)}, str(w))
    L.check_widths({"proj_layers": 2, "proj_hidden": None, "proj_out": 6}, w)
    L.check_widths({"proj_layers": "2", "proj_hidden": None, "proj_out": "6"}, w)


def test_widths_checked_before_build(tmp_path, monkeypatch):
    jp = write_ckpt(tmp_path, meta={"student": NAME, "student_kwargs": {**KW, "proj_hidden": 60000}})
    monkeypatch.setattr(L, "create_student", lambda *a, **k: pytest.fail("built before the widths check"))
    with pytest.raises(L.CheckpointError) as e:
        L.load_student(jp)
    assert "hidden=60000" in msg(e)


# ------------------------------------------------------------------------------------------------ splits


class DS:
    def __init__(self, n, take=True, **attrs):
        self.items = list(range(100, 100 + n))
        self.__dict__.update(attrs)
        if take:
            self.take = lambda idx: ("take", idx)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_first_n():
    base = DS(5, name="d", num_classes=3, mean=(0.5,), std=(0.2,), resolution=8, split="train", classes=["a"],
              other=1)
    f = S.FirstN(base, 3)
    assert len(f) == 3 and f.base is base and f.n == 3
    assert (f.name, f.num_classes, f.mean, f.std, f.resolution, f.split, f.classes) == \
        ("d", 3, (0.5,), (0.2,), 8, "train", ["a"])
    assert not hasattr(f, "other")
    assert [f[i] for i in range(3)] == [100, 101, 102]
    assert [f[i] for i in (-1, -2, -3)] == [102, 101, 100]
    for i in (3, -4):
        with pytest.raises(IndexError) as e:
            f[i]
        assert msg(e) == f"index {i} out of range for 3 items"
    assert f.take(slice(None)) == ("take", slice(0, 3, 1))
    assert f.take(slice(1, 10, 2)) == ("take", slice(1, 3, 2))
    assert f.take([0, 2]) == ("take", [0, 2])
    assert len(S.FirstN(base, 9)) == 5 and len(S.FirstN(base, 5)) == 5 and len(S.FirstN(base, "2")) == 2
    g = S.FirstN(DS(4, take=False), 2)
    assert not hasattr(g, "take") and not hasattr(g, "name")


def test_first_n_take_not_callable():
    base = DS(3, take=False)
    base.take = 5                         # an attribute that is not a method: no batch access offered
    assert "take" not in vars(S.FirstN(base, 2))


def fake_loader(calls, sizes, classes=10):
    def load_dataset(name, root=None, split=None, img_size=None, download=False):
        calls.append((name, root, split, img_size, download))
        return DS(sizes[split], num_classes=classes)
    return load_dataset


def test_load_eval_splits(monkeypatch):
    calls = []
    monkeypatch.setattr(S, "load_dataset", fake_loader(calls, {"tr": 6, "te": 4}))
    tr, te = S.load_eval_splits("cifar10", "/r", 16, max_train=2, max_test=None, train_split="tr",
                                test_split="te", download=True)
    assert calls == [("cifar10", "/r", "tr", 16, True), ("cifar10", "/r", "te", 16, True)]
    assert isinstance(tr, S.FirstN) and len(tr) == 2 and not isinstance(te, S.FirstN) and len(te) == 4
    calls.clear()
    monkeypatch.setattr(S, "load_dataset", fake_loader(calls, {"train": 3, "test": 2}))
    tr, te = S.load_eval_splits("x", max_test=1)
    assert calls == [("x", None, "train", None, False), ("x", None, "test", None, False)]
    assert len(tr) == 3 and not isinstance(tr, S.FirstN) and isinstance(te, S.FirstN) and len(te) == 1


def test_unlabelled_and_empty(monkeypatch):
    calls = []
    monkeypatch.setattr(S, "load_dataset", fake_loader(calls, {"unlabeled": 3, "train": 3}, classes=0))
    with pytest.raises(EvalDataError) as e:
        S._load_split("stl10", None, "unlabeled", None, None)
    assert msg(e) == ("dataset 'stl10' split 'unlabeled' has no labels: evaluation needs a labelled split"
                      " (stl10: use 'train' and 'test')")
    with pytest.raises(EvalDataError) as e:
        S._load_split("cifar10", None, "train", None, None)
    assert msg(e) == "dataset 'cifar10' split 'train' has no labels: evaluation needs a labelled split"
    monkeypatch.setattr(S, "load_dataset", fake_loader(calls, {"test": 0}))
    with pytest.raises(EvalDataError) as e:
        S._load_split("cifar10", None, "test", None, 5)
    assert msg(e) == "dataset 'cifar10' split 'test' is empty"
    monkeypatch.setattr(S, "load_dataset", lambda *a, **k: DS(2))           # no num_classes attribute: fine
    assert len(S._load_split("c", None, "test", None, None)) == 2
    assert calls[-1][4] is False


# ------------------------------------------------------------------------------------------------ second round


def test_read_json_applies_schema(tmp_path):
    from gandistill.io.formats import EVAL_CHECKPOINT
    p = j(tmp_path / "c.json", {"student": NAME, "student_kwargs": {"evil": 1}})
    assert L._read_json(p) == {"student": NAME, "student_kwargs": {"evil": 1}}     # ANY by default
    with pytest.raises(L.CheckpointError) as e:
        L._read_json(p, EVAL_CHECKPOINT)
    assert msg(e).startswith(f"{p}: checkpoint JSON: 'student_kwargs.evil' is not a known key (known: ")
    with pytest.raises(L.CheckpointError) as e:
        L.load_student(p)                                  # load_student reads with EVAL_CHECKPOINT
    assert msg(e).startswith(f"{p}: checkpoint JSON: 'student_kwargs.evil' is not a known key (known: ")


def test_run_config_message_exact(tmp_path):
    write_ckpt(tmp_path)
    (tmp_path / "config.json").write_text("[1]")
    with pytest.raises(L.CheckpointError) as e:
        L.load_student(tmp_path / "checkpoint.json")
    assert msg(e) == f"{tmp_path / 'config.json'}: run config: the top level must be a JSON object, got a list of 1"


def test_weights_not_a_file_messages(tmp_path):
    w = tmp_path / "w.safetensors"
    w.mkdir()
    # refused by the safe reader (a CheckpointError from the header read, an UnsafeFileError from the full
    # read; both GandistillErrors) naming "the weights file"
    for call in (lambda: L.check_widths({}, w), lambda: L.load_student_weights(model(), w)):
        with pytest.raises(GandistillError) as e:
            call()
        assert msg(e) == f"{w}: the weights file is a directory, not a regular file; refusing to read it"


def test_weights_corrupt_is_checkpoint_error(tmp_path):
    w = tmp_path / "w.safetensors"
    w.write_bytes(b"abc")
    for call in (lambda: L.check_widths({}, w), lambda: L.load_student_weights(model(), w)):
        with pytest.raises(L.CheckpointError) as e:
            call()
        assert type(e.value) is L.CheckpointError
        assert msg(e) == (f"{w} is truncated or corrupt or unreadable as safetensors "
                          "(shorter than its 8-byte header length)")


def test_load_student_weights_mismatch_message(tmp_path):
    w = tmp_path / "w.safetensors"
    save_file({"weight": torch.zeros(1, 1)}, str(w))
    with pytest.raises(L.CheckpointError) as e:
        L.load_student_weights(torch.nn.Linear(1, 1), w)
    assert msg(e) == f"{w}: the weights do not fit the network: 1 missing keys (e.g. bias)"


def test_nul_in_path():
    with pytest.raises(UnsafeFileError) as e:
        L.load_student("a\0b")
    assert msg(e) == "a\\x00b: the checkpoint path contains a NUL byte"


def test_run_folder_named_like_weights(tmp_path):
    run = tmp_path / "run.safetensors"                     # a folder, not the weights
    write_ckpt(run)
    got = L.load_student(run)
    assert got.weights == (run / "checkpoint.safetensors").resolve() and same_weights(got.model)


def test_run_config_from_folder_when_checkpoint_in_subfolder(tmp_path):
    write_ckpt(tmp_path / "checkpoints", stem="step1")
    cfg = {"config": {"dataset": "cifar10"}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    got = L.load_student(tmp_path)
    assert got.run_config == cfg and same_weights(got.model)
    assert L.load_student(tmp_path / "checkpoints" / "step1.json").run_config == {}
