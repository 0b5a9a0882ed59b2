"""``fewshot``: k labelled images per class (k = 1 / 10 / 100), several seeded draws, mean and std;
L-BFGS logistic regression, nothing to tune (:func:`gandistill.evaluation.fewshot.fewshot_probe`)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from gandistill.evaluation.fewshot import fewshot_probe
from gandistill.evaluation.probes.base import Probe, ProbeInput, Result, register_probe


@register_probe("fewshot")
class FewShot(Probe):
    """k labelled images per class, L-BFGS logistic regression, mean and std over draws"""

    order = 0
    default = True
    headline = 3

    def check_config(self, cfg: Any) -> None:
        if not cfg.shots or min(cfg.shots) < 1:
            raise ValueError(f"shots must be positive integers, got {cfg.shots}")

    def run(self, data: ProbeInput) -> Tuple[Optional[Result], List[str]]:
        cfg = data.config
        res = fewshot_probe(data.train_feats, data.train_labels, data.test_feats, data.test_labels, shots=cfg.shots,
                            draws=cfg.draws, seed=cfg.seed, l2=cfg.l2, max_iter=cfg.fewshot_max_iter,
                            tol=cfg.fewshot_tol, num_classes=data.num_classes, device=cfg.device)
        return res, list(res["notes"])

    def top1(self, result: Result) -> Optional[float]:
        """The largest k's mean."""
        if not result.get("shots"):
            return None
        return float(result["shots"][max(result["shots"])]["mean"])

    def columns(self, results: Sequence[Result]) -> List[Tuple[str, str]]:
        shots = sorted({k for r in results for k in (*r["shots"], *r["skipped"])})
        return [(f"fewshot:{k}", f"{k}-shot") for k in shots]

    def cell(self, result: Optional[Result], key: str) -> str:
        if not result:
            return "-"
        k = int(key.split(":", 1)[1])
        res = result["shots"].get(k)
        if res is None:
            return "skipped" if k in result.get("skipped", {}) else "-"
        return f"{res['mean']:.1f} ± {res['std']:.1f}"

    def caption(self, cfg: Any) -> str:
        return (f"k-shot: k labelled images per class, mean ± std over {cfg.draws} draws, "
                f"L-BFGS logistic regression (l2 {cfg.l2:g})")

    def metrics(self, result: Result) -> Dict[str, float]:
        m: Dict[str, float] = {}
        for k, v in sorted(result.get("shots", {}).items(), key=lambda kv: int(kv[0])):
            m[f"shot{int(k)}"] = float(v["mean"])
            m[f"shot{int(k)}_std"] = float(v["std"])
        return m

    def to_json(self, result: Result) -> Result:
        out = dict(result)
        out["shots"] = {str(k): v for k, v in result["shots"].items()}
        out["skipped"] = {str(k): v for k, v in result["skipped"].items()}
        return out

    def from_json(self, result: Result) -> Result:
        out = dict(result)
        out["shots"] = {int(k): v for k, v in result.get("shots", {}).items()}
        out["skipped"] = {int(k): v for k, v in result.get("skipped", {}).items()}
        return out
