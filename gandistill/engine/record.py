"""What a run folder says about itself in ``config.json``: the plan, the teacher, versions and the
git revision, the world size and device."""
from __future__ import annotations

import platform
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any, Dict, Optional

import timm
import torch

from gandistill.engine.distributed import Dist, rank_seeds
from gandistill.engine.plan import Plan, plan_dict


def git_rev() -> Optional[str]:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except Exception:
        return None


def versions() -> Dict[str, Any]:
    v = {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__}
    for mod in ("kornia", "safetensors", "numpy"):
        try:
            v[mod] = __import__(mod).__version__
        except Exception:
            pass
    try:
        v["gandistill"] = version("gandistill")
    except Exception:
        pass
    return v


def run_record(plan: Plan, train_len: int, teacher: Any, d: Dist, device: torch.device) -> Dict[str, Any]:
    """The ``config.json`` content (the caller adds the parameter counts once the parts exist)."""
    info = plan_dict(plan, train_len)
    info["run_dir"] = str(plan.run_dir)
    info["teacher"] = teacher.describe() if teacher is not None else None
    info["versions"], info["git_rev"] = versions(), git_rev()
    info["world_size"], info["device"] = d.world, str(device)
    info["seeds"] = {"per_rank": rank_seeds(plan.seed, d.world),
                     "real_order": f"torch.randperm with seed {plan.seed} * 1000003 + epoch, shared; rank r takes "
                                   "the r-th of every world-size consecutive slices"}
    return info
