"""Rules of the config-file and JSON-schema layer, stated independently of the code (for mutation testing:
``scripts/mutation.sh formats`` and ``scripts/mutate_blind_spots.py --group formats``):

* ``io/config_file.py``: field docs from the class source, defaults, the exact ``--print-config`` YAML,
  the type rules of a value read from a file, exact messages, the size cap at the boundary, a run's
  record read as its ``"config"`` part, the merge order;
* ``io/jsonable.py``: the JSON-ready conversion.

``io/formats.py`` (the JSON schemas) is tested in ``test_mutants_formats_schemas.py``.

Deterministic and fast (tmp_path files, no torch, no CLI)."""
from __future__ import annotations

import dataclasses
import io
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


def test_config_yaml_nested_values_stay_on_one_flow_line():
    @dataclasses.dataclass
    class Nested:
        sched: Dict[str, Any] = dataclasses.field(default_factory=lambda: {"milestones": [1, 2], "gamma": 0.5})
        grid: List[List[int]] = dataclasses.field(default_factory=lambda: [[1, 2], [3]])
        plain: List[int] = dataclasses.field(default_factory=lambda: [1, 2])
    body = config_yaml(Nested).split("\n")[3:]
    assert body == ["sched: {milestones: [1, 2], gamma: 0.5}", "grid: [[1, 2], [3]]", "plain: [1, 2]", ""]


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


def test_files_are_read_as_utf8_whatever_the_locale(here, monkeypatch):
    # pathlib asks io.text_encoding for the encoding when none is given: pretend a Latin-1 locale
    monkeypatch.setattr(io, "text_encoding",
                        lambda encoding, stacklevel=2: encoding or "latin-1")
    Path("u.yaml").write_bytes("name: caf\u00e9 \u2192 \u00fc\n".encode("utf-8"))
    assert read_config_file("u.yaml", Small) == {"name": "caf\u00e9 \u2192 \u00fc"}


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
