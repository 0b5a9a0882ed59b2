#!/usr/bin/env python
"""Offline quality figure of a digits StyleGAN2: what a small digit classifier says about its samples.

1. Train a small CNN on the real ``digits`` train split (seeded) and report its accuracy on the real
   test split (so the judge itself is known to be good).
2. Generate ``--n`` samples from the generator (G_ema, noise const, psi 1), label them with the CNN and report
   * confidence: mean max-softmax probability, and the share of samples labelled with p > 0.9
     (the same figures on the real test split are the reference);
   * coverage: the class histogram of the labels, its normalised entropy (1 = perfectly uniform) and
     the number of classes that get at least 2% of the samples.
3. FID needs Inception weights; it is computed only if ``pytorch_fid``'s or torchvision's Inception weights
   are already on disk (never downloaded). Otherwise the JSON says why it is missing.

usage: python scripts/teacher_quality.py [CKPT] [--n 2000] [--out quality.json]
       (CKPT defaults to the bundled teacher; a GAN run folder uses its latest snapshot)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class DigitCNN(nn.Module):
    """conv16-pool-conv32-pool-conv64-pool-fc128-fc10 on 32x32 grey images (about 2.5 MMAC per image)."""

    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):  # x [N,3,H,W] in [0,1]
        return self.f(x.mean(1, keepdim=True) * 2 - 1)


def shift_augment(x: torch.Tensor, g: torch.Generator, max_shift: int = 3) -> torch.Tensor:
    """Random integer translation (zero fill) per sample, so the judge tolerates off-centre digits."""
    n, _, h, w = x.shape
    pad = F.pad(x, (max_shift,) * 4)
    sx = torch.randint(0, 2 * max_shift + 1, (n,), generator=g)
    sy = torch.randint(0, 2 * max_shift + 1, (n,), generator=g)
    return torch.stack([pad[i, :, sy[i]:sy[i] + h, sx[i]:sx[i] + w] for i in range(n)])


def train_judge(epochs: int = 5, seed: int = 0) -> tuple[nn.Module, float]:
    """The CNN trained on digits/train; returns (model, accuracy on digits/test)."""
    from gandistill.data import load_all, load_dataset

    xtr, ytr = load_all(load_dataset("digits", split="train"))
    xte, yte = load_all(load_dataset("digits", split="test"))
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = DigitCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * math.ceil(len(xtr) / 64))
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        for s in range(0, len(xtr), 64):
            i = perm[s:s + 64]
            loss = F.cross_entropy(model(shift_augment(xtr[i], g)), ytr[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    acc = (predict(model, xte).argmax(1) == yte).float().mean().item()
    return model, acc


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([F.softmax(model(x[s:s + 500]), 1) for s in range(0, len(x), 500)])


def label_stats(prob: torch.Tensor) -> dict:
    conf, lab = prob.max(1)
    hist = torch.bincount(lab, minlength=10).tolist()
    frac = torch.tensor(hist, dtype=torch.float) / len(lab)
    ent = -(frac[frac > 0] * frac[frac > 0].log()).sum().item() / math.log(10)
    return {"n": len(lab), "mean_confidence": round(conf.mean().item(), 4),
            "share_confident_0.9": round((conf > 0.9).float().mean().item(), 4),
            "class_histogram": hist, "class_entropy_norm": round(ent, 4),
            "classes_with_2pct": int((frac >= 0.02).sum())}


def inception_status() -> str:
    """Why FID is (not) computed: look for Inception weights already on disk."""
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    found = sorted(hub.glob("*inception*")) + sorted(hub.glob("pt_inception*")) if hub.is_dir() else []
    if found:
        return f"Inception weights found at {found[0]} (FID not implemented in this script yet)"
    return f"no Inception weights on disk (looked in {hub}); FID not computed (offline, nothing is downloaded)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt", nargs="?", default=None)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the JSON here too")
    ap.add_argument("--judge-cache", default=None, help="load the judge from / save it to this .pt file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from gandistill.data import load_all, load_dataset
    from gandistill.gan import bundled_teacher_path, generate_images
    from gandistill.gan.snapshot import latest_snapshot
    from gandistill.teachers.stylegan2.checkpoint import load_sg2

    ckpt = Path(args.ckpt) if args.ckpt else bundled_teacher_path()
    if ckpt.is_dir() and not (ckpt / "gandistill_sg2.json").exists():
        ckpt = latest_snapshot(ckpt) or ckpt
    t0 = time.time()
    cache = Path(args.judge_cache) if args.judge_cache else None
    if cache is not None and cache.is_file():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        judge = DigitCNN()
        judge.load_state_dict(saved["state_dict"])
        test_acc = float(saved["test_acc"])
    else:
        judge, test_acc = train_judge(args.epochs)
        if cache is not None:
            torch.save({"state_dict": judge.state_dict(), "test_acc": test_acc}, cache)
    xte, _ = load_all(load_dataset("digits", split="test"))
    G = load_sg2(ckpt, nets=("G_ema",)).G_ema.float().eval()
    fake = generate_images(G, args.n, seed=args.seed, c_dim=G.c_dim).add(1).div(2)
    report = {
        "checkpoint": str(ckpt),
        "judge": f"DigitCNN (3 conv + 2 fc) trained {args.epochs} epochs on digits/train with +-3 px shifts",
        "judge_test_accuracy": round(test_acc, 4),
        "real_test": label_stats(predict(judge, xte)),
        "generated": label_stats(predict(judge, fake)),
        "conditional": G.c_dim > 0,
        "fid": inception_status(),
        **({"judge_agrees_with_requested_class": round(
            (predict(judge, fake).argmax(1) == torch.arange(args.n) % G.c_dim).float().mean().item(), 4)}
           if G.c_dim else {}),
        "seconds": round(time.time() - t0, 1),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
