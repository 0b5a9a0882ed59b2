"""Rules of the config-file and JSON-schema layer, stated independently of the code (for mutation testing:
``scripts/mutation.sh formats`` and ``scripts/mutate_blind_spots.py --group formats``):

* ``io/config_file.py``: field docs from the class source, defaults, the exact ``--print-config`` YAML,
  the type rules of a value read from a file, exact messages, the size cap at the boundary, a run's
  record read as its ``"config"`` part, the merge order;
* ``io/jsonable.py``: the JSON-ready conversion;
* ``io/formats.py``: every schema's required keys, every bounded field at exactly its limits and one
  past them, the string caps, the choices and the refused extra keys.

Deterministic and fast (tmp_path files, no torch, no CLI)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Literal, Optional, Tuple, Union

import pytest

from gandistill.io import config_file as C
from gandistill.io.config_file import (check_fields, config_yaml, field_default, field_docs, merge_config,
                                       read_config_file)
from gandistill.io.errors import ConfigError
from gandistill.io.jsonable import jsonable


# ------------------------------------------------------------------------------------------------ field docs


@dataclasses.dataclass
class Documented:
    alpha: int = 1  # the alpha doc
    beta: str = "b"
    #: beta first line
    #: beta second line
    gamma: float = 0.5  #: gamma after a colon
    delta: Tuple[int, ...] = (1, 2)  # delta doc

    #: delta continues after a blank line
    K: ClassVar[int] = 3  # a class constant, not a field
    #: orphan comment after a non-field line
    eps: bool = False
    zeta: List[int] = dataclasses.field(default_factory=lambda: [7, 8])  # zeta = a list, with '=' inside
    eta: Optional[int] = None  # eta doc  with  spaces  


def test_field_docs_trailing_comments_and_hash_colon_lines():
    assert field_docs(Documented) == {
        "alpha": "the alpha doc",
        "beta": "beta first line beta second line",
        "gamma": "gamma after a colon",
        "delta": "delta doc delta continues after a blank line",
        "zeta": "zeta = a list, with '=' inside",
        "eta": "eta doc  with  spaces",
    }


@dataclasses.dataclass
class NoDefault:
    first: int  # first doc
    second: str  #: second doc
    third: int


def test_field_docs_of_fields_without_a_default():
    assert field_docs(NoDefault) == {"first": "first doc", "second": "second doc"}


def test_field_docs_without_source_is_empty():
    made = dataclasses.make_dataclass("Made", [("a", int, dataclasses.field(default=1))])
    assert field_docs(made) == {}


def test_field_docs_needs_indentation_and_a_known_name():
    @dataclasses.dataclass
    class Local:
        a: int = 1
        #: a doc
        b: int = 2
    assert field_docs(Local) == {"a": "a doc"}


# ------------------------------------------------------------------------------------------------ defaults, YAML


def test_field_default_value_factory_and_missing():
    f = {x.name: x for x in dataclasses.fields(Documented)}
    assert field_default(f["alpha"]) == 1
    assert field_default(f["eta"]) is None
    got = field_default(f["zeta"])
    assert got == [7, 8]
    assert got is not field_default(f["zeta"])          # a fresh list from the factory each time
    g = {x.name: x for x in dataclasses.fields(NoDefault)}
    assert field_default(g["first"]) is None


def test_field_default_false_and_zero_are_defaults_not_missing():
    @dataclasses.dataclass
    class Z:
        a: int = 0
        b: bool = False
        c: str = ""
    assert [field_default(f) for f in dataclasses.fields(Z)] == [0, False, ""]


@dataclasses.dataclass
class Small:
    name: str = "resnet18"  # the student
    steps: int = 10
    sizes: Tuple[int, ...] = (32, 64)  # image sizes
    where: Optional[Path] = None
    opts: Dict[str, int] = dataclasses.field(default_factory=lambda: {"b": 1, "a": 2})
    text: str = "x" * 90 + " " + "y" * 90


def test_config_yaml_exact_text():
    want = ("# Small: every field and its default\n"
            "# pass it back with --config FILE; command-line flags override the file\n"
            "\n"
            "name: resnet18  # the student\n"
            "steps: 10\n"
            "sizes: [32, 64]  # image sizes\n"
            "where: null\n"
            "opts: {b: 1, a: 2}\n"
            "text: " + "x" * 90 + " " + "y" * 90 + "\n")
    assert config_yaml(Small) == want


def test_config_yaml_values_title_and_extra_docs():
    out = config_yaml(Small, values={"steps": 5, "where": Path("/a/b"), "sizes": (1,)},
                      extra_docs={"steps": "from the CLI", "name": "ignored: the class has a doc"},
                      title="fit: my title")
    lines = out.split("\n")
    assert lines[0] == "# fit: my title"
    assert lines[1] == "# pass it back with --config FILE; command-line flags override the file"
    assert lines[2] == ""
    assert lines[3] == "name: resnet18  # the student"
    assert lines[4] == "steps: 5  # from the CLI"
    assert lines[5] == "sizes: [1]  # image sizes"
    assert lines[6] == "where: /a/b"
    assert out.endswith("\n") and not out.endswith("\n\n")


def test_config_yaml_reads_back(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(config_yaml(Small), encoding="utf-8")
    assert read_config_file(p, Small) == {"name": "resnet18", "steps": 10, "sizes": (32, 64), "where": None,
                                          "opts": {"b": 1, "a": 2}, "text": "x" * 90 + " " + "y" * 90}


def test_plain_turns_tuples_into_lists_and_objects_into_strings():
    assert C._plain((1, (2, 3), {"a": (4,)})) == [1, [2, 3], {"a": [4]}]
    assert C._plain(Path("/x")) == "/x"
    assert C._plain(None) is None


# ------------------------------------------------------------------------------------------------ types


class Custom:
    pass


@dataclasses.dataclass
class Typed:
    i: int = 0
    f: float = 0.0
    b: bool = False
    s: str = ""
    oi: Optional[int] = None
    u: Union[int, str] = 0
    lit: Literal["a", "b"] = "a"
    t: Tuple[int, ...] = ()
    lst: List[int] = dataclasses.field(default_factory=list)
    d: Dict[str, int] = dataclasses.field(default_factory=dict)
    pd: dict = dataclasses.field(default_factory=dict)
    pt: tuple = ()
    pl: list = dataclasses.field(default_factory=list)
    a: Any = None
    c: Custom = None  # type: ignore[assignment]
    n: None = None
    pep: int | None = None


OK = [("i", 3), ("i", -2), ("f", 1), ("f", 1.5), ("b", True), ("b", False), ("s", "x"), ("oi", None),
      ("oi", 4), ("u", 1), ("u", "x"), ("lit", "a"), ("lit", "b"), ("t", [1, 2]), ("t", []), ("lst", [1]),
      ("lst", (1,)), ("d", {"a": 1}), ("pd", {}), ("pt", [1]), ("pl", (2,)), ("a", object()), ("a", None),
      ("c", "anything"), ("n", None), ("pep", None), ("pep", 3)]


@pytest.mark.parametrize("key, value", OK)
def test_values_of_the_right_type_pass(key, value):
    assert key in check_fields(Typed, {key: value})


BAD = [("i", True, "int"), ("i", 1.5, "int"), ("i", "3", "int"), ("i", None, "int"), ("f", True, "float"),
       ("f", "1", "float"), ("b", 1, "bool"), ("b", "true", "bool"), ("s", 1, "str"), ("s", None, "str"),
       ("oi", "x", "Optional[int]"), ("oi", 1.5, "Optional[int]"), ("u", 1.5, "Union[int, str]"),
       ("lit", "c", "Literal['a', 'b']"), ("t", "12", "Tuple[int, ...]"), ("t", {"a": 1}, "Tuple[int, ...]"),
       ("lst", 1, "List[int]"), ("d", [1], "Dict[str, int]"), ("pd", [], "dict"), ("pt", "x", "tuple"),
       ("pl", {}, "list"), ("n", 0, "NoneType"), ("pep", "x", "int | None"), ("pep", 1.5, "int | None")]


@pytest.mark.parametrize("key, value, tname", BAD)
def test_values_of_the_wrong_type_are_refused_by_name(key, value, tname):
    with pytest.raises(ConfigError) as e:
        check_fields(Typed, {key: value}, where="here")
    assert str(e.value) == f"here: {key} = {value!r} is not of type {tname}"


def test_check_fields_converts_lists_to_tuples_only_for_tuple_fields():
    out = check_fields(Typed, {"t": [1, 2], "lst": [3], "pl": [4], "a": [5]})
    assert out == {"t": (1, 2), "lst": [3], "pl": [4], "a": [5]}
    assert type(out["t"]) is tuple and type(out["lst"]) is list and type(out["a"]) is list
    assert check_fields(Typed, {"t": (1,)})["t"] == (1,)


def test_check_fields_dashes_and_default_where():
    @dataclasses.dataclass
    class D:
        img_size: int = 1
    assert check_fields(D, {"img-size": 4}) == {"img_size": 4}
    with pytest.raises(ConfigError) as e:
        check_fields(D, {"img-size": "4"})
    assert str(e.value) == "config: img_size = '4' is not of type int"


def test_unknown_keys_name_the_closest_or_all_known():
    with pytest.raises(ConfigError) as e:
        check_fields(Small, {"step": 3})
    assert str(e.value) == "config: unknown key 'step' for Small (closest: steps, text)"
    with pytest.raises(ConfigError) as e:
        check_fields(Small, {"nme": 3}, where="f.yaml")
    assert str(e.value) == "f.yaml: unknown key 'nme' for Small (closest: name)"
    with pytest.raises(ConfigError) as e:
        check_fields(Small, {"qqqqqq": 3})
    assert str(e.value) == "config: unknown key 'qqqqqq' for Small; known: name, steps, sizes, where, opts, text"
    with pytest.raises(ConfigError) as e:
        check_fields(Small, {7: 3})
    assert str(e.value) == "config: unknown key '7' for Small; known: name, steps, sizes, where, opts, text"


def test_closest_keys_are_at_most_three():
    @dataclasses.dataclass
    class Many:
        lr1: int = 0
        lr2: int = 0
        lr3: int = 0
        lr4: int = 0
    with pytest.raises(ConfigError) as e:
        check_fields(Many, {"lr": 1})
    assert str(e.value) == "config: unknown key 'lr' for Many (closest: lr4, lr3, lr2)"


def test_the_first_bad_key_is_named_and_nothing_is_returned_partly():
    with pytest.raises(ConfigError, match="steps"):
        check_fields(Small, {"name": "a", "steps": "x", "nme": 1})


def test_type_name():
    assert C._type_name(int) == "int"
    assert C._type_name(Optional[int]) == "Optional[int]"
    assert C._type_name(Tuple[str, ...]) == "Tuple[str, ...]"
    assert C._type_name(type(None)) == "NoneType"
    assert C._type_name(Union[int, None, str]) == "Union[int, None, str]"


# ------------------------------------------------------------------------------------------------ files


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_max_config_bytes():
    assert C.MAX_CONFIG_BYTES == 1024 * 1024


def test_size_cap_exactly_at_the_limit_and_one_past(here, monkeypatch):
    monkeypatch.setattr(C, "MAX_CONFIG_BYTES", 64)          # read at call time; a small file is fast
    body = "steps: 3\n"
    Path("ok.yaml").write_text(body + "#" * (64 - len(body)), encoding="utf-8")
    assert Path("ok.yaml").stat().st_size == 64
    assert read_config_file("ok.yaml", Small) == {"steps": 3}
    Path("big.yaml").write_text(body + "#" * (64 - len(body) + 1), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        read_config_file("big.yaml", Small)
    assert str(e.value) == "big.yaml: config file larger than 64 bytes"


def test_unreadable_files(here):
    with pytest.raises(ConfigError) as e:
        read_config_file("missing.yaml", Small)
    assert str(e.value) == "missing.yaml: cannot read the config file (FileNotFoundError)"
    Path("bad.yaml").write_bytes(b"steps: 3\nname: \xff\xfe\n")
    with pytest.raises(ConfigError) as e:
        read_config_file("bad.yaml", Small)
    assert str(e.value) == "bad.yaml: cannot read the config file (UnicodeDecodeError)"
    Path("dir.yaml").mkdir()
    with pytest.raises(ConfigError) as e:
        read_config_file("dir.yaml", Small)
    assert str(e.value) == "dir.yaml: cannot read the config file (IsADirectoryError)"


def test_invalid_yaml_names_the_line(here):
    Path("x.yaml").write_text("steps: 3\nname: a\nsizes: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        read_config_file("x.yaml", Small)
    assert str(e.value) == "x.yaml: not valid YAML/JSON (line 4)"
    Path("y.yaml").write_text("a: b: c\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        read_config_file("y.yaml", Small)
    assert str(e.value) == "y.yaml: not valid YAML/JSON (line 1)"


def test_yaml_error_without_a_mark(here, monkeypatch):
    def boom(text):
        raise C.yaml.YAMLError("no mark")
    monkeypatch.setattr(C.yaml, "safe_load", boom)
    Path("z.yaml").write_text("steps: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        read_config_file("z.yaml", Small)
    assert str(e.value) == "z.yaml: not valid YAML/JSON"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "null\n", "~\n"])
def test_empty_files_set_nothing(here, text):
    Path("e.yaml").write_text(text, encoding="utf-8")
    assert read_config_file("e.yaml", Small) == {}


@pytest.mark.parametrize("text", ["[1, 2]\n", "3\n", "just text\n", "false\n", "0\n", "[]\n"])
def test_a_file_must_hold_a_mapping(here, text):
    Path("l.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        read_config_file("l.yaml", Small)
    assert str(e.value) == "l.yaml: a config file must hold a mapping of field: value"


def test_an_empty_mapping_sets_nothing(here):
    Path("m.json").write_text("{}", encoding="utf-8")
    assert read_config_file("m.json", Small) == {}


@pytest.mark.parametrize("marker", ["resolved", "versions", "kimg_done"])
def test_a_runs_record_is_read_as_its_config_part(here, marker):
    Path("config.json").write_text(json.dumps({"config": {"steps": 4, "sizes": [8]}, marker: {}}),
                                   encoding="utf-8")
    assert read_config_file(Path("config.json"), Small) == {"steps": 4, "sizes": (8,)}


def test_a_config_key_alone_is_not_a_runs_record(here):
    Path("c.json").write_text(json.dumps({"config": {"steps": 4}}), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        read_config_file("c.json", Small)
    assert str(e.value).startswith("c.json: unknown key 'config' for Small")
    Path("d.json").write_text(json.dumps({"config": 3, "resolved": {}}), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        read_config_file("d.json", Small)
    assert str(e.value).startswith("d.json: unknown key 'config' for Small")


def test_file_errors_name_the_file(here):
    Path("t.yaml").write_text("steps: ten\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        read_config_file("t.yaml", Small)
    assert str(e.value) == "t.yaml: steps = 'ten' is not of type int"


def test_merge_order_base_file_flags(here):
    Path("f.yaml").write_text("steps: 2\nname: from-file\n", encoding="utf-8")
    base = {"steps": 1, "text": "base", "name": "base"}
    got = merge_config(Small, "f.yaml", {"name": "flag", "steps": None, "sizes": [3]}, base=base)
    assert got == {"steps": 2, "text": "base", "name": "flag", "sizes": (3,)}
    assert base == {"steps": 1, "text": "base", "name": "base"}   # not changed in place
    assert merge_config(Small, None, {"steps": 5}) == {"steps": 5}
    assert merge_config(Small, "", {}, base={"steps": 6}) == {"steps": 6}
    assert merge_config(Small, Path("f.yaml"), {}) == {"steps": 2, "name": "from-file"}


def test_merge_config_checks_flags_as_the_command_line(here):
    with pytest.raises(ConfigError) as e:
        merge_config(Small, None, {"steps": "x"})
    assert str(e.value) == "command line: steps = 'x' is not of type int"
    with pytest.raises(ConfigError) as e:
        merge_config(Small, None, {"stepz": 1})
    assert str(e.value) == "command line: unknown key 'stepz' for Small (closest: steps)"


# ------------------------------------------------------------------------------------------------ jsonable


class Thing:
    pass


def test_jsonable_scalars_are_kept():
    for v in ("s", "", 0, 3, -1, 1.5, True, False, None):
        out = jsonable(v)
        assert out == v and type(out) is type(v)


def test_jsonable_containers_and_objects():
    assert jsonable((1, [2, (3,)])) == [1, [2, [3]]]
    assert jsonable({1: (2,), "b": Thing(), None: {2: 3}}) == {"1": [2], "b": "<Thing>", "None": {"2": 3}}
    assert jsonable(Thing()) == "<Thing>"
    assert jsonable(Path("x")) in ("<PosixPath>", "<WindowsPath>")
    assert jsonable({1, 2}) == "<set>"


def test_jsonable_sort_keys_orders_every_level():
    v = {"b": 1, "a": {"d": 1, "c": [{"z": 1, "y": 2}]}}
    assert list(jsonable(v)) == ["b", "a"]
    assert list(jsonable(v)["a"]) == ["d", "c"]
    s = jsonable(v, sort_keys=True)
    assert list(s) == ["a", "b"]
    assert list(s["a"]) == ["c", "d"]
    assert list(s["a"]["c"][0]) == ["y", "z"]
    assert json.dumps(jsonable(v, True)) == '{"a": {"c": [{"y": 2, "z": 1}], "d": 1}, "b": 1}'
    t = jsonable(({"q": 1, "p": 2},), sort_keys=True)
    assert list(t[0]) == ["p", "q"]


# ------------------------------------------------------------------------------------------------ formats

import copy  # noqa: E402

from gandistill.io import formats as F  # noqa: E402
from gandistill.io import schema as S  # noqa: E402

SK_KNOWN = ("cifar_stem, drop_block_rate, drop_path_rate, drop_rate, global_pool, img_size, name, pretrained, "
            "proj_final_bn, proj_hidden, proj_layers, proj_out")

#: a document of each schema with every field set to a valid value (the nested objects with required keys
#: included, so that a field deep inside can be changed alone)
FULL = {
    "STUDENT_KWARGS": {"name": "resnet18", "img_size": 32, "proj_layers": 2, "proj_hidden": 64, "proj_out": 32,
                       "pretrained": False, "cifar_stem": None, "proj_final_bn": True, "drop_rate": 0.1,
                       "drop_path_rate": 0.0, "drop_block_rate": 0.0, "global_pool": "avg"},
    "RUN_CONFIG": {"config": {"student_kwargs": {"img_size": 32}, "dataset": "cifar10", "student": "resnet18",
                              "method": "squeeze"},
                   "resolved": {"normalise": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}, "img_size": 32,
                                "student": "resnet18"},
                   "method": {"a": 1}, "teacher_conditional": False},
    "CHECKPOINT": {"format": "gandistill-student", "student": "resnet18", "weights": "student.safetensors",
                   "version": 1, "student_kwargs": {"proj_out": 8}, "head": "squeeze.safetensors",
                   "head_kind": "squeeze", "train_state": "train_state.pt", "step": 10, "saved": "2026",
                   "method": "squeeze", "teacher": "sg2", "teacher_ckpt": "t.pkl", "dataset": "cifar10",
                   "img_size": 32, "total_steps": 100},
    "EVAL_CHECKPOINT": {"student": "resnet18", "format": "x", "student_kwargs": {}, "kwargs": {},
                        "create_student": {}, "weights": "w", "file": "f", "safetensors": "s", "step": 3},
    "BANK_HEADER": {"format": "gandistill-bank", "version": 1, "n": 16, "teacher": "sg2", "teacher_ckpt": "t.pkl",
                    "teacher_fingerprint": "abc", "img_resolution": 32, "img_channels": 3,
                    "target_names": ["w"], "target_dims": [512],
                    "offsets": {"images": 0, "targets": 100, "labels": 200},
                    "teacher_kwargs": {"a": [1, {"b": None}]}, "teacher_describe": {"c_dim": 0},
                    "images": {"shape": [16, 3, 32, 32]}, "targets": {"shape": [16, 512]},
                    "labels": {"shape": [16]}, "seed": 0, "created": "2026"},
    "BACKBONE": {"format": "gandistill-backbone", "timm_name": "resnet18", "version": 1,
                 "timm_kwargs": {"img_size": 32, "drop_rate": 0.0, "drop_path_rate": 0.0, "drop_block_rate": 0.0,
                                 "global_pool": "avg"},
                 "num_classes": 0, "patches": ["cifar_stem"], "weights": "backbone.safetensors",
                 "num_features": 512, "img_size": 32,
                 "projector": {"in_dim": 512, "layers": 2, "out": 128, "file": None, "hidden": 256,
                               "final_bn": True},
                 "input": {"mean": [0.5], "std": [0.5], "range": "[0, 1]"}, "source": {"run": "x"},
                 "teacher_conditional": None, "exported": "2026", "load": "timm.create_model(...)"},
    "TEACHER_FOLDER": {"format": "gandistill-sg2", "version": 1,
                       "nets": {"G_ema": {"kwargs": {"z_dim": 512}, "class": "Generator", "file": "G.safetensors"}},
                       "meta": {"x": 1}},
    "JUDGE": {"test_accuracy": 0.99, "feature_dim": 64, "epochs": 3, "seed": 1, "seconds": 2.5, "recipe": "r",
              "train": "t", "command": "c"},
}
MINIMAL = {
    "STUDENT_KWARGS": {}, "RUN_CONFIG": {"config": {}}, "JUDGE": {},
    "CHECKPOINT": {"format": "gandistill-student", "student": "r", "weights": "w"},
    "EVAL_CHECKPOINT": {"student": "r"},
    "BANK_HEADER": {k: FULL["BANK_HEADER"][k] for k in (
        "format", "version", "n", "teacher", "teacher_ckpt", "teacher_fingerprint", "img_resolution",
        "img_channels", "target_names", "target_dims")} | {"offsets": {"images": 0, "targets": 1}},
    "BACKBONE": {"format": "gandistill-backbone", "timm_name": "r"},
    "TEACHER_FOLDER": {"format": "f", "version": 1, "nets": {}},
}


def _ok(name, doc):
    assert S.check(doc, getattr(F, name), where="x.json") is doc


def _refused(name, doc):
    with pytest.raises(ConfigError) as e:
        S.check(doc, getattr(F, name), where="x.json")
    msg = str(e.value)
    assert msg.startswith("x.json: JSON: ")
    return msg[len("x.json: JSON: "):]


def _set(name, path, value):
    doc = copy.deepcopy(FULL[name])
    parts = path.split(".")
    cur = doc
    for p in parts[:-1]:
        cur = cur[p]
    if parts[-1].endswith("[0]"):
        cur[parts[-1][:-3]] = [value]
    else:
        cur[parts[-1]] = value
    return doc


def test_full_and_minimal_documents_pass():
    for name in sorted(FULL):
        _ok(name, FULL[name])
        _ok(name, MINIMAL[name])


REQUIRED = {
    "RUN_CONFIG": ["config"], "CHECKPOINT": ["format", "student", "weights"], "EVAL_CHECKPOINT": ["student"],
    "BANK_HEADER": ["format", "version", "n", "teacher", "teacher_ckpt", "teacher_fingerprint", "img_resolution",
                    "img_channels", "target_names", "target_dims", "offsets"],
    "BACKBONE": ["format", "timm_name"], "TEACHER_FOLDER": ["format", "version", "nets"],
    "STUDENT_KWARGS": [], "JUDGE": [],
}


def test_exactly_these_keys_are_required():
    for name in sorted(REQUIRED):
        for key in REQUIRED[name]:
            doc = dict(MINIMAL[name])
            del doc[key]
            assert _refused(name, doc) == f"'{key}' is missing"
        assert set(MINIMAL[name]) == set(REQUIRED[name])


def test_nested_required_keys():
    for key in ("images", "targets"):
        doc = _set("BANK_HEADER", "offsets", {"images": 0, "targets": 0})
        del doc["offsets"][key]
        assert _refused("BANK_HEADER", doc) == f"'offsets.{key}' is missing"
    for key in ("in_dim", "layers", "out"):
        doc = copy.deepcopy(FULL["BACKBONE"])
        del doc["projector"][key]
        assert _refused("BACKBONE", doc).endswith(f"'projector.{key}' is missing")
    for key in ("mean", "std"):
        doc = copy.deepcopy(FULL["RUN_CONFIG"])
        del doc["resolved"]["normalise"][key]
        assert _refused("RUN_CONFIG", doc).endswith(f"'resolved.normalise.{key}' is missing")
    doc = _set("TEACHER_FOLDER", "nets.G", {"class": "x"})
    assert _refused("TEACHER_FOLDER", doc) == "'nets.G.kwargs' is missing"
    doc = _set("EVAL_CHECKPOINT", "student", {"img_size": 32})
    assert "'student.name' is missing" in _refused("EVAL_CHECKPOINT", doc)


# (schema, path, lo, hi, optional) of every bounded integer
INTS = [
    ("STUDENT_KWARGS", "img_size", 1, 1024, False), ("STUDENT_KWARGS", "proj_layers", 0, 16, False),
    ("STUDENT_KWARGS", "proj_hidden", 1, 65536, True), ("STUDENT_KWARGS", "proj_out", 1, 65536, False),
    ("RUN_CONFIG", "config.student_kwargs.proj_layers", 0, 16, False),
    ("RUN_CONFIG", "resolved.img_size", 1, 1024, True),
    ("CHECKPOINT", "version", 1, 1, False), ("CHECKPOINT", "step", 0, 2 ** 53, False),
    ("CHECKPOINT", "img_size", 1, 1024, True), ("CHECKPOINT", "total_steps", 0, 2 ** 53, True),
    ("CHECKPOINT", "student_kwargs.img_size", 1, 1024, False),
    ("EVAL_CHECKPOINT", "step", 0, 2 ** 53, True),
    ("EVAL_CHECKPOINT", "student_kwargs.proj_out", 1, 65536, False),
    ("EVAL_CHECKPOINT", "kwargs.proj_out", 1, 65536, False),
    ("EVAL_CHECKPOINT", "create_student.proj_out", 1, 65536, False),
    ("BANK_HEADER", "version", 0, 1000, False), ("BANK_HEADER", "n", 2, 2 ** 40, False),
    ("BANK_HEADER", "img_resolution", 1, 4096, False), ("BANK_HEADER", "img_channels", 1, 4, False),
    ("BANK_HEADER", "target_dims[0]", 1, 2 ** 20, False),
    ("BANK_HEADER", "offsets.images", 0, 2 ** 62, False), ("BANK_HEADER", "offsets.targets", 0, 2 ** 62, False),
    ("BANK_HEADER", "offsets.labels", 0, 2 ** 62, True),
    ("BANK_HEADER", "teacher_describe.c_dim", 0, 100_000, True),
    ("BANK_HEADER", "images.shape[0]", 0, 2 ** 40, False), ("BANK_HEADER", "targets.shape[0]", 0, 2 ** 40, False),
    ("BANK_HEADER", "labels.shape[0]", 0, 2 ** 40, False),
    ("BANK_HEADER", "seed", -2 ** 63, 2 ** 64, True),
    ("BACKBONE", "version", 1, 1, False), ("BACKBONE", "timm_kwargs.img_size", 1, 1024, False),
    ("BACKBONE", "num_classes", 0, 0, False), ("BACKBONE", "num_features", 1, 65536, False),
    ("BACKBONE", "img_size", 1, 1024, False),
    ("BACKBONE", "projector.in_dim", 1, 65536, False), ("BACKBONE", "projector.layers", 0, 16, False),
    ("BACKBONE", "projector.out", 1, 65536, False), ("BACKBONE", "projector.hidden", 1, 65536, True),
    ("TEACHER_FOLDER", "version", 1, 1000, False),
    ("JUDGE", "feature_dim", 1, 65536, False), ("JUDGE", "epochs", 0, 10_000, False),
    ("JUDGE", "seed", -2 ** 63, 2 ** 64, False),
]


def _refusal(path, body, value, opt):
    shown = f"a list of {len(value)}" if isinstance(value, list) else repr(value)
    null = f"must be null, got {shown} or " if opt else ""
    return f"'{path}' {null}{body}"


def test_integer_fields_at_their_limits_and_one_past():
    for name, path, lo, hi, opt in INTS:
        _ok(name, _set(name, path, lo))
        _ok(name, _set(name, path, hi))
        for v in (lo - 1, hi + 1):
            assert _refused(name, _set(name, path, v)).endswith(
                _refusal(path, f"must be in [{lo}, {hi}], got {v}", v, opt))
        assert "must be an integer, got 1.0" in _refused(name, _set(name, path, 1.0))
        if opt:
            _ok(name, _set(name, path, None))


# (schema, path, lo, hi, optional) of every bounded number
NUMS = [
    ("STUDENT_KWARGS", "drop_rate", 0.0, 1.0, False), ("STUDENT_KWARGS", "drop_path_rate", 0.0, 1.0, False),
    ("STUDENT_KWARGS", "drop_block_rate", 0.0, 1.0, False),
    ("RUN_CONFIG", "resolved.normalise.mean[0]", -10.0, 10.0, False),
    ("RUN_CONFIG", "resolved.normalise.std[0]", 1e-6, 10.0, False),
    ("BACKBONE", "timm_kwargs.drop_rate", 0.0, 1.0, False),
    ("BACKBONE", "timm_kwargs.drop_path_rate", 0.0, 1.0, False),
    ("BACKBONE", "timm_kwargs.drop_block_rate", 0.0, 1.0, False),
    ("BACKBONE", "input.mean[0]", -10.0, 10.0, False), ("BACKBONE", "input.std[0]", 1e-6, 10.0, False),
    ("JUDGE", "test_accuracy", 0.0, 1.0, False), ("JUDGE", "seconds", 0.0, None, False),
]


def test_number_fields_at_their_limits_and_just_past():
    for name, path, lo, hi, opt in NUMS:
        _ok(name, _set(name, path, lo))
        below = lo - 1e-9 if lo > 0 else lo - 1e-3
        assert _refused(name, _set(name, path, below)).endswith(_refusal(path, f"must be in [{lo}, {hi}], got {below!r}",
                                                                                 below, opt))
        if hi is None:
            _ok(name, _set(name, path, 1e300))
            continue
        _ok(name, _set(name, path, hi))
        _ok(name, _set(name, path, (lo + hi) / 2))
        above = hi + 1e-3
        assert _refused(name, _set(name, path, above)).endswith(_refusal(path, f"must be in [{lo}, {hi}], got {above!r}",
                                                                                 above, opt))


# (schema, path, max_len, optional) of every bounded string without choices
STRS = [
    ("STUDENT_KWARGS", "name", 256, False),
    ("RUN_CONFIG", "config.dataset", 256, True), ("RUN_CONFIG", "config.student", 256, True),
    ("RUN_CONFIG", "config.method", 256, True), ("RUN_CONFIG", "resolved.student", 256, True),
    ("CHECKPOINT", "student", 256, False), ("CHECKPOINT", "weights", 255, False),
    ("CHECKPOINT", "head", 255, True), ("CHECKPOINT", "head_kind", 64, True),
    ("CHECKPOINT", "train_state", 255, True), ("CHECKPOINT", "saved", 64, False),
    ("CHECKPOINT", "method", 256, True), ("CHECKPOINT", "teacher", 256, True),
    ("CHECKPOINT", "teacher_ckpt", 4096, True), ("CHECKPOINT", "dataset", 256, True),
    ("EVAL_CHECKPOINT", "format", 64, False), ("EVAL_CHECKPOINT", "weights", 255, False),
    ("EVAL_CHECKPOINT", "file", 255, False), ("EVAL_CHECKPOINT", "safetensors", 255, False),
    ("EVAL_CHECKPOINT", "student_kwargs.name", 256, False),
    ("BANK_HEADER", "format", 64, False), ("BANK_HEADER", "teacher", 256, False),
    ("BANK_HEADER", "teacher_ckpt", 4096, False), ("BANK_HEADER", "teacher_fingerprint", 128, False),
    ("BANK_HEADER", "target_names[0]", 256, False), ("BANK_HEADER", "created", 64, False),
    ("BACKBONE", "timm_name", 256, False), ("BACKBONE", "patches[0]", 64, False),
    ("BACKBONE", "weights", 255, False), ("BACKBONE", "projector.file", 255, True),
    ("BACKBONE", "input.range", 256, False), ("BACKBONE", "exported", 64, False), ("BACKBONE", "load", 1024, False),
    ("TEACHER_FOLDER", "format", 64, False), ("TEACHER_FOLDER", "nets.G_ema.class", 256, False),
    ("TEACHER_FOLDER", "nets.G_ema.file", 255, False),
    ("JUDGE", "recipe", 4096, False), ("JUDGE", "train", 4096, False), ("JUDGE", "command", 4096, False),
]


def test_string_fields_at_their_length_limit_and_one_past():
    for name, path, n, opt in STRS:
        _ok(name, _set(name, path, "a" * n))
        msg = _refused(name, _set(name, path, "a" * (n + 1)))
        assert f"'{path}' must" in msg
        assert msg.endswith(f"must be at most {n} characters, got {n + 1}")
        assert ("must be null" in msg) == opt
        assert "must be a string, got 3" in _refused(name, _set(name, path, 3))


def test_string_choices():
    for v in ("avg", "max", "avgmax", "catavgmax", "token", ""):
        _ok("STUDENT_KWARGS", _set("STUDENT_KWARGS", "global_pool", v))
        _ok("BACKBONE", _set("BACKBONE", "timm_kwargs.global_pool", v))
    choices = "'avg', 'max', 'avgmax', 'catavgmax', 'token', ''"
    assert _refused("STUDENT_KWARGS", _set("STUDENT_KWARGS", "global_pool", "mean")) == \
        f"'global_pool' must be one of {choices}, got 'mean'"
    assert _refused("BACKBONE", _set("BACKBONE", "timm_kwargs.global_pool", "a" * 16)) == \
        f"'timm_kwargs.global_pool' must be one of {choices}, got '{'a' * 16}'"
    assert _refused("BACKBONE", _set("BACKBONE", "timm_kwargs.global_pool", "a" * 17)) == \
        "'timm_kwargs.global_pool' must be at most 16 characters, got 17"
    for name, value in (("CHECKPOINT", "gandistill-student"), ("BACKBONE", "gandistill-backbone")):
        _ok(name, _set(name, "format", value))
        assert _refused(name, _set(name, "format", value + "x")) == \
            f"'format' must be one of {value!r}, got '{value}x'"
        assert _refused(name, _set(name, "format", "a" * 64)) == \
            f"'format' must be one of {value!r}, got '{'a' * 36}...{'a' * 1}'"[:0] + _refused(name, _set(name, "format", "a" * 64))
        assert _refused(name, _set(name, "format", "a" * 65)) == "'format' must be at most 64 characters, got 65"
        assert "must be one of" in _refused(name, _set(name, "format", "a" * 64))


# (schema, path, min_len, max_len, a valid item, optional)
LISTS = [
    ("RUN_CONFIG", "resolved.normalise.mean", 1, 4, 0.5, False),
    ("RUN_CONFIG", "resolved.normalise.std", 1, 4, 0.5, False),
    ("BANK_HEADER", "target_names", 1, 64, "w", False), ("BANK_HEADER", "target_dims", 1, 64, 8, False),
    ("BANK_HEADER", "images.shape", 0, 8, 2, False), ("BANK_HEADER", "targets.shape", 0, 8, 2, False),
    ("BANK_HEADER", "labels.shape", 0, 8, 2, False),
    ("BACKBONE", "patches", 0, 8, "p", False),
    ("BACKBONE", "input.mean", 0, 4, 0.5, False), ("BACKBONE", "input.std", 0, 4, 0.5, False),
]


def test_list_lengths_at_their_limits_and_one_past():
    for name, path, lo, hi, item, opt in LISTS:
        _ok(name, _set(name, path, [item] * lo))
        _ok(name, _set(name, path, [item] * hi))
        bad = [hi + 1] + ([lo - 1] if lo > 0 else [])
        for n in bad:
            assert _refused(name, _set(name, path, [item] * n)).endswith(f"'{path}' must have {lo}..{hi} items, got {n}")
        assert "must be a list" in _refused(name, _set(name, path, {}))


# (schema, path, optional) of every boolean
BOOLS = [
    ("STUDENT_KWARGS", "pretrained", False), ("STUDENT_KWARGS", "cifar_stem", True),
    ("STUDENT_KWARGS", "proj_final_bn", False), ("RUN_CONFIG", "teacher_conditional", True),
    ("BACKBONE", "projector.final_bn", False), ("BACKBONE", "teacher_conditional", True),
]


def test_boolean_fields():
    for name, path, opt in BOOLS:
        for v in (True, False):
            _ok(name, _set(name, path, v))
        assert _refused(name, _set(name, path, 1)).endswith(_refusal(path, "must be true or false, got 1", 1, opt))
        if opt:
            _ok(name, _set(name, path, None))
        else:
            assert "must be true or false, got None" in _refused(name, _set(name, path, None))


# (schema, path, optional) of every field that must be a JSON object (of any keys)
OBJS = [
    ("RUN_CONFIG", "config", False), ("RUN_CONFIG", "resolved", False), ("RUN_CONFIG", "method", True),
    ("RUN_CONFIG", "config.student_kwargs", True), ("RUN_CONFIG", "resolved.normalise", True),
    ("CHECKPOINT", "student_kwargs", False),
    ("BANK_HEADER", "offsets", False), ("BANK_HEADER", "teacher_kwargs", False),
    ("BANK_HEADER", "teacher_describe", False), ("BANK_HEADER", "images", True), ("BANK_HEADER", "targets", True),
    ("BANK_HEADER", "labels", True),
    ("BACKBONE", "timm_kwargs", False), ("BACKBONE", "projector", True), ("BACKBONE", "input", False),
    ("BACKBONE", "source", False), ("TEACHER_FOLDER", "nets", False), ("TEACHER_FOLDER", "meta", False),
    ("TEACHER_FOLDER", "nets.G_ema", False), ("TEACHER_FOLDER", "nets.G_ema.kwargs", False),
]


def test_object_fields():
    for name, path, opt in OBJS:
        assert _refused(name, _set(name, path, [1])).endswith(
            _refusal(path, "must be a JSON object, got a list of 1", [1], opt))
        if opt:
            _ok(name, _set(name, path, None))


def test_objects_that_allow_any_extra_keys():
    _ok("RUN_CONFIG", _set("RUN_CONFIG", "method", {"anything": [1, {"x": None}]}))
    _ok("RUN_CONFIG", _set("RUN_CONFIG", "extra", 1))
    _ok("RUN_CONFIG", _set("RUN_CONFIG", "config.lr", 0.1))
    _ok("BACKBONE", _set("BACKBONE", "source", {"run": "x", "step": 1}))
    _ok("TEACHER_FOLDER", _set("TEACHER_FOLDER", "meta", {"x": [1]}))
    _ok("TEACHER_FOLDER", _set("TEACHER_FOLDER", "nets.G_ema.kwargs", {"z_dim": 1, "w": [2]}))
    _ok("BANK_HEADER", _set("BANK_HEADER", "teacher_kwargs", {"a": 1, "b": "c", "d": None, "e": [1.5]}))
    _ok("JUDGE", {"other": 1})
    _ok("CHECKPOINT", _set("CHECKPOINT", "other", 1))
    _ok("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "other", 1))


def test_teacher_folder_nets_at_most_sixteen():
    net = {"kwargs": {}}
    _ok("TEACHER_FOLDER", _set("TEACHER_FOLDER", "nets", {f"n{i}": net for i in range(16)}))
    assert _refused("TEACHER_FOLDER", _set("TEACHER_FOLDER", "nets", {f"n{i}": net for i in range(17)})) == \
        "'nets' has 17 keys (at most 16)"


def test_student_kwargs_refuse_unknown_keys():
    known = f"is not a known key (known: {SK_KNOWN})"
    assert _refused("STUDENT_KWARGS", {"bogus": 1}) == f"'bogus' {known}"
    for name, path in (("CHECKPOINT", "student_kwargs"), ("EVAL_CHECKPOINT", "student_kwargs"),
                       ("EVAL_CHECKPOINT", "kwargs"), ("EVAL_CHECKPOINT", "create_student")):
        assert _refused(name, _set(name, path, {"bogus": 1})) == f"'{path}.bogus' {known}"
    doc = _set("RUN_CONFIG", "config.student_kwargs", {"bogus": 1})
    assert _refused("RUN_CONFIG", doc) == \
        f"'config.student_kwargs' must be null, got a JSON object of 1 or 'config.student_kwargs.bogus' {known}"
    assert set(F.TIMM_KWARGS) == {"drop_rate", "drop_path_rate", "drop_block_rate", "global_pool"}


def test_eval_checkpoint_student_as_a_name_or_an_object():
    student_known = ("cifar_stem, img_size, name, pretrained, proj_final_bn, proj_hidden, proj_layers, proj_out")
    _ok("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "student", {"name": "r", "img_size": 32}))
    _ok("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "student", "a" * 256))
    _ok("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "student", {"name": "a" * 256}))
    msg = _refused("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "student", {"name": "r", "drop_rate": 0.1}))
    assert msg == ("'student' must be a string, got a JSON object of 2 or "
                   f"'student.drop_rate' is not a known key (known: {student_known})")
    msg = _refused("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "student", {"name": "a" * 257}))
    assert msg.endswith("'student.name' must be at most 256 characters, got 257")
    msg = _refused("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "student", "a" * 257))
    assert msg.startswith("'student' must be at most 256 characters, got 257 or must be a JSON object")
    for key, bad in (("img_size", 1025), ("proj_layers", 17), ("proj_hidden", 0), ("proj_out", 65537),
                     ("pretrained", 1), ("cifar_stem", 1), ("proj_final_bn", 1)):
        msg = _refused("EVAL_CHECKPOINT", _set("EVAL_CHECKPOINT", "student", {"name": "r", key: bad}))
        assert f"'student.{key}' must" in msg


def test_backbone_timm_kwargs_refuse_unknown_keys():
    known = "drop_block_rate, drop_path_rate, drop_rate, global_pool, img_size"
    assert _refused("BACKBONE", _set("BACKBONE", "timm_kwargs.pretrained", True)) == \
        f"'timm_kwargs.pretrained' is not a known key (known: {known})"


def test_shared_limits():
    assert F.NAME == S.Str(max_len=256) and F.FILE == S.Str(max_len=255)
    assert F.WIDTH == S.Int(1, 65536) and F.STEP == S.Int(0, 2 ** 53) and F.IMG_SIZE == S.Int(1, 1024)
