"""``knn``: weighted cosine kNN, ``t = 0.1``; ``k`` defaults to 200 (paper) for >= 10k train items,
20 below (:func:`gandistill.evaluation.knn.default_knn_k`)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from gandistill.evaluation.knn import knn_features
from gandistill.evaluation.probes.base import Probe, ProbeInput, Result, register_probe


@register_probe("knn")
class KNN(Probe):
    """weighted cosine kNN on the frozen features"""

    order = 1
    default = True
    headline = 2

    def check_config(self, cfg: Any) -> None:
        if cfg.knn_k is not None and cfg.knn_k < 1:
            raise ValueError(f"knn_k must be >= 1 (or None for the default rule), got {cfg.knn_k}")

    def run(self, data: ProbeInput) -> Tuple[Optional[Result], List[str]]:
        cfg = data.config
        return knn_features(data.train_feats.to(cfg.device), data.train_labels, data.test_feats, data.test_labels,
                            k=cfg.knn_k, t=cfg.knn_t, num_classes=data.num_classes), []

    def columns(self, results: Sequence[Result]) -> List[Tuple[str, str]]:
        ks = sorted({r["k"] for r in results})
        return [("knn", f"kNN-{ks[0]}" if len(ks) == 1 else "kNN")] if ks else []

    def caption(self, cfg: Any) -> str:
        return f"kNN: cosine, t={cfg.knn_t:g}"

    def metrics(self, result: Result) -> Dict[str, float]:
        return {f"knn{result['k']}": float(result["top1"])}
