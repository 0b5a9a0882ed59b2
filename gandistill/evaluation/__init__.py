"""Evaluation of frozen representations: few-shot probe, kNN, linear probe (paper protocol + fast
path), and the probe suite that runs them side by side (with raw-pixel / random-init baselines).

The entry point is :func:`evaluate` (:mod:`.run`; also ``gandistill.evaluate(...)`` and the module
alias ``gandistill.evaluate``). The probes are registered classes in :mod:`.probes`.

    run.py        evaluate(run_or_ckpt, ...): rebuild a student, probe it, one result dict
    splits.py     the labelled (train, test) splits, FirstN
    suite.py      probe_suite / closing_probes / ProbeTable and its renderings
    probes/       one file per probe (fewshot, knn, fast, linear) + the registry
    features.py   feature extraction;  fewshot.py, knn.py, linear.py, lars.py: the probes' maths
    loading.py    a student from a run folder / checkpoint / ``random:<name>``
    mmd.py        the representation MMD of Table 6
"""
from gandistill.evaluation.features import EvalDataError, extract_features
from gandistill.evaluation.fewshot import fewshot_probe, fit_logreg
from gandistill.evaluation.knn import default_knn_k, knn_eval, knn_features, knn_predict
from gandistill.evaluation.linear import linear_probe, probe_features
from gandistill.evaluation.loading import CheckpointError, LoadedStudent, load_student
from gandistill.evaluation.probes import PROBES, Probe, get_probe, probe_names, register_probe
from gandistill.evaluation.run import evaluate, evaluate_table
from gandistill.evaluation.splits import FirstN, load_eval_splits
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
    "evaluate", "evaluate_table", "FirstN", "load_eval_splits", "PROBES", "Probe", "get_probe", "probe_names",
    "register_probe",
    "EvalDataError", "extract_features", "knn_eval", "knn_predict", "linear_probe", "probe_features",
    "CheckpointError", "LoadedStudent", "load_student", "fewshot_probe", "fit_logreg", "default_knn_k",
    "knn_features", "BANNER", "RAW_PIXELS", "Precomputed", "ProbeConfig", "ProbeRow", "ProbeTable",
    "closing_probes", "parse_probes", "probe_suite", "probe_table_markdown", "render_probe_table",
    "teacher_is_conditional",
]
