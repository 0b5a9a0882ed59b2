"""Time one StyleGAN2-ADA training step (G main + D main, no R1) per network size, fp32 vs bf16 autocast
(and teacher v3's PacGAN D, pack 2).

Answers two questions for training the digits teacher on a CPU: what a wider G/D costs per image, and
whether bf16 autocast (AVX512-BF16 on this machine) speeds the step. Interleaved rounds, medians.

    OMP_NUM_THREADS=1 python benchmarks/bench_gan_step.py --batch 32 --rounds 5
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from gandistill.gan.ada import AdaAugment
from gandistill.gan.config import gan_config
from gandistill.gan.loop import build_networks, network_kwargs
from gandistill.gan.loss import StyleGAN2Loss

_128 = {"channel_base": 4096, "channel_max": 128}
SIZES = {  # name -> (net_overrides, PacGAN pack)
    "tiny (64 ch)": ({}, 1),
    "96 ch": ({"channel_base": 3072, "channel_max": 96}, 1),
    "128 ch": (_128, 1),
    "128 ch pack 2": ({**_128, "mbstd_group": 2}, 2),   # teacher v3's D (scripts/train_teacher.sh v3)
}


def make(name: str):
    net, pack = SIZES[name]
    cfg = gan_config("tiny", net_overrides=net, clamp_fakes=True, range_weight=0.02, pack=pack)
    G_kw, D_kw = network_kwargs(cfg, 32, 0)
    G, D = build_networks(G_kw, D_kw, "cpu")
    aug = AdaAugment(cfg.augment_ops, p=0.2)
    loss = StyleGAN2Loss(G, D, aug, r1_gamma=cfg.r1_gamma, clamp_fakes=True, range_weight=0.02, pack=pack)
    nparams = sum(p.numel() for p in G.parameters()) + sum(p.numel() for p in D.parameters())
    return G, D, loss, nparams


def step(G, D, loss, batch: int, bf16: bool) -> float:
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    z = torch.randn(batch, G.z_dim)
    c = torch.zeros(batch, 0)
    real = torch.rand(batch, 3, 32, 32) * 2 - 1
    t = time.perf_counter()
    G.requires_grad_(True)
    with ctx:
        lg, _ = loss.g_main(z, c)
    lg.backward()
    G.requires_grad_(False)
    D.requires_grad_(True)
    with ctx:
        ld, _, _ = loss.d_main(z, c, real, c)
    ld.backward()
    D.requires_grad_(False)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    nets = {n: make(n) for n in SIZES}
    times = {(n, b): [] for n in SIZES for b in (False, True)}
    for n in SIZES:  # warm-up
        for b in (False, True):
            step(*nets[n][:3], args.batch, b)
    for _ in range(args.rounds):
        for n in SIZES:
            for b in (False, True):
                times[(n, b)].append(step(*nets[n][:3], args.batch, b))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, {args.rounds} rounds")
    print(f"{'G+D size':14s} {'params':>9s} {'fp32 img/s':>11s} {'bf16 img/s':>11s} {'bf16/fp32':>10s}")
    base = None
    for n in SIZES:
        f32 = statistics.median(times[(n, False)])
        b16 = statistics.median(times[(n, True)])
        base = base or f32
        print(f"{n:14s} {nets[n][3]:9d} {args.batch / f32:11.1f} {args.batch / b16:11.1f} {f32 / b16:10.2f}x"
              f"   (cost vs tiny fp32 {f32 / base:.2f}x)")


if __name__ == "__main__":
    main()
