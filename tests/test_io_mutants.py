"""Deterministic rules of the safe-reading layer, stated independently of the code (for mutation testing:
``scripts/mutation.sh io``): every limit at exactly its boundary and one past it, the escaping of each
control character, the truncation length, the path rules, and each schema type's accept / refuse cases.
Fast (well under a second apart from the few 200k-value parses)."""
import os

import pytest

from gandistill.io import errors as E
from gandistill.io import schema as S
from gandistill.io.errors import ConfigError, GandistillError, UnsafeFileError, one_line, show_path
from gandistill.io.files import inside, user_path


# ------------------------------------------------------------------------------------------------ errors


def test_error_constants():
    assert (E.MAX_MESSAGE, E.MAX_PATH) == (400, 160)
    assert (E.EXIT_OK, E.EXIT_BAD_INPUT, E.EXIT_STOPPED, E.EXIT_WRITE) == (0, 2, 3, 4)


@pytest.mark.parametrize("ch, want", [("\n", "\\n"), ("\r", "\\r"), ("\t", " "), ("\x00", "\\x00"),
                                      ("\x01", "\\x01"), ("\x1b", "\\x1b"), ("\x1f", "\\x1f"),
                                      ("\x7f", "\\x7f"), ("\x80", "\\x80"), ("\x9b", "\\x9b"), ("\x9f", "\\x9f"),
                                      ("\u2028", "\\u2028"), ("\u2029", "\\u2029")])
def test_one_line_escapes_each_control_character(ch, want):
    assert one_line(f"a{ch}b") == f"a{want}b"
    assert one_line(ch) == want


@pytest.mark.parametrize("ch", [" ", "~", "X", "x", "u", "\\", "\xa0", "\xa1", "\xff", "\u0100", "\u2027",
                                "\u202a", "\u00e9", "\U0001f600", "[/]"])
def test_one_line_keeps_printable_characters(ch):
    assert one_line(ch) == ch
    assert one_line(f"<{ch}>") == f"<{ch}>"


def test_one_line_converts_any_object():
    assert one_line(12) == "12"
    assert one_line(None) == "None"
    assert one_line(["a\nb"]) == "['a\\nb']"   # str() of a list shows the repr (already escaped)
    assert one_line("") == ""


def _cut(s, limit):
    """The rule: at most ``limit`` characters; when longer, the first (limit-3)//2, '...', then the last
    limit-3-(limit-3)//2 characters of the escaped text."""
    if len(s) <= limit:
        return s
    head = (limit - 3) // 2
    tail = limit - 3 - head
    return s[:head] + "..." + s[len(s) - tail:]


@pytest.mark.parametrize("limit", [10, 11, 40, 400])
@pytest.mark.parametrize("extra", [-1, 0, 1, 2, 7])
def test_one_line_truncation_at_the_boundary(limit, extra):
    s = "".join(chr(ord("a") + i % 26) for i in range(limit + extra))
    out = one_line(s, limit)
    assert len(out) == min(limit, len(s))
    assert out == _cut(s, limit)
    if extra <= 0:
        assert out == s
    else:
        assert out[(limit - 3) // 2:(limit - 3) // 2 + 3] == "..."


def test_one_line_default_limit_is_400():
    s = "".join(chr(ord("a") + i % 26) for i in range(401))
    assert one_line(s[:400]) == s[:400]
    out = one_line(s)
    assert len(out) == 400 and out == s[:198] + "..." + s[-199:]


def test_one_line_counts_escapes_in_the_length():
    out = one_line("\n" * 30, 10)   # 60 escaped characters
    assert out == "\\n\\" + "..." + "\\n\\n"
    assert len(out) == 10


@pytest.mark.parametrize("n", [100, 1599, 1600, 1601, 5000, 10 ** 6])
def test_one_line_long_text_keeps_the_ends(n):
    # a precut of the middle must never change the result: head and tail come from the two ends
    s = "H" * 250 + "m" * (n - 500) + "T" * 250 if n >= 500 else "H" * (n // 2) + "T" * (n - n // 2)
    out = one_line(s)
    assert out == _cut(s, 400)
    s2 = "\x1b" * n   # each becomes 4 characters
    out2 = one_line(s2)
    assert len(out2) == 400 and out2.startswith("\\x1b\\x1b") and out2.endswith("\\x1b\\x1b")
    assert out2 == _cut("\\x1b" * n, 400)


def test_one_line_of_a_huge_text_is_cheap():
    # the middle of a huge text is dropped before escaping (never escape megabytes to throw them away)
    import time
    s = "a" * 10_000_000 + "\x1b"
    t0 = time.process_time()
    out = one_line(s)
    assert time.process_time() - t0 < 0.25
    assert out == "a" * 198 + "..." + "a" * 195 + "\\x1b"


def test_one_line_precut_keeps_mixed_ends_exactly():
    # ends that differ character by character: any wrong slice of the precut shows
    s = "".join(chr(33 + i % 90) for i in range(7000))
    assert one_line(s) == _cut(s, 400)
    assert one_line(s, 50) == _cut(s, 50)
    s3 = "".join(chr(33 + i % 90) for i in range(1700))
    assert one_line(s3, 400) == _cut(s3, 400)


def test_show_path():
    assert show_path(None) == "<none>"
    assert show_path("a/b.json") == "a/b.json"
    assert show_path(b"a/b\xff") == "a/b\udcff"       # bytes: os.fsdecode (surrogateescape)
    from pathlib import Path
    assert show_path(Path("x") / "y") == "x/y"
    assert show_path(5) == "5"                         # not a path: its repr
    assert show_path(["a\n"]) == "['a\\n']"
    assert show_path("a\nb\x1b") == "a\\nb\\x1b"
    p = "d/" * 80
    assert show_path(p) == p and len(p) == 160
    q = p + "z"
    assert show_path(q) == _cut(q, 160)
    assert show_path(q, 20) == _cut(q, 20)


class _BadPath:
    def __fspath__(self):
        raise ValueError("nope")

    def __repr__(self):
        return "<bad\npath>"


def test_show_path_value_error_uses_repr():
    assert show_path(_BadPath()) == "<bad\\npath>"


def test_gandistill_error_line_and_path():
    e = GandistillError("broken", path="dir/f.json")
    assert str(e) == "dir/f.json: broken" and e.args == ("dir/f.json: broken",)
    assert e.path == "dir/f.json"
    assert isinstance(e, ValueError) and e.exit_code == 2
    assert ConfigError.exit_code == UnsafeFileError.exit_code == 2
    assert issubclass(ConfigError, GandistillError) and issubclass(UnsafeFileError, GandistillError)
    # the path already named: no prefix
    assert str(GandistillError("cannot read dir/f.json now", path="dir/f.json")) == "cannot read dir/f.json now"
    # no path
    e2 = GandistillError("x\ny")
    assert str(e2) == "x\\ny" and e2.path is None
    assert str(GandistillError()) == ""
    # bytes and PathLike paths are decoded; other objects are str()-ed
    from pathlib import Path
    assert GandistillError("m", path=b"a/b").path == "a/b"
    assert GandistillError("m", path=Path("a") / "c").path == "a/c"
    e3 = GandistillError("m", path=7)
    assert e3.path == "7" and str(e3) == "7: m"
    # the path is shown escaped and bounded, the whole line bounded
    e4 = GandistillError("m", path="p\n" + "q" * 300)
    shown = _cut("p\\n" + "q" * 300, 160)
    assert str(e4) == shown + ": m" and len(str(e4)) == 163
    e5 = GandistillError("z" * 1000, path="f")
    assert len(str(e5)) == 400 and str(e5) == _cut("f: " + "z" * 1000, 400)


def test_gandistill_error_str_resanitises_args():
    e = GandistillError("ok")
    e.args = ("a\nb" + "c" * 500,)
    assert str(e) == _cut("a\\nb" + "c" * 500, 400)
    e.args = ()
    assert str(e) == ""


# ------------------------------------------------------------------------------------------------ schema


def _refused(schema, value, where="f.json", error=ConfigError, what="JSON"):
    with pytest.raises(GandistillError) as info:
        S.check(value, schema, where, error, what)
    assert type(info.value) is error
    return str(info.value)


def test_schema_limits_constants():
    assert (S.MAX_DEPTH, S.MAX_NODES, S.MAX_STR, S.MAX_INT_DIGITS) == (32, 200_000, 65_536, 40)


def test_int():
    assert S.check(5, S.Int()) == 5
    assert S.check(-10 ** 30, S.Int()) == -10 ** 30
    for bad, shown in [(True, "True"), (1.0, "1.0"), ("1", "'1'"), (None, "None")]:
        assert _refused(S.Int(), bad) == f"f.json: JSON: the top level must be an integer, got {shown}"
    assert S.check(2, S.Int(lo=2, hi=5)) == 2 and S.check(5, S.Int(lo=2, hi=5)) == 5
    assert _refused(S.Int(lo=2, hi=5), 1) == "f.json: JSON: the top level must be in [2, 5], got 1"
    assert _refused(S.Int(lo=2, hi=5), 6) == "f.json: JSON: the top level must be in [2, 5], got 6"
    assert _refused(S.Int(lo=0), -1) == "f.json: JSON: the top level must be in [0, None], got -1"
    assert _refused(S.Int(hi=0), 1) == "f.json: JSON: the top level must be in [None, 0], got 1"
    assert S.check(0, S.Int(lo=0)) == 0 and S.check(0, S.Int(hi=0)) == 0
    assert S.check(-5, S.Int(hi=0)) == -5 and S.check(10 ** 9, S.Int(lo=0)) == 10 ** 9


def test_num():
    for ok in (0, 1.5, -3, 1e300):
        assert S.check(ok, S.Num()) == ok
    for bad, shown in [(True, "True"), ("1", "'1'"), (None, "None"), (float("nan"), "nan"),
                       (float("inf"), "inf"), (float("-inf"), "-inf"), ([1], "a list of 1")]:
        assert _refused(S.Num(), bad) == f"f.json: JSON: the top level must be a finite number, got {shown}"
    n = S.Num(lo=0.5, hi=2.0)
    assert S.check(0.5, n) == 0.5 and S.check(2.0, n) == 2.0 and S.check(1, n) == 1
    assert _refused(n, 0.49) == "f.json: JSON: the top level must be in [0.5, 2.0], got 0.49"
    assert _refused(n, 2.01) == "f.json: JSON: the top level must be in [0.5, 2.0], got 2.01"
    assert _refused(S.Num(lo=0.0), -0.1) == "f.json: JSON: the top level must be in [0.0, None], got -0.1"
    assert _refused(S.Num(hi=0.0), 0.1) == "f.json: JSON: the top level must be in [None, 0.0], got 0.1"
    assert S.check(-1e9, S.Num(hi=0.0)) == -1e9 and S.check(1e9, S.Num(lo=0.0)) == 1e9


def test_str():
    assert S.check("", S.Str()) == ""
    assert S.check("x" * 4096, S.Str()) == "x" * 4096
    assert _refused(S.Str(), "x" * 4097) == "f.json: JSON: the top level must be at most 4096 characters, got 4097"
    assert S.check("abc", S.Str(max_len=3)) == "abc"
    assert _refused(S.Str(max_len=3), "abcd") == "f.json: JSON: the top level must be at most 3 characters, got 4"
    assert _refused(S.Str(), 1) == "f.json: JSON: the top level must be a string, got 1"
    c = S.Str(choices=("a", "b"))
    assert S.check("b", c) == "b"
    assert _refused(c, "c") == "f.json: JSON: the top level must be one of 'a', 'b', got 'c'"
    assert _refused(S.Str(choices=()), "a") == "f.json: JSON: the top level must be one of , got 'a'"


def test_bool_and_null():
    assert S.check(True, S.Bool()) is True and S.check(False, S.Bool()) is False
    for bad, shown in [(1, "1"), (0, "0"), (None, "None"), ("true", "'true'")]:
        assert _refused(S.Bool(), bad) == f"f.json: JSON: the top level must be true or false, got {shown}"
    assert S.check(None, S.Null()) is None
    for bad, shown in [(0, "0"), (False, "False"), ("", "''"), ({}, "a JSON object of 0")]:
        assert _refused(S.Null(), bad) == f"f.json: JSON: the top level must be null, got {shown}"


def test_show_bounds_and_escapes_values():
    assert _refused(S.Int(), "a\n" * 50) == ("f.json: JSON: the top level must be an integer, got "
                                              + _cut(repr("a\n" * 50), 40))
    assert _refused(S.Int(), {"a": 1, "b": 2}) == "f.json: JSON: the top level must be an integer, got a JSON object of 2"


def test_one_of_and_opt():
    o = S.OneOf((S.Int(), S.Str()))
    assert S.check(3, o) == 3 and S.check("s", o) == "s"
    assert _refused(o, 1.5) == "f.json: JSON: the top level must be an integer, got 1.5 or must be a string, got 1.5"
    # repeated messages are said once, in order
    o2 = S.OneOf((S.Int(), S.Int(), S.Bool()))
    assert _refused(o2, "x") == ("f.json: JSON: the top level must be an integer, got 'x' or "
                                 "must be true or false, got 'x'")
    assert _refused(S.OneOf(()), 1) == "f.json: JSON: the top level "
    opt = S.Opt(S.Int(lo=1))
    assert opt == S.OneOf((S.Null(), S.Int(lo=1)))
    assert S.check(None, opt) is None and S.check(1, opt) == 1
    assert _refused(opt, 0) == "f.json: JSON: the top level must be null, got 0 or must be in [1, None], got 0"
    # a field of an object option keeps its key (config.student_kwargs.drop_rate, not config.student_kwargs)
    cfg = S.Obj(required={"config": S.Obj(optional={"student_kwargs": S.Opt(S.Obj(optional={
        "drop_rate": S.Num(lo=0, hi=1)}))})})
    assert _refused(cfg, {"config": {"student_kwargs": {"drop_rate": 2}}}) == (
        "f.json: JSON: 'config.student_kwargs' must be null, got a JSON object of 1 or "
        "'config.student_kwargs.drop_rate' must be in [0, 1], got 2")
    assert _refused(S.Opt(S.List(S.Int())), [1, "x"]) == (
        "f.json: JSON: the top level must be null, got a list of 2 or '[1]' must be an integer, got 'x'")


def test_schema_error_carries_key_and_message():
    e = S.SchemaError("a.b", "is missing")
    assert (e.key, e.message, str(e), e.args) == ("a.b", "is missing", "is missing", ("is missing",))


def test_list():
    li = S.List(S.Int())
    assert S.check([], li) == [] and S.check([1, 2], li) == [1, 2]
    assert S.check([0] * 4096, li) == [0] * 4096
    assert _refused(li, [0] * 4097) == "f.json: JSON: the top level must have 0..4096 items, got 4097"
    assert _refused(li, (1,)) == "f.json: JSON: the top level must be a list, got (1,)"
    assert _refused(li, {}) == "f.json: JSON: the top level must be a list, got a JSON object of 0"
    assert _refused(li, [1, 2, "x"]) == "f.json: JSON: '[2]' must be an integer, got 'x'"
    b = S.List(S.Int(), max_len=3, min_len=2)
    assert S.check([1, 2], b) and S.check([1, 2, 3], b)
    assert _refused(b, [1]) == "f.json: JSON: the top level must have 2..3 items, got 1"
    assert _refused(b, [1, 2, 3, 4]) == "f.json: JSON: the top level must have 2..3 items, got 4"
    n = S.List(S.Int(), length=2)
    assert S.check([1, 2], n) == [1, 2]
    assert _refused(n, [1]) == "f.json: JSON: the top level must have 2 items, got 1"
    assert _refused(n, [1, 2, 3]) == "f.json: JSON: the top level must have 2 items, got 3"
    assert _refused(S.List(S.Int(), length=0), [1]) == "f.json: JSON: the top level must have 0 items, got 1"
    nested = S.Obj(required={"a": S.List(S.List(S.Int()))})
    assert _refused(nested, {"a": [[1], [2, None]]}) == "f.json: JSON: 'a[1][1]' must be an integer, got None"


def test_any():
    for v in (None, 1, "s", [1, {"a": []}], {"x": 1.5}):
        assert S.check(v, S.ANY) is v


def test_obj():
    o = S.Obj(required={"a": S.Int()}, optional={"b": S.Str()})
    v = {"a": 1, "b": "x", "c": [1]}
    assert S.check(v, o) is v                      # extra keys allowed by default
    assert S.check({"a": 1}, o) == {"a": 1}
    assert _refused(o, {"b": "x"}) == "f.json: JSON: 'a' is missing"
    assert _refused(o, {"a": "1"}) == "f.json: JSON: 'a' must be an integer, got '1'"
    assert _refused(o, {"a": 1, "b": 2}) == "f.json: JSON: 'b' must be a string, got 2"
    assert _refused(o, [1]) == "f.json: JSON: the top level must be a JSON object, got a list of 1"
    r = S.Obj(required={"z": S.Int(), "a": S.Int()}, optional={"m": S.Int()}, extra="refuse")
    assert S.check({"z": 1, "a": 2, "m": 3}, r)
    assert S.check({"z": 1, "a": 2}, r)
    assert _refused(r, {"z": 1, "a": 2, "q\n": 0, "w": 0}) == ("f.json: JSON: 'q\\n' is not a known key "
                                                              "(known: a, m, z)")
    long_key = "k" * 100
    assert _refused(r, {"z": 1, "a": 2, long_key: 0}) == (f"f.json: JSON: '{_cut(long_key, 60)}' is not a known "
                                                         "key (known: a, m, z)")
    nested_opt = S.Obj(required={"cfg": S.Obj(optional={"drop_rate": S.Num(lo=0, hi=1)})})
    assert _refused(nested_opt, {"cfg": {"drop_rate": -1}}) == "f.json: JSON: 'cfg.drop_rate' must be in [0, 1], got -1"
    assert S.check({"cfg": {}}, nested_opt) == {"cfg": {}}
    nested_extra = S.Obj(optional={"cfg": S.Obj(optional={"a": S.Int()}, extra="refuse")})
    assert _refused(nested_extra, {"cfg": {"b": 1}}) == "f.json: JSON: 'cfg.b' is not a known key (known: a)"
    nested = S.Obj(required={"cfg": S.Obj(required={"drop_rate": S.Num(lo=0, hi=1)})})
    assert _refused(nested, {"cfg": {"drop_rate": 2}}) == "f.json: JSON: 'cfg.drop_rate' must be in [0, 1], got 2"
    assert _refused(nested, {"cfg": {}}) == "f.json: JSON: 'cfg.drop_rate' is missing"
    mk = S.Obj(max_keys=2)
    assert S.check({"a": 1, "b": 2}, mk)
    assert _refused(mk, {"a": 1, "b": 2, "c": 3}) == "f.json: JSON: the top level has 3 keys (at most 2)"
    big = {str(i): i for i in range(4096)}
    assert S.check(big, S.Obj()) is big
    big["x"] = 0
    assert _refused(S.Obj(), big) == "f.json: JSON: the top level has 4097 keys (at most 4096)"


def test_map():
    m = S.Map(S.Int())
    assert S.check({}, m) == {} and S.check({"a": 1, "b": 2}, m) == {"a": 1, "b": 2}
    assert _refused(m, {"a": 1, "b\n": "x"}) == "f.json: JSON: 'b\\n' must be an integer, got 'x'"
    assert _refused(m, {"k" * 100: None}) == f"f.json: JSON: '{_cut('k' * 100, 60)}' must be an integer, got None"
    assert _refused(m, [1]) == "f.json: JSON: the top level must be a JSON object, got a list of 1"
    assert _refused(S.Map(S.Int(), max_keys=1), {"a": 1, "b": 2}) == "f.json: JSON: the top level has 2 keys (at most 1)"
    assert S.check({"a": 1}, S.Map(S.Int(), max_keys=1))
    big = {str(i): i for i in range(4096)}
    assert S.check(big, m) is big
    big["x"] = 0
    assert _refused(m, big) == "f.json: JSON: the top level has 4097 keys (at most 4096)"
    inner = S.Obj(required={"m": S.Map(S.Bool())})
    assert _refused(inner, {"m": {"k": 1}}) == "f.json: JSON: 'm.k' must be true or false, got 1"


def test_check_error_type_where_and_what():
    with pytest.raises(UnsafeFileError) as info:
        S.check("x", S.Int(), "h.bin", UnsafeFileError, "bank header")
    assert str(info.value) == "h.bin: bank header: the top level must be an integer, got 'x'"
    with pytest.raises(ConfigError) as info:
        S.check("x", S.Int())
    assert str(info.value) == "JSON: the top level must be an integer, got 'x'" and info.value.path is None
    assert S.check({"a": 1}, S.Obj(required={"a": S.Int()}), "w") == {"a": 1}


# ------------------------------------------------------------------------------------------------ parsing


def _bad_json(raw):
    with pytest.raises(ValueError) as info:
        S.parse_json(raw)
    assert not isinstance(info.value, GandistillError)
    return str(info.value)


def test_parse_plain_values():
    assert S.parse_json(b'{"a": [1, 2.5, "s", true, false, null], "b": {}}') == {
        "a": [1, 2.5, "s", True, False, None], "b": {}}
    assert S.parse_json(b"-0.5e2") == -50.0
    assert S.parse_json("\"\u00e9\"".encode()) == "\u00e9"


@pytest.mark.parametrize("lit", ["NaN", "Infinity", "-Infinity"])
def test_parse_refuses_non_finite_literals(lit):
    assert _bad_json(f"[{lit}]".encode()) == f"{lit} is not allowed (numbers must be finite)"


def test_parse_refuses_overflowing_floats():
    assert _bad_json(b"1e400") == "the number 1e400 is not finite"
    assert _bad_json(b"-1e400") == "the number -1e400 is not finite"
    assert S.parse_json(b"1e308") == 1e308


def test_parse_float_length_boundary():
    ok = "0." + "0" * 397 + "1"       # 400 characters
    assert len(ok) == 400 and S.parse_json(ok.encode()) == float(ok)
    bad = ok + "0"
    assert _bad_json(bad.encode()) == "a number of 401 characters"


def test_parse_int_digit_boundary():
    d40 = "9" * 40
    assert S.parse_json(d40.encode()) == int(d40)
    assert S.parse_json(("-" + d40).encode()) == -int(d40)
    assert _bad_json(("9" * 41).encode()) == "an integer of 41 digits (at most 40)"
    assert _bad_json(("-" + "9" * 41).encode()) == "an integer of 41 digits (at most 40)"
    assert S.parse_json(b"[0, -1, 7]") == [0, -1, 7]


def test_parse_not_utf8_and_corrupt():
    assert _bad_json(b'"\xff"') == "not UTF-8 text"
    assert _bad_json(b"") == "corrupt JSON (Expecting value at line 1 column 1)"
    assert _bad_json(b'{"a": 1,\n "b"}') == "corrupt JSON (Expecting ':' delimiter at line 2 column 5)"


def test_parse_depth_boundary():
    assert S.parse_json(b"[" * 32 + b"]" * 32) is not None
    assert _bad_json(b"[" * 33 + b"]" * 33) == "nested more than 32 deep"
    assert S.parse_json(b"[" * 31 + b"1" + b"]" * 31) is not None      # the scalar at depth 32
    assert _bad_json(b"[" * 32 + b"1" + b"]" * 32) == "nested more than 32 deep"
    obj31 = b'{"a":' * 31 + b"1" + b"}" * 31
    assert S.parse_json(obj31) is not None
    assert _bad_json(b'{"a":' * 32 + b"1" + b"}" * 32) == "nested more than 32 deep"
    # far past the interpreter's recursion limit: still the same one line
    assert _bad_json(b"[" * 100_000 + b"]" * 100_000) == "nested more than 32 deep"


def test_parse_string_and_key_length_boundary():
    s = "x" * 65536
    assert S.parse_json(f'["{s}"]'.encode()) == [s]
    assert _bad_json(f'["{s}x"]'.encode()) == "a string of 65537 characters (at most 65536)"
    assert S.parse_json(f'{{"{s}": 1}}'.encode()) == {s: 1}
    assert _bad_json(f'{{"{s}x": 1}}'.encode()) == "a key of 65537 characters"
    assert _bad_json(f'"{s}x"'.encode()) == "a string of 65537 characters (at most 65536)"


def test_parse_node_count_boundary():
    # a list of n values is n + 1 values
    ok = b"[" + b"0," * 199_998 + b"0]"          # 199_999 items: 200_000 values
    assert len(S.parse_json(ok)) == 199_999
    bad = b"[" + b"0," * 199_999 + b"0]"         # 200_001 values
    assert _bad_json(bad) == "more than 200000 values"
    # an object of 199_999 keys, one holding [0]: 1 + 199_999 + 1 values (precount 399_999: passes it)
    d_bad = b"{" + b"".join(b'"%d":0,' % i for i in range(199_998)) + b'"x":[0]}'
    assert sum(d_bad.count(c) for c in b",:[{") == 399_999
    assert _bad_json(d_bad) == "more than 200000 values"


def test_parse_cheap_precount_boundary():
    # the C-speed precount counts every ',' ':' '[' '{' (inside strings too) and refuses more than 400_000
    def text(n):
        # 8 strings in a list: 1 '[' + 7 separating commas + n - 8 commas inside the strings
        inner, per = n - 8, (n - 8) // 8
        parts = ["," * per] * 7 + ["," * (inner - 7 * per)]
        return ("[" + ",".join(f'"{p}"' for p in parts) + "]").encode()

    raw = text(400_000)
    assert sum(raw.count(c) for c in b",:[{") == 400_000
    assert len(S.parse_json(raw)) == 8
    raw1 = text(400_001)
    assert sum(raw1.count(c) for c in b",:[{") == 400_001
    assert _bad_json(raw1) == "more than 200000 values"
    # each counted character, alone
    for c in ":[{":
        parts = ["," * 60_000] * 6 + ["," * 39_993 + c]
        r = "[" + ",".join(f'"{p}"' for p in parts) + "]"
        assert sum(r.count(x) for x in ",:[{") == 400_001
        assert _bad_json(r.encode()) == "more than 200000 values"
        r_ok = "[" + ",".join(f'"{p}"' for p in parts[:-1] + ["," * 39_993 + "a"]) + "]"
        assert len(S.parse_json(r_ok.encode())) == 7


def test_json_bounded():
    assert S.json_bounded({"a": [1] * 10})
    deep = []
    cur = deep
    for _ in range(32):
        cur.append([])
        cur = cur[0]
    assert not S.json_bounded(deep)       # 33 lists
    assert S.json_bounded(deep[0])
    assert not S.json_bounded("x" * 65537) and S.json_bounded("x" * 65536)
    assert not S.json_bounded([0] * 200_000) and S.json_bounded([0] * 199_999)


def test_check_raw(tmp_path):
    assert S.check_raw(b'{"a": 1}', S.Obj(required={"a": S.Int()}), "h") == {"a": 1}
    with pytest.raises(ConfigError) as info:
        S.check_raw(b"[NaN]", S.ANY, "h.bin")
    assert str(info.value) == "h.bin: JSON: NaN is not allowed (numbers must be finite)"
    with pytest.raises(UnsafeFileError) as info:
        S.check_raw(b"[1]", S.Obj(), "h.bin", UnsafeFileError, "bank header")
    assert str(info.value) == "h.bin: bank header: the top level must be a JSON object, got a list of 1"
    with pytest.raises(UnsafeFileError) as info:
        S.check_raw(b"{", S.Obj(), "h.bin", UnsafeFileError, "bank header")
    assert str(info.value).startswith("h.bin: bank header: corrupt JSON (")


def test_load_json(tmp_path):
    f = tmp_path / "c.json"
    f.write_bytes(b'{"n": 3}')
    assert S.load_json(f) == {"n": 3}
    assert S.load_json(str(f), S.Obj(required={"n": S.Int(lo=3)})) == {"n": 3}
    with pytest.raises(ConfigError) as info:
        S.load_json(f, S.Obj(required={"n": S.Int(lo=4)}), what="config")
    assert str(info.value) == f"{f}: config: 'n' must be in [4, None], got 3"
    with pytest.raises(UnsafeFileError) as info:
        S.load_json(f, S.Obj(required={"m": S.Int()}), error=UnsafeFileError)
    assert str(info.value) == f"{f}: JSON file: 'm' is missing"
    with pytest.raises(FileNotFoundError):
        S.load_json(tmp_path / "missing.json")
    # refusals of the file itself become the caller's error type, with the same line
    with pytest.raises(ConfigError) as info:
        S.load_json(tmp_path, what="run config")
    assert type(info.value) is ConfigError
    assert str(info.value).startswith(f"{tmp_path}: the run config is a directory") or "directory" in str(info.value)
    with pytest.raises(UnsafeFileError) as info:
        S.load_json(tmp_path, error=UnsafeFileError)
    assert type(info.value) is UnsafeFileError
    # the byte cap: exactly max_bytes is read, one more byte refused
    assert S.load_json(f, max_bytes=8) == {"n": 3}
    with pytest.raises(ConfigError) as info:
        S.load_json(f, max_bytes=7)
    assert "JSON file" in str(info.value) and str(f) in str(info.value)
    # the kind chooses the cap: 1 MiB for a bank header, 4 MiB for JSON
    g = tmp_path / "big.json"
    g.write_bytes(b" " * (2 ** 20) + b"1")
    assert S.load_json(g) == 1
    assert S.load_json(g, kind="json") == 1
    with pytest.raises(ConfigError):
        S.load_json(g, kind="bank_header")
    with pytest.raises(ConfigError):
        S.load_json(g, max_bytes=2 ** 20)


# ------------------------------------------------------------------------------------------------ paths


def test_user_path_rules(tmp_path):
    from pathlib import Path
    assert user_path("a/b") == Path("a/b") and isinstance(user_path("a/b"), Path)
    assert user_path(b"a/b") == Path("a/b")
    assert user_path(Path("x")) == Path("x")
    assert user_path("~/x") == Path(os.path.expanduser("~")) / "x"
    with pytest.raises(UnsafeFileError) as info:
        user_path(3, "teacher")
    assert str(info.value) == "the teacher must be a path, got a int"
    with pytest.raises(UnsafeFileError) as info:
        user_path("a\0b")
    assert str(info.value) == "a\\x00b: the path contains a NUL byte"
    with pytest.raises(UnsafeFileError) as info:
        user_path("~no_such_user_gandistill_xyz/a.pkl", "snapshot")
    assert "the snapshot starts with an unknown user's home (~user)" in str(info.value)
    # the whole path: 4096 characters accepted, 4097 refused
    p = "/".join(["d" * 99] * 41)[:4096]
    assert len(p) == 4096 and user_path(p) == Path(p)
    with pytest.raises(UnsafeFileError) as info:
        user_path(p + "x")
    assert "the path is 4097 characters long (more than 4096)" in str(info.value)
    # a component: 255 bytes accepted, 256 refused (bytes, not characters)
    assert user_path("d/" + "n" * 255) == Path("d") / ("n" * 255)
    with pytest.raises(UnsafeFileError) as info:
        user_path("d/" + "n" * 256)
    assert "the path has a component of 256 bytes (more than 255)" in str(info.value)
    assert user_path("\u00e9" * 127 + "x") == Path("\u00e9" * 127 + "x")    # 255 bytes
    with pytest.raises(UnsafeFileError) as info:
        user_path("\u00e9" * 128)                                           # 128 characters, 256 bytes
    assert "a component of 256 bytes (more than 255)" in str(info.value)
    # the first component counts too
    with pytest.raises(UnsafeFileError):
        user_path("n" * 256 + "/d")


def test_inside_rules(tmp_path):
    root = tmp_path / "run"
    (root / "sub").mkdir(parents=True)
    (root / "w.safetensors").write_bytes(b"")
    outside = tmp_path / "secret"
    outside.write_bytes(b"")
    assert inside(root, "w.safetensors") == (root / "w.safetensors").resolve()
    assert inside(str(root), "sub/x.bin") == (root / "sub" / "x.bin").resolve()
    assert inside(root, ".") == root.resolve()           # the folder itself is inside it
    assert inside(root, "n" * 255) == root.resolve() / ("n" * 255)
    os.symlink("w.safetensors", root / "link_in")
    assert inside(root, "link_in") == (root / "w.safetensors").resolve()
    os.symlink(outside, root / "link_out")
    os.symlink("..", root / "sub" / "up")
    cfg = root / "checkpoint.json"
    for bad in [3, None, "", "a\0b", "n" * 256, ["w"]]:
        with pytest.raises(UnsafeFileError) as info:
            inside(root, bad, "weights", where=cfg)
        assert str(info.value) == f"{cfg}: the weights must be a file name inside the folder, got a bad value"
    for bad in ["/etc/passwd", "../secret", "sub/../../secret", "sub/../w.safetensors", "~/x", "~root"]:
        with pytest.raises(UnsafeFileError) as info:
            inside(root, bad, "weights", where=cfg)
        assert str(info.value).startswith(f"{cfg}: the weights {bad} must be a relative name inside the folder")
    assert inside(root, "sub/up") == root.resolve()      # a link back to the folder itself
    os.symlink("../..", root / "sub" / "out")
    for bad in ["link_out", "sub/out/secret", "sub/out"]:
        with pytest.raises(UnsafeFileError) as info:
            inside(root, bad, "weights", where=cfg)
        assert str(info.value) == (f"{cfg}: the weights {bad} resolves outside the folder {root.resolve()}; "
                                   "refusing to follow it")
    # defaults: the thing is called "file" and the folder is named when no JSON is given
    with pytest.raises(UnsafeFileError) as info:
        inside(root, "/abs")
    assert str(info.value) == (f"{root}: the file /abs must be a relative name inside the folder "
                               "(absolute paths and '..' are refused)")
    with pytest.raises(UnsafeFileError) as info:
        inside(root, "")
    assert str(info.value) == f"{root}: the file must be a file name inside the folder, got a bad value"
    with pytest.raises(UnsafeFileError) as info:
        inside(root, "link_out")
    assert str(info.value).startswith("the file link_out resolves outside the folder ")
    # the prefix rule is by path components, not by characters: run2 is not inside run
    (tmp_path / "run2").mkdir()
    os.symlink(tmp_path / "run2", root / "sibling")
    with pytest.raises(UnsafeFileError):
        inside(root, "sibling")
    with pytest.raises(UnsafeFileError) as info:
        inside(root, "../run2/x")
    assert "must be a relative name" in str(info.value)


# ------------------------------------------------------------------------------------------------ reading


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_kind_and_mb_names():
    import stat
    from gandistill.io.files import file_kind as _kind, mib as _mb
    assert _kind(stat.S_IFDIR | 0o755) == "a directory"
    assert _kind(stat.S_IFIFO | 0o644) == "a FIFO / named pipe"
    assert _kind(stat.S_IFCHR | 0o666) == "a character device"
    assert _kind(stat.S_IFBLK | 0o660) == "a block device"
    assert _kind(stat.S_IFSOCK | 0o777) == "a socket"
    assert _kind(0) == "not a regular file"
    assert _mb(3 * 2 ** 19) == "1.5 MiB" and _mb(0) == "0.0 MiB" and _mb(2 ** 30) == "1024.0 MiB"


def test_read_bytes_and_open_regular(tmp_path):
    import errno as errno_
    from gandistill.io.files import open_regular, read_bytes
    f = tmp_path / "a.json"
    f.write_bytes(b"12345")
    assert read_bytes(f) == b"12345" and read_bytes(str(f), "x", 5) == b"12345"
    fd, st = open_regular(f, "x", 5)
    try:
        assert st.st_size == 5 and os.read(fd, 10) == b"12345"
    finally:
        os.close(fd)
    with pytest.raises(UnsafeFileError) as info:
        read_bytes(f, "weights", 4)
    assert str(info.value) == f"{f}: the weights is 0.0 MiB, over the 0.0 MiB limit; refusing to read it"
    with pytest.raises(FileNotFoundError) as info:
        read_bytes(tmp_path / "nope", "weights")
    assert (info.value.errno, info.value.strerror, info.value.filename) == (
        errno_.ENOENT, "missing weights", str(tmp_path / "nope"))
    n0 = _open_fds()
    with pytest.raises(UnsafeFileError) as info:
        read_bytes(tmp_path, "run config")
    assert str(info.value) == f"{tmp_path}: the run config is a directory, not a regular file; refusing to read it"
    os.mkfifo(tmp_path / "fifo")                # no writer: a blocking open would hang here
    with pytest.raises(UnsafeFileError) as info:
        read_bytes(tmp_path / "fifo", "weights")
    assert "the weights is a FIFO / named pipe, not a regular file" in str(info.value)
    with pytest.raises(UnsafeFileError) as info:
        read_bytes("/dev/null")
    assert str(info.value) == "/dev/null: the file is a character device, not a regular file; refusing to read it"
    assert _open_fds() == n0                    # refused files are closed
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(UnsafeFileError) as info:
        read_bytes(tmp_path / "loop", "teacher")
    assert str(info.value) == f"{tmp_path / 'loop'}: the teacher is a symbolic link loop or a refused link"
    with pytest.raises(UnsafeFileError) as info:
        read_bytes(f / "x", "teacher")
    assert str(info.value) == f"{f / 'x'}: cannot open the teacher (Not a directory)"
    # a file whose size says 0 but that yields bytes (as /proc files do): refused, not half-trusted
    with pytest.raises(UnsafeFileError) as info:
        read_bytes("/proc/self/status", "status")
    assert str(info.value) == "/proc/self/status: the status changed size while being read; refusing"
    assert _open_fds() == n0


def test_read_caps_per_kind(tmp_path):
    from gandistill.io.files import CAPS, read_bytes
    assert CAPS["json"] == 4 * 2 ** 20 and CAPS["bank_header"] == 2 ** 20
    f = tmp_path / "big"
    f.write_bytes(b"x" * (4 * 2 ** 20))
    assert len(read_bytes(f)) == 4 * 2 ** 20                 # exactly the json cap
    with pytest.raises(UnsafeFileError) as info:
        read_bytes(f, kind="bank_header")
    assert "over the 1.0 MiB limit" in str(info.value)
    with open(f, "ab") as fh:
        fh.write(b"x")
    with pytest.raises(UnsafeFileError) as info:
        read_bytes(f)
    assert "the file is 4.0 MiB, over the 4.0 MiB limit" in str(info.value)
    assert len(read_bytes(f, max_bytes=4 * 2 ** 20 + 1)) == 4 * 2 ** 20 + 1


def test_is_regular(tmp_path):
    from gandistill.io.files import is_regular
    f = tmp_path / "f"
    f.write_bytes(b"")
    os.mkfifo(tmp_path / "p")
    os.symlink(f, tmp_path / "l")
    assert is_regular(f) and is_regular(str(tmp_path / "l"))
    assert not is_regular(tmp_path) and not is_regular(tmp_path / "p") and not is_regular(tmp_path / "missing")
    assert not is_regular("a\0b") and not is_regular("/dev/null")


def test_region_reader(tmp_path):
    import pickle
    from gandistill.io.files import RegionReader
    f = tmp_path / "r.bin"
    f.write_bytes(bytes(range(10)))
    r = RegionReader(f, "bank", ConfigError)
    assert r.size == 10 and r.path == f and (r.what, r.error_type) == ("bank", ConfigError)
    assert r.read(0, 10) == bytes(range(10)) and r.read(3, 2) == b"\x03\x04" and r.read(9, 1) == b"\x09"
    assert r.read(100, 0) == b""
    with pytest.raises(ConfigError) as info:
        r.read(8, 4)
    assert str(info.value) == (f"{f}: the bank is shorter than expected (truncated while in use?): wanted 4 bytes "
                               "at offset 8, got 2")
    assert r.read_rows(1, 3, [2, 0]) == bytes([7, 8, 9, 1, 2, 3])
    assert r.read_rows(0, 5, []) == b""
    with pytest.raises(ConfigError) as info:
        r.read_rows(1, 3, [0, 3])
    assert str(info.value) == f"{f}: the bank is shorter than expected (truncated while in use?)"
    r2 = pickle.loads(pickle.dumps(r))
    assert (r2.path, r2.what, r2.error_type, r2.size) == (f, "bank", ConfigError, 10) and r2.read(5, 2) == b"\x05\x06"
    r2.close()
    r.close()
    assert r.fd == -1
    r.close()                                      # twice is fine
    with pytest.raises(ConfigError) as info:
        r.read(0, 1)
    assert str(info.value) == f"{f}: cannot read the bank (Bad file descriptor)"
    with pytest.raises(ConfigError) as info:
        r.read_rows(0, 1, [0])
    assert str(info.value) == f"{f}: cannot read the bank (Bad file descriptor)"
    d = RegionReader(f)
    assert (d.what, d.error_type) == ("file", UnsafeFileError)
    with pytest.raises(UnsafeFileError):
        d.read(9, 2)
    d.close()
    with pytest.raises(UnsafeFileError):
        RegionReader(tmp_path)


def test_open_regular_defaults_and_names(tmp_path):
    from gandistill.io.files import RegionReader, open_regular, read_bytes
    with pytest.raises(UnsafeFileError) as info:
        open_regular(tmp_path)
    assert str(info.value) == f"{tmp_path}: the file is a directory, not a regular file; refusing to read it"
    with pytest.raises(UnsafeFileError) as info:
        read_bytes("a\0b", "weights")
    assert str(info.value) == "a\\x00b: the weights contains a NUL byte"
    big = tmp_path / "big"
    big.write_bytes(b"x" * (4 * 2 ** 20 + 1))
    with pytest.raises(UnsafeFileError) as info:
        open_regular(big)                                     # the default kind is json: 4 MiB
    assert "the file is 4.0 MiB, over the 4.0 MiB limit" in str(info.value)
    # a region reader has no size cap (it never loads the whole file)
    r = RegionReader(big, "bank")
    assert r.size == 4 * 2 ** 20 + 1 and r.read(4 * 2 ** 20, 1) == b"x"
    r.close()
    with pytest.raises(UnsafeFileError) as info:
        RegionReader(tmp_path, "bank")
    assert str(info.value) == f"{tmp_path}: the bank is a directory, not a regular file; refusing to read it"


def test_open_append_creates_appends_line_buffered_and_blocking(tmp_path):
    from gandistill.io.files import open_append

    log = tmp_path / "metrics.jsonl"
    old = os.umask(0)
    try:
        f = open_append(log, "metrics log")
    finally:
        os.umask(old)
    with f:
        assert (log.stat().st_mode & 0o777) == 0o644           # created rw-r--r--
        assert os.get_blocking(f.fileno())                       # O_NONBLOCK was only for the open
        f.write("a\n")
        assert log.read_text() == "a\n"                          # line-buffered: visible before close
    log.write_text("xyz\n")
    with open_append(log) as f:                                  # appends, never truncates
        f.write("b\n")
    assert log.read_text() == "xyz\nb\n"


def test_open_append_refuses_a_device_without_leaking_its_descriptor(tmp_path):
    from gandistill.io.files import open_append

    if not os.path.exists("/dev/null") or not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /dev/null and /proc")
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(UnsafeFileError) as e:
        open_append("/dev/null", "error log")
    assert str(e.value) == "/dev/null: the error log is a character device, not a regular file; refusing to write to it"
    assert len(os.listdir("/proc/self/fd")) == before
    with pytest.raises(UnsafeFileError, match="error log"):
        open_append(tmp_path / "missing-dir" / "x.log", "error log")
    with pytest.raises(UnsafeFileError, match="^/dev/null: the log file is a character device"):
        open_append("/dev/null")


def test_open_append_refuses_a_fifo_without_blocking(tmp_path):
    import threading

    from gandistill.io.files import open_append

    fifo = tmp_path / "errors.log"
    os.mkfifo(fifo)
    out = []
    t = threading.Thread(target=lambda: out.append(pytest.raises(UnsafeFileError, open_append, fifo)), daemon=True)
    t.start()
    t.join(5)                                  # without O_NONBLOCK, open() waits for a reader forever
    assert out and "errors.log" in str(out[0].value)
    assert not os.path.isfile(fifo)
