"""After training: the closing probe table (the distilled student, the run's own random-init student
and raw pixels through the same probes, :func:`gandistill.evaluation.suite.closing_probes`), and
``d-direct``, which trains nothing and probes the frozen discriminator features."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from gandistill.data import load_dataset
from gandistill.engine import checkpoint as ckpt
from gandistill.engine.config import FitResult
from gandistill.engine.distributed import Dist
from gandistill.engine.plan import Plan
from gandistill.evaluation.linear import linear_probe
from gandistill.evaluation.loading import load_student
from gandistill.evaluation.splits import FirstN, load_eval_splits
from gandistill.evaluation.suite import ProbeConfig, closing_probes, parse_probes
from gandistill.students import create_student


def probe_names(protocol: str, fast: bool) -> Tuple[str, ...]:
    """The probes ``--eval`` names (``linear`` + ``--eval-fast`` = the cached-feature linear probe)."""
    return parse_probes(protocol, fast)


def _fresh_random_student(plan: Plan) -> torch.nn.Module:
    """A random-init student of the run's architecture, seeded with the run's seed (global RNG untouched)."""
    skw = dict(plan.student_kwargs)
    if plan.proj_final_bn:
        skw["proj_final_bn"] = True
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(plan.seed)
        return create_student(plan.student_name, img_size=plan.img_size, proj_layers=plan.proj_layers,
                              proj_hidden=plan.proj_hidden, proj_out=plan.dim, cifar_stem=plan.cifar_stem, **skw)


def _row_summary(row: Any, table: Any, plan: Plan, probes: Tuple[str, ...], name: str) -> Dict[str, Any]:
    out = {"student": name, "source": row.role, "dataset": plan.dataset, "img_size": plan.img_size,
           "protocol": ",".join(probes), "num_train": table.num_train, "num_test": table.num_test,
           "top1": row.top1(), "feature_dim": row.feature_dim}
    out.update({k: r for k, r in row.results.items() if r is not None})     # every probe that ran, in order
    return out


def closing_table(plan: Plan, device: torch.device, conditional: bool, say: Callable[[str], None],
                  twin_dir: Optional[Path] = None, twin_method: Optional[str] = None,
                  ) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]], Dict[str, Any]]:
    """(eval of the distilled student, eval of the random init or None, the whole table as a dict).

    With ``twin_dir`` (the SSL twin's run folder) the table has the twin's column and its
    ``difference`` (distilled minus twin), and the dict a ``twin_eval`` entry."""
    e = plan.eval
    probes = probe_names(e.protocol, e.fast)
    train, test = load_eval_splits(plan.dataset, plan.data_root, plan.img_size, e.max_train, e.max_test)
    epochs = e.epochs or 90
    pcfg = ProbeConfig(probes=probes, fast_epochs=epochs, linear_epochs=epochs, seed=plan.seed, device=str(device))
    student = load_student(plan.run_dir).model            # the checkpointed weights, as `gandistill eval` reads them
    rnd: Any = None
    if e.random:
        init = plan.run_dir / "init"
        rnd = init if (init / ckpt.CKPT_JSON).exists() else _fresh_random_student(plan)
    twin = load_student(twin_dir).model if twin_dir is not None else None
    twin_name = f"SSL twin ({twin_method})" if twin_method else "SSL twin"
    table = closing_probes(student, rnd, train, test, pcfg, with_raw_pixels=e.raw_pixels,
                           teacher_conditional=conditional, dataset=plan.dataset, log=say,
                           twin=twin, twin_name=twin_name)
    res = _row_summary(table.rows[0], table, plan, probes, plan.student_name)
    rnd_res = _row_summary(table.row("random init"), table, plan, probes, plan.student_name) if e.random else None
    if rnd_res is not None:
        rnd_res["source"] = "random-init"
    out = table.to_dict()
    if twin is not None:
        out["twin_eval"] = _row_summary(table.row(twin_name), table, plan, probes, plan.student_name)
    return res, rnd_res, out


def probe_only(plan: Plan, teacher: Any, train_ds: Any, info: Dict[str, Any], say: Callable[[str], None],
               device: torch.device, t_start: float, d: Dist, conditional: bool) -> FitResult:
    """``d-direct``: no training, a linear probe on the frozen discriminator features (images in [-1,1])."""
    if teacher is None or not hasattr(teacher, "features"):
        raise ValueError(f"method {plan.spec.name} needs a feature teacher such as sg2-discriminator")
    if d.main:
        ckpt.write_json(plan.run_dir / "config.json", info)
    res = None
    e = plan.eval
    if d.main:
        test_ds = load_dataset(plan.dataset, root=plan.data_root, split="test", img_size=plan.img_size,
                               download=plan.download)  # allow-download: only when the user passed --download
        if e.max_train or e.max_test:
            train_ds = FirstN(train_ds, e.max_train) if e.max_train else train_ds
            test_ds = FirstN(test_ds, e.max_test) if e.max_test else test_ds
        say(f"probing frozen discriminator features {list(teacher.target_names)} ({teacher.num_features}-d) ...")
        res = linear_probe(teacher, train_ds, test_ds, epochs=e.epochs or 90, fast=e.fast,
                           device=device, seed=plan.seed, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        res.pop("history", None)
        res.update(student=f"{plan.teacher_name}:{teacher.mode}", dataset=plan.dataset, protocol="linear")
    result = FitResult(run_dir=plan.run_dir, checkpoint=None, steps=0, final_loss=None,
                       time_s=time.perf_counter() - t_start, train_time_s=0.0, eval=res,
                       teacher_conditional=conditional, config=info)
    if d.main:
        ckpt.write_json(plan.run_dir / "summary.json", result.to_dict())
    return result
