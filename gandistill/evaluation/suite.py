"""Probe suite: the same probes on several frozen representations, one table.

>>> table = probe_suite({"distilled": student, "raw pixels": RAW_PIXELS}, train_ds, test_ds)  # doctest: +SKIP
>>> console.print(render_probe_table(table, "digits"))                                      # doctest: +SKIP

Probes (names as ``--protocol`` takes them; registered classes, one file each under
:mod:`gandistill.evaluation.probes`, iterated in their order -- a registered plug-in joins every table):

- ``fewshot``: :func:`~gandistill.evaluation.fewshot.fewshot_probe`, k labelled images per class
  (k = 1 / 10 / 100), several seeded draws, mean and std; L-BFGS logistic regression, nothing to tune.
- ``knn``: weighted cosine kNN, ``t = 0.1``; ``k`` defaults to 200 (paper) for >= 10k train items,
  20 below (:func:`~gandistill.evaluation.knn.default_knn_k`).
- ``fast``: the cached-feature linear probe (paper head/optimiser/schedule, no augmentation).
- ``linear``: the paper's linear protocol (90 epochs SGD on augmented views); needs a model.

Features are extracted once per representation and shared by every probe (the paper protocol
extracts its own augmented views). ``raw pixels`` (:data:`RAW_PIXELS`) is a built-in representation:
the dataset-normalised pixels, flattened. A table of a run whose teacher is label-conditioned
(``c_dim > 0``) carries :data:`BANNER` in every rendering.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from rich.table import Table
from torch import Tensor

from gandistill.evaluation.features import (
    DataLike,
    EvalDataError,
    FeatureFn,
    as_dataset,
    check_labels,
    extract_features,
    infer_num_classes,
    iterate,
    require_labelled,
)
from gandistill.evaluation.fewshot import DEFAULT_DRAWS, DEFAULT_L2, DEFAULT_MAX_ITER, DEFAULT_SHOTS, DEFAULT_TOL
from gandistill.evaluation.knn import DEFAULT_T
from gandistill.evaluation.linear import check_optimizer
from gandistill.evaluation.loading import load_student
from gandistill.evaluation.probes import PROBES, ProbeInput, default_probes, get_probe, probe_names

BANNER = "label-conditioned teacher: not self-supervised"
RAW_PIXELS = "raw_pixels"
DEFAULT_PROBES = default_probes()            # fewshot, knn, fast


def protocol_words() -> Tuple[str, ...]:
    """What ``--protocol`` / ``--eval`` take: every registered probe, ``all`` and ``both``."""
    return probe_names() + ("all", "both")


def raw_pixels(x: Tensor) -> Tensor:
    """The raw-pixel representation: a dataset-normalised batch ``[N, C, H, W]`` flattened to ``[N, CHW]``."""
    return x.flatten(1)


@dataclass
class Precomputed:
    """Features already extracted; labels default to the datasets' own."""

    train: Tensor
    test: Tensor
    train_labels: Optional[Tensor] = None
    test_labels: Optional[Tensor] = None


Representation = Union[FeatureFn, str, Precomputed, Tuple[Tensor, ...]]


@dataclass
class ProbeConfig:
    """Settings of every probe of the suite (the CLI's and the engine's flags map onto these)."""

    probes: Tuple[str, ...] = DEFAULT_PROBES
    shots: Tuple[int, ...] = DEFAULT_SHOTS
    draws: int = DEFAULT_DRAWS
    l2: float = DEFAULT_L2
    fewshot_max_iter: int = DEFAULT_MAX_ITER
    fewshot_tol: float = DEFAULT_TOL
    knn_k: Optional[int] = None          # None: 200 for >= 10k train items, else 20
    knn_t: float = DEFAULT_T
    fast_epochs: int = 90
    linear_epochs: int = 90
    lr: Optional[float] = None           # at batch 256; None: the optimizer's paper rate (30 sgd, 0.1 lars)
    batch: int = 256
    optimizer: str = "sgd"               # linear probes (fast and paper): sgd | lars
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        self.probes = tuple(self.probes)
        self.optimizer = check_optimizer(self.optimizer)
        bad = [p for p in self.probes if p not in PROBES]
        if bad or not self.probes:
            raise ValueError(f"probes must be a non-empty subset of {', '.join(probe_names())}, got {self.probes}")
        self.shots = tuple(int(k) for k in self.shots)
        if self.draws < 1:
            raise ValueError(f"draws must be >= 1, got {self.draws}")
        for p in self.probes:
            get_probe(p).check_config(self)


def parse_probes(protocol: Union[str, Sequence[str]], fast: Optional[bool] = None) -> Tuple[str, ...]:
    """Probe names from a ``--protocol`` value: comma-separated registered probes (``fewshot, knn,
    fast, linear`` and any plug-in), ``all`` (every registered probe) or ``both`` (fast + knn, the
    older spelling and its old default).

    ``fast`` picks which linear probe runs: ``True`` turns a probe into its ``fast_twin`` (``linear``
    -> ``fast``, the older ``--protocol linear --fast``), ``False`` (``--full``) into its ``paper_twin``.
    """
    words = protocol.replace("+", ",").split(",") if isinstance(protocol, str) else list(protocol)
    names = probe_names()
    out: List[str] = []
    for w in (w.strip().lower() for w in words):
        if not w:
            continue
        if w not in protocol_words():
            raise ValueError(f"protocol must be a comma-separated list of {', '.join(protocol_words())}, got {w!r}")
        expanded = names if w == "all" else ("fast", "knn") if w == "both" else (w,)
        for p in expanded:
            probe = get_probe(p)
            twin = probe.fast_twin if fast is True else probe.paper_twin if fast is False else None
            p = twin or p
            if p not in out:
                out.append(p)
    if not out:
        raise ValueError(f"no probe named in protocol {protocol!r}")
    return tuple(p for p in names if p in out)


@dataclass
class ProbeRow:
    """One representation's results, by probe name (``row.results["knn"]``, also ``row.knn``; a probe
    that did not run is None)."""

    name: str
    role: str = "model"                  # model | distilled | random-init | raw-pixels | features
    feature_dim: int = 0
    results: Dict[str, Optional[Dict[str, Any]]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    extract_s: float = 0.0
    time_s: float = 0.0

    def __getattr__(self, key: str) -> Any:
        # row.fewshot / row.knn / row.<plug-in>: the probe's result, None when it did not run
        if key.startswith("_") or key == "results":
            raise AttributeError(key)
        if key in PROBES or key in self.__dict__.get("results", {}):
            return self.results.get(key)
        raise AttributeError(f"{type(self).__name__} has no attribute or probe {key!r}")

    def top1(self) -> Optional[float]:
        """The headline number: the present probe first by :attr:`Probe.headline` -- paper linear,
        else fast linear, else kNN, else the largest few-shot k."""
        ran = [(get_probe(k).headline, k) for k, r in self.results.items() if r is not None and k in PROBES]
        for _, k in sorted(ran):
            got = get_probe(k).top1(self.results[k])
            if got is not None:
                return got
        return None

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready, one key per registered probe (None when it did not run), as ``summary.json`` holds."""
        d: Dict[str, Any] = {"name": self.name, "role": self.role, "feature_dim": self.feature_dim}
        for k in (*probe_names(), *(k for k in self.results if k not in PROBES)):
            r = self.results.get(k)
            d[k] = get_probe(k).to_json(r) if (r is not None and k in PROBES) else r
        d.update(notes=list(self.notes), extract_s=self.extract_s, time_s=self.time_s)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProbeRow":
        fixed = {"name", "role", "feature_dim", "notes", "extract_s", "time_s"}
        results = {k: (get_probe(k).from_json(v) if (v is not None and k in PROBES) else v)
                   for k, v in d.items() if k not in fixed and k != "results"}
        results = {k: v for k, v in results.items() if v is not None}
        return cls(results=results, **{k: d[k] for k in fixed if k in d})


@dataclass
class ProbeTable:
    """Results of :func:`probe_suite`: one :class:`ProbeRow` per representation."""

    rows: List[ProbeRow]
    config: ProbeConfig
    dataset: Optional[str] = None
    num_train: int = 0
    num_test: int = 0
    num_classes: int = 0
    teacher_conditional: bool = False
    time_s: float = 0.0
    difference: Optional[Dict[str, Any]] = None   # paired_difference of two rows (e.g. the teacher's contribution)

    def row(self, name: str) -> ProbeRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no row {name!r}; rows: {', '.join(r.name for r in self.rows)}")

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: each probe's :meth:`~gandistill.evaluation.probes.Probe.to_json` (few-shot keys
        become strings, ``"1"``, ``"10"``, ...)."""
        d: Dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["rows"] = [r.to_dict() for r in self.rows]
        d["config"] = dataclasses.asdict(self.config)
        d["config"]["probes"], d["config"]["shots"] = list(self.config.probes), list(self.config.shots)
        if self.teacher_conditional:
            d["banner"] = BANNER
        return copy.deepcopy(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProbeTable":
        """Inverse of :meth:`to_dict` (e.g. to re-render a ``summary.json``)."""
        cfg = ProbeConfig(**{k: v for k, v in d.get("config", {}).items() if k in ProbeConfig.__dataclass_fields__})
        rows = [ProbeRow.from_dict(r) for r in d.get("rows", [])]
        keep = {k: d[k] for k in ("dataset", "num_train", "num_test", "num_classes", "teacher_conditional", "time_s",
                                   "difference") if k in d}
        return cls(rows=rows, config=cfg, **keep)


# ----------------------------------------------------------------------------- running the probes
def _labels_of(data: Any, batch: int) -> Tensor:
    return torch.cat([y for _, y in iterate(data, batch)])


def _features(rep: Representation, train: Any, test: Any, cfg: ProbeConfig,
              labels: Dict[str, Tensor]) -> Tuple[Tensor, Tensor, Tensor, Tensor, Optional[FeatureFn]]:
    """``(ftr, ytr, fte, yte, model_or_None)`` for one representation (a model is needed by ``linear``)."""
    if isinstance(rep, str):
        if rep != RAW_PIXELS:
            raise ValueError(f"unknown built-in representation {rep!r} (built-in: {RAW_PIXELS!r})")
        rep = raw_pixels
    if isinstance(rep, tuple):
        rep = Precomputed(*rep) if len(rep) == 2 else Precomputed(rep[0], rep[2], rep[1], rep[3])
    if isinstance(rep, Precomputed):
        if "train" not in labels:
            labels["train"], labels["test"] = _labels_of(train, cfg.batch), _labels_of(test, cfg.batch)
        ytr = rep.train_labels if rep.train_labels is not None else labels["train"]
        yte = rep.test_labels if rep.test_labels is not None else labels["test"]
        for what, f, y in (("train", rep.train, ytr), ("test", rep.test, yte)):
            if f.dim() != 2 or f.shape[0] != y.shape[0]:
                raise EvalDataError(f"precomputed {what} features {tuple(f.shape)} do not match {y.shape[0]} labels")
        return rep.train.float().cpu(), ytr.long().cpu(), rep.test.float().cpu(), yte.long().cpu(), None
    ftr, ytr = extract_features(rep, train, cfg.batch, cfg.device)
    fte, yte = extract_features(rep, test, cfg.batch, cfg.device)
    return ftr, ytr, fte, yte, rep


def _role(rep: Any) -> str:
    if (isinstance(rep, str) and rep == RAW_PIXELS) or rep is raw_pixels:
        return "raw-pixels"
    if isinstance(rep, (Precomputed, tuple)):
        return "features"
    return "model"


def probe_suite(
    representations: Mapping[str, Representation],
    train_ds: DataLike,
    test_ds: DataLike,
    config: Optional[ProbeConfig] = None,
    *,
    teacher_conditional: bool = False,
    roles: Optional[Mapping[str, str]] = None,
    dataset: Optional[str] = None,
    log: Optional[Callable[[str], None]] = None,
    progress: Optional[Callable[[dict], None]] = None,
    **overrides: Any,
) -> ProbeTable:
    """Run ``config.probes`` on every representation and collect one :class:`ProbeTable`.

    ``representations`` maps a row name to a ``Student`` / ``nn.Module`` / callable on normalised
    batches, to :data:`RAW_PIXELS`, or to precomputed features (a :class:`Precomputed`, a pair
    ``(train_feats, test_feats)`` or ``(train_feats, train_labels, test_feats, test_labels)``).
    ``overrides`` replace fields of ``config`` (e.g. ``shots=(1, 10), draws=3``). ``roles`` labels
    rows (``distilled``, ``random-init``, ...). ``log`` receives one line per finished row;
    ``progress`` is passed to the linear probes (one dict per epoch).
    """
    cfg = dataclasses.replace(config or ProbeConfig(), **overrides) if overrides else (config or ProbeConfig())
    if cfg.device == "auto":
        cfg = dataclasses.replace(cfg, device="cuda" if torch.cuda.is_available() else "cpu")
    if not representations:
        raise ValueError("probe_suite needs at least one representation")
    t_start = time.perf_counter()
    train, test = as_dataset(train_ds, "train set"), as_dataset(test_ds, "test set")
    require_labelled(train, "train set")
    require_labelled(test, "test set")
    n_cls = infer_num_classes(train, test)
    labels: Dict[str, Tensor] = {}
    rows: List[ProbeRow] = []
    for name, rep in representations.items():
        t0 = time.perf_counter()
        ftr, ytr, fte, yte, model = _features(rep, train, test, cfg, labels)
        n_cls = check_labels(ytr, n_cls, "train set")
        n_cls = check_labels(yte, n_cls, "test set")
        row = ProbeRow(name=name, role=(roles or {}).get(name, _role(rep)), feature_dim=int(ftr.shape[1]),
                       extract_s=time.perf_counter() - t0)
        data = ProbeInput(ftr, ytr, fte, yte, model, train, test, n_cls, cfg, progress)
        for p in (p for p in probe_names() if p in cfg.probes):
            result, notes = get_probe(p).run(data)
            if result is not None:
                row.results[p] = result
            row.notes += notes
        row.time_s = time.perf_counter() - t0
        rows.append(row)
        if log is not None:
            log(f"probes: {name} ({row.feature_dim}-d) done in {row.time_s:.1f}s")
    return ProbeTable(rows=rows, config=cfg, dataset=dataset or getattr(train, "name", None),
                      num_train=len(train), num_test=len(test), num_classes=int(n_cls or 0),
                      teacher_conditional=bool(teacher_conditional), time_s=time.perf_counter() - t_start)


def closing_probes(
    student: FeatureFn,
    random_student: Union[FeatureFn, str, Path, None],
    train_ds: DataLike,
    test_ds: DataLike,
    config: Optional[ProbeConfig] = None,
    *,
    with_raw_pixels: bool = True,
    teacher_conditional: bool = False,
    student_name: str = "distilled",
    dataset: Optional[str] = None,
    log: Optional[Callable[[str], None]] = None,
    twin: Optional[FeatureFn] = None,
    twin_name: str = "SSL twin",
) -> ProbeTable:
    """The closing table of ``gandistill fit``: the distilled student, its SSL twin (when given), the
    run's own random-init student and raw pixels, through the same probes on the same data; with a
    twin, ``table.difference`` is :func:`paired_difference` (distilled minus twin: the teacher's contribution).

    ``random_student``: a module, or a run folder / checkpoint path (e.g. ``run_dir / "init"``) or
    ``random:<name>`` string loaded with :func:`~gandistill.evaluation.loading.load_student` (seeded
    with ``config.seed``); None leaves that row out, as ``with_raw_pixels=False`` does the raw-pixel row.
    """
    reps: Dict[str, Representation] = {student_name: student}
    roles = {student_name: "distilled"}
    if twin is not None:
        reps[twin_name] = twin
        roles[twin_name] = "ssl-twin"
    if random_student is not None:
        if isinstance(random_student, (str, Path)):
            random_student = load_student(random_student, seed=(config or ProbeConfig()).seed).model
        reps["random init"] = random_student
        roles["random init"] = "random-init"
    if with_raw_pixels:
        reps["raw pixels"] = RAW_PIXELS
        roles["raw pixels"] = "raw-pixels"
    table = probe_suite(reps, train_ds, test_ds, config, teacher_conditional=teacher_conditional, roles=roles,
                        dataset=dataset, log=log)
    if twin is not None:
        table.difference = paired_difference(table, student_name, twin_name, label=CONTRIBUTION)
    return table


CONTRIBUTION = "teacher's contribution"


def _diff_stats(a: Sequence[float], b: Sequence[float]) -> Dict[str, Any]:
    d = [float(x) - float(y) for x, y in zip(a, b)]
    t = torch.tensor(d, dtype=torch.float64)
    return {"mean": float(t.mean()), "std": float(t.std()) if len(d) > 1 else None, "per_draw": d}


def paired_difference(table: ProbeTable, a: str, b: str, label: str = "difference") -> Dict[str, Any]:
    """Row ``a`` minus row ``b`` for every probe both ran: few-shot per k as the mean and the sample std
    of the per-draw differences (the draws are the same labelled images for both rows, so the pairs
    share the draw's luck), kNN and the linear probes as one number (their std is None: one run each)."""
    ra, rb = table.row(a), table.row(b)
    out: Dict[str, Any] = {"label": label, "minuend": a, "subtrahend": b, "probes": {}}
    for p in probe_names():
        x, y = ra.results.get(p), rb.results.get(p)
        if not x or not y:
            continue
        if isinstance(x.get("shots"), dict) and isinstance(y.get("shots"), dict):   # per-draw results
            for k, res in x["shots"].items():
                other = y["shots"].get(k)
                if other is not None:
                    out["probes"][f"{p}:{k}"] = _diff_stats(res["top1"], other["top1"])
        elif x.get("top1") is not None and y.get("top1") is not None:
            out["probes"][p] = {"mean": float(x["top1"]) - float(y["top1"]), "std": None}
    return out


def teacher_is_conditional(run_config: Mapping[str, Any]) -> bool:
    """Whether a run's ``config.json`` / ``summary.json`` says its teacher is label-conditioned:
    a ``teacher_conditional`` flag (top level or one section down), else a teacher description
    with ``c_dim > 0``."""
    def find(d: Mapping[str, Any], depth: int) -> Optional[bool]:
        if "teacher_conditional" in d and d["teacher_conditional"] is not None:
            return bool(d["teacher_conditional"])
        if depth:
            for v in d.values():
                if isinstance(v, Mapping) and (got := find(v, depth - 1)) is not None:
                    return got
        return None

    flag = find(run_config, 2)
    if flag is not None:
        return flag
    teacher = run_config.get("teacher")
    if isinstance(teacher, Mapping):
        c_dim = teacher.get("c_dim")
        if c_dim is None and isinstance(teacher.get("G"), Mapping):
            c_dim = teacher["G"].get("c_dim")
        return isinstance(c_dim, (int, float)) and c_dim > 0
    return False


# ----------------------------------------------------------------------------- rendering
def _ran(table: ProbeTable, probe: str) -> List[Dict[str, Any]]:
    return [r.results[probe] for r in table.rows if r.results.get(probe)]


def _columns(table: ProbeTable) -> List[Tuple[str, str]]:
    """(key, header) for every probe column present in some row (``probe`` or ``probe:sub``)."""
    return [c for p in probe_names() for c in get_probe(p).columns(_ran(table, p))]


def _cell(row: ProbeRow, key: str) -> str:
    probe = key.split(":", 1)[0]
    return get_probe(probe).cell(row.results.get(probe), key)


def _diff_cell(table: ProbeTable, key: str) -> str:
    d = (table.difference or {}).get("probes", {}).get(key)
    if d is None:
        return "-"
    return f"{d['mean']:+.1f}" + (f" ± {d['std']:.1f}" if d.get("std") is not None else "")


def _diff_header(table: ProbeTable) -> Optional[str]:
    diff = table.difference
    return str(diff["label"]) if diff else None


def _caption(table: ProbeTable) -> str:
    parts = [f"top-1 (%) on {table.num_test} test images"
             + (f" of {table.dataset}" if table.dataset else "") + f", {table.num_train} train"]
    for p in probe_names():
        if _ran(table, p):
            line = get_probe(p).caption(table.config)
            if line:
                parts.append(line)
    if table.difference:
        parts.append(f"{table.difference['label']}: {table.difference['minuend']} minus "
                     f"{table.difference['subtrahend']}, ± std of the paired per-draw differences")
    return "; ".join(parts)


def row_metrics(row: ProbeRow) -> Dict[str, float]:
    """A row as flat metrics, every probe's :meth:`~gandistill.evaluation.probes.Probe.metrics`
    (``shot<k>``, ``shot<k>_std``, ``knn<k>``, ``fast``, ``linear``, ...)."""
    m: Dict[str, float] = {}
    for p in probe_names():
        if row.results.get(p):
            m.update(get_probe(p).metrics(row.results[p]))
    return m


def render_probe_table(table: ProbeTable, title: str = "probes",
                       conditional_teacher: Optional[bool] = None):
    """A ``rich.table.Table`` of ``table``: one row per probe, one column per representation (so three
    representations fit 80 columns); the title carries :data:`BANNER` when the teacher is
    label-conditioned (``conditional_teacher``, default: ``table.teacher_conditional``)."""
    cond = table.teacher_conditional if conditional_teacher is None else conditional_teacher
    full_title = f"{title}\n[bold red]{BANNER}[/bold red]" if cond else title
    # wide enough that the banner is never wrapped (the title is laid out at the table's width)
    out = Table(title=full_title, caption=_caption(table), show_header=True,
                min_width=len(BANNER) + 4 if cond else None)
    out.add_column("probe (top-1 %)", no_wrap=True)
    for r in table.rows:
        out.add_column(r.name, justify="right")
    dh = _diff_header(table)
    if dh:
        out.add_column(dh, justify="right", style="bold")
    extra = [""] if dh else []
    out.add_row("feature dim", *(str(r.feature_dim) for r in table.rows), *extra)
    for key, header in _columns(table):
        out.add_row(header, *(_cell(r, key) for r in table.rows), *([_diff_cell(table, key)] if dh else []))
    return out


def probe_table_markdown(table: ProbeTable, title: str = "probes",
                         conditional_teacher: Optional[bool] = None) -> str:
    """Plain-text (markdown) version of :func:`render_probe_table`, banner line included when conditional."""
    cond = table.teacher_conditional if conditional_teacher is None else conditional_teacher
    lines = [f"### {title}", ""]
    if cond:
        lines += [f"**{BANNER}**", ""]
    dh = _diff_header(table)
    extra = [dh] if dh else []
    lines.append("| " + " | ".join(["probe (top-1 %)", *(r.name for r in table.rows), *extra]) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(table.rows) + len(extra))) + "|")
    lines.append("| " + " | ".join(["feature dim", *(str(r.feature_dim) for r in table.rows),
                                    *([""] if dh else [])]) + " |")
    for key, header in _columns(table):
        lines.append("| " + " | ".join([header, *(_cell(r, key) for r in table.rows),
                                        *([_diff_cell(table, key)] if dh else [])]) + " |")
    notes = [f"{r.name}: {n}" for r in table.rows for n in r.notes]
    lines += ["", _caption(table) + "."]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
