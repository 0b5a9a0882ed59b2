"""StyleGAN2 generator forward throughput: fused vs non-fused modulated convolution, side by side.

    python benchmarks/bench_sg2_forward.py                      # paper 'cifar' config, batch 64, fp32 CPU
    python benchmarks/bench_sg2_forward.py --batch 8 --repeats 2 --threads 2
    python benchmarks/bench_sg2_forward.py --device cuda --dtype bf16   # autocast on GPU

Random weights (the maths costs the same). The variants are timed in interleaved rounds in one
process so that machine noise hits them alike; the table shows the median images/s per variant
and the ratio to the fused path.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from gandistill.teachers.stylegan2 import Generator, sg2_kwargs

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="cifar", help="sg2 config name (tiny, cifar, stl, paper256)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds per variant (after one warm-up)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="autocast dtype (GPU only)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.dtype != "fp32" and device.type == "cpu":
        ap.error("--dtype bf16/fp16 is for GPUs; CPU runs fp32")

    torch.manual_seed(0)
    G_kwargs, _ = sg2_kwargs(args.config)
    G = Generator(**G_kwargs).eval().requires_grad_(False).to(device)
    z = torch.randn(args.batch, G.z_dim, device=device)
    variants = {"fused": True, "non-fused": False}

    def run(fused: bool) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad(), torch.autocast(device.type, dtype=DTYPES[args.dtype] or torch.float32,
                                             enabled=DTYPES[args.dtype] is not None):
            G(z, None, noise_mode="random", fused_modconv=fused)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for fused in variants.values():  # warm-up (allocator, kernel selection)
        run(fused)
    times = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fused in variants.items():
            times[name].append(run(fused))

    rate = {name: args.batch / statistics.median(ts) for name, ts in times.items()}
    print(f"StyleGAN2 G forward, config '{args.config}' ({G.img_resolution}px, "
          f"{max(G.feature_channels().values())} ch max), batch {args.batch}, {args.device} {args.dtype}, "
          f"threads {torch.get_num_threads()}, {args.repeats} rounds")
    print(f"{'variant':<12}{'images/s':>12}{'ms/batch':>12}{'vs fused':>10}")
    for name in variants:
        ms = 1000 * args.batch / rate[name]
        print(f"{name:<12}{rate[name]:>12.2f}{ms:>12.1f}{rate[name] / rate['fused']:>9.2f}x")


if __name__ == "__main__":
    main()
