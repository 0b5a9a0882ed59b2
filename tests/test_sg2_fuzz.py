"""Bounded fuzzing of the StyleGAN2-ADA snapshot loader on the fixture (fixed seed).

A few hundred opcode-aware mutations and truncations of ``sg2-tiny-uncond.pkl`` (opcode bytes,
argument bytes, length fields, slices deleted or repeated, the inner pickles of the tensor blobs).
Each must load or raise ``SG2LoadError`` naming the file, within a CPU-time and peak-memory bound.
``GANDISTILL_FUZZ_N`` sets the number of cases (default 250) for longer local runs.
"""
from __future__ import annotations

import faulthandler
import os
import pickletools
import random
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from gandistill.teachers.stylegan2.checkpoint import SG2LoadError, load_sg2

FIXTURE = Path(__file__).parent / "fixtures" / "sg2-tiny-uncond.pkl"
N_CASES = int(os.environ.get("GANDISTILL_FUZZ_N", "250"))
MAX_CPU_S = 1.0
MAX_PEAK_MB = 128
OPCODES = sorted({op.code.encode("latin1")[0] for op in pickletools.opcodes})


class _Watchdog(BaseException):
    """Raised by SIGALRM when one case runs far too long (BaseException: nothing in the loader swallows it)."""


def _ops(data: bytes, limit: int = 10 ** 6):
    """(position, opcode name, argument length) of the opcodes of the first pickle in ``data``."""
    out, ops = [], list(pickletools.genops(data))[:limit]
    for (op, _arg, pos), nxt in zip(ops, ops[1:] + [(None, None, None)]):
        out.append((pos, op.name, (nxt[2] if nxt[2] is not None else pos + 1) - pos - 1))
    return out


def _blob_ops(data: bytes, top):
    """Opcode positions inside the storage blobs (their five small pickles), as absolute positions."""
    out = []
    for pos, name, arglen in top:
        if name not in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8"):
            continue
        head = {"SHORT_BINBYTES": 1, "BINBYTES": 4, "BINBYTES8": 8}[name]
        start = pos + 1 + head
        blob = data[start:pos + 1 + arglen]
        off = 0
        for _ in range(5):
            try:
                inner = list(pickletools.genops(blob[off:]))
            except Exception:
                break
            out += [(start + off + p, op.name) for op, _a, p in inner]
            off += inner[-1][2] + 1
    return out


def _mutations(data: bytes, n: int, seed: int = 20240611):
    rng = random.Random(seed)
    top = _ops(data)
    with_args = [t for t in top if t[2] > 0]
    blobs = _blob_ops(data, top)
    lengths = [t for t in top if t[1] in ("BINBYTES", "BINUNICODE", "SHORT_BINUNICODE", "LONG_BINGET", "BINGET",
                                          "LONG_BINPUT", "BINPUT", "FRAME", "BININT", "BININT2")]
    for i in range(n):
        b = bytearray(data)
        kind = rng.choice(["op", "op", "arg", "len", "blob", "blob", "trunc", "delete", "repeat", "flips"])
        if kind == "op":
            pos = rng.choice(top)[0]
            b[pos] = rng.choice(OPCODES) if rng.random() < 0.8 else rng.randrange(256)
        elif kind == "arg":
            pos, _, arglen = rng.choice(with_args)
            b[pos + 1 + rng.randrange(min(arglen, 9))] = rng.randrange(256)
        elif kind == "len":
            pos = rng.choice(lengths)[0]
            width = min(4, len(b) - pos - 1)
            b[pos + 1:pos + 1 + width] = rng.randrange(2 ** (8 * width)).to_bytes(width, "little")
        elif kind == "blob":
            pos, _ = rng.choice(blobs)
            b[pos + rng.randrange(3)] = rng.choice(OPCODES) if rng.random() < 0.6 else rng.randrange(256)
        elif kind == "trunc":
            b = b[: rng.choice(top)[0] + rng.randrange(3)]
        elif kind == "delete":
            pos = rng.choice(top)[0]
            del b[pos:pos + rng.randrange(1, 12)]
        elif kind == "repeat":
            pos = rng.choice(top)[0]
            k = rng.randrange(1, 24)
            b[pos:pos] = b[pos:pos + k] * rng.randrange(1, 50)
        else:
            for _ in range(rng.randrange(1, 8)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        yield i, kind, bytes(b)


def _peak_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))


def test_fuzzed_snapshots_load_or_fail_cleanly(tmp_path):
    data = FIXTURE.read_bytes()
    load_sg2(FIXTURE)  # warm up (imports, first meta-device build) before timing anything
    measure_mem = sys.platform.startswith("linux") and _peak_reset()

    def alarm(signum, frame):
        raise _Watchdog()

    old = signal.signal(signal.SIGALRM, alarm) if hasattr(signal, "SIGALRM") else None
    faulthandler.dump_traceback_later(600, exit=True)  # a C-level hang must fail the run, not stall CI
    bad, outcomes, worst_cpu, worst_mb = [], {"ok": 0, "refused": 0}, 0.0, 0.0
    t_all = time.perf_counter()
    try:
        for i, kind, body in _mutations(data, N_CASES):
            path = tmp_path / f"m{i:04d}.pkl"
            path.write_bytes(body)
            if measure_mem:
                _peak_reset()
                base = _kb("VmRSS")
            if old is not None:
                signal.setitimer(signal.ITIMER_REAL, 20.0)
            t0 = time.process_time()
            try:
                load_sg2(path)
                outcomes["ok"] += 1
            except SG2LoadError as e:
                outcomes["refused"] += 1
                msg = str(e)
                if not msg.startswith(str(path)) or "\n" in msg:
                    bad.append(f"#{i} {kind}: unclean message {msg[:200]!r}")
            except _Watchdog:
                bad.append(f"#{i} {kind}: still running after 20 s")
            except Exception as e:  # anything else is a bug
                bad.append(f"#{i} {kind}: {type(e).__name__}: {str(e)[:200]}")
            finally:
                if old is not None:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            cpu = time.process_time() - t0
            worst_cpu = max(worst_cpu, cpu)
            if cpu > MAX_CPU_S:
                bad.append(f"#{i} {kind}: {cpu:.2f} s CPU")
            if measure_mem:
                mb = (_kb("VmHWM") - base) / 1024
                worst_mb = max(worst_mb, mb)
                if mb > MAX_PEAK_MB:
                    bad.append(f"#{i} {kind}: peak RSS +{mb:.0f} MB")
            path.unlink()
    finally:
        faulthandler.cancel_dump_traceback_later()
        if old is not None:
            signal.signal(signal.SIGALRM, old)
    took = time.perf_counter() - t_all
    print(f"fuzz: {N_CASES} cases in {took:.1f} s, {outcomes}, worst {worst_cpu:.3f} s CPU, +{worst_mb:.0f} MB RSS")
    assert not bad, "\n".join(bad[:20])
    assert outcomes["refused"] > N_CASES // 4  # the mutations do reach the checks


def test_fuzz_mutations_are_deterministic_and_varied():
    data = FIXTURE.read_bytes()
    a = [(k, hash(b)) for _, k, b in _mutations(data, 40)]
    assert a == [(k, hash(b)) for _, k, b in _mutations(data, 40)]
    assert len({k for k, _ in a}) >= 8 and len({h for _, h in a}) == 40
