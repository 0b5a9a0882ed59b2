"""The CLI shell: help, doctor, list, and both entry points."""
import subprocess
import sys

from typer.testing import CliRunner

from gandistill.cli import app

runner = CliRunner()


def test_help_lists_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0, res.output
    for cmd in ("doctor", "list"):
        assert cmd in res.output


def test_doctor_prints_versions():
    res = runner.invoke(app, ["doctor"])
    assert res.exit_code == 0, res.output
    import torch

    assert torch.__version__.split("+")[0] in res.output
    assert "bundled digits" in res.output


def test_list_unknown_kind_is_clear():
    res = runner.invoke(app, ["list", "colours"])
    assert res.exit_code == 2
    assert "unknown kind" in res.output


def test_list_augmentations_and_datasets():
    res = runner.invoke(app, ["list", "augmentations"])
    assert res.exit_code == 0, res.output
    assert "ssl-cifar" in res.output
    res = runner.invoke(app, ["list", "datasets"])
    assert res.exit_code == 0, res.output
    assert "digits" in res.output


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "gandistill", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "doctor" in out.stdout
