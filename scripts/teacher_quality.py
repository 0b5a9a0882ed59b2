#!/usr/bin/env python
"""Offline quality figures of a digits StyleGAN2, for its model card.

Uses the shipped digits judge (``gandistill/assets/digits-judge``, see :mod:`gandistill.gan.judge`):

* ``gan score`` figures: Frechet distance and KID between the digits train split and ``--n`` samples
  in the judge's 128-d feature space (FID needs Inception weights: pass ``--inception PATH``);
* coverage: the class histogram of the judge's labels on generated samples (G_ema, noise const,
  psi 1), its smallest class share and normalised entropy, and the share of confident labels
  (max softmax > 0.9); the same figures on the real test split are the reference;
* for a reference point, the FD/KID between the real train and the real test split.

* with ``--diagnostics``: the teacher diagnostics (Fig. 2 in numbers, :mod:`gandistill.gan.diagnostics`):
  1/10-shot and kNN-20 accuracy of h^g, w, D features and raw pixels on ``--diag-n`` generated images
  labelled by the judge, for every CKPT; ``--model-card FILE`` writes their table into FILE between the
  markers ``<!-- teacher-diagnostics:start -->`` and ``<!-- teacher-diagnostics:end -->`` (appended once).

* with ``--trajectory``: no measuring; the CKPT arguments are quality JSONs written by ``--out`` (one
  per snapshot of a run) and the output is their Markdown table by training length, written into
  ``--model-card`` between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` (``--marker NAME``).

usage: python scripts/teacher_quality.py [CKPT ...] [--n 2000] [--out quality.json]
       python scripts/teacher_quality.py q*.json --trajectory [--model-card MD --marker v3-trajectory]
       python scripts/teacher_quality.py CKPT ... --diagnostics [--diag-n 4000] [--names a,b] [--model-card MD]
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
    ap.add_argument("ckpt", nargs="*", default=None)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--inception", default=None)
    ap.add_argument("--out", default=None, help="write the JSON here too")
    ap.add_argument("--diagnostics", action="store_true", help="the teacher diagnostics instead of FD/KID")
    ap.add_argument("--trajectory", action="store_true", help="tabulate quality JSONs (the CKPT arguments)")
    ap.add_argument("--marker", default="trajectory", help="with --trajectory --model-card: the block's name")
    ap.add_argument("--diag-n", type=int, default=4000)
    ap.add_argument("--names", default=None, help="comma list: the teachers' names in the table")
    ap.add_argument("--model-card", default=None, help="write the diagnostics table into this markdown file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ckpts = args.ckpt or [None]
    if args.diagnostics:
        diagnostics(ckpts, args)
        return
    if args.trajectory:
        table = trajectory_markdown([json.loads(Path(p).read_text()) for p in ckpts if p])
        print(table)
        if args.model_card:
            write_block(Path(args.model_card), args.marker, table)
        return
    if len(ckpts) > 1:
        ap.error("FD/KID figures take one CKPT (several only with --diagnostics)")
    args.ckpt = ckpts[0]

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


START, END = "<!-- teacher-diagnostics:start -->", "<!-- teacher-diagnostics:end -->"


def _kimg(report: dict) -> float:
    """Training length of a report's snapshot, from its folder name ``snapshot-<nimg>``."""
    name = Path(report["checkpoint"]).name
    return int(name.split("-")[-1]) / 1000 if name.startswith("snapshot-") else float("nan")


def trajectory_markdown(reports) -> str:
    """The quality figures of a run's snapshots, one row each, by training length."""
    rows = ["| kimg | FD | KID | smallest class | classes >= 3 % | largest class | confident (> 0.9) |",
            "|---|---|---|---|---|---|---|"]
    for r in sorted(reports, key=_kimg):
        g = r["generated_labels"]
        rows.append(f"| {_kimg(r):g} | {r['fd']:.1f} | {r['kid']:.1f} | {100 * g['class_share_min']:.2f} % | "
                    f"{g['classes_with_3pct']} | {100 * max(g['class_histogram']) / g['n']:.1f} % | "
                    f"{100 * g['share_confident_0.9']:.1f} % |")
    return "\n".join(rows) + "\n"


def write_block(card: Path, name: str, body: str) -> None:
    """Put ``body`` between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``card`` (appended once)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = card.read_text() if card.exists() else ""
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    card.write_text(text)


def diagnostics(ckpts, args) -> None:
    from gandistill.gan.diagnostics import diagnostics_markdown, teacher_diagnostics

    names = args.names.split(",") if args.names else [Path(c).name if c else "digits-sg2" for c in ckpts]
    results = []
    for name, ck in zip(names, ckpts):
        t0 = time.time()
        results.append(teacher_diagnostics(ck, n=args.diag_n, seed=args.seed))
        print(f"# {name}: {time.time() - t0:.0f} s", flush=True)
    table = diagnostics_markdown(results, names)
    r0 = results[0]
    cmd = "python scripts/teacher_quality.py " + " ".join(str(c) for c in ckpts if c) + \
        f" --diagnostics --diag-n {args.diag_n}" + (f" --names {args.names}" if args.names else "")
    notes = [f"{name}: {n}" for name, r in zip(names, results) for n in r["notes"]]
    block = "\n".join([
        START, "",
        f"Measured with `{cmd}`: {r0['n']} generated images per teacher (seed {r0['seed']}), labelled by the shipped "
        f"digits judge; the first {r0['n_fit']} are the probes' train set, the other {r0['n_test']} their test set. "
        f"top-1 %; k-shot: L-BFGS logistic regression on k images per class, mean ± std over {r0['draws']} draws; "
        f"kNN: cosine, k={r0['knn_k']}, t=0.1. h^g: the pooled synthesis-block outputs (what `sg2-generator` "
        "distils); w: the mapping output; D: the discriminator's pooled multi-scale features; raw pixels: the "
        "same generated images.", "",
        table.rstrip(), "",
        *[f"- {n}" for n in notes], "", END])
    print(block)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    if args.model_card:
        card = Path(args.model_card)
        text = card.read_text() if card.exists() else ""
        if START in text and END in text:
            text = text[:text.index(START)] + block + text[text.index(END) + len(END):]
        else:
            text = text.rstrip() + "\n\n## Teacher diagnostics: how class-structured are its representations?\n\n" \
                + block + "\n"
        card.write_text(text)
        print(f"wrote {card}")


if __name__ == "__main__":
    main()
