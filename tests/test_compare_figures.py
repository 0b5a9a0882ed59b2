"""Fig. 2 (`gandistill plot embed`) and Fig. 4 (`gandistill compare --figure 4`) on tiny inputs."""
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from gandistill.compare.embed import available_reducer, reduce_2d


def test_plot_embed_bundled_teacher(tmp_path):
    from gandistill.compare.embed import plot_embed

    res = plot_embed("bundled", str(tmp_path / "e.png"), n=60, reducer="pca")
    assert res["reducer"] == "pca"
    assert [p.split(")")[0] for p in res["panels"]] == ["(a", "(b", "(c"]      # h^d, w, h^g
    with Image.open(res["png"]) as im:
        assert im.size[0] > 3 * 300
        hexes = {"#%02x%02x%02x" % c for _, c in im.convert("RGB").getcolors(1 << 22)}
    from gandistill.compare.embed import PALETTE

    assert len(hexes & set(PALETTE)) >= 5          # the points are drawn, one colour per class


def test_pca_reducer_keeps_the_two_leading_directions():
    # two latent factors, each copied into four noisy features: after standardisation they are the
    # two leading principal directions, so the 2-D output must explain both (regression R^2)
    g = torch.Generator().manual_seed(0)
    f = torch.randn(200, 2, generator=g)
    x = torch.cat([f[:, :1].repeat(1, 4), f[:, 1:].repeat(1, 4)], 1) + 0.1 * torch.randn(200, 8, generator=g)
    xy = reduce_2d(x, "pca").double()
    assert xy.shape == (200, 2)
    a = torch.cat([xy, torch.ones(200, 1, dtype=torch.float64)], 1)
    for j in range(2):
        y = f[:, j].double()
        fit = a @ torch.linalg.lstsq(a, y[:, None]).solution
        r2 = 1 - ((y[:, None] - fit) ** 2).sum() / ((y - y.mean()) ** 2).sum()
        assert r2 > 0.95
    assert available_reducer("pca") == "pca"
    with pytest.raises(ValueError, match="reducer"):
        available_reducer("mds")


def _fake_snapshots(root: Path, n: int):
    from gandistill.gan import bundled_teacher_path

    src = Path(bundled_teacher_path())
    for i in range(n):
        d = root / f"snapshot-{i * 1000:09d}"
        d.mkdir(parents=True)
        for f in src.iterdir():
            if f.is_file():
                (d / f.name).write_bytes(f.read_bytes())
    (root / "snapshot-000999999").mkdir()          # incomplete (no gandistill_sg2.json): ignored


def test_find_snapshots_spreads_over_the_run(tmp_path):
    from gandistill.compare.figure4 import Figure4Config, find_snapshots

    _fake_snapshots(tmp_path / "gan", 5)
    got = find_snapshots(Figure4Config(gan_run=str(tmp_path / "gan"), max_snapshots=3))
    assert [p.name for p in got] == ["snapshot-000000000", "snapshot-000002000", "snapshot-000004000"]
    # no --gan-run: the bundled teacher's own snapshots (16, 40, 72 kimg), oldest first
    bundled = find_snapshots(Figure4Config())
    assert [p.name for p in bundled] == ["snapshot-000016000", "snapshot-000040000", "snapshot-000072000"]
    _fake_snapshots(tmp_path / "one", 1)
    with pytest.raises(ValueError, match="at least 2"):
        find_snapshots(Figure4Config(gan_run=str(tmp_path / "one")))


def test_figure4_scores_each_snapshot_and_writes_the_plot(tmp_path, monkeypatch):
    from gandistill.compare.figure4 import Figure4Config, figure4, write_figure4
    from gandistill.engine import TrainingStopped

    _fake_snapshots(tmp_path / "gan", 2)
    seen = []

    def fake_score(ckpt, **kw):
        seen.append(Path(ckpt).name)
        return {"fd": 10.0 * len(seen), "kid": 0.01, "feature_space": "digits-judge"}

    def fake_fit(cfg, log=None):   # the training itself is covered by test_compare_run
        if cfg.method == "vicreg-real":                 # the SSL twin: no teacher
            assert cfg.teacher_ckpt is None
        else:
            assert Path(cfg.teacher_ckpt).name.startswith("snapshot-")
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        raise TrainingStopped("collapsed", reason="collapse", step=3)

    monkeypatch.setattr("gandistill.engine.fit", fake_fit)
    cfg = Figure4Config(gan_run=str(tmp_path / "gan"), out=str(tmp_path / "out"), device="cpu")
    res = figure4(cfg, log=lambda s: None, score_fn=fake_score)
    assert seen == ["snapshot-000000000", "snapshot-000001000"]
    assert [p.fd for p in res.points] == [10.0, 20.0] and {p.status for p in res.points} == {"collapsed"}
    files = write_figure4(res)
    assert "digits-judge" in Path(files["md"]).read_text() and Path(files["png"]).exists()
    again = figure4(cfg, log=lambda s: None, score_fn=lambda *a, **k: pytest.fail("rescored"))
    assert [p.fd for p in again.points] == [10.0, 20.0]
    saved = json.loads((tmp_path / "out" / "results" / "figure4" / "snapshot-000001000.json").read_text())
    assert saved["feature_space"] == "digits-judge"


def test_figure4_seeds_and_the_ssl_twin_train_once_and_give_paired_error_bars(tmp_path):
    from gandistill.compare.figure4 import Figure4Config, figure4, write_figure4
    from gandistill.gan import bundled_teacher_path

    tiny = dict(student="test_resnet", img_size=16, batch=8, steps=2, dim=32, proj_hidden=16, squeeze_hidden=32,
                log_every=1)
    snaps = Path(bundled_teacher_path()) / "snapshots"
    fds = {"snapshot-000016000": 30.0, "snapshot-000040000": 20.0, "snapshot-000072000": 10.0}
    cfg = Figure4Config(snapshots=str(snaps), seeds=[0, 1], out=str(tmp_path), device="cpu", probe_epochs=2,
                        probe_max_train=120, probe_max_test=60, fit_overrides=tiny)
    fake_score = lambda ckpt, **kw: {"fd": fds[Path(ckpt).name], "kid": 0.0, "feature_space": "digits-judge"}  # noqa: E731
    res = figure4(cfg, log=lambda s: None, score_fn=fake_score)
    assert [Path(p.snapshot).name for p in res.points] == list(fds)          # a folder: every snapshot in it
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == sorted(["vicreg-real", "vicreg-real@s1"] + [f"g-sns@{n}{s}" for n in fds for s in ("", "@s1")])
    for p in res.points:
        assert p.status == "ok" and p.seeds == [0, 1] and len(p.top1_seeds) == 2, p.notes
        assert p.twin_seeds == pytest.approx([res.points[0].twin_seeds[0], res.points[0].twin_seeds[1]])
        assert p.delta_seeds == pytest.approx([a - b for a, b in zip(p.top1_seeds, p.twin_seeds)])
        d = p.delta_seeds
        assert p.delta == pytest.approx(sum(d) / 2) and p.delta_std == pytest.approx(abs(d[0] - d[1]) / 2 ** 0.5)
    files = write_figure4(res, "gandistill compare --figure 4 --seeds 0,1")
    assert files["png_backend"] == "matplotlib" and Path(files["png"]).stat().st_size > 10_000
    md = Path(files["md"]).read_text()
    assert "SSL twin: `vicreg-real`" in md and "Sq & Sp − twin" in md
    stamps = {r: (tmp_path / "runs" / r / "checkpoint.json").stat().st_mtime_ns for r in runs}
    said = []
    again = figure4(cfg, log=said.append, score_fn=lambda *a, **k: pytest.fail("rescored"))
    assert sum("done before, skipped" in s for s in said) == 3
    assert [p.delta for p in again.points] == [p.delta for p in res.points]
    assert stamps == {r: (tmp_path / "runs" / r / "checkpoint.json").stat().st_mtime_ns for r in runs}


def test_figure4_cli_takes_seeds_and_a_snapshot_folder():
    from typer.testing import CliRunner

    from gandistill.cli import app
    from gandistill.gan import bundled_teacher_path

    snaps = Path(bundled_teacher_path()) / "snapshots"
    r = CliRunner().invoke(app, ["compare", "--figure", "4", "--seeds", "0,1,2", "--snapshots", str(snaps), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "seeds 0, 1, 2" in r.output and r.output.count("planned") == 3


def test_figure4_csv_records_portable_snapshot_paths(tmp_path, monkeypatch):
    """The CSV names a snapshot relative to the working folder or the package, never by this machine's
    absolute path when a portable one exists."""
    from gandistill.compare.figure4 import shown_path
    from gandistill.gan import bundled_teacher_path

    monkeypatch.chdir(tmp_path)
    snap = Path(bundled_teacher_path()).resolve() / "snapshots" / "snapshot-000016000"
    assert shown_path(str(snap)) == "gandistill/assets/digits-sg2/snapshots/snapshot-000016000"
    assert shown_path(str(tmp_path / "runs" / "s1")) == str(Path("runs") / "s1")
    assert shown_path("rel/s2") == "rel/s2"
    assert shown_path("/nowhere/else/s3") == "/nowhere/else/s3"
