"""The one state-dict mismatch report (io.tensors.mismatch_report), used by the student loader and the
StyleGAN2 loader: one line, every kind of misfit named with counts and examples, empty when it fits."""
import pytest
import torch

from gandistill.io.errors import UnsafeFileError
from gandistill.io.tensors import check_state, mismatch_report


def test_fitting_state_gives_an_empty_report():
    own = {"a.weight": torch.zeros(2, 3), "b": torch.zeros(4)}
    assert mismatch_report(own, {k: v.clone() for k, v in own.items()}) == ""


def test_report_counts_missing_unexpected_and_shape_mismatches_on_one_line():
    own = {f"w{i}": torch.zeros(2) for i in range(5)} | {"s": torch.zeros(3, 3)}
    stored = {"s": torch.zeros(3, 4), "extra\nkey": torch.zeros(1)}
    r = mismatch_report(own, stored)
    assert "\n" not in r
    assert r.startswith("5 missing keys (e.g. w0, w1, w2, ...)")
    assert "1 unexpected keys (e.g. extra\\nkey)" in r
    assert "1 shape mismatch (e.g. s (3, 4) != (3, 3))" in r


def test_check_state_refuses_with_the_report(tmp_path):
    own = {"x": torch.zeros(2, 2)}
    with pytest.raises(UnsafeFileError, match=r"do not fit the network: 1 shape mismatch \(e.g. x \(2,\) != \(2, 2\)\)"):
        check_state({"x": torch.zeros(2)}, own, tmp_path / "w.safetensors")
