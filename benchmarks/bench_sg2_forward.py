"""StyleGAN2 generator forward: every implementation side by side, with its error to the reference path.

    python benchmarks/bench_sg2_forward.py --quick            # cifar config, batch 16 and 64, CPU fp32 (minutes)
    python benchmarks/bench_sg2_forward.py                    # batch 16, 64 and 256
    python benchmarks/bench_sg2_forward.py --config tiny --batch 32
    python benchmarks/bench_sg2_forward.py --device cuda      # + bf16/fp16, channels_last, torch.compile

Paths (``G.synthesis(ws, fused_modconv=...)``):

* ``reference (fused)``  -- per-sample weights in one grouped conv + FIR up/down-sampling by ``upfirdn2d``:
  the official code's maths without its CUDA kernels (NVlabs' choice in eval at fp32);
* ``non-fused``          -- styles on the activations, one shared conv (NVlabs' training path);
* ``winograd``           -- our fast inference path (Winograd F(4x4,3x3), channels-last, fused epilogue);
* ``auto``               -- what the networks pick when nothing is asked (the rule in
  ``gandistill.teachers.stylegan2.ops.choose_modconv``, printed per batch);
* GPU only: ``non-fused bf16`` / ``fp16`` (the checkpoint's fp16 blocks), ``channels_last``, ``torch.compile``.

Random weights (the maths costs the same), the same ``ws`` for every path, ``noise_mode="const"`` so the
outputs are comparable; ``max|d|`` is the max abs difference of the images to the reference path. The
paths are timed in interleaved rounds in one process; ``vs ref`` is the speed ratio to the reference.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
from typing import Callable, Dict, List, Tuple

import _common as C  # noqa: E402 (adds the repo root to sys.path)
import torch

from gandistill.teachers.stylegan2 import Generator, sg2_kwargs
from gandistill.teachers.stylegan2.ops import choose_modconv


def variants(G: Generator, ws: torch.Tensor, device: str) -> Dict[str, Callable[[], torch.Tensor]]:
    def run(impl, dtype=None, force_fp32=True, net=None):
        net = net or G.synthesis

        def fn():
            ctx = (torch.autocast(device_type="cuda", dtype=dtype) if dtype is not None
                   else contextlib.nullcontext())
            with torch.no_grad(), ctx:
                return net(ws, noise_mode="const", fused_modconv=impl, force_fp32=force_fp32).float()
        return fn

    v: Dict[str, Callable[[], torch.Tensor]] = {
        "reference (fused)": run(True),
        "non-fused": run(False),
    }
    if device == "cpu":
        v["winograd"] = run("winograd")
    v["auto"] = run(None)
    if device.startswith("cuda"):
        v["non-fused bf16"] = run(False, dtype=torch.bfloat16)
        v["non-fused fp16 blocks"] = run(False, force_fp32=False)
        Gc = copy.deepcopy(G).to(memory_format=torch.channels_last)
        v["non-fused channels_last"] = run(False, net=Gc.synthesis)
        v["non-fused channels_last bf16"] = run(False, dtype=torch.bfloat16, net=Gc.synthesis)
        try:
            v["compile non-fused bf16"] = run(False, dtype=torch.bfloat16, net=torch.compile(Gc.synthesis))
        except Exception as e:  # pragma: no cover - depends on the GPU toolchain
            print(f"# torch.compile unavailable: {type(e).__name__}: {e}")
    return v


def auto_rule(G: Generator, batch: int, device: str) -> str:
    """The implementations ``auto`` picks for the 3x3 layers at this batch (one entry per distinct choice)."""
    picks = []
    with torch.no_grad():
        for res in G.synthesis.block_resolutions:
            b = getattr(G.synthesis, f"b{res}")
            for name in ("conv0", "conv1"):
                layer = getattr(b, name, None)
                if layer is None:
                    continue
                in_res = res // layer.up
                picks.append(choose_modconv(torch.device(device), torch.float32, batch, layer.in_channels,
                                            layer.out_channels, in_res, layer.weight.shape[-1], False, up=layer.up))
    return ",".join(sorted(set(picks)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="cifar", help="sg2 config name (tiny, cifar, stl, paper256)")
    ap.add_argument("--batch", type=int, nargs="+", default=None, help="batch sizes (default 16 64 256)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per path (default 3; --quick 2)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="batch 16 and 64, 2 rounds")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = args.batch or ([16, 64] if args.quick else [16, 64, 256])
    rounds = args.rounds or (2 if args.quick else 3)
    facts = C.machine(args.device)
    C.print_facts(facts)

    torch.manual_seed(0)
    G_kwargs, _ = sg2_kwargs(args.config)
    G = Generator(**G_kwargs).eval().requires_grad_(False).to(args.device)
    rows: List[Tuple] = []
    for batch in batches:
        ws = G.mapping(torch.randn(batch, G.z_dim, device=args.device), None)
        fns = variants(G, ws, args.device)
        with torch.no_grad():
            ref = fns["reference (fused)"]()
            err = {}
            for k, fn in list(fns.items()):
                try:
                    err[k] = float((fn() - ref).abs().max())
                except Exception as e:  # e.g. a GPU toolchain without torch.compile support: report, go on
                    print(f"# {k}: skipped ({type(e).__name__}: {str(e)[:200]})", flush=True)
                    del fns[k]
        times = C.interleaved(fns, rounds, args.device, warmup=0,
                              log=lambda s: print(f"# batch {batch}: {s}", flush=True))
        t_ref = C.median(times["reference (fused)"])
        for k in fns:
            t = C.median(times[k])
            rows.append((batch, k, batch / t, 1000 * t, t_ref / t, err[k]))
        print(f"# batch {batch}: auto picks {auto_rule(G, batch, args.device)} for the 3x3 layers", flush=True)
        del ws, fns, ref
    facts_end = C.load()
    print()
    print(C.table(["batch", "path", "images/s", "ms/batch", "vs ref", "max|d| to ref"], rows,
                  title=f"StyleGAN2 G forward, config '{args.config}' ({G.img_resolution} px, "
                        f"{max(G.feature_channels().values())} ch max), {args.device} fp32 unless named, "
                        f"threads {torch.get_num_threads()}, {rounds} interleaved rounds, median"))
    print(f"\n# load at end: {facts_end}")


if __name__ == "__main__":
    main()
