"""Every flag of ``fit``, ``compare`` and ``gan train`` that sets a config field is checked against the
dataclass: the field exists, the flag's default is None (= the dataclass default, which lives once), the
help states the dataclass default, and the flag's type matches the field's annotation."""
import dataclasses
import typing

import pytest
import typer.main

from gandistill.cli import app
from gandistill.compare.runner import CompareConfig
from gandistill.engine.config import FitConfig
from gandistill.gan.config import GanConfig
from gandistill.io.config_file import field_default

ROOT = typer.main.get_command(app)
#: options that do not set a config field (they steer the command itself)
OWN = {"config", "print_cfg", "dry_run", "help", "ctx", "figure", "gan_run", "snapshots", "inception", "preset", "seeds", "diagnostics", "diag_n", "labeller"}  # figure-4 and gan-score options of their own
#: field-setting flags whose type is a CLI spelling of the field's (KEY=VALUE lists, enum lists, choices)
SPELLED = {"teacher_opt": "teacher_kwargs", "logger": "loggers", "net": "net_overrides", "resume": "resume"}


def _cases():
    yield "fit", ROOT.commands["fit"], FitConfig
    yield "compare", ROOT.commands["compare"], CompareConfig
    yield "gan train", ROOT.commands["gan"].commands["train"], GanConfig


def _base(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return _base(args[0]) if typing.get_origin(tp) is typing.Union and len(args) == 1 else tp


@pytest.mark.parametrize("name,cmd,cls", list(_cases()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_flag_matches_its_dataclass_field(name, cmd, cls):
    from gandistill.cli import compare as compare_cli, fit as fit_cli, gan as gan_cli

    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    mapping = {"fit": fit_cli.FIT_FLAGS_FIELDS, "compare": compare_cli.COMPARE_FLAGS_FIELDS,
               "gan train": gan_cli.GAN_FLAGS_FIELDS}[name]
    seen = set()
    for p in cmd.params:
        if p.name in OWN:
            continue
        assert p.name in mapping, f"{name}: option --{p.name} sets no {cls.__name__} field"
        field = mapping[p.name]
        assert field in fields, f"{name}: --{p.name} -> unknown field {field}"
        seen.add(field)
        assert p.default is None, f"{name}: --{p.name} restates a default ({p.default!r}); it must be None"
        default = field_default(fields[field])
        if default not in (None, {}, ()):
            assert f"[default: {default}]" in p.help, f"{name}: --{p.name} help does not state {default!r}"
        if p.name in SPELLED:
            continue
        want = _base(hints[field])
        got = p.type_descriptor.annotation
        if typing.get_origin(got) is typing.Literal:      # a closed choice: every value fits the field
            assert all(isinstance(v, want) for v in typing.get_args(got)), (name, p.name, got, want)
        else:
            assert got is want, f"{name}: --{p.name} parses {got}, field {field} is {want}"
    assert seen, name


def test_fit_flags_cover_the_fields_users_set():
    from gandistill.cli.fit import FIT_FLAGS_FIELDS

    internal = {"student_kwargs"}            # Python-API only (modules / dicts)
    missing = {f.name for f in dataclasses.fields(FitConfig)} - set(FIT_FLAGS_FIELDS.values()) - internal
    assert not missing, f"FitConfig fields without a fit flag: {sorted(missing)}"


def test_closed_choices_fail_at_parse_time_and_are_listed():
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["fit", "--precision", "bf61"])
    assert r.exit_code == 2 and "bf61" in r.output
    r = CliRunner().invoke(app, ["fit", "--eval", "fewshot,knm"])
    assert r.exit_code == 2 and "knm" in r.output
    r = CliRunner().invoke(app, ["fit", "--logger", "tensorbored"])
    assert r.exit_code == 2
    r = CliRunner().invoke(app, ["fit", "--help"], env={"COLUMNS": "250"})
    assert "auto|fp32|bf16|fp16" in r.output and "last|auto" in r.output and "tensorboard" in r.output
    assert "250" not in r.output.replace("COLUMNS", "") and "~3 min" not in r.output


def test_exit_codes_are_documented():
    from typer.testing import CliRunner

    out = " ".join(CliRunner().invoke(app, ["--help"], env={"COLUMNS": "250"}).output.split())
    for code in ("0 success", "2 bad input", "3 the run stopped", "4 an output could not be written"):
        assert code in out
