#!/usr/bin/env bash
# Train the bundled default teacher: a `tiny` StyleGAN2 on the bundled `digits` train split.
# Runs in the background; snapshots every 4 kimg so a partial run is usable. Stop it (kill the pid in
# RUN/train.pid) when the grids look good or the time is up, then export:
#   python scripts/teacher_quality.py RUN --out RUN/quality.json
#   python scripts/export_digits_teacher.py RUN --quality RUN/quality.json
# usage: scripts/train_digits_teacher.sh [RUN_DIR] [KIMG] [extra gan-train flags, e.g. --cond]
set -euo pipefail
RUN=${1:-runs/digits-sg2}
KIMG=${2:-300}
shift 2 || true
mkdir -p "$RUN"
export OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1
# --grey: digits are greyscale, so G's toRGB rows are tied (R=G=B); without it colour is a trivial
#         real/fake cue for D. --clamp-fakes: D sees G's images clamped to [-1,1] (straight-through
#         gradient) as every consumer of the teacher clamps them; without it the exact black background
#         of MNIST-like data is a second trivial cue. Both kept runs from collapsing to one digit early.
# --range-weight 0.02 --range-margin 4: a soft penalty that keeps the raw outputs within about +-4
#         (with no penalty they drift to +-500; with margin 1.5 / weight 0.1 D won again).
nohup python -m gandistill gan train --data digits --split train --preset tiny --grey --clamp-fakes \
  --range-weight 0.02 --range-margin 4 \
  --kimg "$KIMG" --out "$RUN" --batch 32 --gamma 0.5 --glr 0.002 --dlr 0.002 --net mbstd_group=8 \
  --ema-kimg 5 --augment ada --ada-kimg 100 --snap-kimg 4 --tick-kimg 1 --keep-snapshots 8 --seed 9 \
  --threads 2 "$@" > "$RUN/train.log" 2>&1 &
echo $! > "$RUN/train.pid"
echo "training in the background: pid $(cat "$RUN/train.pid"), log $RUN/train.log"
