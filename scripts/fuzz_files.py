"""Structure-aware fuzzing of the readers of run folders, banks, safetensors, train states, exports and
CIFAR batches (the pickle snapshot loaders have their own fuzzing).

    OMP_NUM_THREADS=1 nice -n 10 python scripts/fuzz_files.py --minutes 10

Starting from valid files, each case mutates one of them the way a hostile or broken writer would
(replace a JSON value by another type / a huge or non-finite number / a deep structure, drop a key,
flip, insert or delete bytes, truncate, inflate a count) and calls the reader. A finding is any outcome
other than "accepted" or "one GandistillError line" (for CIFAR: ``ValueError``): another exception type,
a multi-line or over-long message, a call over 1 s of CPU, or the worker dying (a crash: the parent
restarts it and reports the case it was on). Exit status 1 when anything was found.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

CPU_LIMIT_S = 1.0


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ------------------------------------------------------------------------------------------------ mutations


def weird_value(rng: random.Random):
    return rng.choice([None, True, -1, 0, 2 ** 40, 10 ** 30, -10 ** 30, 1e308, "x", "", "../../etc/passwd",
                       "/etc/passwd", [], {}, [1, 2], {"a": 1}, [[[[[[]]]]]], 3.5, "[/]", "\x1b[31m", "A" * 5000,
                       2 ** 63, -(2 ** 63), 0.0, "Infinity"])


def mutate_json(obj, rng: random.Random, depth: int = 0):
    """One structure-aware change somewhere inside ``obj`` (a copy)."""
    obj = json.loads(json.dumps(obj))
    if isinstance(obj, dict) and obj and (depth < 3 and rng.random() < 0.6):
        k = rng.choice(sorted(obj))
        op = rng.random()
        if op < 0.15:
            del obj[k]
        elif op < 0.25:
            obj[rng.choice(["extra", "__proto__", "name", "checkpoint_path"])] = weird_value(rng)
        elif isinstance(obj[k], (dict, list)) and op < 0.7:
            obj[k] = mutate_json(obj[k], rng, depth + 1)
        else:
            obj[k] = weird_value(rng)
        return obj
    if isinstance(obj, list) and obj and depth < 3 and rng.random() < 0.6:
        i = rng.randrange(len(obj))
        obj[i] = mutate_json(obj[i], rng, depth + 1) if rng.random() < 0.5 else weird_value(rng)
        return obj
    return weird_value(rng)


def mutate_bytes(data: bytes, rng: random.Random, protect: int = 0) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 4, 16])):
        op = rng.random()
        pos = rng.randrange(protect, max(protect + 1, len(b)))
        if op < 0.4 and b:
            b[min(pos, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op < 0.6:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.choice([1, 8, 64])))
        elif op < 0.8:
            del b[pos:pos + rng.choice([1, 8, 64, 4096])]
        else:
            del b[pos:]
    return bytes(b)


def json_raw(obj, rng: random.Random) -> bytes:
    raw = json.dumps(mutate_json(obj, rng)).encode()
    return mutate_bytes(raw, rng) if rng.random() < 0.2 else raw


# ------------------------------------------------------------------------------------------------ targets


class Targets:
    def __init__(self, tmp: Path) -> None:
        import torch
        from safetensors.torch import save_file
        from test_hostile_io import student_run, tiny_student

        import io_attacks as A
        from gandistill.students.export import export_backbone

        self.tmp, self.A = tmp, A
        self.run = student_run(tmp / "tpl_run")
        self.export = tmp / "tpl_export"
        export_backbone(self.run, self.export, projector=True)
        self.bank_header = A.bank_header(n=8, c=3, r=4, dims=(5,), labels=True)
        self.student = tiny_student()
        self.weights = (self.run / "student.safetensors").read_bytes()
        opt = torch.optim.AdamW(self.student.parameters())
        self.student(torch.zeros(2, 3, 16, 16)).sum().backward()
        opt.step()
        torch.save({"step": 3, "optimizer": opt.state_dict(), "rng_cpu": torch.get_rng_state()}, tmp / "ts.pt")
        self.train_state = (tmp / "ts.pt").read_bytes()
        self.cifar = pickle.dumps({"batch_label": "b", "labels": [1, 2], "data": __import__("numpy").zeros(
            (2, 3072), dtype="uint8"), "filenames": [b"a", b"b"]}, protocol=2)
        save_file({"w": torch.ones(3)}, str(tmp / "one.safetensors"))

    def case(self, kind: str, rng: random.Random, work: Path):
        """Build one mutated input in ``work``; returns the call to make."""
        A = self.A
        if kind == "bank":
            from gandistill.teachers.bank import BankTeacher

            h = self.bank_header
            raw = json_raw(h, rng)
            A.write_bank(work / "b", None, raw_header=raw, size=A.bank_size(h) + rng.choice([0, 0, -1, -100, 4096]))
            if rng.random() < 0.2:
                data = (work / "b" / "bank.bin").read_bytes()
                (work / "b" / "bank.bin").write_bytes(mutate_bytes(data, rng))
            return lambda: BankTeacher(work / "b").sample(16)
        if kind in ("checkpoint", "config"):
            from gandistill.evaluate import load_student

            shutil.copytree(self.run, work / "r")
            name = "checkpoint.json" if kind == "checkpoint" else "config.json"
            (work / "r" / name).write_bytes(json_raw(json.loads((self.run / name).read_text()), rng))
            return lambda: load_student(work / "r")
        if kind == "weights":
            from gandistill.evaluate import load_student

            shutil.copytree(self.run, work / "r")
            data = self.weights
            if rng.random() < 0.5:
                n = struct.unpack("<Q", data[:8])[0]
                header = json.loads(data[8:8 + n])
                raw = json_raw(header, rng)
                data = struct.pack("<Q", len(raw)) + raw + data[8 + n:]
            else:
                data = mutate_bytes(data, rng)
            (work / "r" / "student.safetensors").write_bytes(data)
            return lambda: load_student(work / "r")
        if kind == "export":
            from gandistill.students.export import load_backbone, load_projector

            shutil.copytree(self.export, work / "e")
            meta = json.loads((self.export / "backbone.json").read_text())
            (work / "e" / "backbone.json").write_bytes(json_raw(meta, rng))
            return lambda: (load_backbone(work / "e"), load_projector(work / "e"))
        if kind == "train_state":
            from gandistill.io.tensors import read_train_state

            (work / "t.pt").write_bytes(mutate_bytes(self.train_state, rng))
            return lambda: read_train_state(work / "t.pt")
        if kind == "cifar":
            from gandistill.data.cifar import read_batch

            (work / "c").write_bytes(mutate_bytes(self.cifar, rng, protect=2))
            return lambda: read_batch(work / "c")
        raise ValueError(kind)


KINDS = ("bank", "checkpoint", "config", "weights", "export", "train_state", "cifar")


def judge(kind: str, call) -> tuple:
    from gandistill.io.errors import GandistillError

    t0 = cpu()
    try:
        call()
        outcome, bad = "ok", ""
    except GandistillError as e:
        msg = str(e)
        outcome = type(e).__name__
        bad = "multi-line message" if "\n" in msg else "message over 400 chars" if len(msg) > 400 else ""
    except FileNotFoundError as e:
        outcome, bad = "FileNotFoundError", ""
        del e
    except ValueError as e:
        outcome = type(e).__name__
        bad = "" if kind == "cifar" else f"ValueError outside the error family: {str(e)[:200]}"
    except Exception as e:  # noqa: BLE001 - this is what the fuzzer looks for
        outcome, bad = type(e).__name__, f"{type(e).__name__}: {str(e)[:200]}"
    dt = cpu() - t0
    if dt > CPU_LIMIT_S:
        bad = (bad + "; " if bad else "") + f"{dt:.2f} s of CPU"
    return outcome, bad, dt


def worker(seed: int, seconds: float) -> None:
    import torch

    torch.set_num_threads(1)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        targets = Targets(tmp)
        end, i = time.time() + seconds, 0
        while time.time() < end:
            kind = KINDS[i % len(KINDS)]
            case_seed = rng.randrange(2 ** 32)
            work = tmp / f"w{i}"
            work.mkdir()
            print(json.dumps({"at": kind, "seed": case_seed}), flush=True)
            call = targets.case(kind, random.Random(case_seed), work)
            outcome, bad, dt = judge(kind, call)
            if bad:
                print(json.dumps({"finding": bad, "kind": kind, "seed": case_seed, "outcome": outcome}), flush=True)
            print(json.dumps({"done": kind, "outcome": outcome, "cpu": round(dt, 3)}), flush=True)
            shutil.rmtree(work, ignore_errors=True)
            i += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=60, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.seed, args.seconds)
        return
    end = time.time() + 60 * args.minutes
    seed, cases, findings, outcomes, worst = args.seed, 0, [], {}, {}
    while time.time() < end:
        proc = subprocess.Popen([sys.executable, __file__, "--worker", "--seed", str(seed),
                                 "--seconds", str(max(1.0, end - time.time()))], stdout=subprocess.PIPE, text=True,
                                cwd=ROOT)
        last = None
        for line in proc.stdout:
            rec = json.loads(line)
            if "at" in rec:
                last = rec
            elif "done" in rec:
                cases += 1
                outcomes[(rec["done"], rec["outcome"])] = outcomes.get((rec["done"], rec["outcome"]), 0) + 1
                worst[rec["done"]] = max(worst.get(rec["done"], 0.0), rec["cpu"])
            elif "finding" in rec:
                findings.append(rec)
                print("FINDING", rec, flush=True)
        rc = proc.wait()
        if rc != 0:
            findings.append({"finding": f"worker died (rc {rc})", "case": last})
            print("FINDING worker died", rc, last, flush=True)
        seed += 1
    print(f"{cases} cases in {args.minutes:g} min, {len(findings)} findings")
    for kind in KINDS:
        seen = {o: n for (k, o), n in outcomes.items() if k == kind}
        print(f"  {kind:12s} worst CPU {worst.get(kind, 0.0):.3f} s  outcomes {seen}")
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
