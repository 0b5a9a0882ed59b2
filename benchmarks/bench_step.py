"""One training step of `gandistill fit` (digits, resnet10t, batch 64): images/s, memory and where the time goes.

    python benchmarks/bench_step.py --quick          # 3 rounds + a 100-step accuracy check of the bank (minutes)
    python benchmarks/bench_step.py --rounds 5 --accuracy-steps 250

Rows (same student, same global batch of 64, the engine's own parts and step):

* ``vicreg-real``           -- VICReg on two views of 64 real images (no teacher);
* ``squeeze``, ``sns``       -- the distillation methods (sns = the default run), G sampled every step;
* ``... + bank``            -- the same with the teacher replaced by a feature bank (`gandistill bank build`);
* ``sns (today)``           -- the default run as it was before issue 10, in its own worker process: OpenMP
  default wait policy, the reference (fused) G path, the D x D covariance, per-tensor SGD and three separate
  student passes. The hand-written augmentation ops it used are deleted; this row runs Kornia (measured at
  +1-4 % of the step, see README), so it is slightly slower than the old code was;
* ``sns (today's code, PASSIVE)`` -- the same old code paths under ``OMP_WAIT_POLICY=PASSIVE``: the code's
  share of the speed-up, without the environment's.

Two worker processes (``now``: ``OMP_WAIT_POLICY=PASSIVE``, the setting the CLI is asked to default to;
``today``: the variable unset) each build their rows once; the main process runs one row at a time, round
after round, so every row sees the same machine load. Per row and round: ``--steps`` engine steps
(``engine.step.forward`` + ``update``: the images/s) and ``--steps`` instrumented copies of the same step
(the split: teacher = G sampling or bank reads, augment, forward = student + head, losses, backward,
optimizer). ``other`` = engine step minus the split's sum (the engine's guards and bookkeeping; it is
noise-level, so it can come out slightly negative). ``peak MiB`` is measured afterwards in a fresh
process per row: its peak RSS over 2 warm-up steps minus the RSS after imports and data loading, i.e.
the teacher, the trainables, the optimizer state and the step's activations.

``--accuracy-steps S`` then trains sns for S steps with and without the bank (same seed) and reports
the cached-feature linear probe's top-1 on the digits test split in the same table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import _common as C  # noqa: E402 (adds the repo root to sys.path)

PARTS = ("teacher", "augment", "forward", "losses", "backward", "optimizer")


# ------------------------------------------------------------------------------------------------
# worker side


def _rss() -> int:
    """Resident set size of this process, bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _legacy(parts: Any) -> None:
    """The step before issue 10: reference fused G, D x D covariance, per-tensor SGD, separate student passes."""
    import gandistill.losses.vicreg as V

    def offdiag_dxd(z):  # the pre-issue-10 evaluation: the D x D covariance matrix
        c = V.covariance_matrix(z)
        return c.pow(2).sum() - __import__("torch").diagonal(c).pow(2).sum()

    V.offdiag_square_sum = offdiag_dxd
    import torch

    groups = [{"params": g["params"], "fixed": g.get("fixed", False)} for g in parts.opt.param_groups]
    d = parts.opt.defaults
    parts.opt = torch.optim.SGD(groups, lr=d["lr"], momentum=d["momentum"], weight_decay=d["weight_decay"],
                                foreach=False, fused=False)
    parts.model.student.forward_groups = None  # the engine then runs the three student passes one by one
    G = getattr(parts.teacher, "G", None)
    if G is not None:
        fwd = G.synthesis.forward
        G.synthesis.forward = lambda *a, **k: fwd(*a, **{**k, "fused_modconv": True})


def _build_rows(spec: Dict[str, Any]) -> Dict[str, Any]:
    import torch

    from gandistill.data import load_dataset
    from gandistill.engine import FitConfig
    from gandistill.engine.distributed import Dist
    from gandistill.engine.parts import build_parts, build_teacher
    from gandistill.engine.plan import make_plan

    dev = torch.device("cpu")
    ds = load_dataset("digits", split="train")
    rows: Dict[str, Any] = {}
    for name in spec["rows"]:
        method = name.split(" ")[0]
        cfg = FitConfig(method=method, batch=spec["batch"], eval="none", steps=10 ** 6, seed=0,
                        bank=spec["bank"] if "bank" in name else None,
                        out=os.path.join(spec["tmp"], name.replace(" ", "_")))
        plan = make_plan(cfg, len(ds), ds.resolution, dev, 1)
        torch.manual_seed(0)
        teacher = build_teacher(plan, dev)  # a BankTeacher when cfg.bank is set (fit --bank)
        parts = build_parts(plan, teacher, ds, dev, Dist())
        parts.train_model.train()
        if spec["legacy"]:
            _legacy(parts)
        rows[name] = (plan, parts)
    from gandistill.engine import step as S

    for plan, parts in rows.values():  # warm-up: allocator, kernel choices, Winograd weight caches
        for _ in range(2):
            S.update(parts, S.forward(plan, parts, dev).loss)
    return rows


def _split_step(plan: Any, P: Any, acc: Dict[str, float]) -> None:
    """One step of ``engine.step.forward`` + ``update`` with a timer around each part."""
    t = time.perf_counter()

    def lap(k: str) -> None:
        nonlocal t
        now = time.perf_counter()
        acc[k] = acc.get(k, 0.0) + now - t
        t = now

    syn = P.teacher.sample(plan.n_syn, generator=P.z_gen) if plan.n_syn else None
    lap("teacher")
    x_real = P.stream.next().float() if P.stream is not None else None
    inputs, batch = plan.objective.inputs(plan, P, syn, x_real, lambda x: x)
    lap("augment")
    out = {k: v.float() for k, v in P.train_model(**inputs).items()}
    lap("forward")
    loss = plan.objective.loss(plan.weights, out, P.teacher, batch)["loss"]
    lap("losses")
    P.opt.zero_grad(set_to_none=True)
    loss.backward()
    lap("backward")
    P.opt.step()
    lap("optimizer")


def _run_row(plan: Any, P: Any, steps: int) -> Dict[str, Any]:
    import torch

    from gandistill.engine import step as S

    cpu = torch.device("cpu")
    step_s: List[float] = []
    for _ in range(steps):
        t = time.perf_counter()
        s = S.forward(plan, P, cpu)
        S.update(P, s.loss)
        step_s.append(time.perf_counter() - t)
    split: Dict[str, float] = {}
    for _ in range(steps):
        _split_step(plan, P, split)
    return {"step_s": step_s, "split": {k: v / steps for k, v in split.items()}}


def _accuracy(spec: Dict[str, Any]) -> Dict[str, Any]:
    """sns for S steps with and without the bank (same seed), then the fast linear probe on digits test."""
    import torch

    from gandistill.data import load_dataset
    from gandistill.engine import FitConfig
    from gandistill.engine import step as S
    from gandistill.engine.distributed import Dist
    from gandistill.engine.parts import build_parts, build_teacher
    from gandistill.engine.plan import make_plan
    from gandistill.evaluation import linear_probe

    dev = torch.device("cpu")
    train = load_dataset("digits", split="train")
    test = load_dataset("digits", split="test")
    res = {}
    for name in ("sns", "sns + bank"):
        cfg = FitConfig(method="sns", batch=spec["batch"], eval="none", steps=spec["accuracy_steps"], seed=0,
                        bank=spec["bank"] if "bank" in name else None,
                        out=os.path.join(spec["tmp"], "acc_" + name.replace(" ", "_")))
        plan = make_plan(cfg, len(train), train.resolution, dev, 1)
        torch.manual_seed(0)
        teacher = build_teacher(plan, dev)
        P = build_parts(plan, teacher, train, dev, Dist())
        P.train_model.train()
        t0 = time.perf_counter()
        for step in range(plan.total_steps):
            S.set_lr(P.opt, plan.lr, S.cosine_lr(plan.lr, step, plan.total_steps))
            out = S.forward(plan, P, dev)
            if out.bad:
                raise RuntimeError(f"{name}: non-finite {out.bad} at step {step}")
            S.update(P, out.loss)
        train_s = time.perf_counter() - t0
        P.student.eval()
        probe = linear_probe(P.student, train, test, fast=True, seed=0)
        res[name] = {"top1": probe["top1"], "train_s": train_s, "steps": plan.total_steps}
        print(json.dumps({"log": f"accuracy {name}: top-1 {probe['top1']:.2f} after {plan.total_steps} steps "
                                 f"({train_s:.0f} s)"}), flush=True)
    return res


def worker(spec: Dict[str, Any]) -> None:
    import torch

    import resource

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    import gandistill.engine.parts  # noqa: F401  (imports and the dataset before the memory baseline)
    from gandistill.data import load_dataset

    load_dataset("digits", split="train")
    base = _rss()
    rows = _build_rows(spec)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # bytes (Linux reports KiB)
    print(json.dumps({"ready": list(rows), "threads": torch.get_num_threads(),
                      "omp": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
                      "peak_mib": (peak - base) / 2 ** 20}), flush=True)
    if spec.get("memory_only"):
        return
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        if msg["cmd"] == "run":
            plan, parts = rows[msg["row"]]
            print(json.dumps(_run_row(plan, parts, msg["steps"])), flush=True)
        elif msg["cmd"] == "accuracy":
            try:
                print(json.dumps({"accuracy": _accuracy(spec)}), flush=True)
            except Exception as e:  # e.g. the bundled teacher changed under the bank: report, do not lose the table
                print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)


# ------------------------------------------------------------------------------------------------
# main side


class Worker:
    def __init__(self, name: str, spec: Dict[str, Any], env: Dict[str, str]) -> None:
        self.name = name
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1)
        self.info = self.recv()

    def recv(self) -> Dict[str, Any]:
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {self.name} exited (rc {self.p.poll()})")
            msg = json.loads(line)
            if "log" in msg:
                print(f"# {self.name}: {msg['log']}", flush=True)
                continue
            return msg

    def ask(self, **msg: Any) -> Dict[str, Any]:
        self.p.stdin.write(json.dumps(msg) + "\n")
        self.p.stdin.flush()
        return self.recv()

    def close(self) -> None:
        try:
            self.p.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            pass
        self.p.wait(timeout=60)


def _build_bank(path: str, n: int) -> None:
    from gandistill.teachers.bank import build_bank
    from gandistill.teachers import create_teacher

    t = create_teacher("sg2-generator")
    build_bank(t, n, path, teacher_name="sg2-generator", batch=256, seed=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="3 rounds of 2 steps, 100-step accuracy check")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--steps", type=int, default=2, help="engine steps (and as many split steps) per row and round")
    ap.add_argument("--batch", type=int, default=64, help="global batch (the default run's)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads in both workers (default: torch's)")
    ap.add_argument("--bank-n", type=int, default=None, help="images in the bank (default 4096; --quick 2048)")
    ap.add_argument("--accuracy-steps", type=int, default=None, help="0: skip (default 250; --quick 100)")
    ap.add_argument("--no-today", action="store_true", help="skip the pre-issue-10 baseline worker")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-row memory processes")
    ap.add_argument("--tmp", default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    if args.worker is not None:
        worker(json.loads(args.worker))
        return
    import tempfile

    rounds = args.rounds or (3 if args.quick else 5)
    bank_n = args.bank_n or (2048 if args.quick else 4096)
    acc_steps = args.accuracy_steps if args.accuracy_steps is not None else (100 if args.quick else 250)
    tmp = args.tmp or tempfile.mkdtemp(prefix="gandistill-bench-step-")
    facts = C.machine()
    facts["threads"] = str(args.threads or "torch default")
    C.print_facts(facts)
    bank = os.path.join(tmp, "bank")
    t0 = time.perf_counter()
    _build_bank(bank, bank_n)
    print(f"# bank: {bank_n} images from the bundled teacher in {time.perf_counter() - t0:.1f} s", flush=True)

    base = dict(batch=args.batch, tmp=tmp, bank=bank, threads=args.threads, accuracy_steps=acc_steps)
    env_now = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    env_today = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    now_rows = ["vicreg-real", "squeeze", "sns", "squeeze + bank", "sns + bank"]
    workers = [Worker("now", {**base, "rows": now_rows, "legacy": False}, env_now)]
    if not args.no_today:
        workers.append(Worker("today", {**base, "rows": ["sns (today)"], "legacy": True}, env_today))
        # the same old code under the new wait policy: separates the code's share from the environment's
        workers.append(Worker("today-code", {**base, "rows": ["sns (today's code, PASSIVE)"], "legacy": True},
                              env_now))
    for w in workers:
        print(f"# worker {w.name}: threads {w.info['threads']}, OMP_WAIT_POLICY {w.info['omp']}, rows {w.info['ready']}",
              flush=True)
    results: Dict[str, List[Dict[str, Any]]] = {r: [] for w in workers for r in w.info["ready"]}
    for r in range(rounds):
        for w in workers:
            for row in w.info["ready"]:
                results[row].append(w.ask(cmd="run", row=row, steps=args.steps))
        print(f"# round {r + 1}/{rounds} done (load {C.load()})", flush=True)
    report(results, {}, {}, args.batch, rounds, args.steps, 0, bank_n)  # the speed figures, before the slow parts
    acc: Dict[str, Any] = {}
    if acc_steps > 0:
        msg = workers[0].ask(cmd="accuracy")
        acc = msg.get("accuracy", {})
        if "error" in msg:
            print(f"# accuracy check failed: {msg['error']}", flush=True)
    for w in workers:
        w.close()
    memory: Dict[str, float] = {}
    if not args.no_memory:  # one fresh process per row: its footprint (teacher, model, optimizer, activations)
        for w in workers:
            for row in w.info["ready"]:
                spec = {**base, "rows": [row], "legacy": w.name.startswith("today"), "memory_only": True}
                m = Worker(f"memory {row}", spec, env_today if w.name == "today" else env_now)
                memory[row] = m.info["peak_mib"]
                m.p.wait(timeout=120)
        print(f"# memory measured (load {C.load()})", flush=True)
    if acc or memory:
        report(results, acc, memory, args.batch, rounds, args.steps, acc_steps, bank_n)


def report(results: Dict[str, List[Dict[str, Any]]], acc: Dict[str, Any], memory: Dict[str, float], batch: int,
           rounds: int, steps: int, acc_steps: int, bank_n: int) -> None:
    def med(row: str) -> float:
        return C.median([x for res in results[row] for x in res["step_s"]])

    def part(row: str, k: str) -> float:
        return C.median([res["split"].get(k, 0.0) for res in results[row]])

    rows = []
    for row in results:
        t = med(row)
        split = {k: part(row, k) for k in PARTS}
        rows.append([row, batch / t, 1000 * t, memory.get(row, float("nan"))]
                    + [1000 * split[k] for k in PARTS] + [1000 * (t - sum(split.values())),
                                                          acc.get(row, {}).get("top1", float("nan"))])
    t_of = {row: med(row) for row in results}
    print()
    print(C.table(["row", "images/s", "ms/step", "peak MiB"] + [f"{k} ms" for k in PARTS] +
                  ["other ms", f"top-1 ({acc_steps} steps)"], rows,
                  title=f"gandistill fit step, digits, resnet10t, batch {batch}, CPU fp32, {rounds} rounds x "
                        f"{steps} steps, median"))
    print()
    vr = t_of["vicreg-real"]
    print(f"sns / vicreg-real (step time)        : {t_of['sns'] / vr:.2f}   (target <= 1.9)")
    print(f"sns + bank / vicreg-real (step time) : {t_of['sns + bank'] / vr:.2f}   (target <= 1.1)")
    if "sns (today)" in t_of:
        print(f"default run images/s, now / today    : {t_of['sns (today)'] / t_of['sns']:.2f}x   (target >= 3)")
    old_code = "sns (today's code, PASSIVE)"
    if old_code in t_of:
        print(f"  ... the code's share (both PASSIVE): {t_of[old_code] / t_of['sns']:.2f}x")
    if acc.get("sns") and acc.get("sns + bank"):
        print(f"bank effect on top-1 after {acc_steps} steps: {acc['sns + bank']['top1'] - acc['sns']['top1']:+.2f} "
              f"points ({bank_n}-image bank, one seed)")
    print(f"\n# load at end: {C.load()}")


if __name__ == "__main__":
    main()
