"""``gandistill transfer``: the Table 3 protocol (frozen features, L-BFGS logistic regression, L2 chosen
on a validation split, refit on train + val) on two folders the test makes: bundled digits written into
train/ and test/ class folders, and colour patches of scikit-learn's sample photos in one folder."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gandistill.evaluation.transfer import (TransferConfig, logreg_transfer, parse_dataset, stratified_split,
                                            transfer)
from gandistill.io.errors import ConfigError


def test_stratified_split_holds_out_the_fraction_of_every_class():
    y = torch.tensor([0] * 10 + [1] * 20 + [2] * 2)
    keep, held = stratified_split(y, 0.2, seed=0)
    assert sorted(torch.cat([keep, held]).tolist()) == list(range(len(y)))
    assert [int((y[held] == c).sum()) for c in range(3)] == [2, 4, 1]
    assert torch.equal(held, stratified_split(y, 0.2, seed=0)[1])                   # fixed seed
    assert not torch.equal(held, stratified_split(y, 0.2, seed=1)[1])


def test_logreg_transfer_separates_blobs_and_picks_l2_on_validation():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=g) * 4

    def draw(n):
        y = torch.arange(n) % 3
        return centres[y] + torch.randn(n, 8, generator=g), y

    res = logreg_transfer(draw(60), draw(30), draw(60), grid=(1e-4, 1e-2, 1.0))
    assert res["top1"] > 95.0
    assert res["val_top1"] == max(res["val_by_l2"].values())                         # the best on val
    # noise labels: nothing to learn, so the chosen model cannot beat chance by much on fresh data
    x, _ = draw(300)
    y = torch.randint(0, 3, (300,), generator=g)
    noise = logreg_transfer((x[:150], y[:150]), (x[150:200], y[150:200]), (x[200:], y[200:]))
    assert noise["top1"] < 60.0


def test_dataset_specs():
    assert parse_dataset("folder:/a/b").kind == "folder"
    s = parse_dataset("torchvision:Flowers102:/data")
    assert (s.kind, s.name, str(s.root)) == ("torchvision", "Flowers102", "/data")
    with pytest.raises(ConfigError, match="folder:PATH"):
        parse_dataset("imagenet")


def _digits_folder(root, per_class=24):
    from gandistill.data import load_dataset

    for split in ("train", "test"):
        ds = load_dataset("digits", split=split)
        counts = {}
        for i in range(len(ds)):
            x, y = ds[i]
            if y > 2 or counts.get(y, 0) >= (per_class if split == "train" else per_class // 2):
                continue
            counts[y] = counts.get(y, 0) + 1
            d = root / split / f"digit{y}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray((x.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(d / f"{i}.png")
    return root


def _patch_folder(root, per_class=20):
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    for k, img in enumerate(load_sample_images().images):             # class = which photo the patch is from
        d = root / ["china", "flower"][k]
        d.mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            r, c = rng.integers(0, img.shape[0] - 48), rng.integers(0, img.shape[1] - 64)
            Image.fromarray(img[r:r + 48, c:c + 64]).save(d / f"{j}.png")       # not square: resized + cropped
    return root


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from gandistill.engine import FitConfig, fit
    from gandistill.teachers.stylegan2 import Generator

    out = tmp_path_factory.mktemp("run") / "run"
    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                  mapping_kwargs={"num_layers": 1}, synthesis_kwargs={"channel_base": 128, "channel_max": 16})
    fit(FitConfig(method="sns", student="test_resnet", img_size=16, batch=8, steps=2, dim=32, proj_hidden=16,
                  squeeze_hidden=16, out=str(out), eval="none", teacher_kwargs={"G": G}, device="cpu",
                  progress=False), log=lambda s: None)
    return out


def test_transfer_on_two_folders_prints_tables_and_the_average(tiny_run, tmp_path):
    pytest.importorskip("sklearn")
    digits = _digits_folder(tmp_path / "digits")
    patches = _patch_folder(tmp_path / "patches")
    from gandistill.cli import app

    r = CliRunner().invoke(app, ["transfer", str(tiny_run), "--dataset", f"folder:{digits}", "--dataset",
                                 f"folder:{patches}", "--out", str(tmp_path / "t")], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "transfer: digits" in r.output and "transfer: patches" in r.output and "average" in r.output
    data = json.loads((tmp_path / "t" / "transfer.json").read_text())
    models = {row["model"] for row in data["rows"]}
    assert models == {"test_resnet (distilled)", "random init"}
    for row in data["rows"]:
        assert 0.0 <= row["top1"] <= 100.0 and row["n_test"] > 0
        chance = 100.0 / row["classes"]
        assert row["top1"] > chance, row              # both tasks are easy for any conv features
    digits_rows = [r for r in data["rows"] if r["dataset"] == "digits"]
    assert {r["n_test"] for r in digits_rows} == {36}                             # its own test/ split
    patch_rows = [r for r in data["rows"] if r["dataset"] == "patches"]
    assert {r["n_train"] + r["n_val"] + r["n_test"] for r in patch_rows} == {40}   # one folder, split by seed
    avg = data["average"]["random init"]
    assert avg == pytest.approx(sum(r["top1"] for r in data["rows"] if r["model"] == "random init") / 2)
    assert (tmp_path / "t" / "transfer.csv").read_text().count("\n") == 5
    assert (tmp_path / "t" / "transfer.md").exists()


def test_transfer_uses_the_ssl_twin_when_the_summary_names_one(tiny_run, tmp_path):
    digits = _digits_folder(tmp_path / "digits", per_class=10)
    summary = json.loads((tiny_run / "summary.json").read_text())
    (tiny_run / "summary.json").write_text(json.dumps({**summary, "twin": {"run_dir": str(tiny_run)}}))
    try:
        res = transfer(TransferConfig(run=str(tiny_run), datasets=(f"folder:{digits}",), l2_grid=(1e-2,)))
    finally:
        (tiny_run / "summary.json").write_text(json.dumps(summary))
    assert res.models == ["test_resnet (distilled)", "random init", "SSL twin"]
    by = {r["model"]: r["top1"] for r in res.rows}
    assert by["SSL twin"] == pytest.approx(by["test_resnet (distilled)"])          # the same weights


def test_missing_folder_is_one_clear_error(tiny_run, tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        transfer(TransferConfig(run=str(tiny_run), datasets=(f"folder:{tmp_path / 'nope'}",)))


def test_torchvision_datasets_by_split_or_train_flag(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    from gandistill.evaluation.transfer import load_splits

    class Split:                      # like Flowers102 / DTD: split="train" | "val" | "test"
        def __init__(self, root, split="train", download=False):
            if split not in ("train", "val", "test"):
                raise ValueError(split)
            if not download and not (tmp_path / "there").exists():
                raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")
            self.n = {"train": 6, "val": 2, "test": 3}[split]

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return Image.new("L", (20, 10), color=i * 20), i % 2

    class Flag(Split):                # like CIFAR10: train=True | False
        def __init__(self, root, train=True, download=False):
            super().__init__(root, "train" if train else "test", download)

    monkeypatch.setattr(tvd, "FakeSplit", Split, raising=False)
    monkeypatch.setattr(tvd, "FakeFlag", Flag, raising=False)
    with pytest.raises(ConfigError, match="--download"):
        load_splits(parse_dataset(f"torchvision:FakeSplit:{tmp_path}"), 8, download=False)
    (tmp_path / "there").mkdir()
    s = load_splits(parse_dataset(f"torchvision:FakeSplit:{tmp_path}"), 8, download=False)
    assert {k: len(v) for k, v in s.items()} == {"train": 6, "val": 2, "test": 3}
    x, y = s["train"][1]
    assert x.shape == (3, 8, 8) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and y == 1
    f = load_splits(parse_dataset(f"torchvision:FakeFlag:{tmp_path}"), 8, download=False)
    assert {k: len(v) for k, v in f.items()} == {"train": 6, "test": 3}
    with pytest.raises(ConfigError, match="no dataset 'Nope'"):
        load_splits(parse_dataset(f"torchvision:Nope:{tmp_path}"), 8, download=False)
