"""Evaluate a distilled (or random) student: few-shot, kNN and linear probes on a labelled dataset.

>>> from gandistill.evaluation import evaluate        # also gandistill.evaluate(...)
>>> evaluate("runs/sns-digits")                                     # doctest: +SKIP
>>> evaluate("runs/sns-digits", protocol="all", baselines=True)     # doctest: +SKIP
>>> evaluate("random:resnet10t", dataset="digits", protocol="knn")  # doctest: +SKIP

``gandistill eval RUN_OR_CKPT`` is a thin shell over :func:`evaluate`. Probes (``protocol``, a
comma-separated list; see :mod:`gandistill.evaluation.suite`): ``fewshot`` (k = 1/10/100 labelled
images per class, L-BFGS logistic regression, mean ± std over draws), ``knn`` (weighted cosine,
t = 0.1, k = 200 for >= 10k train items else 20), ``fast`` (cached-feature linear probe), ``linear``
(the paper protocol), ``all`` (``both``: the older spelling of fast + knn). The pieces
(:func:`fewshot_probe`, :func:`linear_probe`, :func:`knn_eval`, :func:`extract_features`,
:func:`probe_suite`) work on any frozen feature function and any dataset yielding ``(x in [0,1], y)``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from gandistill.evaluation.features import EvalDataError, extract_features
from gandistill.evaluation.fewshot import DEFAULT_DRAWS, DEFAULT_L2, DEFAULT_SHOTS, fewshot_probe
from gandistill.evaluation.knn import default_knn_k, knn_eval, knn_predict
from gandistill.evaluation.linear import linear_probe, probe_features
from gandistill.evaluation.loading import CheckpointError, LoadedStudent, load_student
from gandistill.evaluation.splits import FirstN, load_eval_splits
from gandistill.evaluation.suite import (BANNER, RAW_PIXELS, ProbeConfig, ProbeTable, closing_probes, parse_probes,
                                         probe_suite, protocol_words, teacher_is_conditional)

__all__ = [
    "evaluate", "evaluate_table", "linear_probe", "knn_eval", "knn_predict", "extract_features",
    "probe_features", "load_student", "LoadedStudent", "CheckpointError", "EvalDataError", "PROTOCOLS", "FirstN",
    "fewshot_probe", "probe_suite", "closing_probes", "ProbeConfig", "ProbeTable",
    "load_eval_splits", "default_knn_k", "BANNER", "DEFAULT_PROTOCOL",
]

PROTOCOLS = protocol_words()               # fewshot, knn, fast, linear, all, both (see protocol_words for plug-ins)
DEFAULT_PROTOCOL = "fewshot,knn,fast"
DEFAULT_DATASET = "digits"   # for random:<name> baselines with no run config to read


def _run_value(cfg: Dict[str, Any], *keys: str) -> Any:
    """First of ``keys`` found in a run config, looking one level into nested sections too."""
    for k in keys:
        if cfg.get(k) not in (None, ""):
            return cfg[k]
    for sec in cfg.values():
        if isinstance(sec, dict):
            for k in keys:
                if sec.get(k) not in (None, ""):
                    return sec[k]
    return None


def _random_init_baseline(loaded: LoadedStudent, run_seed: Optional[int], seed: int) -> Tuple[Any, str]:
    """The run's own random-init student (``<run>/init``, saved by ``fit``), else a fresh one of the
    same architecture seeded with the run's seed; and a note saying which."""
    folders = [loaded.weights.parent, loaded.weights.parent.parent] if loaded.weights is not None else []
    init = None
    for init in (f / "init" for f in folders):
        if init.is_dir():
            try:
                return load_student(init).model, f"the run's own initial weights ({init})"
            except CheckpointError:
                pass
    s = seed if run_seed is None else int(run_seed)
    model = load_student(f"random:{loaded.name}", student_kwargs=loaded.kwargs, seed=s).model
    return model, f"a fresh {loaded.name} seeded with {s} (no {init} checkpoint)"


def evaluate(
    run_or_ckpt: Union[str, Path],
    protocol: str = DEFAULT_PROTOCOL,
    dataset: Optional[str] = None,
    data_root: Optional[str] = None,
    epochs: Optional[int] = None,
    fast: Optional[bool] = None,
    device: str = "cpu",
    *,
    batch: int = 256,
    lr: Optional[float] = None,
    optimizer: str = "sgd",
    k: Optional[int] = None,
    t: float = 0.1,
    seed: int = 0,
    img_size: Optional[int] = None,
    train_split: str = "train",
    test_split: str = "test",
    max_train: Optional[int] = None,
    max_test: Optional[int] = None,
    student_kwargs: Optional[Dict[str, Any]] = None,
    progress: Optional[Callable[[dict], None]] = None,
    shots: Sequence[int] = DEFAULT_SHOTS,
    draws: int = DEFAULT_DRAWS,
    l2: float = DEFAULT_L2,
    baselines: bool = False,
    log: Optional[Callable[[str], None]] = None,
    download: bool = False,
) -> Dict[str, Any]:
    """Rebuild the student of a run folder / checkpoint (or ``random:<timm-name>``) and probe it.

    ``protocol``: comma-separated registered probes (``fewshot, knn, fast, linear``, plug-ins) or ``all``
    (``both`` = fast + knn). ``fast=True`` runs ``linear`` as ``fast``, ``False`` runs ``fast`` as ``linear``.
    ``k`` (kNN; None: 200 for >= 10k train items else 20), ``t``, ``shots``, ``draws``, ``l2`` (few-shot)
    and ``epochs`` (linear probes, default 90) set the probes; ``optimizer`` (``"sgd"`` or ``"lars"``) and
    ``lr`` (at batch 256; None: 30 for SGD, 0.1 for LARS, scaled by ``batch / 256``) the linear probes
    (SnS's STL-10 protocol: ``optimizer="lars", batch=4096``); ``seed`` seeds draws, heads and a
    ``random:`` student's initialisation. ``baselines`` adds rows for the run's random-init student
    (its ``init`` checkpoint, else a fresh one with the run's architecture and seed) and raw pixels.
    ``device="auto"`` picks CUDA when available. The dataset defaults to the run's own (its checkpoint
    JSON / ``config.json``), else ``digits``, loaded at the student's ``img_size``. ``student_kwargs``
    only applies to ``random:`` students. ``max_train``/``max_test`` keep the first items (quick looks).
    ``download`` (opt-in) fetches cifar10 / cifar100 / stl10 into ``data_root`` when missing.

    Returns ``dict(student, source, checkpoint, dataset, img_size, protocol, probes, num_train, num_test,
    teacher_conditional, top1, <probe>=... for each probe that ran on the student, table=ProbeTable.to_dict()
    (every row), time_s)``; ``top1``: paper linear, else fast, else kNN, else the largest k-shot mean.
    """
    probes = parse_probes(protocol, fast)
    t0 = time.perf_counter()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded = load_student(run_or_ckpt, img_size=img_size, student_kwargs=student_kwargs, seed=seed)
    cfg = {"checkpoint": loaded.meta, **loaded.run_config}
    ds_name, size = _dataset_of(cfg, loaded, dataset, img_size)
    train, test = load_eval_splits(ds_name, data_root or _run_value(cfg, "data_root"), size, max_train, max_test,
                                   train_split, test_split,
                                   download=download)  # allow-download: only when the user passed --download
    conditional = teacher_is_conditional(cfg)
    pcfg = ProbeConfig(probes=probes, shots=tuple(shots), draws=draws, l2=l2, knn_k=k, knn_t=t,
                       fast_epochs=90 if epochs is None else epochs, linear_epochs=90 if epochs is None else epochs,
                       lr=lr, optimizer=optimizer, batch=batch, seed=seed, device=device)
    reps, roles, notes = _representations(loaded, baselines, _run_value(cfg, "seed"), seed)
    table = probe_suite(reps, train, test, pcfg, teacher_conditional=conditional, roles=roles, dataset=ds_name,
                        log=log, progress=progress)
    if notes:
        table.row("random init").notes.extend(notes)
    row = table.rows[0]
    out: Dict[str, Any] = dict(student=loaded.name, source=loaded.source,
                               checkpoint=str(loaded.weights) if loaded.weights else None,
                               dataset=ds_name, img_size=size or getattr(train, "resolution", None),
                               protocol=protocol, probes=list(probes), num_train=len(train), num_test=len(test),
                               teacher_conditional=conditional)
    out.update({p: r for p, r in row.results.items() if r is not None})     # every probe that ran, in order
    out["top1"] = row.top1()
    out["table"] = table.to_dict()
    out["time_s"] = time.perf_counter() - t0
    return out


def _dataset_of(cfg: Dict[str, Any], loaded: LoadedStudent, dataset: Optional[str],
                img_size: Optional[int]) -> Tuple[str, Optional[int]]:
    """The dataset and image size to probe on: as given, else the run's own, else digits at the student's size."""
    ds_name = dataset or _run_value(cfg, "dataset") or DEFAULT_DATASET
    if not isinstance(ds_name, str):
        raise EvalDataError(f"cannot tell the dataset from the run config (got {ds_name!r}); pass dataset=")
    return ds_name, img_size or loaded.kwargs.get("img_size") or _run_value(cfg, "img_size")


def _representations(loaded: LoadedStudent, baselines: bool, run_seed: Optional[int],
                     seed: int) -> Tuple[Dict[str, Any], Dict[str, str], List[str]]:
    """``(representations, roles, notes on the random-init row)``: the student, and with ``baselines``
    the run's random-init student (checkpoints only) and raw pixels."""
    reps: Dict[str, Any] = {loaded.name: loaded.model}
    roles = {loaded.name: "distilled" if loaded.source == "checkpoint" else "random-init"}
    notes: List[str] = []
    if baselines:
        if loaded.source == "checkpoint":
            rnd, note = _random_init_baseline(loaded, run_seed, seed)
            reps["random init"], roles["random init"] = rnd, "random-init"
            notes.append(note)
        reps["raw pixels"], roles["raw pixels"] = RAW_PIXELS, "raw-pixels"
    return reps, roles, notes


def evaluate_table(result: Dict[str, Any]) -> ProbeTable:
    """The :class:`ProbeTable` of an :func:`evaluate` result (for rendering)."""
    return ProbeTable.from_dict(result["table"])
