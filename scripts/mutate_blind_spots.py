"""Mutate what mutmut 3 cannot see, and run the targeted tests on each mutant.

mutmut 3 only mutates functions that carry no decorator (``@staticmethod``/``@classmethod`` aside)
and never module- or class-level code. Here that leaves out the paper tables and run recipes of
gandistill/compare/tables.py, defaults such as DEFAULT_EPS or PAPER_K, dataclass field defaults, and
the ``@torch.no_grad()`` maths: ``knn_predict``, ``LARS.step``, ``update_ema``, ``tie_grey``,
``accuracy``, ``extract_features``. This script makes the same kind of small changes there:

* module/class level (outside any function): a number ``x -> x + 1``, a bool negated, a data string
  ``"s" -> "XXsXX"`` (not docstrings, ``__all__``, ``Literal[...]`` types, f-strings or the prose
  arguments ``note=``, ``caption=``, ``title=``);
* inside decorated functions: numbers ``+1``, bools negated, ``+ <-> -``, ``* <-> /``, ``** -> *``,
  ``// -> /``, ``< <-> <=``, ``> <-> >=``, ``== <-> !=``, ``in <-> not in``, ``is <-> is not``,
  ``and <-> or``, unary ``-x -> +x`` and ``not x -> +x``, augmented ``+= <-> -=``, ``*= <-> /=``.

Each mutant is the module re-printed by ``ast.unparse`` with one change, written into a scratch copy
of the tree; a forked child runs ``pytest -x -q <tests>`` there (torch and pytest are imported once).

    python scripts/mutate_blind_spots.py --group tables [--scratch /tmp/gandistill-blindmut] [--list]

Prints each surviving mutant and ``killed/total`` per module; exit code 0.
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
                   ["tests/test_mmd.py", "tests/test_maths_mutants_evaluation.py", "tests/test_mutants_evaluation.py",
                    "tests/test_fewshot.py", "tests/test_lars.py", "tests/test_evaluate.py"]),   # fast files first
    "tables": (["gandistill/compare/tables.py"],
               ["tests/test_compare_tables.py", "tests/test_maths_mutants_tables.py"]),
    "gan": (["gandistill/gan/score.py", "gandistill/gan/loss.py", "gandistill/gan/ada.py"],
            ["tests/test_gan_score.py", "tests/test_gan_loss.py", "tests/test_gan_ada.py",
             "tests/test_maths_mutants_gan.py"]),
    "bank": (["gandistill/teachers/bank.py"], ["tests/test_bank.py", "tests/test_mutants_bank.py"]),
    "objectives": (["gandistill/methods.py", "gandistill/objectives/base.py", "gandistill/objectives/distill.py",
                    "gandistill/objectives/encoder.py", "gandistill/objectives/probe.py",
                    "gandistill/objectives/simsiam.py", "gandistill/objectives/vicreg.py"],
                   ["tests/test_mutants_objectives.py"]),
    "formats": (["gandistill/io/formats.py"], ["tests/test_mutants_formats_schemas.py"]),   # schemas: module-level data
}
PROSE_KWARGS = {"note", "caption", "title", "help", "description"}

SKIP_FUNCS = {"gan": {"__call__"}}      # InceptionFeatures.__call__: image plumbing, not the FD/KID maths
PASS_DECORATORS = {"staticmethod", "classmethod"}   # mutmut 3 mutates these itself

SWAP_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
            ast.FloorDiv: ast.Div}
SWAP_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
            ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
SWAP_BOOL = {ast.And: ast.Or, ast.Or: ast.And}


def _docstring_nodes(tree: ast.AST) -> set:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                out.add(id(body[0].value))
    return out


def _skipped_strings(tree: ast.Module) -> set:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in PROSE_KWARGS:
            skip.update(id(n) for n in ast.walk(node.value))
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
            skip.update(id(n) for n in ast.walk(node.value))
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", getattr(node.value, "attr", "")) == "Literal":
            skip.update(id(n) for n in ast.walk(node.slice))   # typing only
        if isinstance(node, ast.JoinedStr):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _decorator_name(d: ast.expr) -> str:
    d = d.func if isinstance(d, ast.Call) else d
    return d.attr if isinstance(d, ast.Attribute) else getattr(d, "id", "")


def _regions(tree: ast.Module, skip_funcs: set) -> Iterator[Tuple[ast.AST, str]]:
    """(node, region) for every node outside functions ("level") or inside a decorated function ("body")."""
    stack: List[Tuple[ast.AST, str]] = [(n, "level") for n in tree.body]
    while stack:
        node, region = stack.pop(0)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and region == "level":
            decos = {_decorator_name(d) for d in node.decorator_list}
            if decos and not decos <= PASS_DECORATORS and node.name not in skip_funcs:
                stack.extend((n, "body") for n in node.body)
            continue
        if isinstance(node, ast.Lambda) and region == "level":
            continue
        yield node, region
        stack.extend((n, region) for n in ast.iter_child_nodes(node))


def _candidates(tree: ast.Module, skip_funcs: set) -> List[Tuple[ast.AST, int, str]]:
    """(node, sub-index, region) of every mutable spot, in a deterministic order."""
    docs, skip = _docstring_nodes(tree), _skipped_strings(tree)
    out = []
    for node, region in _regions(tree, skip_funcs):
        if isinstance(node, ast.Constant) and id(node) not in docs and id(node) not in skip:
            v = node.value
            if isinstance(v, bool) or (isinstance(v, (int, float)) and not isinstance(v, complex)):
                out.append((node, 0, region))
            elif isinstance(v, str) and v and region == "level":
                out.append((node, 0, region))
        elif region == "body":
            if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in SWAP_BIN:
                out.append((node, 0, region))
            elif isinstance(node, ast.Compare):
                out.extend((node, j, region) for j, op in enumerate(node.ops) if type(op) in SWAP_CMP)
            elif isinstance(node, ast.BoolOp):
                out.append((node, 0, region))
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
                out.append((node, 0, region))
    return out


def _mutate(node: ast.AST, j: int) -> None:
    if isinstance(node, ast.Constant):
        v = node.value
        node.value = (not v) if isinstance(v, bool) else (v + 1 if isinstance(v, (int, float)) else "XX" + v + "XX")
    elif isinstance(node, (ast.BinOp, ast.AugAssign)):
        node.op = SWAP_BIN[type(node.op)]()
    elif isinstance(node, ast.Compare):
        node.ops[j] = SWAP_CMP[type(node.ops[j])]()
    elif isinstance(node, ast.BoolOp):
        node.op = SWAP_BOOL[type(node.op)]()
    elif isinstance(node, ast.UnaryOp):
        node.op = ast.UAdd()


def mutants_of(source: str, skip_funcs: set) -> List[Tuple[str, str]]:
    """``[(label, mutated module source)]``."""
    n = len(_candidates(ast.parse(source), skip_funcs))
    out = []
    for i in range(n):
        tree = ast.parse(source)
        node, j, region = _candidates(tree, skip_funcs)[i]
        before = ast.unparse(node)
        _mutate(node, j)
        label = f"{node.lineno} [{region}]: {before} -> {ast.unparse(node)}"
        out.append((label, ast.unparse(tree)))
    return out


def run_tests(scratch: Path, tests: List[str], timeout: float) -> int:
    """Fork; the child runs pytest in ``scratch``; returns pytest's exit code (or -9 on timeout)."""
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.chdir(scratch)
            sys.path.insert(0, str(scratch))
            sys.dont_write_bytecode = True
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
    ap.add_argument("--scratch", default="/tmp/gandistill-blindmut")
    ap.add_argument("--list", action="store_true", help="only list the mutants")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--range", default=":", help="only the mutants A:B of the group (numbered across its modules "
                    "as --list prints them), to split a slow group over several processes")
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
    for heavy in ("numpy", "timm", "kornia"):   # third-party, never mutated: import once, not in every child
        try:
            __import__(heavy)
        except ImportError:
            pass

    if run_tests(scratch, tests, args.timeout) != 0:
        print("the tests fail without any mutant; fix them first", file=sys.stderr)
        return 1
    first, _, last = args.range.partition(":")
    lo, hi = int(first or 0), int(last) if last else None
    total = killed = index = 0
    for mod in modules:
        src = (ROOT / mod).read_text(encoding="utf-8")
        every = mutants_of(src, SKIP_FUNCS.get(args.group, set()))
        ms = [m for i, m in enumerate(every, index) if i >= lo and (hi is None or i < hi)]
        index += len(every)
        mod_killed = 0
        for label, mutated in ms:
            label = f"{mod}:{label}"
            if args.list:
                print(label)
                continue
            (scratch / mod).write_text(mutated, encoding="utf-8")
            # a mutant of the same size written within the same second would otherwise run from the
            # previous mutant's cached bytecode (pyc files are keyed by mtime in seconds and size)
            shutil.rmtree((scratch / mod).parent / "__pycache__", ignore_errors=True)
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
        print(f"blind spots, group {args.group}: {killed}/{total} killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
