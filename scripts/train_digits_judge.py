#!/usr/bin/env python
"""Train the offline digits judge once and write it to gandistill/assets/digits-judge/.

usage: python scripts/train_digits_judge.py [--epochs 8] [--seed 0] [--out gandistill/assets/digits-judge]
"""
from __future__ import annotations

import argparse
import time

import torch

from gandistill.gan.judge import JUDGE_RECIPE, bundled_judge_path, save_judge, train_judge


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(bundled_judge_path()))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    model, acc = train_judge(a.epochs, a.seed)
    meta = {"recipe": JUDGE_RECIPE, "epochs": a.epochs, "seed": a.seed, "train": "digits/train (4000 images)",
            "test_accuracy": round(acc, 4), "feature_dim": 128, "seconds": round(time.time() - t0, 1),
            "command": f"python scripts/train_digits_judge.py --epochs {a.epochs} --seed {a.seed}"}
    save_judge(model, a.out, meta)
    print(meta)


if __name__ == "__main__":
    main()
