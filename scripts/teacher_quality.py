#!/usr/bin/env python
"""Offline quality figures of a digits StyleGAN2, for its model card.

Uses the shipped digits judge (``gandistill/assets/digits-judge``, see :mod:`gandistill.gan.judge`):

* ``gan score`` figures: Frechet distance and KID between the digits train split and ``--n`` samples
  in the judge's 128-d feature space (FID needs Inception weights: pass ``--inception PATH``);
* coverage: the class histogram of the judge's labels on generated samples (G_ema, noise const,
  psi 1), its smallest class share and normalised entropy, and the share of confident labels
  (max softmax > 0.9); the same figures on the real test split are the reference;
* for a reference point, the FD/KID between the real train and the real test split.

usage: python scripts/teacher_quality.py [CKPT] [--n 2000] [--out quality.json]
       (CKPT defaults to the bundled teacher; a GAN run folder uses its latest snapshot)
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt", nargs="?", default=None)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--inception", default=None)
    ap.add_argument("--out", default=None, help="write the JSON here too")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from gandistill.data import load_all, load_dataset
    from gandistill.gan.judge import label_stats, load_judge, predict
    from gandistill.gan.score import score_generator, score_images

    t0 = time.time()
    res = score_generator(args.ckpt, n=args.n, seed=args.seed, inception=args.inception)
    xtr, _ = load_all(load_dataset("digits", split="train"))
    xte, _ = load_all(load_dataset("digits", split="test"))
    ref = score_images(xtr, xte, inception=args.inception)
    judge = load_judge()
    report = {
        **res,
        "real_test_labels": label_stats(predict(judge.model, xte)),
        "reference_real_train_vs_test": {k: ref[k] for k in ("fd", "kid", "kid_std", "n_real", "n_fake")},
        "seconds": round(time.time() - t0, 1),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
