"""Load a script of the repository (``scripts/``, ``benchmarks/``: files, not package modules) as a module."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script(rel_path: str, name: str):
    """``ROOT / rel_path`` executed as a fresh module called ``name``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / rel_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
