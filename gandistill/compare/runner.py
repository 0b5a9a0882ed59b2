"""``compare(cfg)``: run the rows of a paper table under a preset, probe them, keep every result.

Layout of ``--out`` (default ``runs/compare-<preset>``)::

    compare.json                 preset, budget, seed, overrides: a later call must match them
    runs/<run-id>/               one ``gandistill fit`` run folder per training (shared across tables)
        compare_run.json         ok | collapsed | failed, with the message
        compare_probe.json       the probe results of that student, keyed by probe settings
    results/table<N>/<row>.json  one finished row (status, metrics, paper number, notes)
    results/baselines.json       raw pixels and random-init student under the same probes (suite presets)
    table<N>.csv / .md / .png    the report

Resume: a row whose ``results/table<N>/<row>.json`` exists is skipped; a training that has a
``compare_run.json`` is not repeated; an interrupted fit (``checkpoint.json`` without
``summary.json``) continues with ``FitConfig.resume``. A collapse (the engine's guard) is the row's
result, reported at chance as the paper does for Table 5 c; any other failure is written into the
row ("failed: why") and the table goes on.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from gandistill import engine      # engine.fit looked up at call time (tests stand in for it)
from gandistill.compare import probing
from gandistill.compare.presets import Preset, RowPlan, get_preset, resolve
from gandistill.compare.tables import RUNS, RowSpec, TableSpec, get_table, run_of, select_rows
from gandistill.data import load_dataset
from gandistill.io.jsonable import jsonable  # noqa: E402
from gandistill.methods import get_method
from gandistill.teachers.conditioning import conditional_warning
from gandistill.io.errors import GandistillError
from gandistill.io.files import atomic_write_json, open_append
from gandistill.io.formats import CHECKPOINT
from gandistill.io.schema import Bool, Int, Map, Num, Obj, Opt, Schema, Str, load_json
from gandistill.io.schema import List as JList

STATUSES = ("ok", "collapsed", "failed")

# What the runner reads back from its own folder (anyone may have edited it): a file that does not fit is
# recomputed, as a missing or corrupt one is.
_SCORED = Obj(required={"metrics": Map(Num()), "notes": JList(Str())})
ROW_JSON = Obj(required={"table": Int(), "key": Str(256), "group": Str(), "label": Str(), "run": Str(256),
                         "status": Str(64, choices=STATUSES)},
               optional={"metrics": Map(Num()), "headline": Opt(Str(256)), "paper": Opt(Num()),
                         "notes": JList(Str()), "time_s": Num(), "run_dir": Opt(Str()), "twin": Opt(Obj())})
RUN_STATE = Obj(optional={"status": Str(64), "message": Str()})
RUN_RECORD = Obj(optional={"teacher_conditional": Opt(Bool()), "resolved": Opt(Obj())})   # a run's config.json
PROBE_CACHE = Map(_SCORED)
BASELINE_CACHE = Map(Map(_SCORED))


@dataclass
class CompareConfig:
    """Everything ``gandistill compare`` takes (the CLI maps its flags to these fields)."""

    table: int = 1
    preset: str = "digits"
    teacher_ckpt: Optional[str] = None
    data_root: Optional[str] = None
    budget: float = 1.0
    rows: Optional[str] = None
    out: Optional[str] = None
    dry_run: bool = False
    device: str = "auto"
    seed: int = 0
    lpips_weights: Optional[str] = None
    probe_epochs: Optional[int] = None       # override the preset's probe epochs (quick looks)
    probe_max_train: Optional[int] = None
    probe_max_test: Optional[int] = None
    mmd_samples: Optional[int] = None
    baselines: bool = True                   # suite presets: raw pixels + random-init student
    fit_overrides: Dict[str, Any] = field(default_factory=dict)   # extra FitConfig fields for every training
    loggers: Tuple[str, ...] = ()            # every training also logs to these (tensorboard, wandb)

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / f"compare-{self.preset}"


@dataclass
class RowResult:
    table: int
    key: str
    group: str
    label: str
    run: str
    status: str
    metrics: Dict[str, float] = field(default_factory=dict)
    headline: Optional[str] = None
    paper: Optional[float] = None
    notes: List[str] = field(default_factory=list)
    time_s: float = 0.0
    run_dir: Optional[str] = None
    twin: Optional[Dict[str, Any]] = None    # the SSL twin's row (looked up, never trained again) and the difference

    @property
    def value(self) -> Optional[float]:
        return self.metrics.get(self.headline) if self.headline else None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RowResult":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class CompareResult:
    table: TableSpec
    preset: Preset
    rows: List[RowResult]
    baselines: List[RowResult]
    out: Path
    wall_s: float
    skipped: List[str] = field(default_factory=list)


def _write_json(path: Path, data: Any) -> None:
    atomic_write_json(path, data, indent=1, default=str, mkdir=True)


def _read_json(path: Path, schema: Schema = Obj()) -> Optional[Dict[str, Any]]:
    """The JSON object at ``path`` if it fits ``schema``, else None (missing, a FIFO, corrupt, another
    shape: recompute)."""
    try:
        return load_json(path, schema, what="cached result")
    except (OSError, GandistillError):
        return None


def plans_for(table: TableSpec, cfg: CompareConfig, rows: Optional[List[RowSpec]] = None) -> Dict[str, RowPlan]:
    """Each selected row's resolved run under the preset."""
    preset = get_preset(cfg.preset)
    rows = rows if rows is not None else select_rows(table, cfg.rows)
    return {r.key: resolve(run_of(r), preset, cfg.budget, lpips_weights=cfg.lpips_weights, seed=cfg.seed,
                           device=cfg.device) for r in rows}


_jsonable = jsonable


def _signature(cfg: CompareConfig) -> Dict[str, Any]:
    return {"preset": cfg.preset, "budget": cfg.budget, "seed": cfg.seed,
            "teacher_ckpt": str(cfg.teacher_ckpt) if cfg.teacher_ckpt else None,
            "fit_overrides": _jsonable(cfg.fit_overrides)}


def _check_out(out: Path, cfg: CompareConfig, conditional: Optional[Dict[str, Any]] = None) -> None:
    sig = _signature(cfg)
    old = _read_json(out / "compare.json")
    if old is not None:
        diff = {k: (old.get(k), v) for k, v in sig.items() if old.get(k) != v}
        if diff:
            raise ValueError(f"{out} holds a comparison with other settings {diff} (old, new); "
                             "use the same settings to resume or choose another --out")
    else:
        _write_json(out / "compare.json", dict(sig, conditional_teacher=conditional))


def compare(cfg: CompareConfig, log: Optional[Callable[[str], None]] = None) -> CompareResult:
    """Run (or resume) the selected rows of ``cfg.table`` and return their results (written under out)."""
    say = log or (lambda s: print(s, flush=True))
    t0 = time.perf_counter()
    table = get_table(cfg.table)
    preset = get_preset(cfg.preset)
    rows = select_rows(table, cfg.rows)
    if preset.needs_teacher_ckpt and cfg.teacher_ckpt is None:
        raise ValueError(f"preset {preset.name} needs --teacher-ckpt (an unconditional StyleGAN2-ADA of "
                         f"{preset.dataset}: {preset.notes[-1] if preset.notes else ''})")
    plans = plans_for(table, cfg, rows)
    cond = conditional_warning("sg2-generator", cfg.teacher_ckpt)
    if cond is not None:               # said before any row trains; the default folder name says so
        say(f"warning: {cond['message']}")
        if not cfg.out:
            cfg = dataclasses.replace(cfg, out=str(cfg.out_dir()) + "-cond")
    out = cfg.out_dir()
    _check_out(out, cfg, cond)
    results, skipped = [], []
    for i, row in enumerate(rows, 1):
        path = out / "results" / f"table{table.number}" / f"{row.key}.json"
        old = _read_json(path, ROW_JSON)
        if old is not None and (old["table"], old["key"]) == (table.number, row.key):   # not another row's file
            results.append(RowResult.from_dict(old))
            skipped.append(row.key)
            say(f"[{i}/{len(rows)}] {row.key}: done before ({old.get('status')}), skipped")
            continue
        say(f"[{i}/{len(rows)}] {row.key}: {row.group} / {row.label} (run {row.run})")
        res = run_row(table, row, plans[row.key], cfg, preset, out, say)
        _write_json(path, res.to_dict())
        results.append(res)
        v = res.value
        say(f"    -> {res.status}" + (f", {res.headline} = {v:.4g}" if v is not None else "")
            + (f" ({res.time_s:.0f}s)" if res.time_s else ""))
    if table.metric == "top1":
        attach_twins(results, table, cfg, preset, out)
    base: List[RowResult] = []
    if cfg.baselines and preset.probe.kind == "suite" and table.metric == "top1":
        base = baselines(cfg, preset, plans, out, say)
    return CompareResult(table, preset, results, base, out, time.perf_counter() - t0, skipped)


def _paper(table: TableSpec, row: RowSpec, preset: Preset) -> Optional[float]:
    return row.paper.get(preset.paper_column)


def run_row(table: TableSpec, row: RowSpec, plan: RowPlan, cfg: CompareConfig, preset: Preset, out: Path,
            say: Callable[[str], None]) -> RowResult:
    """Train (or reuse) the row's run and score it; never raises for a row that cannot run."""
    t0 = time.perf_counter()
    res = RowResult(table.number, row.key, row.group, row.label, row.run, "ok", paper=_paper(table, row, preset),
                    notes=list(plan.notes))
    try:
        if plan.run.kind == "probe-d":
            m, notes = probing.probe_discriminator(
                plan.fit.get("teacher_kwargs", {}), plan.probe, ckpt=cfg.teacher_ckpt, dataset=preset.dataset,
                data_root=cfg.data_root, device=cfg.device, seed=cfg.seed, epochs=cfg.probe_epochs,
                max_train=cfg.probe_max_train, max_test=cfg.probe_max_test)
            if table.metric != "top1":
                raise ValueError("a frozen-discriminator row has no student representation to compare")
            res.metrics, res.notes = m, res.notes + notes
        else:
            run_dir, status, msg = ensure_trained(plan, cfg, out, say)
            res.run_dir = str(run_dir)
            res.notes += _run_notes(run_dir, plan)
            if status == "collapsed":
                res.status = "collapsed"
                res.notes.append(f"{msg}; reported at chance as the paper does")
                if table.metric == "top1":
                    res.metrics = {"chance": 100.0 / _num_classes(preset, cfg)}
            elif status == "failed":
                res.status = "failed"
                res.notes.append(msg)
            else:
                res.metrics, notes = score(run_dir, table, plan, cfg, preset)
                res.notes += notes
    except KeyboardInterrupt:
        raise
    except Exception as e:  # a row that cannot run says why; the table goes on
        if os.environ.get("GANDISTILL_DEBUG"):
            raise
        res.status = "failed"
        res.notes.append(f"{type(e).__name__}: {e}")
        (out / "results").mkdir(parents=True, exist_ok=True)
        with open_append(out / "results" / "errors.log", "error log") as f:
            f.write(f"--- table {table.number} row {row.key}\n{traceback.format_exc()}\n")
    res.headline = "chance" if res.status == "collapsed" and res.metrics else (
        "mmd2" if table.metric == "mmd2" and "mmd2" in res.metrics else probing.headline_key(plan.probe, res.metrics))
    res.time_s = time.perf_counter() - t0
    return res


def _num_classes(preset: Preset, cfg: CompareConfig) -> int:
    try:
        return int(load_dataset(preset.dataset, root=cfg.data_root, split="test").num_classes) or 10
    except Exception:
        return {"cifar100": 100}.get(preset.dataset, 10)


def _fit_config(plan: RowPlan, cfg: CompareConfig, run_dir: Path, resume: bool):
    kw = dict(plan.fit)
    over = dict(cfg.fit_overrides)
    tk = dict(kw.pop("teacher_kwargs", {}) or {})
    tk.update(over.pop("teacher_kwargs", {}) or {})
    kw.update(over)
    kw.update(teacher_kwargs=tk, teacher_ckpt=cfg.teacher_ckpt, data_root=cfg.data_root, out=str(run_dir),
              resume=resume, loggers=tuple(cfg.loggers))
    kw.setdefault("ssl_twin", False)        # the twin is the comparison's own VICReg row (attach_twins)
    return engine.FitConfig(**kw)


def ensure_trained(plan: RowPlan, cfg: CompareConfig, out: Path, say: Callable[[str], None]):
    """(run_dir, status, message): reuse a finished run, continue an interrupted one, or train it."""
    run_dir = out / "runs" / plan.run.id
    st = _read_json(run_dir / "compare_run.json", RUN_STATE)
    if st is not None and st.get("status") in ("ok", "collapsed"):
        return run_dir, st["status"], st.get("message", "")
    resume = (run_dir / "checkpoint.json").exists() and not (run_dir / "summary.json").exists()
    if (run_dir / "summary.json").exists():
        _write_json(run_dir / "compare_run.json", {"status": "ok", "message": "finished earlier"})
        return run_dir, "ok", ""
    fcfg = _fit_config(plan, cfg, run_dir, resume)
    if not resume and run_dir.exists():
        for name in ("metrics.jsonl", "config.json"):       # a run killed before its first checkpoint
            (run_dir / name).unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        engine.fit(fcfg, log=lambda s: say(f"    {s}"))
    except engine.TrainingStopped as e:
        status = "collapsed" if getattr(e, "reason", "") == "collapse" else "failed"
        msg = f"{'collapsed' if status == 'collapsed' else 'stopped'} at step {getattr(e, 'step', '?')}: {e}"
        _write_json(run_dir / "compare_run.json", {"status": status, "message": msg, "reason": getattr(e, "reason", ""),
                                                   "step": getattr(e, "step", None), "time_s": time.perf_counter() - t0})
        return run_dir, status, msg
    _write_json(run_dir / "compare_run.json", {"status": "ok", "time_s": time.perf_counter() - t0})
    return run_dir, "ok", ""


def twin_run_id(run_id: str) -> Optional[str]:
    """The comparison's run that is ``run_id``'s SSL twin (:attr:`MethodSpec.twin`, e.g. ``g-sns`` ->
    ``vicreg-real``; ``g-sns@snapshot`` too), or None."""
    run = RUNS.get(run_id.split("@", 1)[0])
    if run is None or run.kind != "train":
        return None
    twin = get_method(run.method).twin
    return next((r.id for r in RUNS.values() if r.method == twin and r.kind == "train"), None) if twin else None


def attach_twins(results: List[RowResult], table: TableSpec, cfg: CompareConfig, preset: Preset, out: Path) -> None:
    """Give each finished row whose method has an SSL twin the twin's metrics and the difference
    (row minus twin: the teacher's contribution). The twin is looked up -- a row of this table, or
    a run this comparison folder already trained for another table -- never trained a second time."""
    by_run = {r.run: r for r in results if r.status == "ok"}
    for res in results:
        tid = twin_run_id(res.run) if res.status == "ok" else None
        if tid is None:
            continue
        twin_metrics = by_run[tid].metrics if tid in by_run else None
        run_dir = out / "runs" / tid
        if twin_metrics is None and (_read_json(run_dir / "compare_run.json", RUN_STATE) or {}).get("status") == "ok":
            plan = resolve(RUNS[tid], get_preset(cfg.preset), cfg.budget, lpips_weights=cfg.lpips_weights,
                           seed=cfg.seed, device=cfg.device)
            twin_metrics, _ = score(run_dir, table, plan, cfg, preset)
        if twin_metrics is None:
            note = f"SSL twin {tid}: not in this comparison (add its row to see the teacher's contribution)"
            if note not in res.notes:
                res.notes.append(note)
            continue
        diff = {k: float(v) - float(twin_metrics[k]) for k, v in res.metrics.items()
                if isinstance(v, (int, float)) and isinstance(twin_metrics.get(k), (int, float))}
        res.twin = {"run": tid, "metrics": dict(twin_metrics), "difference": diff}
        if res.headline in diff:
            note = f"teacher's contribution (minus SSL twin {tid}): {res.headline} {diff[res.headline]:+.2f}"
            res.notes = [n for n in res.notes if not n.startswith("teacher's contribution")] + [note]


def _run_notes(run_dir: Path, plan: RowPlan) -> List[str]:
    """Where the finished run knowingly differs from the paper's row (read from its own record)."""
    notes: List[str] = []
    info = _read_json(run_dir / "config.json", RUN_RECORD) or {}
    teacher = info.get("teacher") or {}
    c_dim = teacher.get("c_dim") if isinstance(teacher, dict) else None
    if info.get("teacher_conditional") or (isinstance(c_dim, (int, float)) and c_dim > 0):
        notes.append("label-conditioned teacher: not self-supervised")
    perceptual = (info.get("resolved") or {}).get("perceptual") or (teacher.get("perceptual")
                                                                    if isinstance(teacher, dict) else None)
    if plan.run.method.startswith("encoder") and perceptual and perceptual not in ("lpips", "lpips-alex"):
        notes.append(f"perceptual term: {perceptual}, not LPIPS (pass --lpips-weights for the paper's loss)")
    if plan.run.method.startswith("simsiam"):
        ck = _read_json(run_dir / "checkpoint.json", CHECKPOINT) or {}
        if not (ck.get("student_kwargs") or {}).get("proj_final_bn"):
            notes.append("SimSiam projector without its final BatchNorm1d (the engine/student lack proj_final_bn)")
    return notes


def score(run_dir: Path, table: TableSpec, plan: RowPlan, cfg: CompareConfig, preset: Preset):
    """The row's metrics, cached in the run folder by probe settings (rows of other tables reuse them)."""
    if table.metric == "mmd2":
        key = f"mmd:{cfg.mmd_samples or preset.mmd_samples}:{cfg.seed}"
        fn = lambda: probing.representation_mmd(  # noqa: E731
            str(run_dir), teacher_ckpt=cfg.teacher_ckpt, dataset=preset.dataset, data_root=cfg.data_root,
            n=cfg.mmd_samples or preset.mmd_samples, device=cfg.device, seed=cfg.seed)
    else:
        p = plan.probe
        key = (f"{p.kind}:{p.optimizer}:{p.batch}:{p.base_lr}:{cfg.probe_epochs or p.epochs}:{p.knn_k}:"
               f"{','.join(map(str, p.shots))}:{cfg.probe_max_train}:{cfg.probe_max_test}:{cfg.seed}:"
               "True")                   # the suite is always there (the key of older caches)
        fn = lambda: probing.probe_student(  # noqa: E731
            str(run_dir), p, dataset=preset.dataset, data_root=cfg.data_root, device=cfg.device, seed=cfg.seed,
            epochs=cfg.probe_epochs, max_train=cfg.probe_max_train, max_test=cfg.probe_max_test)
    cache_path = run_dir / "compare_probe.json"
    cache = _read_json(cache_path, PROBE_CACHE) or {}
    if key in cache:
        return cache[key]["metrics"], cache[key]["notes"]
    metrics, notes = fn()
    cache[key] = {"metrics": metrics, "notes": notes}
    _write_json(cache_path, cache)
    return metrics, notes


def baselines(cfg: CompareConfig, preset: Preset, plans: Dict[str, RowPlan], out: Path,
              say: Callable[[str], None]) -> List[RowResult]:
    """Raw pixels and a random-init student of the rows' architecture, under the same probes (cached)."""
    path = out / "results" / "baselines.json"
    key = f"{cfg.probe_epochs}:{cfg.probe_max_train}:{cfg.probe_max_test}:{cfg.seed}:True"   # as older caches
    cache = _read_json(path, BASELINE_CACHE) or {}
    if key not in cache:
        trained = [p for p in plans.values() if p.trains]
        ckpt = None
        for p in trained:
            ck = _read_json(out / "runs" / p.run.id / "checkpoint.json", CHECKPOINT)
            if ck:
                ckpt = ck
                break
        if ckpt is None:
            return []
        say("baselines: raw pixels and a random-init student, same probes ...")
        try:
            res = probing.probe_baselines(ckpt["student"], ckpt.get("student_kwargs") or {}, preset.probe,
                                          dataset=preset.dataset, data_root=cfg.data_root, device=cfg.device,
                                          seed=cfg.seed, epochs=cfg.probe_epochs, max_train=cfg.probe_max_train,
                                          max_test=cfg.probe_max_test)
        except Exception as e:  # baselines are context, never a reason to lose the table
            if os.environ.get("GANDISTILL_DEBUG"):
                raise
            say(f"    baselines failed: {type(e).__name__}: {e}")
            return []
        cache[key] = {name: {"metrics": m, "notes": n} for name, (m, n) in res.items()}
        _write_json(path, cache)
    rows = []
    for name, v in cache[key].items():
        r = RowResult(0, name, "baseline", name, "-", "ok", metrics=v["metrics"], notes=v["notes"])
        r.headline = probing.headline_key(preset.probe, r.metrics)
        rows.append(r)
    return rows


__all__ = ["CompareConfig", "CompareResult", "RowResult", "compare", "run_row", "ensure_trained", "plans_for",
           "score", "baselines"]
