#!/usr/bin/env bash
# Train the bundled default teacher: a `tiny` StyleGAN2 on the bundled `digits` train split (unconditional).
# Runs in the background; snapshots every 4 kimg so a partial run is usable. Stop it when the grids look
# good (or let it reach --kimg), then export with scripts/export_digits_teacher.py.
#   usage: scripts/train_digits_teacher.sh [RUN_DIR] [KIMG]
set -euo pipefail
RUN=${1:-runs/digits-sg2}
KIMG=${2:-300}
mkdir -p "$RUN"
export OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1
nohup python -m gandistill gan train --data digits --split train --config tiny --kimg "$KIMG" --out "$RUN" \
  --batch 32 --gamma 0.05 --ema-kimg 5 --augment ada --ada-kimg 100 --snap-kimg 4 --tick-kimg 1 \
  --keep-snapshots 6 --seed 0 --threads 2 > "$RUN/train.log" 2>&1 &
echo $! > "$RUN/train.pid"
echo "training in the background: pid $(cat "$RUN/train.pid"), log $RUN/train.log"
