#!/usr/bin/env bash
# Mutation testing of the maths modules with mutmut 3 (pip install -e '.[dev]'), group by group.
#
#   scripts/mutation.sh                 # every group below
#   scripts/mutation.sh losses gan      # some groups
#   MUT_JOBS=2 MUT_DIR=/tmp/mut scripts/mutation.sh evaluation
#   MUT_RERUN_SURVIVORS=1 scripts/mutation.sh losses   # after adding tests: re-check only the survivors
#
# Each group is mutated in its own scratch copy of the tree ($MUT_DIR/<group>, default
# /tmp/gandistill-mutation) whose [tool.mutmut] names only that group's modules and tests, so a mutant
# runs only the fast targeted tests of its module. Results stay in $MUT_DIR/<group>/mutants (mutmut
# caches them: a rerun after a test change re-checks only what changed); `cd $MUT_DIR/<group> &&
# mutmut show NAME` prints a mutant's diff. Runs at nice 15 with one thread per process.
# Equivalent mutants (not counted as gaps) are listed in CONTRIBUTING.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python)"
MUTMUT="$(dirname "$PY")/mutmut"
[ -x "$MUTMUT" ] || MUTMUT="$(command -v mutmut)"
MUT_DIR="${MUT_DIR:-/tmp/gandistill-mutation}"
JOBS="${MUT_JOBS:-2}"

# group -> "modules | tests [| mutant-name patterns]" (paths relative to the repository root; the optional
# patterns (fnmatch, as `mutmut run` takes them) restrict a group to the functions it is about)
declare -A GROUPS_=(
  [losses]="gandistill/losses/vicreg.py gandistill/losses/distill.py gandistill/losses/gather.py | tests/test_losses.py tests/test_maths_mutants_losses.py"
  [squeeze]="gandistill/squeeze.py | tests/test_squeeze.py"
  [evaluation]="gandistill/evaluation/mmd.py gandistill/evaluation/fewshot.py gandistill/evaluation/knn.py gandistill/evaluation/lars.py gandistill/evaluation/linear.py gandistill/evaluation/features.py | tests/test_mmd.py tests/test_fewshot.py tests/test_lars.py tests/test_evaluate.py tests/test_maths_mutants_evaluation.py | gandistill.evaluation.mmd.* gandistill.evaluation.knn.x_default_knn_k* gandistill.evaluation.knn.x_resolve_knn_k* gandistill.evaluation.knn.x_knn_features* gandistill.evaluation.lars.* gandistill.evaluation.fewshot.x_history_size* gandistill.evaluation.fewshot.x_zscore* gandistill.evaluation.fewshot.x_logreg_objective* gandistill.evaluation.fewshot.x_fit_logreg* gandistill.evaluation.fewshot.x_span_basis* gandistill.evaluation.fewshot.x_sample_shots* gandistill.evaluation.fewshot.x__draw_generator* gandistill.evaluation.linear.x_cosine_lr* gandistill.evaluation.linear.x_standardise* gandistill.evaluation.linear.x_new_head* gandistill.evaluation.linear.x_check_optimizer* gandistill.evaluation.linear.x_build_optimizer* gandistill.evaluation.linear.x__check_hparams* gandistill.evaluation.features.x_check_labels* gandistill.evaluation.features.x_normaliser*"
  [tables]="gandistill/compare/tables.py | tests/test_compare_tables.py tests/test_maths_mutants_tables.py"
  [gan]="gandistill/gan/score.py gandistill/gan/loss.py gandistill/gan/ada.py | tests/test_gan_score.py tests/test_gan_loss.py tests/test_gan_ada.py tests/test_maths_mutants_gan.py | gandistill.gan.score.x__sqrtm_psd* gandistill.gan.score.x_gaussian_stats* gandistill.gan.score.x_frechet_distance* gandistill.gan.score.x_fd_from_features* gandistill.gan.score.x_mmd2_unbiased_poly* gandistill.gan.score.x_kid* gandistill.gan.loss.* gandistill.gan.ada.*"
)
GROUPS_[io]="gandistill/io/errors.py gandistill/io/schema.py gandistill/io/files.py | tests/test_io_mutants.py | gandistill.io.errors.* gandistill.io.schema.* gandistill.io.files.x_user_path* gandistill.io.files.x_inside* gandistill.io.files.x_file_kind* gandistill.io.files.x_mib* gandistill.io.files.x__open_error* gandistill.io.files.x_open_regular* gandistill.io.files.x_read_bytes* gandistill.io.files.x_is_regular* gandistill.io.files.xǁRegionReaderǁ*"
ORDER=(losses squeeze evaluation tables gan io)
[ $# -gt 0 ] && ORDER=("$@")

toml_list() { local out="" x; for x in "$@"; do out+="\"$x\", "; done; echo "[${out%, }]"; }

for g in "${ORDER[@]}"; do
  spec="${GROUPS_[$g]:-}"
  [ -n "$spec" ] || { echo "unknown group '$g' (one of: ${!GROUPS_[*]})" >&2; exit 2; }
  IFS='|' read -r f_mods f_tests f_pats <<<"$spec"
  read -r -a mods <<<"$f_mods"
  read -r -a tests_all <<<"$f_tests"
  read -r -a pats <<<"${f_pats:-}"
  tests=(); for t in "${tests_all[@]}"; do [ -f "$ROOT/$t" ] && tests+=("$t"); done
  work="$MUT_DIR/$g"
  mkdir -p "$work"
  # fresh copy of the sources and tests (mutmut's own cache lives in $work/mutants and survives)
  rm -rf "$work/gandistill" "$work/tests"
  cp -r "$ROOT/gandistill" "$ROOT/tests" "$work/"
  find "$work/gandistill" "$work/tests" -name __pycache__ -prune -exec rm -rf {} +
  "$PY" - "$ROOT/pyproject.toml" "$work/pyproject.toml" "$(toml_list "${mods[@]}")" "$(toml_list "${tests[@]}")" <<'PYEOF'
import re, sys
src, dst, mods, tests = sys.argv[1:]
text = open(src).read()
text = re.sub(r"\n\[tool\.mutmut\].*?(?=\n\[|\Z)", "", text, flags=re.S)
text += ("\n[tool.mutmut]\nsource_paths = [\"gandistill\"]\n"
         f"only_mutate = {mods}\npytest_add_cli_args = [\"-p\", \"no:cacheprovider\", \"-q\", \"-x\"]\n"
         f"pytest_add_cli_args_test_selection = {tests}\nuse_git_change_detection = false\n"
         "do_not_mutate_patterns = ['^\\s*raise ']\n")
open(dst, "w").write(text)
PYEOF
  run_names=(${pats[@]+"${pats[@]}"})
  if [ -n "${MUT_RERUN_SURVIVORS:-}" ] && [ -f "$work/results.txt" ]; then
    mapfile -t run_names < <(grep -E ': (survived|no tests)$' "$work/results.txt" | sed -E 's/^ *//; s/: (survived|no tests)$//')
    [ ${#run_names[@]} -gt 0 ] || { echo "== $g: no survivors to re-check"; continue; }
  fi
  echo "== $g: ${mods[*]}"
  echo "   tests: ${tests[*]}"
  (cd "$work" && OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 PYTHONPATH= \
     nice -n 15 "$MUTMUT" run --max-children "$JOBS" ${run_names[@]+"${run_names[@]}"} >"$work/run.log" 2>&1) || {
    echo "mutmut run failed for $g, see $work/run.log" >&2; tail -20 "$work/run.log" >&2; exit 1; }
  (cd "$work" && "$MUTMUT" results --all true >"$work/results.txt" 2>/dev/null || true)
  "$PY" - "$work/results.txt" ${pats[@]+"${pats[@]}"} <<'PYEOF'
import collections, fnmatch, sys
pats = sys.argv[2:]
per = collections.defaultdict(collections.Counter)
surv = []
for line in open(sys.argv[1]):
    line = line.strip()
    if ": " not in line:
        continue
    name, status = line.rsplit(": ", 1)
    if pats and not any(fnmatch.fnmatch(name, p) for p in pats):
        continue
    module = name[: name.find(".x")] if ".x" in name else name
    per[module][status] += 1
    if status == "survived":
        surv.append(name)
for module, c in sorted(per.items()):
    total = sum(c.values())
    print(f"   {module:40s} total {total:4d}  killed {c['killed']:4d}  survived {c['survived']:3d}  "
          + "  ".join(f"{k} {v}" for k, v in sorted(c.items()) if k not in ("killed", "survived")))
if surv:
    print("   survivors:", " ".join(surv))
PYEOF
done
