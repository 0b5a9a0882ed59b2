"""Teacher diagnostics (issue 14.2): on a tiny random G whose stand-in labeller's labels are a known
(linear) function of one representation, that representation ranks first; the CLI prints the table."""
import pytest
import torch
from typer.testing import CliRunner

from gandistill.gan.diagnostics import diagnostics_markdown, teacher_diagnostics
from gandistill.teachers.stylegan2 import Discriminator, Generator


def tiny_nets():
    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, mapping_kwargs={"num_layers": 2},
                  synthesis_kwargs={"channel_base": 128, "channel_max": 16})
    D = Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=128, channel_max=16)
    return G, D


def linear_labeller(rep: str, classes: int = 4):
    """Labels = argmax of a fixed random projection of the standardised representation ``rep``."""
    def label(images, reps):
        f = reps[rep]
        f = (f - f.mean(0)) / f.std(0).clamp_min(1e-6)
        proj = torch.randn(f.shape[1], classes, generator=torch.Generator().manual_seed(7))
        return (f @ proj).argmax(1)
    label.__name__ = f"linear-in-{rep}"
    return label


@pytest.mark.parametrize("rep", ["w", "h^g"])
def test_the_representation_the_labels_come_from_ranks_first(rep):
    G, D = tiny_nets()
    res = teacher_diagnostics(n=480, G=G, D=D, labeller=linear_labeller(rep), shots=(10,), draws=3)
    assert set(res["rows"]) == {"h^g", "w", "D", "raw pixels"} and res["n_fit"] == 360
    assert res["rows"]["w"]["dim"] == 16 and res["rows"]["raw pixels"]["dim"] == 3 * 16 * 16
    ten = {k: r["fewshot"]["10"]["mean"] for k, r in res["rows"].items()}
    knn = {k: r["knn"] for k, r in res["rows"].items()}
    assert max(ten, key=ten.get) == rep, ten
    assert max(knn, key=knn.get) == rep, knn
    assert ten[rep] > 60.0                                       # 4 classes: chance is ~25
    md = diagnostics_markdown([res], names=["tiny"])
    assert f"| tiny | {rep} |" in md and "10-shot" in md


def test_labels_that_ignore_the_images_give_chance_everywhere():
    G, D = tiny_nets()
    coin = lambda images, reps: torch.randint(0, 2, (len(images),), generator=torch.Generator().manual_seed(1))  # noqa: E731
    res = teacher_diagnostics(n=400, G=G, D=D, labeller=coin, shots=(10,), draws=3)
    for name, r in res["rows"].items():
        assert 35.0 < r["knn"] < 65.0, (name, r["knn"])


def test_gan_score_prints_the_diagnostics_table(tmp_path):
    from gandistill.cli import app

    out = tmp_path / "s.json"
    r = CliRunner().invoke(app, ["gan", "score", "--n", "100", "--diagnostics", "--diag-n", "240",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "teacher diagnostics" in r.output and "h^g" in r.output and "raw pixels" in r.output
    import json

    d = json.loads(out.read_text())["diagnostics"]
    assert d["labeller"] == "digits judge" and d["n"] == 240 and "D" in d["rows"]
