"""A plug-in objective, method and probe defined OUTSIDE the package train and print by name:
``GANDISTILL_PLUGINS=module gandistill fit --method theirs`` with no change to gandistill, and the
plug-in probe shows up in the suite, fit's closing table, eval, compare and the learning-curve script."""
import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

PLUGIN = textwrap.dedent('''
    """A user's module: a new objective, a method that uses it and a new probe."""
    import torch
    from torch.nn import functional as F

    from gandistill.evaluation.probes import Probe, register_probe
    from gandistill.methods import MethodSpec, register_method
    from gandistill.objectives import Objective, register_objective


    @register_objective("plugin-align")
    class Align(Objective):
        """two views of the real images pulled together, with a variance hinge against collapse"""

        embedding_keys = ("z1",)

        def inputs(self, plan, parts, syn, x_real, cl):
            return {"v1": cl(parts.aug_real(x_real)), "v2": cl(parts.aug_real(x_real))}, {}

        def forward(self, student, head, v1=None, v2=None):
            return {"z1": student(v1), "z2": student(v2)}

        def loss(self, w, out, teacher=None, batch=None):
            z1, z2 = out["z1"], out["z2"]
            align = F.mse_loss(z1, z2)
            spread = F.relu(1.0 - z1.std(dim=0)).mean()
            return {"loss": align + spread, "align": align.detach(), "spread": spread.detach()}


    register_method(MethodSpec("plugin-theirs", "plugin-align", "a plug-in method on real images",
                               teacher=None, alpha=0.0, proj_layers=2, dim=32))


    @register_probe("centroid")
    class Centroid(Probe):
        """nearest class centroid (cosine) on the frozen features"""

        header = "nearest centroid"
        order = 50

        def run(self, data):
            f = F.normalize(data.train_feats.float(), dim=1)
            y = data.train_labels
            cent = torch.stack([f[y == c].mean(0) if (y == c).any() else torch.zeros(f.shape[1])
                                for c in range(data.num_classes)])
            pred = (F.normalize(data.test_feats.float(), dim=1) @ F.normalize(cent, dim=1).T).argmax(1)
            return {"top1": 100.0 * float((pred == data.test_labels).float().mean())}, []
''')


def _centroid_top1(ftr, ytr, fte, yte, n_cls):
    """Independent statement of the plug-in probe: argmax_c cos(x, mean of class c's unit features)."""
    f = ftr / ftr.norm(dim=1, keepdim=True)
    cent = torch.stack([f[ytr == c].mean(0) for c in range(n_cls)])
    cent = cent / cent.norm(dim=1, keepdim=True)
    g = fte / fte.norm(dim=1, keepdim=True)
    return 100.0 * float(((g @ cent.T).argmax(1) == yte).float().mean())


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The plug-in module written outside the package and loaded through GANDISTILL_PLUGINS."""
    from gandistill.evaluation.probes import PROBES
    from gandistill.methods import METHODS
    from gandistill.objectives import OBJECTIVES

    name = f"user_plugin_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GANDISTILL_PLUGINS", name)
    assert "plugin-theirs" in METHODS                  # the lookup itself loads the plug-in
    yield name
    METHODS.unregister("plugin-theirs")
    OBJECTIVES.unregister("plugin-align")
    PROBES.unregister("centroid")
    sys.modules.pop(name, None)
    import gandistill.plugins as plugins

    plugins._loaded.discard(name)


def test_a_missing_plugin_module_fails_clearly(monkeypatch):
    from gandistill.plugins import load_plugins

    with pytest.raises(ImportError, match="no_such_plugin_module.*GANDISTILL_PLUGINS"):
        load_plugins(["no_such_plugin_module"])


def test_cli_fit_trains_a_plugin_method_by_name_and_prints_the_plugin_probe(tmp_path):
    """The whole route from the shell: a fresh process, the plug-in named only in the environment."""
    (tmp_path / "their_plugin.py").write_text(PLUGIN)
    out = tmp_path / "run"
    env = dict(os.environ, GANDISTILL_PLUGINS="their_plugin", OMP_NUM_THREADS="1", COLUMNS="160",
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    cmd = [sys.executable, "-m", "gandistill", "fit", "--method", "plugin-theirs", "--student", "test_resnet",
           "--img-size", "16", "--batch", "8", "--steps", "3", "--eval", "knn,centroid", "--eval-max-train", "100",
           "--eval-max-test", "50", "--no-eval-random", "--out", str(out)]
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "nearest centroid" in res.stdout                     # the closing table prints the plug-in probe
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["method"]["name"] == "plugin-theirs" and cfg["method"]["objective"] == "plugin-align"
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines and all(k in lines[-1] for k in ("align", "spread"))         # the plug-in's own loss terms
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and 0 <= summary["eval"]["centroid"]["top1"] <= 100
    assert summary["probes"]["rows"][0]["centroid"]["top1"] == summary["eval"]["centroid"]["top1"]
    # without the plug-in the method is unknown, and the error names it
    env.pop("GANDISTILL_PLUGINS")
    bad = subprocess.run(cmd[:6] + ["--dry-run", "--out", str(tmp_path / "x")], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode != 0 and "plugin-theirs" in bad.stdout + bad.stderr


def test_plugin_probe_in_suite_table_eval_compare_and_learning_curve(plugin, tmp_path):
    from gandistill.compare.presets import ProbeSpec
    from gandistill.compare.probing import features_suite
    from gandistill.evaluation.probes import Probe, default_probes, probe_names
    from gandistill.evaluation.suite import (ProbeConfig, ProbeTable, Precomputed, parse_probes, probe_suite,
                                             probe_table_markdown)

    torch.manual_seed(0)
    n_cls, d = 3, 8
    means = torch.randn(n_cls, d) * 3
    ytr, yte = torch.arange(60) % n_cls, torch.arange(30) % n_cls
    ftr, fte = means[ytr] + torch.randn(60, d), means[yte] + torch.randn(30, d)

    class DS:
        def __init__(self, y):
            self.y, self.num_classes = y, n_cls

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return torch.zeros(3, 4, 4), int(self.y[i])

    assert "centroid" in probe_names() and "centroid" in parse_probes("all")
    assert parse_probes("knn,centroid") == ("knn", "centroid")
    t = probe_suite({"rep": Precomputed(ftr, fte, ytr, yte)}, DS(ytr), DS(yte), ProbeConfig(probes=("knn", "centroid")))
    want = _centroid_top1(ftr, ytr, fte, yte, n_cls)
    assert t.rows[0].centroid["top1"] == pytest.approx(want) and t.rows[0].results["centroid"]["top1"] == want
    md = probe_table_markdown(t)
    assert "| nearest centroid |" in md and f"{want:.1f}" in md
    back = ProbeTable.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back.rows[0].centroid["top1"] == pytest.approx(want)

    # compare's suite scorer runs the default probes: the plug-in joins once it says it is a default
    plugin_probe = sys.modules[plugin].Centroid
    assert not plugin_probe.default
    plugin_probe.default = True
    try:
        assert "centroid" in default_probes()
        m, _ = features_suite(lambda x: x, DS(ytr), DS(yte), ProbeSpec(kind="suite", epochs=2, knn_k=5, shots=(1,)),
                              device="cpu", seed=0)
    finally:
        plugin_probe.default = False
    assert issubclass(plugin_probe, Probe)
    assert {"shot1", "knn5", "fast", "centroid"} <= set(m)

    # the learning-curve script collects every named probe's metrics
    spec = importlib.util.spec_from_file_location("learning_curve", REPO / "scripts" / "learning_curve.py")
    lc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lc)
    from gandistill.evaluation.suite import RAW_PIXELS

    res = lc._probe({"raw pixels": RAW_PIXELS}, 32, probes="knn,centroid")
    assert set(res["raw pixels"]) == {"knn20", "centroid"} and lc._metric(res["raw pixels"], "knn") == res["raw pixels"]["knn20"]


def test_plugin_probe_in_evaluate(plugin, tmp_path):
    from gandistill.evaluate import evaluate

    res = evaluate("random:test_resnet", dataset="digits", protocol="centroid", max_train=100, max_test=50,
                   img_size=16)
    assert res["probes"] == ["centroid"] and 0 <= res["centroid"]["top1"] <= 100 and res["top1"] == res["centroid"]["top1"]
