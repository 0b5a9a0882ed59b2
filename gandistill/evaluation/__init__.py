"""Evaluation of frozen representations: few-shot probe, kNN, linear probe (paper protocol + fast
path), and the probe suite that runs them side by side (with raw-pixel / random-init baselines).

The public entry point is :mod:`gandistill.evaluate`; this package holds its parts.
"""
from gandistill.evaluation.features import EvalDataError, extract_features
from gandistill.evaluation.fewshot import fewshot_probe, fit_logreg
from gandistill.evaluation.knn import default_knn_k, knn_eval, knn_features, knn_predict
from gandistill.evaluation.linear import linear_probe, probe_features
from gandistill.evaluation.loading import CheckpointError, LoadedStudent, load_student
from gandistill.evaluation.suite import (
    BANNER,
    RAW_PIXELS,
    Precomputed,
    ProbeConfig,
    ProbeRow,
    ProbeTable,
    closing_probes,
    parse_probes,
    probe_suite,
    probe_table_markdown,
    render_probe_table,
    teacher_is_conditional,
)

__all__ = [
    "EvalDataError", "extract_features", "knn_eval", "knn_predict", "linear_probe", "probe_features",
    "CheckpointError", "LoadedStudent", "load_student", "fewshot_probe", "fit_logreg", "default_knn_k",
    "knn_features", "BANNER", "RAW_PIXELS", "Precomputed", "ProbeConfig", "ProbeRow", "ProbeTable",
    "closing_probes", "parse_probes", "probe_suite", "probe_table_markdown", "render_probe_table",
    "teacher_is_conditional",
]
