"""benchmarks/gpu_check.py cannot rot: its dry run (every part on CPU at tiny sizes) completes with every
part ok, and a failing or overrunning part becomes one error row while the others go on."""
from repo_scripts import load_script
import sys



def _module():
    return load_script("benchmarks/gpu_check.py", "gpu_check")


def test_dry_run_every_part_ok_and_table_written(tmp_path, monkeypatch, capsys):
    gc = _module()
    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setattr(gc, "VARIANTS", ("fp32", "bf16+channels_last"))     # keep the suite fast
    assert gc.main(["--dry-run", "--inline"]) == 0
    text = (tmp_path / "gpu_check.md").read_text()
    for name in ("sns fp32", "vicreg-real bf16+channels_last compiled", "G forward bf16 autocast",
                 "G forward fp32 compiled", "torchrun 1 process (gloo)", "800-epoch CIFAR-10 sns run",
                 "- torch:"):
        assert name in text, name
    assert "FAILED" not in text, text


def test_a_failing_or_slow_part_is_one_row_and_the_rest_go_on():
    gc = _module()
    env = {"PATH": "/usr/bin:/bin"}
    code = "import json, time; print('ROW ' + json.dumps({'name': 'a', 'ok': True}), flush=True); time.sleep(30)"
    slow = gc.run_part("slow", [sys.executable, "-c", code], budget=3, env=env)
    assert slow[0]["name"] == "a" and slow[-1]["ok"] is False and "timed out after 3s" in slow[-1]["error"]
    bad = gc.run_part("bad", [sys.executable, "-c", "raise SystemExit('boom')"], budget=30, env=env)
    assert len(bad) == 1 and not bad[0]["ok"] and "exit code 1" in bad[0]["error"] and "boom" in bad[0]["error"]
    table = gc.render({"torch": "x"}, slow + bad, gc.estimate([{"part": "step", "method": "sns", "ok": True,
                                                                "ms": 100.0, "name": "sns fp32"}]))
    assert "FAILED: timed out" in table and "77600 steps x 100.0 ms" in table and "2.16 h" in table
