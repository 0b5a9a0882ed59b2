#!/usr/bin/env python
"""Export a GAN run's snapshot as the bundled default teacher ``gandistill/assets/digits-sg2/``.

Writes G_ema only, in fp16 safetensors (``save_sg2(half=True)``), keeps the training facts in the JSON
``meta`` (config, kimg, wall time, source snapshot), and renders ``samples.png`` (8x8 grid, seed 0)
from the exported fp16 weights, so the picture shows exactly what ships.

usage: python scripts/export_digits_teacher.py RUN_OR_SNAPSHOT [--dest gandistill/assets/digits-sg2]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="GAN run folder (latest snapshot) or a snapshot folder")
    ap.add_argument("--dest", default=None)
    args = ap.parse_args()

    from gandistill.gan import bundled_teacher_path, sample_grid
    from gandistill.gan.snapshot import resolve_snapshot
    from gandistill.teachers.stylegan2.checkpoint import load_sg2, save_sg2

    snap = resolve_snapshot(args.src)
    ck = load_sg2(snap, nets=("G_ema",))
    dest = Path(args.dest) if args.dest else bundled_teacher_path()
    src_meta = dict(ck.meta)
    src_meta.pop("path", None)
    meta = {
        "name": "digits-sg2",
        "description": "tiny StyleGAN2 (G_ema, fp16) trained with gandistill gan train on the bundled digits "
                       "train split, unconditional; the default offline teacher",
        "source_snapshot": snap.name,
        "kimg": src_meta.get("kimg"),
        "augment_p": src_meta.get("augment_p"),
        "wall_s": src_meta.get("wall_s"),
        "dataset": src_meta.get("dataset"), "split": src_meta.get("split"),
        "training_config": src_meta.get("config"),
    }
    save_sg2(dest, G_ema=ck.G_ema, meta=meta, half=True)
    sample_grid(dest, n=64, out=dest / "samples.png", seed=0)
    size = sum(p.stat().st_size for p in dest.iterdir() if p.is_file())
    print(json.dumps({"dest": str(dest), "from": str(snap), "kimg": meta["kimg"], "bytes": size}, indent=1))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
