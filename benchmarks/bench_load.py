"""How fast and lean ``load_sg2`` reads NVlabs snapshots, beside a plain trusted unpickle of the same file.

Builds real-size random snapshots with our own NVlabs-format writer (``tests/nvlabs_writer.py``; our own
networks make the state dicts): the ``cifar`` config at 32 px (~240 MB with G, D, G_ema) and the
``stylegan2`` config at 1024 px (~380 MB), each at pickle protocols 3 (Python <= 3.7) and 4. Every load runs
in a fresh subprocess, which prints its wall time and its peak RSS growth (``VmHWM`` after the load minus
``VmRSS`` before it, both after the imports). Variants:

* ``ours all``: ``load_sg2(path, nets=("G", "D", "G_ema"))`` -- what NVlabs' ``legacy.load_network_pkl``
  builds (all networks);
* ``ours G_ema``: ``load_sg2(path)`` -- what a teacher needs;
* ``pickle``: trusted ``pickle.load`` of the same file with name-only stand-ins for NVlabs' modules (records
  come back as dicts; tensors through torch's own ``_load_from_bytes``): the unpickling NVlabs' loader does,
  without its module exec and ``__setstate__``;
* ``torch.load``: the three state dicts in one ``torch.save`` zip file, ``weights_only=True``.

    python benchmarks/bench_load.py            # cifar 32 px and stylegan2 1024 px, protocols 3 and 4
    python benchmarks/bench_load.py --quick    # cifar 32 px, protocol 4, one round
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_ROOT), str(_ROOT / "tests")]

CHILD = r"""
import json, re, sys, time
from pathlib import Path
sys.path[:0] = {paths!r}
def rss(field):
    return int(re.search(field + r":\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))
variant, path = sys.argv[1], sys.argv[2]
import torch, pickle
if variant.startswith("ours"):
    from gandistill.teachers.stylegan2.checkpoint import load_sg2
elif variant == "pickle":
    import nvlabs_writer as W
    import types
    class EasyDict(dict):
        pass
    mods = {{n: types.ModuleType(n) for n in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")}}
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = lambda meta: meta
    mods["dnnlib.util"].EasyDict = EasyDict
    sys.modules.update(mods)
    import numpy
start = rss("VmRSS")
t0 = time.perf_counter()
if variant == "ours all":
    out = load_sg2(path, nets=("G", "D", "G_ema"))
elif variant == "ours G_ema":
    out = load_sg2(path)
elif variant == "pickle":
    import warnings
    warnings.simplefilter("ignore")
    with open(path, "rb") as f:
        out = pickle.load(f)
else:
    out = torch.load(path, weights_only=True)
dt = time.perf_counter() - t0
print(json.dumps({{"time": dt, "peak_mb": (rss("VmHWM") - start) / 1024, "start_mb": start / 1024}}))
"""


def configs(quick: bool):
    from gandistill.teachers.stylegan2 import sg2_kwargs

    G32, D32 = sg2_kwargs("cifar")
    out = [("cifar 32px", G32, D32)]
    if not quick:
        G, D = sg2_kwargs("cifar", img_resolution=1024)  # NVlabs' `stylegan2` config: fmaps 1, map 8, D resnet
        G["mapping_kwargs"] = dict(num_layers=8)
        G["synthesis_kwargs"].update(channel_base=32768, channel_max=512)
        G["synthesis_kwargs"].pop("architecture", None)
        D.update(channel_base=32768, channel_max=512, architecture="resnet")
        D["epilogue_kwargs"] = dict(mbstd_group_size=4)
        out.append(("stylegan2 1024px", G, D))
    return out


def build(folder: Path, name: str, G_kwargs: dict, D_kwargs: dict, protocols):
    import torch

    import nvlabs_writer as W
    from gandistill.teachers.stylegan2 import Discriminator, Generator

    torch.manual_seed(0)
    G, D, G_ema = Generator(**G_kwargs), Discriminator(**D_kwargs), Generator(**G_kwargs)
    snap = W.snapshot(G=G, D=D, G_ema=G_ema, training_set_kwargs=dict(resolution=G_kwargs["img_resolution"]))
    files = {}
    for proto in protocols:
        p = folder / f"{name.split()[0]}-{G_kwargs['img_resolution']}-p{proto}.pkl"
        t0 = time.perf_counter()
        W.write_snapshot(p, snap, proto)
        print(f"  wrote {p.name}: {p.stat().st_size / 2 ** 20:.0f} MB in {time.perf_counter() - t0:.1f} s", flush=True)
        files[proto] = p
    tz = folder / f"{name.split()[0]}-{G_kwargs['img_resolution']}.pt"
    torch.save({k: v.state_dict() for k, v in (("G", G), ("D", D), ("G_ema", G_ema))}, tz)
    return files, tz


def measure(variant: str, path: Path) -> dict:
    code = CHILD.format(paths=[str(_ROOT), str(_ROOT / "tests")])
    out = subprocess.run([sys.executable, "-c", code, variant, str(path)], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    if out.returncode:
        raise SystemExit(f"{variant} on {path.name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="cifar 32 px, protocol 4, one round")
    ap.add_argument("--rounds", type=int, default=None, help="loads per variant (default 3; 1 with --quick)")
    ap.add_argument("--dir", default=None, help="where to write the snapshots (default: a temporary folder)")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    protocols = (4,) if args.quick else (3, 4)
    tmp = tempfile.TemporaryDirectory(prefix="bench-load-", dir=args.dir)
    folder = Path(tmp.name)
    print(f"load average {'/'.join(f'{v:.2f}' for v in os.getloadavg())}; {rounds} round(s) per variant; "
          f"every load in a fresh process", flush=True)
    rows = []
    for name, G_kwargs, D_kwargs in configs(args.quick):
        files, tz = build(folder, name, G_kwargs, D_kwargs, protocols)
        for proto, path in files.items():
            size_mb = path.stat().st_size / 2 ** 20
            runs = {v: [] for v in ("pickle", "ours all", "ours G_ema", "torch.load")}
            for _ in range(rounds):  # interleaved: machine load hits every variant alike
                for v in runs:
                    runs[v].append(measure(v, tz if v == "torch.load" else path))
            base = statistics.median(r["time"] for r in runs["pickle"])
            for v, rs in runs.items():
                t = statistics.median(r["time"] for r in rs)
                peak = max(r["peak_mb"] for r in rs)
                rows.append((name, proto, size_mb, v, t, t / base, peak, peak / size_mb))
                print(f"{name:17s} p{proto} {size_mb:6.0f} MB  {v:11s} {t:6.2f} s  {t / base:5.2f}x pickle  "
                      f"peak +{peak:6.0f} MB = {peak / size_mb:4.2f}x file", flush=True)
        for p in (*files.values(), tz):
            p.unlink()
    print("\n| config | protocol | file MB | variant | time s | vs pickle | peak RSS growth MB | x file |")
    print("|---|---|---|---|---|---|---|---|")
    for name, proto, size, v, t, ratio, peak, px in rows:
        print(f"| {name} | {proto} | {size:.0f} | {v} | {t:.2f} | {ratio:.2f} | {peak:.0f} | {px:.2f} |")
    print(f"\nload average at the end {'/'.join(f'{v:.2f}' for v in os.getloadavg())}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
