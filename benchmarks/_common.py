"""Shared helpers of the benchmarks: machine facts, load, interleaved timing, tables.

Every benchmark times its variants in *interleaved rounds in one process* (round r runs variant A,
then B, then C, ...), so a change of machine load hits all variants alike; the tables show medians
over rounds and ratios to a reference variant, with the load average recorded at the start and end.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

# make `python benchmarks/x.py` work from a clean clone without installing
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def load() -> str:
    """The 1/5/15-minute load averages, e.g. ``"2.31/2.10/1.95"``."""
    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> Dict[str, str]:
    """Facts printed with every table (and copied into benchmarks/README.md)."""
    import torch

    facts = {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "cpu": f"{cpu_name()} ({os.cpu_count()} logical cores)",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": str(torch.get_num_threads()),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "load at start": load(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name()
    try:
        import kornia
        import timm

        facts["timm / kornia"] = f"{timm.__version__} / {kornia.__version__}"
    except Exception:  # pragma: no cover - optional in some benchmarks
        pass
    return facts


def print_facts(facts: Dict[str, str]) -> None:
    for k, v in facts.items():
        print(f"# {k}: {v}")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def interleaved(fns: Dict[str, Callable[[], object]], rounds: int, device: str = "cpu",
                warmup: int = 1, log: Optional[Callable[[str], None]] = None) -> Dict[str, List[float]]:
    """Seconds per call of every ``fns[name]``, ``rounds`` times in interleaved order (after ``warmup``)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
        if log is not None:
            log(f"round {r + 1}/{rounds} done (load {load()})")
    return times


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = "") -> str:
    """A GitHub-markdown table (also readable as plain text)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    width = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, width))) + " |"
    out = [title] if title else []
    out += [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in width) + "|"]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _fmt(c: object) -> str:
    if isinstance(c, float):
        if c != c:  # nan
            return "-"
        if abs(c) >= 100:
            return f"{c:.0f}"
        if abs(c) >= 1:
            return f"{c:.2f}"
        return f"{c:.3g}"
    return str(c)
