"""The StyleGAN2-ADA training loop: ``train_gan(cfg) -> run folder``.

One step (as in StyleGAN2-ADA, phases in this order):

1. G main:  ``L_G = sp(-D(aug(G(z))))``, Adam step on G (D frozen);
2. D main:  ``L_D = sp(D(aug(G(z')))) + sp(-D(aug(x)))``, Adam step on D; ``sign(D(aug(x)))``
   feeds the ADA heuristic;
3. D reg:   every ``r1_interval`` steps, lazy R1 ``gamma/2 * ||grad_x D||^2 * interval``, Adam step on D
   (D's lr and betas scaled by ``interval/(interval+1)``);
4. G EMA:   ``beta = 0.5 ** (batch / min(ema_kimg*1000, cur_nimg*rampup))``;
5. ADA:     every ``ada_interval`` steps ``p += sign(r_t - target) * batch*interval/(ada_kimg*1000)``.

Everything random draws from the global torch RNG (saved in every snapshot) except the data
indices (their own ``torch.Generator``, also saved), so ``--resume`` continues bit-identically.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torchvision.utils import save_image

from gandistill.data import load_all, load_dataset
from gandistill.gan.ada import AdaAugment, AdaController
from gandistill.gan.config import GanConfig
from gandistill.engine.loggers import RunLoggers
from gandistill.io.files import open_append
from gandistill.gan.loss import StyleGAN2Loss, ema_beta, tie_grey, update_ema
from gandistill.gan.snapshot import (load_state, resolve_snapshot, save_snapshot, snapshot_name,
                                     write_json_atomic)
from gandistill.teachers.stylegan2.checkpoint import load_sg2
from gandistill.teachers.stylegan2.configs import sg2_kwargs
from gandistill.teachers.stylegan2.networks import Discriminator, Generator


# ----------------------------------------------------------------------------------------------- networks

def network_kwargs(cfg: GanConfig, resolution: int, c_dim: int) -> Tuple[dict, dict]:
    """G and D constructor kwargs: ``sg2_kwargs(cfg.arch, ...)`` plus ``cfg.net_overrides``."""
    G_kw, D_kw = sg2_kwargs(cfg.arch, img_resolution=resolution, c_dim=c_dim, img_channels=3)
    G_kw, D_kw = copy.deepcopy(dict(G_kw)), copy.deepcopy(dict(D_kw))
    ov = dict(cfg.net_overrides)
    known = {"channel_base", "channel_max", "map_layers", "z_dim", "w_dim", "mbstd_group", "num_fp16_res",
             "d_architecture", "conv_clamp"}
    unknown = sorted(set(ov) - known)
    if unknown:
        raise ValueError(f"unknown net_overrides {unknown}; known: {sorted(known)}")
    for key in ("channel_base", "channel_max", "num_fp16_res", "conv_clamp"):
        if key in ov:
            G_kw.setdefault("synthesis_kwargs", {})[key] = ov[key]
            D_kw[key] = ov[key]
    if "map_layers" in ov:
        G_kw.setdefault("mapping_kwargs", {})["num_layers"] = int(ov["map_layers"])
    for key in ("z_dim", "w_dim"):
        if key in ov:
            G_kw[key] = int(ov[key])
    if "mbstd_group" in ov:
        D_kw.setdefault("epilogue_kwargs", {})["mbstd_group_size"] = int(ov["mbstd_group"])
    if "d_architecture" in ov:
        D_kw["architecture"] = ov["d_architecture"]
    if cfg.pack > 1:   # PacGAN: D reads `pack` images stacked along channels (and their labels side by side)
        D_kw["img_channels"] = int(D_kw["img_channels"]) * cfg.pack
        D_kw["c_dim"] = int(D_kw["c_dim"]) * cfg.pack
    return G_kw, D_kw


def build_networks(G_kw: dict, D_kw: dict, device: str = "cpu") -> Tuple[nn.Module, nn.Module]:
    """Construct G and D from their kwargs (fp32, on ``device``)."""
    return Generator(**G_kw).to(device), Discriminator(**D_kw).to(device)


# ----------------------------------------------------------------------------------------------- data

class InMemoryImages:
    """The training images as uint8 [N,3,H,W] (+ labels), sampled with replacement by a private generator."""

    def __init__(self, cfg: GanConfig):
        ds = load_dataset(cfg.data, root=cfg.data_root, split=cfg.split, img_size=cfg.resolution)
        x, y = self._load_uint8(ds, load_all, cfg.max_items)
        if len(x) < 1:
            raise ValueError(f"dataset {cfg.data!r} split {cfg.split!r} is empty")
        if x.shape[-1] != x.shape[-2] or x.shape[-1] & (x.shape[-1] - 1) or x.shape[-1] < 4:
            raise ValueError(f"StyleGAN2 needs square power-of-two images >= 4 px, got {tuple(x.shape[1:])}; "
                             "pass --resolution")
        self.name = getattr(ds, "name", cfg.data)
        self.x = x
        self.y = y.long()
        self.resolution = int(x.shape[-1])
        self.num_classes = int(getattr(ds, "num_classes", 0) or 0)
        if cfg.cond:
            if self.num_classes < 1 or (self.y < 0).any():
                raise ValueError(f"--cond needs a labelled dataset; {cfg.data!r} has no labels")
        self.c_dim = self.num_classes if cfg.cond else 0
        self.is_grey = bool((self.x == self.x[:, :1]).all()) if self.x.shape[1] > 1 else True
        self.gen = torch.Generator().manual_seed(cfg.seed)

    @staticmethod
    def _load_uint8(ds, load_all, max_items: Optional[int], chunk: int = 4096):
        """All images as uint8 (chunked for in-memory sets, so 100k-image sets never exist as float)."""
        to_u8 = lambda t: (t.clamp(0, 1) * 255).round().to(torch.uint8)  # noqa: E731
        n = len(ds) if max_items is None else min(len(ds), int(max_items))
        if hasattr(ds, "take") and n > chunk:
            xs, ys = [], []
            for s in range(0, n, chunk):
                x, y = ds.take(slice(s, min(n, s + chunk)))
                xs.append(to_u8(x))
                ys.append(torch.as_tensor(y).long())
            return torch.cat(xs), torch.cat(ys)
        x, y = load_all(ds, max_items=max_items)
        return to_u8(x), y

    def __len__(self) -> int:
        return len(self.x)

    def labels_to_c(self, y: torch.Tensor) -> torch.Tensor:
        if self.c_dim == 0:
            return torch.zeros(len(y), 0)
        return F.one_hot(y, self.c_dim).float()

    def batch(self, n: int, device: str = "cpu") -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(real images in [-1,1], their c, c for generated images drawn from the label distribution)."""
        idx = torch.randint(len(self.x), (n,), generator=self.gen)
        gidx = torch.randint(len(self.x), (n,), generator=self.gen)
        real = self.x[idx].float().div(127.5).sub(1.0)
        return real.to(device), self.labels_to_c(self.y[idx]).to(device), self.labels_to_c(self.y[gidx]).to(device)


# ----------------------------------------------------------------------------------------------- grid

@torch.no_grad()
def grid_samples(G_ema: nn.Module, n: int = 64, seed: int = 0, c_dim: int = 0, truncation_psi: float = 1.0,
                 device: str = "cpu") -> torch.Tensor:
    """``n`` G_ema samples in [-1, 1] from a private generator (the global RNG is untouched)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G_ema.z_dim, generator=g).to(device)
    c = F.one_hot(torch.arange(n) % c_dim, c_dim).float().to(device) if c_dim else torch.zeros(n, 0, device=device)
    return G_ema(z, c, truncation_psi=truncation_psi, noise_mode="const", force_fp32=True)


@torch.no_grad()
def save_grid(G_ema: nn.Module, path: Path, n: int = 64, seed: int = 0, c_dim: int = 0,
              truncation_psi: float = 1.0, device: str = "cpu", logs: Optional[RunLoggers] = None,
              step: int = 0) -> Path:
    """A PNG grid of ``n`` G_ema samples from a private generator (the global RNG is untouched);
    also sent to the image loggers in ``logs``."""
    img = grid_samples(G_ema, n, seed, c_dim, truncation_psi, device)
    if logs is not None:
        logs.log_images(step, "G_ema/samples", img)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    save_image(img.float().add(1).div(2).clamp(0, 1), tmp, nrow=int(math.ceil(math.sqrt(n))), padding=1)

    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------------------------- progress

class _Progress:
    """rich progress on a TTY, a plain log line per tick otherwise."""

    def __init__(self, total_kimg: float, enabled: Optional[bool]):
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self.bar = None
        if self.enabled:
            fmt = ".1f" if total_kimg >= 10 else ".3f"
            self.bar = Progress(TextColumn("[bold]gan train"), BarColumn(), TextColumn(f"{{task.completed:{fmt}}}/"
                                f"{total_kimg:g} kimg"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
            self.task = self.bar.add_task("train", total=total_kimg, info="")
            self.bar.start()

    def update(self, kimg: float, info: str, tick: bool) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=kimg, info=info)
        elif tick:
            print(f"kimg {kimg:8.3f}  {info}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# ----------------------------------------------------------------------------------------------- loop

def _nan_to_num_grads(module: nn.Module) -> None:
    for p in module.parameters():
        if p.grad is not None:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)


def _networks(cfg: GanConfig, data: "InMemoryImages", device: str
              ) -> Tuple[nn.Module, nn.Module, nn.Module, Optional[Dict[str, Any]], bool]:
    """``(G, D, G_ema, resume_state or None, grey)``: fresh networks, or those of ``cfg.resume``'s snapshot."""
    resume_state: Optional[Dict[str, Any]] = None
    if cfg.resume:
        snap = resolve_snapshot(cfg.resume)
        ck = load_sg2(snap, nets=("G", "D", "G_ema"), device=device)
        if ck.G is None or ck.D is None or ck.G_ema is None:
            raise ValueError(f"{snap} lacks G, D or G_ema; cannot resume training from it")
        G, D, G_ema = ck.G.float(), ck.D.float(), ck.G_ema.float()
        if G.img_resolution != data.resolution or G.c_dim != data.c_dim:
            raise ValueError(f"snapshot {snap} is {G.img_resolution}px/c_dim={G.c_dim} but the data is "
                             f"{data.resolution}px/c_dim={data.c_dim}")
        if D.img_channels != G.img_channels * cfg.pack:
            raise ValueError(f"snapshot {snap}'s D reads {D.img_channels} channels, so it was trained with pack "
                             f"{D.img_channels // G.img_channels}, not {cfg.pack}; resume with --pack "
                             f"{D.img_channels // G.img_channels}")
        resume_state = load_state(snap)
    else:
        G_kw, D_kw = network_kwargs(cfg, data.resolution, data.c_dim)
        G, D = build_networks(G_kw, D_kw, device)
        G_ema = copy.deepcopy(G)
    grey = data.is_grey if cfg.grey is None else bool(cfg.grey)
    if grey and resume_state is None:  # (a resumed G is already tied; re-tying would not be bit-exact)
        if not tie_grey(G):
            raise ValueError("grey output needs a generator with toRGB layers")
        G_ema = copy.deepcopy(G)
    G.train().requires_grad_(False)
    D.train().requires_grad_(False)
    G_ema.eval().requires_grad_(False)
    return G, D, G_ema, resume_state, grey


def _adam_settings(cfg: GanConfig) -> Tuple[dict, dict]:
    """``(G's, D's)`` Adam lr and betas; D's adjusted for lazy R1 (``lazy_adjust``)."""
    ratio = cfg.r1_interval / (cfg.r1_interval + 1) if (cfg.r1_interval and cfg.lazy_adjust) else 1.0
    g = dict(lr=cfg.glr, betas=(float(cfg.betas[0]), float(cfg.betas[1])))
    d = dict(lr=cfg.dlr * ratio, betas=(float(cfg.betas[0]) ** ratio, float(cfg.betas[1]) ** ratio))
    return g, d


def _optimizers(cfg: GanConfig, G: nn.Module, D: nn.Module) -> Tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G and D (:func:`_adam_settings`)."""
    g, d = _adam_settings(cfg)
    return torch.optim.Adam(G.parameters(), eps=1e-8, **g), torch.optim.Adam(D.parameters(), eps=1e-8, **d)


def _autocast_factory(precision: str, device: str):
    """A context factory: bf16 autocast on ``device`` for ``precision == 'bf16'``, else a no-op.

    bf16 measured 1.3x (64 ch) to 2.1x (128 ch) faster per G+D step on an AVX512-BF16 CPU
    (``benchmarks/bench_gan_step.py``); R1 and the EMA stay in fp32."""
    if precision != "bf16":
        return contextlib.nullcontext
    dev = "cuda" if str(device).startswith("cuda") else "cpu"
    return lambda: torch.autocast(dev, dtype=torch.bfloat16)


def _open_loggers(cfg: GanConfig, run_dir: Path, data: "InMemoryImages", aug: nn.Module, device: str) -> RunLoggers:
    """The optional loggers of ``cfg.loggers`` (metrics.jsonl is written by the loop itself), given the
    real images D sees and their augmented views (the global RNG restored afterwards)."""
    run_logs = RunLoggers(run_dir, cfg.loggers, config=cfg.to_dict(), name=run_dir.name)
    if run_logs.wants_images:
        cuda = [torch.device(device).index or 0] if str(device).startswith("cuda") else []
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            real0 = data.x[:16].float().div(127.5).sub(1.0).to(device)
            run_logs.log_images(0, "data/real", real0)
            run_logs.log_images(0, "data/augmented", aug(real0))
    return run_logs


class _GanRun:
    """The state of one training run: networks, optimisers, augmentation, counters; one step, one
    snapshot and one metrics line at a time."""

    def __init__(self, cfg: GanConfig, run_dir: Path) -> None:
        self.cfg, self.run_dir, self.device = cfg, run_dir, cfg.device
        self.data = InMemoryImages(cfg)
        self.G, self.D, self.G_ema, self.resume_state, self.grey = _networks(cfg, self.data, self.device)
        self.aug = AdaAugment(cfg.augment_ops, p=cfg.augment_p if cfg.augment != "none" else 0.0).to(self.device)
        self.ada = (AdaController(self.aug, cfg.ada_target, cfg.ada_interval, cfg.ada_kimg)
                    if cfg.augment == "ada" else None)
        self.loss = StyleGAN2Loss(self.G, self.D, self.aug, r1_gamma=cfg.r1_gamma,
                                  style_mixing_prob=cfg.style_mixing_prob, clamp_fakes=cfg.clamp_fakes,
                                  range_weight=cfg.range_weight, range_margin=cfg.range_margin, pack=cfg.pack)
        self.opt_G, self.opt_D = _optimizers(cfg, self.G, self.D)
        self.autocast = _autocast_factory(cfg.precision, self.device)
        self.logs: Optional[RunLoggers] = None  #: the optional loggers, set by train_gan
        self.cur_nimg, self.step, self.wall_prev = 0, 0, 0.0
        if self.resume_state is not None:
            self._restore(self.resume_state)
        self.t_start = time.time()

    def _restore(self, st: Dict[str, Any]) -> None:
        self.opt_G.load_state_dict(st["opt_G"])
        self.opt_D.load_state_dict(st["opt_D"])
        # the saved state carries the old lr and betas: this run's config wins (e.g. --resume RUN --glr 0.001;
        # with an unchanged config the values are the same and the resume stays bit-identical)
        for opt, settings in zip((self.opt_G, self.opt_D), _adam_settings(self.cfg)):
            for group in opt.param_groups:
                group.update(settings)
        torch.set_rng_state(st["rng_cpu"])
        if str(self.device).startswith("cuda") and st.get("rng_cuda"):
            torch.cuda.set_rng_state_all(st["rng_cuda"])
        self.data.gen.set_state(st["rng_data"])
        self.aug.p.fill_(float(st["augment_p"]))
        if self.ada is not None and "ada" in st:
            self.ada.load_state_dict(st["ada"])
        self.cur_nimg, self.step = int(st["cur_nimg"]), int(st["step"])
        self.wall_prev = float(st.get("wall_s", 0.0))

    def wall(self, now: Optional[float] = None) -> float:
        return self.wall_prev + (time.time() if now is None else now) - self.t_start

    def train_step(self) -> Dict[str, float]:
        """G main, D main, lazy R1, G EMA, ADA: one step on one batch; the step's logs."""
        cfg, G, D, loss, device = self.cfg, self.G, self.D, self.loss, self.device
        real, real_c, gen_c = self.data.batch(cfg.batch, device)
        z_g = torch.randn(cfg.batch, G.z_dim, device=device)
        z_d = torch.randn(cfg.batch, G.z_dim, device=device)
        # 1. G main
        G.requires_grad_(True)
        self.opt_G.zero_grad(set_to_none=True)
        with self.autocast():
            loss_g, logs = loss.g_main(z_g, gen_c)
        loss_g.backward()
        _nan_to_num_grads(G)
        self.opt_G.step()
        if self.grey:
            tie_grey(G)
        G.requires_grad_(False)
        # 2. D main
        D.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        with self.autocast():
            loss_d, logs_d, real_logits = loss.d_main(z_d, gen_c, real, real_c)
        real_logits = real_logits.float()
        loss_d.backward()
        _nan_to_num_grads(D)
        self.opt_D.step()
        logs.update(logs_d)
        if self.ada is not None:
            self.ada.accumulate(real_logits)
        # 3. lazy R1
        if cfg.r1_interval and cfg.r1_gamma > 0 and self.step % cfg.r1_interval == 0:
            self.opt_D.zero_grad(set_to_none=True)
            loss_r, logs_r = loss.d_reg(real, real_c, gain=cfg.r1_interval)
            loss_r.backward()
            _nan_to_num_grads(D)
            self.opt_D.step()
            logs.update(logs_r)
        D.requires_grad_(False)
        # 4. G EMA
        update_ema(self.G_ema, G, ema_beta(cfg.batch, self.cur_nimg, cfg.ema_kimg, cfg.ema_rampup))
        self.cur_nimg += cfg.batch
        self.step += 1
        # 5. ADA
        if self.ada is not None:
            self.ada.step(cfg.batch)
        return logs

    def snapshot(self) -> None:
        cfg, data, aug, ada = self.cfg, self.data, self.aug, self.ada
        wall = self.wall()
        state = {
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "rng_cpu": torch.get_rng_state(), "rng_data": data.gen.get_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if str(self.device).startswith("cuda") else [],
            "augment_p": float(aug.p), "cur_nimg": self.cur_nimg, "step": self.step, "wall_s": wall,
        }
        if ada is not None:
            state["ada"] = ada.state_dict()
        meta = {"kimg": self.cur_nimg / 1000, "augment_p": float(aug.p), "dataset": data.name,
                "split": cfg.split, "resolution": data.resolution, "c_dim": data.c_dim,
                "cond": cfg.cond, "grey": self.grey, "wall_s": round(wall, 1), "config": cfg.to_dict(),
                "trainer": "gandistill gan train (StyleGAN2-ADA objective)"}
        save_snapshot(self.run_dir, self.cur_nimg, G=self.G, D=self.D, G_ema=self.G_ema, state=state, meta=meta,
                      keep=cfg.keep_snapshots)
        save_grid(self.G_ema, self.run_dir / f"grid-{self.cur_nimg:09d}.png", cfg.grid_n, cfg.seed, data.c_dim,
                  device=self.device, logs=self.logs, step=self.step)

    def metrics_line(self, sums: Dict[str, float], nsum: int, nimg_tick: int, t_tick: float, now: float) -> str:
        """Append the tick's averages to ``metrics.jsonl``; the progress line."""
        rec: Dict[str, Any] = {k: v / nsum for k, v in sums.items()}
        rec.update(kimg=round(self.cur_nimg / 1000, 3), step=self.step, augment_p=round(float(self.aug.p), 4),
                   rt=self.ada.last_rt if self.ada is not None else None,
                   img_per_s=round((self.cur_nimg - nimg_tick) / max(now - t_tick, 1e-9), 2),
                   wall_s=round(self.wall(now), 1))
        with open_append(self.run_dir / "metrics.jsonl", "metrics log") as f:
            f.write(json.dumps(rec) + "\n")
        if self.logs is not None:
            self.logs.log_scalars(self.step, {k: v for k, v in rec.items() if k != "step"})
        return (f"G {rec['loss_G']:.3f} D {rec['loss_D']:.3f} p {rec['augment_p']:.3f} "
                f"rt {rec['rt'] if rec['rt'] is not None else float('nan'):.2f} {rec['img_per_s']:.0f} img/s")


def train_gan(cfg: GanConfig) -> Path:
    """Train (or resume) a StyleGAN2-ADA run described by ``cfg``; returns the run folder.

    Stops when ``cfg.kimg`` thousand real images have been shown to D; a snapshot is written every
    ``cfg.snap_kimg`` and at the end.
    """
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    run = _GanRun(cfg, run_dir)

    write_json_atomic(run_dir / "config.json", cfg.to_dict())
    total_nimg = int(round(cfg.kimg * 1000))
    snap_nimg = max(int(round(cfg.snap_kimg * 1000)), 1)
    tick_nimg = max(int(round(cfg.tick_kimg * 1000)), 1)
    next_snap = (run.cur_nimg // snap_nimg + 1) * snap_nimg
    next_tick = (run.cur_nimg // tick_nimg + 1) * tick_nimg
    t_tick, nimg_tick = run.t_start, run.cur_nimg
    sums: Dict[str, float] = {}
    nsum = 0
    progress = _Progress(cfg.kimg, cfg.progress)
    run.logs = _open_loggers(cfg, run_dir, run.data, run.aug, cfg.device)
    if run.resume_state is None:
        save_grid(run.G_ema, run_dir / "grid-init.png", cfg.grid_n, cfg.seed, run.data.c_dim, device=cfg.device,
                  logs=run.logs)
    try:
        while run.cur_nimg < total_nimg:
            logs = run.train_step()
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v
            nsum += 1
            tick = run.cur_nimg >= next_tick or run.cur_nimg >= total_nimg
            info = f"G {logs['loss_G']:.3f} D {logs['loss_D']:.3f} p {float(run.aug.p):.3f}"
            if tick:
                now = time.time()
                info = run.metrics_line(sums, nsum, nimg_tick, t_tick, now)
                t_tick, nimg_tick, sums, nsum = now, run.cur_nimg, {}, 0
                while next_tick <= run.cur_nimg:
                    next_tick += tick_nimg
            progress.update(run.cur_nimg / 1000, info, tick)
            if run.cur_nimg >= next_snap or run.cur_nimg >= total_nimg:
                run.snapshot()
                while next_snap <= run.cur_nimg:
                    next_snap += snap_nimg
    finally:
        progress.close()
        run.logs.close()
        run.logs = None
    if (run.resume_state is not None and run.cur_nimg >= total_nimg
            and not (run_dir / snapshot_name(run.cur_nimg)).exists()):
        run.snapshot()  # resumed from a snapshot already at/after the end: still leave one in this run folder
    return run_dir
