"""Kornia augmentation presets: per-sample vs batch-shared parameters, images/s.

    python benchmarks/bench_augment.py --quick       # batch 32 and 256, every preset (seconds)
    python benchmarks/bench_augment.py --batch 32 128 512 --rounds 20

``build_augment(preset, 32, mean, std, shared=...)`` on a float batch of 32x32 images (the digits /
CIFAR size, input range "gan" as for generator outputs), timed in interleaved rounds in one process.
``shared`` draws one set of random parameters for the whole batch (SnS's ``--shared-aug``); per-sample
(the default) draws one per image.
"""
from __future__ import annotations

import argparse

import _common as C  # noqa: E402 (adds the repo root to sys.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="batch 32 and 256, 10 rounds")
    ap.add_argument("--batch", type=int, nargs="+", default=None, help="default 32 128 512")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    import torch

    from gandistill.augment import build_augment, list_augmentations

    if args.threads:
        torch.set_num_threads(args.threads)
    batches = args.batch or ([32, 256] if args.quick else [32, 128, 512])
    rounds = args.rounds or (10 if args.quick else 20)
    C.print_facts(C.machine(args.device))
    presets = [p for p in list_augmentations() if p != "none"]
    rows = []
    for n in batches:
        x = torch.rand(n, 3, args.size, args.size, device=args.device) * 2 - 1
        fns = {}
        for p in presets:
            for shared in (False, True):
                aug = build_augment(p, args.size, (0.5,) * 3, (0.25,) * 3, input_range="gan", shared=shared)
                fns[(p, shared)] = (lambda a: (lambda: a(x)))(aug)
        times = C.interleaved(fns, rounds, args.device)
        for p in presets:
            per, sh = C.median(times[(p, False)]), C.median(times[(p, True)])
            rows.append((n, p, n / per, n / sh, per / sh, 1000 * per))
    print()
    print(C.table(["batch", "preset", "per-sample img/s", "shared img/s", "shared speed-up", "per-sample ms"], rows,
                  title=f"Kornia augmentation, {args.size}x{args.size}, {args.device}, threads {torch.get_num_threads()}, "
                        f"{rounds} interleaved rounds, median"))
    print(f"# load at end: {C.load()}")


if __name__ == "__main__":
    main()
