"""Scale-out on PyTorch's own engine, shown equal: 2 gloo processes with --gather train like one
process on the same global batch; per-rank seeds are distinct and recorded; rank 0 alone logs and
writes checkpoints.

To compare the curves step by step the two runs must see the same images: the real stream already
hands rank r the r-th slice of each global batch; the test teacher below does the same for the
synthetic batch (it draws the global batch and keeps its rank's rows), augmentation is off, and the
student / T_phi have no BatchNorm (GroupNorm, one-Linear projector, squeeze depth 1), whose
per-rank statistics would differ by design. What is left is exactly what DDP + gather must get right:
gradient averaging, the all-gather of the var/cov rows, the lr for the global batch.
"""
import json
import os
import socket

import pytest
import torch

from conftest import tiny_G

from gandistill.engine import FitConfig, fit
from gandistill.teachers import register_teacher
from gandistill.teachers.generator import GeneratorTeacher

pytestmark = pytest.mark.slow      # two spawned processes (a few seconds of imports each)
STEPS = 4


@register_teacher("test-global-batch", help="tiny G; each rank keeps its rows of one global synthetic batch",
                  overwrite=True)
class GlobalBatch(GeneratorTeacher):
    def __init__(self, ckpt=None, device="cpu", **kw):
        super().__init__(ckpt=ckpt, device=device, G=tiny_G(), noise_mode="const", **kw)
        self.world, self.rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
        self.gen = torch.Generator().manual_seed(123)

    def sample(self, n, generator=None):
        s = super().sample(n * self.world, generator=self.gen)
        rows = slice(self.rank * n, (self.rank + 1) * n)
        return type(s)(images=s.images[rows], targets=[t[rows] for t in s.targets])


def cfg(out, **kw):
    base = dict(method="sns", teacher="test-global-batch", student="test_resnet",
                student_kwargs={"norm_layer": "groupnorm1"}, proj_layers=1, squeeze_depth=1, augment="none",
                img_size=16, batch=16, steps=STEPS, dim=32, squeeze_hidden=32, base_lr=0.5, gather=True,
                out=str(out), eval="none", log_every=1, device="cpu", seed=0)
    base.update(kw)
    return FitConfig(**base)


def _worker(rank, world, port, root):
    import torch.distributed as dist

    import gandistill.engine.loop as loop

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    saves, real_save = [], loop.ckpt.save_checkpoint

    def counting_save(*a, **k):
        saves.append(a[1])
        return real_save(*a, **k)

    loop.ckpt.save_checkpoint = counting_save
    said = []
    # one process group for both runs (fit joins a group that exists and leaves it in place), so no
    # rank can reach a second rendezvous while the first one's store is still shutting down
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for name, gather in (("ddp", True), ("ddp-nogather", False)):
            fit(cfg(os.path.join(root, name), gather=gather), log=said.append)
    finally:
        dist.destroy_process_group()
    with open(os.path.join(root, f"rank{rank}.json"), "w") as f:
        json.dump({"log_lines": len(said), "checkpoint_steps": saves}, f)


def _losses(run):
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import torch.multiprocessing as mp

    root = tmp_path_factory.mktemp("ddp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.start_processes(_worker, args=(2, port, str(root)), nprocs=2, join=False, start_method="spawn")
    fit(cfg(root / "single"), log=lambda s: None)                    # meanwhile: one process, same global batch
    while not ctx.join():
        pass
    return root


def test_two_gloo_ranks_with_gather_follow_the_single_process_curve(runs):
    one, two, nog = _losses(runs / "single"), _losses(runs / "ddp"), _losses(runs / "ddp-nogather")
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, STEPS + 1))
    for a, b in zip(one, two):
        for k in ("loss", "squeeze/loss", "span/loss"):
            assert b[k] == pytest.approx(a[k], rel=2e-5), (a["step"], k)
    # the check has teeth: var/cov over each rank's 4 rows instead of the 8 gathered ones is off the curve
    assert max(abs(b["loss"] - a["loss"]) / abs(a["loss"]) for a, b in zip(one, nog)) > 1e-3
    from safetensors.torch import load_file

    w1, w2 = load_file(str(runs / "single" / "student.safetensors")), load_file(str(runs / "ddp" / "student.safetensors"))
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-3, atol=1e-5)


def test_per_rank_seeds_are_distinct_and_recorded(runs):
    seeds = json.loads((runs / "ddp" / "config.json").read_text())["seeds"]["per_rank"]
    assert [s["rank"] for s in seeds] == [0, 1]
    for key in ("torch", "z"):
        assert seeds[0][key] != seeds[1][key]
    cfg1 = json.loads((runs / "single" / "config.json").read_text())
    assert cfg1["seeds"]["per_rank"] == seeds[:1]                   # rank 0 is the single process
    r = json.loads((runs / "ddp" / "config.json").read_text())
    assert r["world_size"] == 2 and (r["resolved"]["batch_syn_per_rank"], r["resolved"]["batch_real_per_rank"]) == (4, 4)
    assert r["resolved"]["lr"] == cfg1["resolved"]["lr"] == pytest.approx(0.5 * 16 / 256)   # lr of the global batch


def test_only_rank_zero_logs_and_writes_checkpoints(runs):
    r0, r1 = (json.loads((runs / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r1 == {"log_lines": 0, "checkpoint_steps": []}
    assert r0["log_lines"] > 0 and r0["checkpoint_steps"] == [STEPS, STEPS]      # the last step of each run
    assert not list((runs / "ddp").glob(".*tmp*")) and not (runs / "ddp" / ".checkpoint-next").exists()
