#!/usr/bin/env python
"""Export a GAN run's snapshot as the bundled default teacher ``gandistill/assets/digits-sg2/``.

Writes G_ema (and, unless ``--no-d``, the discriminator D for the ``sg2-discriminator`` teacher) in fp16
safetensors (``save_sg2(half=True)``), keeps the training facts in the JSON
``meta`` (config, kimg, wall time, source snapshot), and renders ``samples.png`` (8x8 grid, seed 0)
from the exported fp16 weights, so the picture shows exactly what ships.

usage: python scripts/export_digits_teacher.py RUN_OR_SNAPSHOT [--dest gandistill/assets/digits-sg2]
                                              [--quality quality.json]   (from scripts/teacher_quality.py)
Also writes MODEL_CARD.md from the snapshot's facts and, if given, the quality figures.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import torch




def _hist(h) -> str:
    return " | ".join(str(v) for v in h)


def _train_command(cfg: dict) -> str:
    net = " ".join(f"--net {k}={v}" for k, v in (cfg.get("net_overrides") or {}).items())
    return (f"gandistill gan train --data digits --split train --preset {cfg.get('arch', 'tiny')} --grey --clamp-fakes"
            f" --range-weight {cfg.get('range_weight')} --range-margin {cfg.get('range_margin')}"
            f"{' --cond' if cfg.get('cond') else ''} --batch {cfg.get('batch')} --gamma {cfg.get('r1_gamma')}"
            f" --glr {cfg.get('glr')} --dlr {cfg.get('dlr')} {net} --ema-kimg {cfg.get('ema_kimg')}"
            f"{' --mixing ' + str(cfg.get('style_mixing_prob')) if cfg.get('style_mixing_prob') else ''}"
            f" --augment {cfg.get('augment')} --ada-kimg {cfg.get('ada_kimg')} --snap-kimg {cfg.get('snap_kimg')}"
            f" --seed {cfg.get('seed')} --threads {cfg.get('threads')}")


def _card_facts(meta: dict, g_kwargs: dict) -> list:
    """The card's title, network and training sections."""
    cfg = meta.get("training_config") or {}
    kimg, wall = meta.get("kimg"), meta.get("wall_s") or 0.0
    syn = g_kwargs.get("synthesis_kwargs", {})
    cond = bool(g_kwargs.get("c_dim"))
    mbstd = (cfg.get("net_overrides") or {}).get("mbstd_group", 4)
    return [
        f"# {meta.get('name', 'digits-sg2')}: {'a label-conditioned digits teacher (not self-supervised)' if cond else 'the bundled default teacher'}",
        "",
        "A tiny StyleGAN2 (generator G_ema and discriminator D, fp16 safetensors) trained by `gandistill gan train` on the",
        f"bundled `digits` data set (train split, 4000 images, 32x32, "
        f"{'class-conditional, c = one-hot digit' if cond else 'unconditional: G(z), no labels'}).",
        ("It is the teacher that the default, offline `gandistill fit` run distils from. No label reaches the "
         "student through it." if not cond else
         "It is kept to show label leakage: a student distilled from it has seen the labels through the teacher, and "
         "every table of such a run says 'label-conditioned teacher: not self-supervised'."),
        f"Load it with `load_sg2(\"{meta.get('asset_path', 'gandistill/assets/digits-sg2')}\")`.",
        "",
        "![samples](samples.png)",
        "",
        "`samples.png`: 64 samples, seed 0, psi 1, noise const, rendered from the shipped fp16 weights.",
        "",
        "## Network",
        "",
        f"- SG2 config `{cfg.get('arch', 'tiny')}`: z_dim={g_kwargs.get('z_dim')}, w_dim={g_kwargs.get('w_dim')}, "
        f"c_dim={g_kwargs.get('c_dim')}, mapping layers {g_kwargs.get('mapping_kwargs', {}).get('num_layers')}, "
        f"channel_base {syn.get('channel_base')}, channel_max {syn.get('channel_max')} (channels b4/b8/b16/b32 = "
        + "/".join(str(min(syn.get('channel_base', 0) // r, syn.get('channel_max', 0))) for r in (4, 8, 16, 32))
        + "), G architecture skip, 32x32 RGB output in [-1, 1].",
        f"- Discriminator: SG2 `tiny` (architecture orig, minibatch-std group {mbstd}), shipped as `D.safetensors`"
        " (fp16) for the `sg2-discriminator` teacher.",
        "",
        "## Training",
        "",
        f"- Command: `{_train_command(cfg)}`, stopped and exported at snapshot `{meta.get('source_snapshot')}`.",
        f"- Length: **{kimg} kimg**, wall time {wall / 60:.0f} min on 2 CPU cores shared with other jobs, no GPU.",
        f"- Objective: non-saturating logistic loss, lazy R1 (gamma {cfg.get('r1_gamma')}, every "
        f"{cfg.get('r1_interval')} D steps), Adam lr {cfg.get('glr')} betas {tuple(cfg.get('betas', ()))}, batch "
        f"{cfg.get('batch')}, G EMA {cfg.get('ema_kimg')} kimg with ramp-up {cfg.get('ema_rampup')}, style mixing "
        f"{cfg.get('style_mixing_prob')}, no path-length regularisation.",
        "- Greyscale data: the toRGB layers' output rows are tied after every G step (`--grey`, R = G = B"
        " exactly), and D sees G's images clamped to [-1, 1] with a straight-through gradient (`--clamp-fakes`)"
        " plus a soft penalty 0.02 * sum relu(|x| - 4) on raw outputs. Without these, runs collapsed to one digit"
        " within 10-20 kimg (colour and the exactly-black background were trivial real/fake cues).",
        f"- ADA: ops {', '.join(cfg.get('augment_ops', []))}; target r_t = {cfg.get('ada_target')}, speed "
        f"{cfg.get('ada_kimg')} kimg for p 0 -> 1; p at export {meta.get('augment_p') or 0:.3f}.",
        "",
        "## Quality (offline)",
        "",
    ]


def _card_quality(meta: dict, quality: Optional[dict]) -> list:
    """The card's quality section (the figures of scripts/teacher_quality.py)."""
    if quality is None:
        return ["Not measured yet (run `scripts/teacher_quality.py`)."]
    real, gen = quality["real_test_labels"], quality["generated_labels"]
    ref = quality["reference_real_train_vs_test"]
    return [
        f"Measured with `python scripts/teacher_quality.py {meta.get('asset_path', 'gandistill/assets/digits-sg2')} "
        f"--n {gen['n']}` (the figures of `gandistill gan score`) in the feature space of the shipped offline "
        f"digits judge (`gandistill/assets/digits-judge`: {quality.get('feature_dim')}-d penultimate features of a "
        f"small CNN, **{quality['judge_test_accuracy'] * 100:.1f}%** on the real digits test split). No Inception "
        "weights are on this machine, so this is not FID; `gan score --inception PATH` gives Inception-space figures.",
        "",
        f"| figure | generated (n = {gen['n']}) vs digits/train | reference: real digits/test vs digits/train |",
        "|---|---|---|",
        f"| Frechet distance (judge space) | {quality['fd']:.2f} | {ref['fd']:.2f} |",
        f"| KID (judge space) | {quality['kid']:.3f} +- {quality['kid_std']:.3f} | {ref['kid']:.3f} +- {ref['kid_std']:.3f} |",
        "",
        "| images | n | mean max-softmax confidence | share with confidence > 0.9 | smallest class share | "
        "classes with >= 3% | class-histogram entropy (1 = uniform) |",
        "|---|---|---|---|---|---|---|",
        f"| real test | {real['n']} | {real['mean_confidence']:.3f} | {real['share_confident_0.9']:.3f} | "
        f"{real['class_share_min']:.3f} | {real['classes_with_3pct']} | {real['class_entropy_norm']:.3f} |",
        f"| generated | {gen['n']} | {gen['mean_confidence']:.3f} | {gen['share_confident_0.9']:.3f} | "
        f"{gen['class_share_min']:.3f} | {gen['classes_with_3pct']} | {gen['class_entropy_norm']:.3f} |",
        "",
        "Class histogram of the judge's labels on generated samples (digits 0..9):",
        "",
        "| " + " | ".join(str(i) for i in range(10)) + " |",
        "|" + "---|" * 10,
        "| " + _hist(gen["class_histogram"]) + " |",
    ]


def model_card(meta: dict, g_kwargs: dict, quality: Optional[dict], notes: Optional[list] = None) -> str:
    """The MODEL_CARD.md text (config, kimg, wall time, command, samples, quality)."""
    lines = _card_facts(meta, g_kwargs) + _card_quality(meta, quality)
    if notes:
        lines += ["", *notes]
    lines += [
        "",
        "## Limits",
        "",
        "- Tiny network, short CPU training: strokes are sometimes broken or ambiguous; it is a stand-in that",
        "  makes the default run work offline, not a research-grade teacher (the paper's are 512-channel CIFAR/STL G).",
        "- Trained only on the digits train split; the test split stays unseen.",
        "- The weights are ours (trained from scratch by gandistill); no NVlabs weights or code are involved.",
        "",
    ]
    return "\n".join(lines)



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="GAN run folder (latest snapshot) or a snapshot folder")
    ap.add_argument("--dest", default=None)
    ap.add_argument("--no-d", action="store_true", help="ship G_ema only (no discriminator)")
    ap.add_argument("--quality", default=None, help="JSON written by scripts/teacher_quality.py --out")
    ap.add_argument("--notes", default=None, help="a markdown file appended to the quality section")
    args = ap.parse_args()

    from gandistill.gan import bundled_teacher_path, sample_grid
    from gandistill.gan.snapshot import resolve_snapshot
    from gandistill.teachers.stylegan2.checkpoint import load_sg2, save_sg2

    snap = resolve_snapshot(args.src)
    ck = load_sg2(snap, nets=("G_ema",) if args.no_d else ("G_ema", "D"))
    dest = Path(args.dest) if args.dest else bundled_teacher_path()
    src_meta = dict(ck.meta)
    src_meta.pop("path", None)
    meta = {
        "name": dest.name,
        "description": "tiny StyleGAN2 (G_ema, fp16) trained with gandistill gan train on the bundled digits "
                       f"train split, {'class-conditional' if ck.G_ema.c_dim else 'unconditional'}",
        "source_snapshot": snap.name,
        "asset_path": (f"gandistill/assets/{dest.name}" if dest.resolve().parent == bundled_teacher_path().parent
                       else str(dest)),
        "kimg": src_meta.get("kimg"),
        "augment_p": src_meta.get("augment_p"),
        "wall_s": src_meta.get("wall_s"),
        "dataset": src_meta.get("dataset"), "split": src_meta.get("split"),
        "training_config": src_meta.get("config"),
    }
    save_sg2(dest, G_ema=ck.G_ema, D=None if args.no_d else ck.D, meta=meta, half=True)
    sample_grid(dest, n=64, out=dest / "samples.png", seed=0)
    quality = json.loads(Path(args.quality).read_text()) if args.quality else None
    notes = Path(args.notes).read_text().splitlines() if args.notes else None
    (dest / "MODEL_CARD.md").write_text(model_card(meta, ck.kwargs["G_ema"], quality, notes))
    size = sum(p.stat().st_size for p in dest.iterdir() if p.is_file())
    print(json.dumps({"dest": str(dest), "from": str(snap), "kimg": meta["kimg"], "bytes": size}, indent=1))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
