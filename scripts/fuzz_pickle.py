"""Longer fuzzing of the NVlabs snapshot loader: seeded, structure-aware mutations of pickle opcodes.

Seeds: the fixture snapshot and tiny snapshots of our own writer at every protocol 0-5 (``tests/nvlabs_writer.py``).
Each case mutates one seed with a few opcode-aware edits (replace an opcode, change an argument or a length
field, delete / repeat / splice opcode ranges -- also inside the tensor blobs' inner pickles -- or insert a
random opcode run), writes it to a file and loads it with ``load_sg2``. A case passes when it loads or raises
``SG2LoadError`` naming the file on one clean line, within 1 s of CPU and +200 MB of peak RSS. The case being
run is saved to ``<out>/current.pkl`` first, so a crash leaves it behind; every failure is saved too.

    OMP_NUM_THREADS=1 python scripts/fuzz_pickle.py --minutes 10 [--seed 1] [--out fuzz-out]
"""
from __future__ import annotations

import argparse
import faulthandler
import os
import pickle
import pickletools
import random
import re
import signal
import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_ROOT), str(_ROOT / "tests")]

import torch  # noqa: E402

from gandistill.io.errors import GandistillError  # noqa: E402
from gandistill.teachers.stylegan2.checkpoint import SG2LoadError, load_sg2  # noqa: E402

MAX_CPU_S = 1.0
MAX_PEAK_MB = 200
OPCODES = sorted({op.code.encode("latin1")[0] for op in pickletools.opcodes})


class Watchdog(BaseException):
    pass


def seeds() -> list:
    import nvlabs_writer as W
    from gandistill.teachers.stylegan2 import Discriminator, Generator, sg2_kwargs

    out = [(_ROOT / "tests" / "fixtures" / "sg2-tiny-uncond.pkl").read_bytes()]
    G_kwargs, D_kwargs = sg2_kwargs("tiny")
    torch.manual_seed(0)
    snap = W.snapshot(G=Generator(**G_kwargs), D=Discriminator(**D_kwargs), G_ema=Generator(**G_kwargs))
    out += [W.dumps(snap, proto) for proto in range(6)]
    return out


def opcodes(data: bytes) -> list:
    """(position, name, argument length) of the opcodes of the first pickle in ``data`` (as far as it parses)."""
    out = []
    try:
        ops = list(pickletools.genops(data))
    except Exception:
        return out
    for (op, _a, pos), nxt in zip(ops, ops[1:] + [(None, None, None)]):
        out.append((pos, op.name, (nxt[2] if nxt[2] is not None else pos + 1) - pos - 1))
    return out


def random_ops(rng: random.Random, n: int) -> bytes:
    """A run of opcodes with plausible arguments (containers, memo, globals, calls)."""
    parts = []
    for _ in range(n):
        c = rng.random()
        if c < 0.3:
            parts.append(bytes([rng.choice(OPCODES)]))
        elif c < 0.5:
            parts.append(pickle.BINGET + bytes([rng.randrange(8)]) if rng.random() < 0.5 else
                         pickle.BINPUT + bytes([rng.randrange(8)]))
        elif c < 0.65:
            s = rng.choice(["G_ema", "_modules", "_parameters", "state", "class_name", "x" * rng.randrange(40)])
            parts.append(pickle.SHORT_BINUNICODE + bytes([len(s)]) + s.encode())
        elif c < 0.75:
            parts.append(pickle.BININT + rng.randrange(-2 ** 31, 2 ** 31).to_bytes(4, "little", signed=True))
        elif c < 0.85:
            mod, name = rng.choice([("collections", "OrderedDict"), ("builtins", "set"), ("dnnlib.util", "EasyDict"),
                                    ("torch._utils", "_rebuild_tensor_v2"), ("numpy", "dtype"), ("os", "system"),
                                    ("copyreg", "_reconstructor"), ("_codecs", "encode")])
            parts.append(pickle.GLOBAL + f"{mod}\n{name}\n".encode())
        else:
            parts.append(rng.choice([pickle.MARK, pickle.TUPLE, pickle.REDUCE, pickle.BUILD, pickle.SETITEMS,
                                     pickle.APPENDS, pickle.EMPTY_DICT, pickle.EMPTY_LIST, pickle.NEWOBJ]))
    return b"".join(parts)


def mutate(rng: random.Random, pool: list) -> bytes:
    data = rng.choice(pool)
    b = bytearray(data)
    ops = opcodes(data)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        kind = rng.choice(["op", "arg", "len", "delete", "repeat", "splice", "insert", "bytes", "trunc"])
        if not ops or not b:
            break
        pos, _name, arglen = rng.choice(ops)
        pos = min(pos, len(b) - 1)
        if kind == "op":
            b[pos] = rng.choice(OPCODES) if rng.random() < 0.9 else rng.randrange(256)
        elif kind == "arg" and arglen:
            b[min(pos + 1 + rng.randrange(min(arglen, 9)), len(b) - 1)] = rng.randrange(256)
        elif kind == "len" and arglen >= 4:
            b[pos + 1:pos + 5] = rng.choice([0, 1, 2 ** 31 - 1, 2 ** 32 - 1, rng.randrange(2 ** 32)]).to_bytes(4, "little")
        elif kind == "delete":
            end = min(len(b), pos + rng.randrange(1, 200))
            del b[pos:end]
        elif kind == "repeat":
            end = min(len(b), pos + rng.randrange(1, 64))
            b[pos:pos] = bytes(b[pos:end]) * rng.randrange(2, 2000)
        elif kind == "splice":
            other = rng.choice(pool)
            j = rng.randrange(len(other))
            b[pos:pos] = other[j:j + rng.randrange(1, 500)]
        elif kind == "insert":
            b[pos:pos] = random_ops(rng, rng.randrange(1, 40))
        elif kind == "bytes":
            for _ in range(rng.randrange(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif kind == "trunc":
            del b[rng.randrange(len(b)):]
    return bytes(b)


def _rss_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))


def run_case(path: Path) -> str:
    """'' if the case passed, else why not."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        base = _rss_kb("VmRSS")
    except OSError:
        base = None
    t0 = time.process_time()
    signal.alarm(30)
    try:
        load_sg2(path, nets=("G", "D", "G_ema") if path.stat().st_size % 2 else ("G_ema",))
        verdict = ""
    except FileNotFoundError as e:
        verdict = f"FileNotFoundError {e}"
    except SG2LoadError as e:
        msg = str(e)
        verdict = ""
        if not isinstance(e, GandistillError) or not msg.startswith(str(path)):
            verdict = f"message does not name the file: {msg[:200]!r}"
        elif "\n" in msg or "\x1b" in msg or len(msg) > 400:
            verdict = f"message not one clean bounded line: {msg[:200]!r}"
    except Watchdog:
        verdict = "watchdog: over 30 s"
    except Exception as e:  # noqa: BLE001 - the point: anything else is a finding
        verdict = f"{type(e).__name__}: {str(e)[:200]}"
    finally:
        signal.alarm(0)
    cpu = time.process_time() - t0
    if not verdict and cpu > MAX_CPU_S:
        verdict = f"{cpu:.2f} s CPU"
    if not verdict and base is not None:
        peak = (_rss_kb("VmHWM") - base) / 1024
        if peak > MAX_PEAK_MB:
            verdict = f"peak RSS +{peak:.0f} MB"
    return verdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="fuzz-out")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    faulthandler.enable()

    def alarm(*_):
        raise Watchdog()

    signal.signal(signal.SIGALRM, alarm)
    torch.set_num_threads(1)
    pool = seeds()
    rng = random.Random(args.seed)
    load_sg2(_ROOT / "tests" / "fixtures" / "sg2-tiny-uncond.pkl")  # warm up (imports, first build)
    end = time.monotonic() + 60 * args.minutes
    n = 0
    failures = []
    worst_cpu = 0.0
    current = out / "current.pkl"
    while time.monotonic() < end:
        case = mutate(rng, pool)
        current.write_bytes(case)
        t0 = time.process_time()
        verdict = run_case(current)
        worst_cpu = max(worst_cpu, time.process_time() - t0)
        n += 1
        if verdict:
            kept = out / f"fail-{len(failures):03d}.pkl"
            kept.write_bytes(case)
            failures.append((kept.name, verdict))
            print(f"FAIL {kept.name}: {verdict}", flush=True)
        if n % 500 == 0:
            print(f"{n} cases, {len(failures)} failures, worst CPU {worst_cpu:.2f} s", flush=True)
    current.unlink(missing_ok=True)
    print(f"done: {n} cases in {args.minutes:g} min (seed {args.seed}), {len(failures)} failures, "
          f"worst CPU per case {worst_cpu:.2f} s")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
