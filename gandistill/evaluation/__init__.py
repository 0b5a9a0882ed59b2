"""Evaluation of frozen representations: linear probe (paper protocol + fast path) and kNN.

The public entry point is :mod:`gandistill.evaluate`; this package holds its parts.
"""
from gandistill.evaluation.features import EvalDataError, extract_features
from gandistill.evaluation.knn import knn_eval, knn_predict
from gandistill.evaluation.linear import linear_probe, probe_features
from gandistill.evaluation.loading import CheckpointError, LoadedStudent, load_student

__all__ = [
    "EvalDataError", "extract_features", "knn_eval", "knn_predict", "linear_probe", "probe_features",
    "CheckpointError", "LoadedStudent", "load_student",
]
