#!/usr/bin/env bash
# Teacher v2 (issue 14.3); kept for the commands in the model card. The recipe lives in train_teacher.sh:
#   scripts/train_teacher_v2.sh [RUN_DIR]   |   scripts/train_teacher_v2.sh --save [RUN_DIR]
exec "$(dirname "$0")/train_teacher.sh" v2 "$@"
