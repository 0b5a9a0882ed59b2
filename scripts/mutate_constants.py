"""Mutate the module-level constants that mutmut 3 leaves alone, and run the targeted tests on each.

mutmut 3 mutates only code inside functions (and only sees mutants of functions that run after the
test process has started), so module-level data is never mutated: the paper tables of
gandistill/compare/tables.py, RUNS' loss weights, DEFAULT_EPS, PAPER_K, dataclass defaults. This
script fills that gap with the same kind of small change:

* a number (outside any function body): ``x -> x + 1`` (and ``0.5 -> 1.5``), as mutmut does;
* a bool: negated;
* a string that is data (not a docstring, not ``__all__``, not the prose arguments ``note=``,
  ``caption=``, ``title=``): ``"s" -> "XXsXX"``.

Each mutant is written into a scratch copy of the tree, and a forked child runs
``pytest -x -q <tests>`` there (torch and pytest are imported once, in the parent).

    python scripts/mutate_constants.py --group tables [--scratch /tmp/gandistill-constmut] [--list]

Prints one line per surviving mutant and a summary ``killed/total``; exit code 0.
"""
from __future__ import annotations

import argparse
import ast
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Iterator, List, Tuple

ROOT = Path(__file__).resolve().parents[1]

GROUPS = {
    "losses": (["gandistill/losses/vicreg.py", "gandistill/losses/distill.py", "gandistill/losses/gather.py"],
               ["tests/test_losses.py", "tests/test_maths_mutants_losses.py"]),
    "squeeze": (["gandistill/squeeze.py"], ["tests/test_squeeze.py"]),
    "evaluation": (["gandistill/evaluation/mmd.py", "gandistill/evaluation/fewshot.py",
                    "gandistill/evaluation/knn.py", "gandistill/evaluation/lars.py",
                    "gandistill/evaluation/linear.py", "gandistill/evaluation/features.py"],
                   ["tests/test_mmd.py", "tests/test_fewshot.py", "tests/test_lars.py", "tests/test_evaluate.py",
                    "tests/test_maths_mutants_evaluation.py"]),
    "tables": (["gandistill/compare/tables.py"],
               ["tests/test_compare_tables.py", "tests/test_maths_mutants_tables.py"]),
    "gan": (["gandistill/gan/score.py", "gandistill/gan/loss.py", "gandistill/gan/ada.py"],
            ["tests/test_gan_score.py", "tests/test_gan_loss.py", "tests/test_gan_ada.py",
             "tests/test_maths_mutants_gan.py"]),
}
PROSE_KWARGS = {"note", "caption", "title", "help", "description"}

Mutant = Tuple[int, int, int, int, str, str]   # (line, col, end_line, end_col, old, new)


def _docstring_nodes(tree: ast.AST) -> set:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                out.add(id(body[0].value))
    return out


def _outside_functions(tree: ast.Module) -> Iterator[ast.AST]:
    """Every node not inside a function body (module and class level, decorators and defaults excluded)."""
    stack: List[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue  # mutmut's territory (including default arguments)
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _skipped_strings(tree: ast.Module) -> set:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in PROSE_KWARGS:
            skip.update(id(n) for n in ast.walk(node.value))
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            skip.update(id(n) for n in ast.walk(node.value))
        if isinstance(node, ast.JoinedStr):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def mutants_of(source: str) -> List[Mutant]:
    tree = ast.parse(source)
    docs, skip = _docstring_nodes(tree), _skipped_strings(tree)
    out: List[Mutant] = []
    for node in _outside_functions(tree):
        if not isinstance(node, ast.Constant) or id(node) in docs or id(node) in skip:
            continue
        v = node.value
        old = ast.get_source_segment(source, node)
        if old is None:
            continue
        if isinstance(v, bool):
            new = repr(not v)
        elif isinstance(v, (int, float)):
            new = repr(v + 1)
        elif isinstance(v, str) and v:
            new = repr("XX" + v + "XX")
        else:
            continue
        out.append((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, old, new))
    return sorted(out)


def apply(source: str, m: Mutant) -> str:
    lines = source.splitlines(keepends=True)
    line, col, end_line, end_col, _, new = m
    assert line == end_line, "multi-line constants are not mutated"
    text = lines[line - 1]
    b = text.encode("utf-8")
    lines[line - 1] = (b[:col] + new.encode("utf-8") + b[end_col:]).decode("utf-8")
    return "".join(lines)


def run_tests(scratch: Path, tests: List[str], timeout: float) -> int:
    """Fork; the child runs pytest in ``scratch``; returns pytest's exit code (or -9 on timeout)."""
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.chdir(scratch)
            sys.path.insert(0, str(scratch))
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            import pytest
            code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *tests])
        except BaseException:  # noqa: BLE001
            code = 99
        os._exit(int(code))
    t0 = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() - t0 > timeout:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return -9
        time.sleep(0.05)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group", required=True, choices=sorted(GROUPS))
    ap.add_argument("--scratch", default="/tmp/gandistill-constmut")
    ap.add_argument("--list", action="store_true", help="only list the mutants")
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()
    modules, tests = GROUPS[args.group]
    tests = [t for t in tests if (ROOT / t).exists()]
    scratch = Path(args.scratch) / args.group
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    for part in ("gandistill", "tests"):
        shutil.copytree(ROOT / part, scratch / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", scratch / "pyproject.toml")
    # heavy imports once in the parent, so each forked child only imports gandistill and the tests
    import pytest  # noqa: F401
    import torch  # noqa: F401

    if run_tests(scratch, tests, args.timeout) != 0:
        print("the tests fail without any mutant; fix them first", file=sys.stderr)
        return 1
    total = killed = 0
    for mod in modules:
        src = (ROOT / mod).read_text(encoding="utf-8")
        ms = mutants_of(src)
        mod_killed = 0
        for m in ms:
            label = f"{mod}:{m[0]}: {m[4]} -> {m[5]}"
            if args.list:
                print(label)
                continue
            (scratch / mod).write_text(apply(src, m), encoding="utf-8")
            code = run_tests(scratch, tests, args.timeout)
            if code == 0:
                print(f"SURVIVED {label}", flush=True)
            else:
                mod_killed += 1
        (scratch / mod).write_text(src, encoding="utf-8")
        total += len(ms)
        killed += mod_killed
        if not args.list:
            print(f"{mod}: {mod_killed}/{len(ms)} killed", flush=True)
    if not args.list:
        print(f"constants, group {args.group}: {killed}/{total} killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
