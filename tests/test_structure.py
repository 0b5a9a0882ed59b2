"""The package's shape: no import circles, no function over 80 lines in gandistill/, scripts/ or
benchmarks/ (each exception is named with the change that removes it), and no engine code that branches
on an objective's or a probe's name."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "gandistill"

KNOWN_CIRCLES: set = set()
KNOWN_LONG: set = set()


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path, modules: set) -> set:
    """The gandistill modules ``path`` imports, anywhere in the file (``if TYPE_CHECKING`` too: a circle
    of types is a circle of the design)."""
    tree = ast.parse(path.read_text())
    me = _module_name(path)
    pkg = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for n in names:
            while n and n not in modules:
                n = n.rpartition(".")[0]
            if n and n != me:
                out.add(n)
    return out


def _graph():
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    mods = set(files)
    # a package's __init__ is only a face: "import a.b.c" runs a and a.b too, but that is no edge of the code
    return {m: {t for t in _imports(p, mods) if not (p.name != "__init__.py" and m.startswith(t + "."))}
            for m, p in files.items()}


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    found = [c for c in _cycles(_graph()) if c not in KNOWN_CIRCLES]
    assert not found, f"import circles: {[sorted(c) for c in found]}"


def _long_functions(tree: ast.AST, limit: int = 80):
    """(name, lines) of every function or method in ``tree`` longer than ``limit`` lines."""
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > limit]


def test_the_length_check_finds_a_long_method():
    body = "\n".join(f"        x{i} = {i}" for i in range(80))
    tree = ast.parse(f"class A:\n    def m(self):\n{body}\n\ndef short():\n    return 1\n")
    assert _long_functions(tree) == [("m", 81)]


def test_no_function_over_80_lines():
    long = []
    files = [p for d in (PKG, ROOT / "scripts", ROOT / "benchmarks") for p in d.rglob("*.py")]
    assert any(p.parent.name == "benchmarks" for p in files) and any(p.parent.name == "scripts" for p in files)
    for p in files:
        for name, n in _long_functions(ast.parse(p.read_text())):
            key = (str(p.relative_to(ROOT)), name)
            if key not in KNOWN_LONG:
                long.append(f"{key[0]}:{name} ({n} lines)")
    assert not long, long


@pytest.mark.parametrize("path", ["gandistill/methods.py", "gandistill/engine/step.py", "gandistill/engine/parts.py",
                                  "gandistill/engine/model.py", "gandistill/engine/plan.py",
                                  "gandistill/evaluation/suite.py", "gandistill/engine/probe.py"])
def test_no_branch_on_an_objective_or_probe_name(path):
    """Objectives and probes are registered classes: the engine and the suite never compare their names."""
    names = {"distill", "vicreg", "simsiam", "encoder", "probe", "fewshot", "knn", "fast", "linear"}
    bad = []
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        if isinstance(node, ast.Compare):
            consts = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
            if any(c in names for c in consts):
                bad.append(f"line {node.lineno}: {ast.unparse(node)}")
    assert not bad, bad
