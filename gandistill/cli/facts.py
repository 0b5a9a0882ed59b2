"""Facts about this installation (``gandistill doctor``) and the names users can select (``gandistill list``)."""
from __future__ import annotations

import fnmatch
import os
import platform
from typing import List, Tuple

import torch

import gandistill
from gandistill.augment import list_augmentations
from gandistill.data import digits_path, list_datasets
from gandistill.evaluation.probes import PROBES
from gandistill.gan import bundled_teacher_path
from gandistill.methods import METHODS
from gandistill.objectives import OBJECTIVES
from gandistill.students import list_students
from gandistill.teachers import TEACHERS
from gandistill.teachers.stylegan2.configs import SG2_CONFIGS


def _version(mod: str) -> str:
    try:
        m = __import__(mod)
        return getattr(m, "__version__", "installed")
    except Exception as e:  # pragma: no cover - depends on the environment
        return f"not importable ({type(e).__name__})"


def _device_facts() -> List[Tuple[str, str]]:
    facts = [("cuda available", str(torch.cuda.is_available()))]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            facts.append((f"cuda:{i}", f"{p.name}, {p.total_memory / 2**30:.1f} GiB, bf16={torch.cuda.is_bf16_supported()}"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        facts.append(("mps available", "True"))
    facts.append(("default device", "cuda" if torch.cuda.is_available() else "cpu"))
    facts.append(("torch threads", f"{torch.get_num_threads()} (cpu cores: {os.cpu_count()})"))
    return facts


def collect_facts() -> List[Tuple[str, str]]:
    """Everything a bug report needs: versions, devices, threads, offline state, bundled assets."""
    facts: List[Tuple[str, str]] = [
        ("gandistill", gandistill.__version__),
        ("python", platform.python_version()),
        ("platform", platform.platform()),
    ]
    for mod in ("torch", "torchvision", "timm", "kornia", "safetensors", "typer", "rich", "numpy"):
        facts.append((mod, _version(mod)))
    facts += _device_facts()
    offline = [k for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(k) == "1"]
    facts.append(("offline mode", ", ".join(offline) + " set" if offline else "HF_HUB_OFFLINE not set (nothing in gandistill downloads by default)"))
    facts.append(("custom CUDA ops", "none needed: StyleGAN2 ops are pure PyTorch"))
    try:
        p = digits_path()
        facts.append(("bundled digits", f"{p} ({p.stat().st_size / 1e6:.2f} MB)" if p.exists() else f"{p} (MISSING)"))
    except Exception as e:
        facts.append(("bundled digits", f"unavailable: {e}"))
    try:
        p = bundled_teacher_path()
        facts.append(("bundled teacher", str(p) if p.exists() else f"{p} (MISSING)"))
    except Exception as e:
        facts.append(("bundled teacher", f"unavailable: {e}"))
    try:
        facts.append(("stylegan2 configs", ", ".join(SG2_CONFIGS)))
    except Exception as e:
        facts.append(("stylegan2 configs", f"unavailable: {e}"))
    return facts


#: the kinds ``gandistill list`` knows
LIST_KINDS = ("teachers", "students", "methods", "objectives", "probes", "datasets", "augmentations", "sg2-configs")


def list_names(kind: str, pattern: str = "*") -> List[Tuple[str, str]]:
    """(name, description) pairs for ``gandistill list KIND``; KeyError for an unknown kind."""
    if kind == "teachers":
        reg = TEACHERS
        return [(n, reg.describe(n)) for n in reg.names() if fnmatch.fnmatch(n, pattern)]
    if kind == "methods":
        return [(n, METHODS.describe(n)) for n in METHODS.names() if fnmatch.fnmatch(n, pattern)]
    if kind in ("objectives", "probes"):
        reg = OBJECTIVES if kind == "objectives" else PROBES
        return [(n, reg.describe(n)) for n in reg.names() if fnmatch.fnmatch(n, pattern)]
    if kind == "students":
        return [(n, "") for n in list_students(pattern)]
    if kind == "datasets":
        return [(n, "") for n in list_datasets() if fnmatch.fnmatch(n, pattern)]
    if kind == "augmentations":
        return [(n, "") for n in list_augmentations() if fnmatch.fnmatch(n, pattern)]
    if kind == "sg2-configs":
        return [(n, str(c.get("description", "")) if isinstance(c, dict) else getattr(c, "description", ""))
                for n, c in SG2_CONFIGS.items() if fnmatch.fnmatch(n, pattern)]
    raise KeyError(f"unknown kind '{kind}'; choose one of: {', '.join(LIST_KINDS)}")
