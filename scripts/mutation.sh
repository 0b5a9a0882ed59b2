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

# One file per group: scripts/mutation_groups/<group>.txt, whose non-comment lines are the modules to mutate,
# the targeted tests and (optional) mutant-name patterns that restrict the group to some functions.
GDIR="$ROOT/scripts/mutation_groups"
mapfile -t ORDER < <(ls "$GDIR" | sed -n 's/\.txt$//p')
[ $# -gt 0 ] && ORDER=("$@")

toml_list() { local out="" x; for x in "$@"; do out+="\"$x\", "; done; echo "[${out%, }]"; }

for g in "${ORDER[@]}"; do
  [ -f "$GDIR/$g.txt" ] || { echo "unknown group '$g' (one of: ${ORDER[*]})" >&2; exit 2; }
  mapfile -t spec < <(grep -v '^#' "$GDIR/$g.txt")
  f_mods="${spec[0]:-}"; f_tests="${spec[1]:-}"; f_pats="${spec[2]:-}"
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
