#!/usr/bin/env bash
# The digits teacher candidates of issue 14.3, one core, in the background, resumable across sessions:
#   scripts/train_teacher.sh VERSION [RUN_DIR]          (VERSION v2 | v3 | v3b; default RUN_DIR runs/teacher-VERSION)
#   scripts/train_teacher.sh VERSION --save [RUN_DIR]   copy the newest snapshot and the logs into
#                                                       jobs/teacher-VERSION/ to commit before a session ends
# If RUN_DIR has no snapshot yet but jobs/teacher-VERSION/ (committed) has one, training continues from it.
#
# v2: 128 channels at every resolution, bf16 autocast (measured 2.1x per G+D step at 128 channels on an
#     AVX512-BF16 CPU, benchmarks/bench_gan_step.py), minibatch-std group 4.
# v3: v2 plus the coverage fixes v2's mode dropping pointed at (model card): PacGAN (D judges 2 images at
#     once, `--pack 2`) and minibatch-std group 2 (over the 16 packs of a batch of 32).
# v3b: v3 continued from its committed snapshot (jobs/teacher-v3) with G and D learning rates halved
#     (0.002 -> 0.001), after v3's FD stopped improving (40-56 from 40 to 136 kimg).
set -euo pipefail
cd "$(dirname "$0")/.."
VER=${1:?usage: scripts/train_teacher.sh v2|v3|v3b [--save] [RUN_DIR]}; shift
COMMON=(--data digits --split train --preset tiny --grey --clamp-fakes --range-weight 0.02 --range-margin 4
        --kimg 400 --batch 32 --gamma 0.5 --glr 0.002 --dlr 0.002 --net channel_base=4096 --net channel_max=128
        --ema-kimg 5 --augment ada --ada-kimg 100 --snap-kimg 8 --keep-snapshots 0 --tick-kimg 1 --seed 21
        --threads 1 --precision bf16)
case "$VER" in
  v2) EXTRA=(--net mbstd_group=4) ;;
  v3) EXTRA=(--net mbstd_group=2 --pack 2) ;;
  v3b) EXTRA=(--net mbstd_group=2 --pack 2 --glr 0.001 --dlr 0.001); FROM=jobs/teacher-v3 ;;
  *) echo "unknown teacher version '$VER' (v2 | v3 | v3b)" >&2; exit 2 ;;
esac
JOBS=jobs/teacher-$VER
if [ "${1:-}" = "--save" ]; then
  RUN=${2:-runs/teacher-$VER}
  SNAP=$(ls -d "$RUN"/snapshot-* | sort | tail -1)
  mkdir -p "$JOBS" && rm -rf "$JOBS"/snapshot-* "$JOBS"/grid-*.png   # (other files there, e.g. quality/, stay)
  cp -r "$SNAP" "$JOBS"/ && cp "$RUN"/metrics.jsonl "$RUN"/train.log "$RUN"/config.json "$JOBS"/
  cp "$RUN"/grid-*.png "$JOBS"/ 2>/dev/null || true
  echo "saved $SNAP to $JOBS/"; exit 0
fi
RUN=${1:-runs/teacher-$VER}
mkdir -p "$RUN"
FROM=${FROM:-$JOBS}
if ls -d "$JOBS"/snapshot-* >/dev/null 2>&1; then FROM=$JOBS; fi   # this version's own committed state comes first
if ! ls -d "$RUN"/snapshot-* >/dev/null 2>&1 && ls -d "$FROM"/snapshot-* >/dev/null 2>&1; then
  cp -r "$FROM"/snapshot-* "$RUN"/ && cp "$FROM"/metrics.jsonl "$FROM"/train.log "$RUN"/ 2>/dev/null || true
fi
RES=()
if ls -d "$RUN"/snapshot-* >/dev/null 2>&1; then RES=(--resume "$RUN"); fi
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1
nohup nice -n 10 python -m gandistill gan train "${COMMON[@]}" "${EXTRA[@]}" --out "$RUN" "${RES[@]}" \
  >> "$RUN/train.log" 2>&1 &
echo $! > "$RUN/train.pid"
echo "teacher $VER training in the background: pid $(cat "$RUN/train.pid"), log $RUN/train.log"
