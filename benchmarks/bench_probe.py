"""Linear probe: the paper's protocol vs the cached-feature fast probe (wall time and top-1), digits preset.

    python benchmarks/bench_probe.py --quick              # train sns 100 steps, probe at 30 epochs (minutes)
    python benchmarks/bench_probe.py                      # sns 250 steps (the default run), 90 epochs
    python benchmarks/bench_probe.py --student runs/sns-digits-...   # probe an existing run instead

* ``paper``  -- ``linear_probe(fast=False)``: the frozen backbone re-encodes RandomResizedCrop+flip views of
  the train set every epoch, a new Linear head trained by SGD (lr 30 x batch/256, cosine, 90 epochs);
* ``paper, linear-digits views`` -- the same protocol with the ``linear-digits`` preset for the train views
  (RandomResizedCrop 0.7-1, no flip): the paper's RRC(0.08-1) + flip turns many digits into other digits;
* ``fast``   -- ``linear_probe(fast=True)``: train and test features extracted once, no augmentation, the
  same head, optimiser and schedule on the cached (standardised) features.

Both probe the same student (a short ``sns`` run on the bundled digits unless ``--student``), on the digits
train (4000) / test (1000) splits, same seed. The two probes run alternately ``--rounds`` times in one
process (wall time: median; top-1: each probe is deterministic given the seed, so it repeats).
"""
from __future__ import annotations

import argparse
import os
import tempfile

import _common as C  # noqa: E402 (adds the repo root to sys.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 training steps, 30 probe epochs, 1 round")
    ap.add_argument("--student", default=None, help="run folder / checkpoint to probe (default: train one)")
    ap.add_argument("--train-steps", type=int, default=None, help="sns steps when training (default 250; quick 100)")
    ap.add_argument("--epochs", type=int, default=None, help="probe epochs (default 90, the paper's; quick 30)")
    ap.add_argument("--rounds", type=int, default=None, help="alternations of the two probes (default 2; quick 1)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    epochs = args.epochs or (30 if args.quick else 90)
    rounds = args.rounds or (1 if args.quick else 2)
    facts = C.machine()
    C.print_facts(facts)

    from gandistill.data import load_dataset
    from gandistill.evaluation import linear_probe
    from gandistill.evaluation.loading import load_student

    src = args.student
    if src is None:
        from gandistill.engine import FitConfig, fit

        steps = args.train_steps or (100 if args.quick else 250)
        src = os.path.join(tempfile.mkdtemp(prefix="gandistill-bench-probe-"), "run")
        print(f"# training sns for {steps} steps into {src} ...", flush=True)
        fit(FitConfig(method="sns", steps=steps, eval="none", out=src, progress=False), log=lambda s: None)
    student = load_student(src).model.eval()
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    out = {}

    import gandistill.augment as A

    def probe(name: str, fast: bool, preset: str = "linear"):
        def fn():
            saved = A.PRESETS["linear"]
            A.PRESETS["linear"] = A.PRESETS[preset]  # the probe's train views (evaluation/linear.py reads "linear")
            try:
                out[name] = linear_probe(student, train, test, epochs=epochs, fast=fast, seed=0)
            finally:
                A.PRESETS["linear"] = saved
        return fn

    fns = {"paper": probe("paper", False), "paper, linear-digits views": probe("paper, linear-digits views", False,
                                                                                 "linear-digits"),
           "fast": probe("fast", True)}
    times = C.interleaved(fns, rounds, warmup=0, log=lambda s: print(f"# {s}", flush=True))
    t_paper, t_fast = C.median(times["paper"]), C.median(times["fast"])
    rows = [(k, epochs, C.median(times[k]), t_paper / C.median(times[k]), out[k]["top1"], out[k]["best_top1"])
            for k in fns]
    print()
    print(C.table(["probe", "epochs", "wall s", "speed-up", "top-1", "best top-1"], rows,
                  title=f"linear probe of {src} on digits (train {len(train)} / test {len(test)}), "
                        f"{rounds} round(s), median wall time"))
    print(f"\nfast / paper: {t_paper / t_fast:.1f}x faster (target >= 10), "
          f"top-1 difference {out['fast']['top1'] - out['paper']['top1']:+.2f} points (target within 0.5); "
          f"vs the paper protocol with digit-safe views: "
          f"{out['fast']['top1'] - out['paper, linear-digits views']['top1']:+.2f} points")
    print(f"# load at end: {C.load()}")


if __name__ == "__main__":
    main()
