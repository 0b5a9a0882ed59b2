"""The training loop: one step for every method, a frozen teacher, student + head in one optimizer.

Per step (``objective="distill"``, i.e. ``sns``/``squeeze``/``vanilla``...)::

    x_syn, h = teacher.sample(alpha * B)            # frozen G, no_grad; h = pooled block features / w
    z_s  = S(aug(x_syn));   z_t = T_phi(h)          # squeeze: squeeze_loss(z_s, z_t)      (Eq. 11)
    z_r1 = S(aug(x_real));  z_r2 = S(aug(x_real))   # span: vicreg_loss(z_r1, z_r2)       (Eq. 12)
    L = alpha * L_squeeze + (1 - alpha) * L_span

(three student passes, as SnS does, so each gets its own BN statistics). SGD with momentum 0.9,
``lr = base_lr * batch / 256``, cosine decay per step without warm-up, weight decay on all
trainables; the squeeze module T_phi is trained with the student in the same optimizer. On GPU the
student runs under bf16/fp16 autocast with the losses in fp32. Under ``torchrun`` (``WORLD_SIZE>1``)
only the trainables are wrapped in DDP, the batch is split across ranks and only rank 0 logs.

A run folder holds ``config.json`` (the resolved config, versions, git revision), ``metrics.jsonl``,
the last checkpoint (``checkpoint.json`` + ``student.safetensors`` + ``squeeze.safetensors`` /
``predictor.safetensors`` + ``train_state.pt`` with the optimizer state for ``resume``; every file
written atomically) and ``summary.json``.

Guards: a non-finite loss or output, non-finite weights at a checkpoint step, or a collapsed embedding (spread below ``collapse_threshold``
for ``collapse_patience`` consecutive steps, see :func:`embedding_spread`) stops the run with
:class:`TrainingStopped`; the last good checkpoint stays in place.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

from gandistill.methods import LossWeights, MethodSpec, SimSiamPredictor, get_method, method_loss
from gandistill.squeeze import SqueezeModule

# The default student: timm's resnet10t with its standard (stride-4) stem -- about 0.15 GFLOP per
# 32 px image for forward + backward, so the default run fits a few CPU minutes. Any other student
# gets the CIFAR stem automatically at <= 64 px (the paper's resnet18cifar), unless cifar_stem says otherwise.
DEFAULT_STUDENT = "resnet10t"
DEFAULT_STEPS = 250
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
EVAL_PROTOCOLS = ("linear", "knn", "both", "none")
CKPT_JSON = "checkpoint.json"


class TrainingStopped(RuntimeError):
    """Training stopped by a guard (non-finite loss, collapsed representation); carries the reason."""

    def __init__(self, message: str, *, reason: str = "", step: int = -1, checkpoint: Optional[Path] = None):
        super().__init__(message)
        self.reason, self.step, self.checkpoint = reason, step, checkpoint


@dataclass
class FitConfig:
    """Everything a run needs; ``None`` means "the method's default" (see :class:`MethodSpec`).

    The CLI maps ``gandistill fit`` flags 1:1 onto these fields.
    """

    method: str = "sns"
    teacher: Optional[str] = None                  # default: the method's teacher
    teacher_ckpt: Optional[str] = None             # default: the bundled digits teacher
    teacher_kwargs: Dict[str, Any] = field(default_factory=dict)
    student: Optional[str] = None                  # None: resnet10t with its standard stem (fast on CPU)
    cifar_stem: Optional[bool] = None              # None: auto (ResNet at <= 64 px), False for the default student
    student_kwargs: Dict[str, Any] = field(default_factory=dict)   # extra create_student kwargs
    dataset: str = "digits"
    data_root: Optional[str] = None
    img_size: Optional[int] = None                 # default: the dataset's resolution
    batch: int = 64                                # global batch (synthetic + real)
    steps: Optional[int] = None                    # total steps (wins over epochs; default DEFAULT_STEPS)
    epochs: Optional[float] = None                 # epochs of len(train) // batch steps
    base_lr: Optional[float] = None                # lr = base_lr * batch / 256
    wd: Optional[float] = None
    sim: Optional[float] = None
    var: Optional[float] = None
    cov: Optional[float] = None
    alpha: Optional[float] = None                  # synthetic share of the batch
    squeeze_depth: Optional[int] = None
    squeeze_hidden: int = 2048
    dim: Optional[int] = None                      # embedding width (projector out / T_phi out)
    proj_layers: Optional[int] = None
    proj_hidden: Optional[int] = None
    var_cov_on: Optional[str] = None               # "student" (SnS) | "both" (Eq. 11 as printed)
    augment: Optional[str] = None                  # preset; default ssl-cifar (ssl-stl for stl10)
    shared_aug: bool = False                       # SnS: one augmentation for the whole synthetic batch
    precision: str = "auto"                        # auto = bf16 on GPU, fp32 on CPU
    channels_last: bool = False
    sync_bn: bool = False
    gather: bool = False                           # var/cov over the global batch under DDP
    seed: int = 0
    out: Optional[str] = None                      # run folder (default runs/<method>-<dataset>-<time>)
    device: str = "auto"
    workers: int = 0                               # DataLoader workers (in-memory datasets need none)
    log_every: int = 10
    ckpt_every: Optional[int] = None               # default: every max(50, total/10) steps, and the last step
    collapse_threshold: float = 0.02
    collapse_patience: int = 20
    eval: str = "linear"                           # linear | knn | both | none
    eval_fast: bool = True
    eval_epochs: Optional[int] = None
    eval_random: bool = True                       # also probe a randomly initialised student
    eval_max_train: Optional[int] = None
    eval_max_test: Optional[int] = None
    resume: bool = False
    progress: Optional[bool] = None                # None: rich progress bar on a TTY

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "FitConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown FitConfig field(s): {unknown}")
        return cls(**d)


@dataclass
class FitResult:
    """What :func:`fit` returns (also written to ``summary.json``)."""

    run_dir: Path
    checkpoint: Optional[Path]
    steps: int
    final_loss: Optional[float]
    time_s: float
    train_time_s: float
    eval: Optional[Dict[str, Any]] = None
    eval_random: Optional[Dict[str, Any]] = None
    config: Dict[str, Any] = field(default_factory=dict)

    @property
    def top1(self) -> Optional[float]:
        return None if not self.eval else self.eval.get("top1")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["run_dir"], d["checkpoint"] = str(self.run_dir), (str(self.checkpoint) if self.checkpoint else None)
        d.pop("config")
        return d


# --- small helpers -----------------------------------------------------------------------------

def embedding_spread(z: Tensor) -> float:
    """Collapse monitor: sqrt(D) * mean_j std_j(z_i / ||z_i||) over a batch z [N, D].

    About 1 for a well-spread (whitened) embedding, 0 when every sample maps to the same direction
    (SimSiam's collapse diagnostic, made scale free).
    """
    z = z.detach().float()
    if z.ndim != 2 or z.shape[0] < 2:
        return float("nan")
    zn = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return float(zn.std(dim=0).mean() * math.sqrt(z.shape[1]))


def cosine_lr(base: float, step: int, total: int) -> float:
    """lr at ``step`` of ``total``: base * 0.5 * (1 + cos(pi * step / total)), no warm-up."""
    return base * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def _write_json(path: Path, data: Dict[str, Any]) -> None:
    _atomic(path, lambda p: p.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def _git_rev() -> Optional[str]:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except Exception:
        return None


def _versions() -> Dict[str, Any]:
    import timm

    v = {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__}
    for mod in ("kornia", "safetensors", "numpy"):
        try:
            v[mod] = __import__(mod).__version__
        except Exception:
            pass
    try:
        from importlib.metadata import version

        v["gandistill"] = version("gandistill")
    except Exception:
        pass
    return v


@dataclass
class _Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    here = False
    if not dist.is_initialized():
        backend = "nccl" if (device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())) else "gloo"
        dist.init_process_group(backend=backend)
        here = True
    return _Dist(world, rank, local, here)


def _resolve_device(device: str, d: _Dist) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but no GPU is available (use --device cpu)")
        if dev.index is None:
            dev = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(dev)
    return dev


def _agree(code: int, d: _Dist, device: torch.device) -> int:
    """The largest stop code over all ranks (0 = go on), so every rank stops at the same step."""
    if d.world <= 1:
        return code
    import torch.distributed as dist

    t = torch.tensor([code], dtype=torch.int32, device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def _autocast(device: torch.device, precision: str):
    if precision == "fp32" or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


# --- real data stream --------------------------------------------------------------------------

class RealStream:
    """Endless batches of real images (x in [0,1]) for this rank: epoch-wise permutations shared by
    all ranks, each rank taking its own slice (DistributedSampler semantics)."""

    def __init__(self, ds: Any, n: int, seed: int, d: _Dist, workers: int = 0) -> None:
        if n < 1:
            raise ValueError("RealStream needs a positive batch")
        self.ds, self.n, self.seed, self.d, self.workers = ds, n, seed, d, workers
        self.per_epoch = len(ds) // (n * d.world)
        if self.per_epoch < 1:
            raise ValueError(f"dataset has {len(ds)} images, fewer than one global real batch ({n * d.world})")
        self.epoch, self.i = 0, 0
        self._perm: Optional[Tensor] = None
        self._it: Optional[Iterator] = None
        self.fast = callable(getattr(ds, "take", None))

    def state(self) -> Dict[str, int]:
        return {"epoch": self.epoch, "i": self.i}

    def load_state(self, s: Dict[str, int]) -> None:
        self.epoch, self.i, self._perm, self._it = int(s["epoch"]), int(s["i"]), None, None

    def _perm_for_epoch(self) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
        return torch.randperm(len(self.ds), generator=g)

    def next(self) -> Tensor:
        if self.i >= self.per_epoch:
            self.epoch, self.i, self._perm, self._it = self.epoch + 1, 0, None, None
        if self.fast:
            if self._perm is None:
                self._perm = self._perm_for_epoch()
            start = (self.i * self.d.world + self.d.rank) * self.n
            x, _ = self.ds.take(self._perm[start:start + self.n])
        else:
            if self._it is None:
                from torch.utils.data import DataLoader

                perm = self._perm_for_epoch()[: self.per_epoch * self.n * self.d.world]
                mine = perm.view(self.per_epoch, self.d.world, self.n)[:, self.d.rank].reshape(-1)
                sub = torch.utils.data.Subset(self.ds, mine[self.i * self.n:].tolist())
                self._it = iter(DataLoader(sub, batch_size=self.n, shuffle=False, drop_last=True,
                                           num_workers=self.workers))
            x, _ = next(self._it)
        self.i += 1
        return x


# --- the trainables ----------------------------------------------------------------------------

class DistillModel(nn.Module):
    """The trainables (student S_theta and its head: T_phi or SimSiam's predictor) with ONE forward
    per step, so DDP sees every student pass of the step in a single call."""

    def __init__(self, objective: str, student: nn.Module, head: Optional[nn.Module]) -> None:
        super().__init__()
        self.objective = objective
        self.student = student
        self.head = head

    def forward(self, x_syn: Optional[Tensor] = None, targets: Optional[List[Tensor]] = None,
                v1: Optional[Tensor] = None, v2: Optional[Tensor] = None,
                x_real: Optional[Tensor] = None) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        S = self.student
        if self.objective == "distill":
            if x_syn is not None:
                out["z_syn"] = S(x_syn)
                out["z_target"] = self.head(targets)
            if v1 is not None:
                out["z_real1"], out["z_real2"] = S(v1), S(v2)
        elif self.objective in ("vicreg", "simsiam"):
            out["z1"], out["z2"] = S(v1), S(v2)
            if self.head is not None:
                out["p1"], out["p2"] = self.head(out["z1"]), self.head(out["z2"])
        elif self.objective == "encoder":
            if x_syn is not None:
                out["e_syn"] = S(x_syn)
            if x_real is not None:
                out["e_real"] = S(x_real)
        else:
            raise ValueError(f"objective {self.objective!r} does not train")
        return out


def _embedding(out: Dict[str, Tensor]) -> Optional[Tensor]:
    for k in ("z_syn", "z_real1", "z1", "e_syn", "e_real"):
        if k in out:
            return out[k]
    return None


# --- resolution of a config into concrete parts -------------------------------------------------

@dataclass
class _Plan:
    spec: MethodSpec
    weights: LossWeights
    teacher_name: Optional[str]
    img_size: int
    n_syn: int
    n_real: int
    total_steps: int
    steps_per_epoch: int
    lr: float
    wd: float
    aug_preset: str
    precision: str
    proj_layers: int
    proj_hidden: int
    dim: int
    depth: int


def _resolve(cfg: FitConfig, train_len: int, resolution: int, device: torch.device, world: int) -> _Plan:
    spec = get_method(cfg.method)
    alpha = spec.alpha if cfg.alpha is None else float(cfg.alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if cfg.batch < 2 * world:
        raise ValueError(f"batch must be at least 2 per rank, got {cfg.batch} for {world} rank(s)")
    if cfg.batch % world:
        raise ValueError(f"batch {cfg.batch} is not divisible by the {world} ranks")
    per_rank = cfg.batch // world
    n_syn = int(round(alpha * per_rank)) if spec.objective != "probe" else 0
    n_real = per_rank - n_syn if spec.objective != "probe" else 0
    if spec.objective == "distill" and alpha in (0.0,):
        raise ValueError(f"method {spec.name} with alpha=0 has no synthetic images to distil from")
    for n, what in ((n_syn, "synthetic"), (n_real, "real")):
        if 0 < n < 2:
            raise ValueError(f"the {what} part of the batch has {n} image(s) per rank; VICReg/var need at least 2 "
                             f"(batch {cfg.batch}, alpha {alpha})")
    steps_per_epoch = max(1, train_len // cfg.batch)
    if cfg.steps is not None:
        total = int(cfg.steps)
    elif cfg.epochs is not None:
        total = int(round(float(cfg.epochs) * steps_per_epoch))
    else:
        total = DEFAULT_STEPS
    if total < 1 and spec.objective != "probe":
        raise ValueError(f"the run needs at least one step (steps={cfg.steps}, epochs={cfg.epochs})")
    precision = cfg.precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if cfg.eval not in EVAL_PROTOCOLS:
        raise ValueError(f"eval must be one of {EVAL_PROTOCOLS}, got {cfg.eval!r}")
    base_lr = spec.base_lr if cfg.base_lr is None else float(cfg.base_lr)
    if cfg.augment is not None:
        preset = cfg.augment
    else:
        preset = "ssl-stl" if cfg.dataset.lower().startswith("stl") else "ssl-cifar"
    w = LossWeights(
        sim=spec.sim if cfg.sim is None else float(cfg.sim),
        var=spec.var if cfg.var is None else float(cfg.var),
        cov=spec.cov if cfg.cov is None else float(cfg.cov),
        alpha=alpha,
        var_cov_on=cfg.var_cov_on or spec.var_cov_on,
        gather=cfg.gather,
    )
    return _Plan(
        spec=spec, weights=w, teacher_name=cfg.teacher or spec.teacher,
        img_size=int(cfg.img_size or resolution), n_syn=n_syn, n_real=n_real, total_steps=total,
        steps_per_epoch=steps_per_epoch, lr=base_lr * cfg.batch / 256.0,
        wd=spec.weight_decay if cfg.wd is None else float(cfg.wd), aug_preset=preset, precision=precision,
        proj_layers=spec.proj_layers if cfg.proj_layers is None else int(cfg.proj_layers),
        proj_hidden=spec.proj_hidden if cfg.proj_hidden is None else int(cfg.proj_hidden),
        dim=spec.dim if cfg.dim is None else int(cfg.dim),
        depth=spec.squeeze_depth if cfg.squeeze_depth is None else int(cfg.squeeze_depth),
    )


def student_choice(cfg: FitConfig) -> Tuple[str, Optional[bool]]:
    """(timm name, cifar_stem) for ``cfg``: the default student keeps its standard stem unless told."""
    if cfg.student is None:
        return DEFAULT_STUDENT, (False if cfg.cifar_stem is None else cfg.cifar_stem)
    return cfg.student, cfg.cifar_stem


def default_run_dir(cfg: FitConfig) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.method}-{cfg.dataset}-{stamp}"


def resolved_config(cfg: FitConfig) -> Dict[str, Any]:
    """The config with method defaults filled in (what ``--dry-run`` prints); builds nothing heavy."""
    from gandistill.data import load_dataset

    ds = load_dataset(cfg.dataset, root=cfg.data_root, split="train", img_size=cfg.img_size)
    dev = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if cfg.device == "auto" else cfg.device))
    plan = _resolve(cfg, len(ds), int(getattr(ds, "resolution", 32)), dev, int(os.environ.get("WORLD_SIZE", "1")))
    _check_labelled(cfg, plan, ds)
    return _plan_dict(cfg, plan, ds)


def _check_labelled(cfg: FitConfig, plan: _Plan, ds: Any) -> None:
    """Fail before training, not after it, when the evaluation would need labels the dataset lacks."""
    if getattr(ds, "num_classes", None) != 0:
        return
    if plan.spec.objective == "probe":
        raise ValueError(f"method {plan.spec.name} is a linear probe and needs a labelled dataset; "
                         f"'{cfg.dataset}' (split train) has no labels")
    if cfg.eval != "none":
        raise ValueError(f"dataset '{cfg.dataset}' (split train) has no labels, so --eval {cfg.eval} cannot run "
                         "after training; pass --eval none (and evaluate later on a labelled dataset "
                         "with `gandistill eval RUN --dataset NAME`)")


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return f"<{type(v).__name__}>"            # e.g. an in-memory G passed through teacher_kwargs


def _config_dict(cfg: FitConfig) -> Dict[str, Any]:
    """The config as JSON-able values (without deep-copying modules passed in ``teacher_kwargs``)."""
    return {f.name: _jsonable(getattr(cfg, f.name)) for f in fields(cfg)}


def _plan_dict(cfg: FitConfig, plan: _Plan, ds: Any) -> Dict[str, Any]:
    return {
        "config": _config_dict(cfg),
        "method": plan.spec.to_dict(),
        "resolved": {
            "student": student_choice(cfg)[0], "cifar_stem": student_choice(cfg)[1],
            "teacher": plan.teacher_name, "img_size": plan.img_size, "batch_syn_per_rank": plan.n_syn,
            "batch_real_per_rank": plan.n_real, "total_steps": plan.total_steps,
            "steps_per_epoch": plan.steps_per_epoch, "lr": plan.lr, "weight_decay": plan.wd,
            "augment": plan.aug_preset if plan.spec.augment else "none", "augment_real": plan.aug_preset,
            "precision": plan.precision, "proj_layers": plan.proj_layers, "proj_hidden": plan.proj_hidden,
            "dim": plan.dim, "squeeze_depth": plan.depth, "loss_weights": asdict(plan.weights),
            "train_images": len(ds),
        },
    }


# --- checkpoints --------------------------------------------------------------------------------

def _state_cpu(m: nn.Module) -> Dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in m.state_dict().items()}


def save_checkpoint(run_dir: Path, step: int, student: nn.Module, head: Optional[nn.Module], head_kind: Optional[str],
                    optimizer: Optional[torch.optim.Optimizer], meta: Dict[str, Any],
                    extra_state: Optional[Dict[str, Any]] = None) -> Path:
    """Write the last checkpoint atomically (each file tmp + os.replace; the JSON last)."""
    from safetensors.torch import save_file

    run_dir.mkdir(parents=True, exist_ok=True)
    md = {"step": str(step)}
    _atomic(run_dir / "student.safetensors", lambda p: save_file(_state_cpu(student), str(p), metadata=md))
    head_file = None
    if head is not None and len(list(head.state_dict())) > 0:
        head_file = f"{head_kind}.safetensors"
        _atomic(run_dir / head_file, lambda p: save_file(_state_cpu(head), str(p), metadata=md))
    state_file = None
    if optimizer is not None:
        state_file = "train_state.pt"
        state = {"step": step, "optimizer": optimizer.state_dict(), **(extra_state or {})}
        _atomic(run_dir / state_file, lambda p: torch.save(state, p))
    cfg = getattr(student, "config", None)
    skw = cfg.to_dict() if cfg is not None else {}
    name = skw.pop("name", None) or meta.get("student")
    data = {"format": "gandistill-student", "version": 1, "student": name, "student_kwargs": skw,
            "weights": "student.safetensors", "head": head_file, "head_kind": head_kind if head_file else None,
            "train_state": state_file, "step": step, "saved": _dt.datetime.now().isoformat(timespec="seconds"),
            **meta}
    _write_json(run_dir / CKPT_JSON, data)
    return run_dir / CKPT_JSON


def _all_finite(module: nn.Module) -> bool:
    """True when every floating-point parameter and buffer of ``module`` is finite."""
    return all(bool(torch.isfinite(t).all()) for t in list(module.parameters()) + list(module.buffers())
               if t.is_floating_point())


def _load_weights(module: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(path)), strict=True)


# --- the loop -----------------------------------------------------------------------------------

def _build_aug(preset: str, size: int, ds: Any, input_range: str, shared: bool, device: torch.device):
    from gandistill.augment import build_augment

    return build_augment(preset, size, tuple(ds.mean), tuple(ds.std), input_range=input_range, shared=shared).to(device)


def _log_line(step: int, total: int, rec: Dict[str, Any]) -> str:
    keys = [k for k in ("loss", "squeeze/loss", "span/loss", "spread", "lr", "img_s") if k in rec]
    return f"step {step}/{total} " + " ".join(f"{k}={rec[k]:.4g}" for k in keys)


def fit(cfg: FitConfig, log: Optional[Callable[[str], None]] = None) -> FitResult:
    """Train a student by ``cfg.method`` and (unless ``cfg.eval == "none"``) probe it.

    Raises :class:`TrainingStopped` when a guard fires, ``ValueError``/``KeyError`` for bad settings,
    ``FileNotFoundError`` for missing checkpoints or data.
    """
    from gandistill.data import load_dataset

    t_start = time.perf_counter()
    d = _setup_distributed(cfg.device)
    try:
        return _fit(cfg, d, log, t_start, load_dataset)
    finally:
        if d.initialised_here:
            import torch.distributed as dist

            dist.destroy_process_group()


def _fit(cfg: FitConfig, d: _Dist, log, t_start: float, load_dataset) -> FitResult:
    say = (log or (lambda s: print(s, flush=True))) if d.main else (lambda s: None)
    device = _resolve_device(cfg.device, d)
    torch.manual_seed(cfg.seed + d.rank)
    train_ds = load_dataset(cfg.dataset, root=cfg.data_root, split="train", img_size=cfg.img_size)
    plan = _resolve(cfg, len(train_ds), int(getattr(train_ds, "resolution", 32)), device, d.world)
    spec = plan.spec
    _check_labelled(cfg, plan, train_ds)
    run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
    if cfg.resume and not (run_dir / CKPT_JSON).exists():
        raise FileNotFoundError(f"--resume: no checkpoint in {run_dir} (expected {CKPT_JSON})")
    if not cfg.resume and (run_dir / CKPT_JSON).exists():
        raise ValueError(f"{run_dir} already holds a run (checkpoint.json); pass --resume to continue it "
                              "or choose another --out")
    if d.main:
        run_dir.mkdir(parents=True, exist_ok=True)

    # teacher (frozen, never wrapped in DDP)
    teacher = None
    if plan.teacher_name is not None:
        from gandistill.teachers import TEACHERS, create_teacher
        from gandistill.teachers.generator import SG2SamplingTeacher

        tkw = dict(cfg.teacher_kwargs)
        factory = TEACHERS.get(plan.teacher_name)
        if isinstance(factory, type) and issubclass(factory, SG2SamplingTeacher):
            tkw.setdefault("precision", plan.precision)      # G runs at the run's precision (fp32 on CPU)
        teacher = create_teacher(plan.teacher_name, ckpt=cfg.teacher_ckpt, device=device, **tkw)
        if spec.uses_synthetic and not getattr(teacher, "can_sample", True):
            raise ValueError(f"teacher '{plan.teacher_name}' cannot sample images, which method '{spec.name}' needs")
        if spec.objective == "encoder" and not callable(getattr(teacher, "loss", None)):
            raise ValueError(f"method '{spec.name}' needs the sg2-encoder teacher (got '{plan.teacher_name}')")

    info = _plan_dict(cfg, plan, train_ds)
    info["run_dir"] = str(run_dir)
    info["teacher"] = teacher.describe() if teacher is not None else None
    info["versions"], info["git_rev"] = _versions(), _git_rev()
    info["world_size"], info["device"] = d.world, str(device)

    if spec.objective == "probe":
        return _probe_only(cfg, plan, teacher, train_ds, run_dir, info, say, device, t_start, load_dataset, d)

    # student (+ head), one optimizer
    from gandistill.students import create_student

    if spec.objective == "distill":
        head: Optional[nn.Module] = SqueezeModule(teacher.target_dims, dim=plan.dim, hidden=cfg.squeeze_hidden,
                                                  depth=plan.depth)
        head_kind: Optional[str] = "squeeze"
        proj_out = head.out_dim
    elif spec.objective == "simsiam":
        head, head_kind, proj_out = SimSiamPredictor(plan.dim), "predictor", plan.dim
    elif spec.objective == "encoder":
        head, head_kind, proj_out = None, None, int(teacher.target_dims[0])
    else:
        head, head_kind, proj_out = None, None, plan.dim
    student_name, stem = student_choice(cfg)
    student = create_student(student_name, img_size=plan.img_size, proj_layers=plan.proj_layers,
                             proj_hidden=plan.proj_hidden, proj_out=proj_out, cifar_stem=stem, **cfg.student_kwargs)
    if student.proj_out != proj_out:
        raise ValueError(f"the student's output width {student.proj_out} does not match the target width {proj_out} "
                         "(proj_layers=0 keeps the backbone width; use a projector)")
    model = DistillModel(spec.objective, student, head).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    info["resolved"]["student_params"] = sum(p.numel() for p in student.parameters())
    info["resolved"]["head_params"] = sum(p.numel() for p in head.parameters()) if head is not None else 0
    if teacher is not None and hasattr(teacher, "perceptual_name"):
        info["resolved"]["perceptual"] = teacher.perceptual_name

    groups = [{"params": [p for p in student.parameters() if p.requires_grad], "fixed": False}]
    if head is not None and any(True for _ in head.parameters()):
        groups.append({"params": list(head.parameters()), "fixed": spec.fixed_head_lr})
    opt = torch.optim.SGD(groups, lr=plan.lr, momentum=0.9, weight_decay=plan.wd)
    scaler = torch.amp.GradScaler("cuda") if (plan.precision == "fp16" and device.type == "cuda") else None

    train_model: nn.Module = model
    if d.world > 1:
        if cfg.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    # augmentation and data
    syn_preset = plan.aug_preset if spec.augment else "none"
    aug_syn = _build_aug(syn_preset, plan.img_size, train_ds, "gan", cfg.shared_aug, device) if plan.n_syn else None
    aug_real = _build_aug(plan.aug_preset, plan.img_size, train_ds, "unit", False, device) if plan.n_real else None
    norm_real = _build_aug("none", plan.img_size, train_ds, "unit", False, device) if plan.n_real else None
    stream = RealStream(train_ds, plan.n_real, cfg.seed, d, cfg.workers) if plan.n_real else None
    z_gen = torch.Generator().manual_seed(cfg.seed * 7919 + d.rank)

    meta = {"method": spec.name, "teacher": plan.teacher_name, "teacher_ckpt": getattr(teacher, "ckpt_path", None),
            "dataset": cfg.dataset, "img_size": plan.img_size, "total_steps": plan.total_steps}
    start = 0
    if cfg.resume:
        start = _resume(run_dir, model, head, head_kind, opt, scaler, stream, z_gen, cfg, spec)
        say(f"resumed {run_dir} at step {start}/{plan.total_steps}")
    if d.main:
        info["resumed_from_step"] = start
        _write_json(run_dir / "config.json", info)
        if cfg.eval_random and cfg.eval != "none" and not cfg.resume:
            # the run's own random initialisation: the baseline the probe compares against
            save_checkpoint(run_dir / "init", 0, student, None, None, None, meta)

    ckpt_every = cfg.ckpt_every or max(50, plan.total_steps // 10)
    metrics_f = open(run_dir / "metrics.jsonl", "a" if cfg.resume else "w") if d.main else None
    last_ckpt: Optional[Path] = (run_dir / CKPT_JSON) if (run_dir / CKPT_JSON).exists() else None
    last_ckpt_step = start if cfg.resume else -1
    low_spread = 0
    loss_val: Optional[float] = None
    t_train = time.perf_counter()
    progress = _progress(cfg, d, plan.total_steps - start)

    def checkpoint(step: int) -> None:
        nonlocal last_ckpt, last_ckpt_step
        if d.main:
            extra = {"rng_cpu": torch.get_rng_state(), "z_gen": z_gen.get_state(),
                     "stream": stream.state() if stream else None,
                     "scaler": scaler.state_dict() if scaler is not None else None}
            if device.type == "cuda":
                extra["rng_cuda"] = torch.cuda.get_rng_state(device)
            last_ckpt = save_checkpoint(run_dir, step, student, head, head_kind, opt, meta, extra)
            last_ckpt_step = step

    def stop(reason: str, msg: str, step: int) -> TrainingStopped:
        kept = (f"the last good checkpoint (step {last_ckpt_step}) is {last_ckpt}" if last_ckpt is not None
                else "no checkpoint had been written yet")
        text = f"training stopped at step {step}: {msg}; {kept}"
        if metrics_f is not None:
            metrics_f.write(json.dumps({"step": step, "stopped": reason, "message": text}) + "\n")
            metrics_f.flush()
        return TrainingStopped(text, reason=reason, step=step, checkpoint=last_ckpt)

    try:
        train_model.train()
        n_img = 0
        t_log = time.perf_counter()
        for step in range(start, plan.total_steps):
            lr = cosine_lr(plan.lr, step, plan.total_steps)
            for g in opt.param_groups:
                g["lr"] = plan.lr if g.get("fixed") else lr
            inputs, batch = _make_inputs(spec, plan, teacher, stream, aug_syn, aug_real, norm_real, z_gen, device,
                                         cfg.channels_last)
            with _autocast(device, plan.precision):
                out = train_model(**inputs)
            out = {k: v.float() for k, v in out.items()}
            bad = [k for k, v in out.items() if not bool(torch.isfinite(v).all())]
            losses = method_loss(spec, plan.weights, out, teacher, batch) if not bad else {}
            loss = losses.get("loss")
            if loss is not None and not bool(torch.isfinite(loss)):
                bad.append("loss")
            emb = _embedding(out)
            spread = embedding_spread(emb) if (emb is not None and not bad) else float("nan")
            emb_std = float(emb.detach().float().std(dim=0).mean()) if emb is not None else float("nan")
            low_spread = low_spread + 1 if spread < cfg.collapse_threshold else 0
            code = _agree(1 if bad else (2 if low_spread >= cfg.collapse_patience else 0), d, device)
            if code == 1:
                what = ("the loss is non-finite" if bad == ["loss"] else f"non-finite values in {bad} (NaN/Inf)"
                        if bad else "non-finite values on another rank")
                raise stop("non-finite", what, step + 1)
            if code == 2:
                raise stop("collapse", f"the representation collapsed (embedding spread {spread:.2e} < "
                                       f"{cfg.collapse_threshold} for {low_spread} consecutive steps)", step + 1)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            loss_val = float(loss.detach())
            n_img += plan.n_syn + plan.n_real
            done = step + 1
            if d.main and (done % cfg.log_every == 0 or done == plan.total_steps or step == start):
                now = time.perf_counter()
                rec = {"step": done, "lr": lr, "spread": spread, "std": emb_std,
                       **{k: float(v.detach()) for k, v in losses.items()},
                       "img_s": n_img * d.world / max(now - t_log, 1e-9), "time_s": now - t_train}
                n_img, t_log = 0, now
                metrics_f.write(json.dumps(rec) + "\n")
                metrics_f.flush()
                if progress is None:
                    say(_log_line(done, plan.total_steps, rec))
            if progress is not None:
                progress.update(progress.task_ids[0], advance=1, description=f"loss {loss_val:.3f}")
            if done % ckpt_every == 0 or done == plan.total_steps:
                # never replace the last good checkpoint by weights a bad update made non-finite
                # (checked on every rank at the same steps, so all ranks stop together)
                if _agree(0 if _all_finite(model) else 1, d, device):
                    raise stop("non-finite", "non-finite weights after the update (NaN/Inf)", done)
                if low_spread == 0:
                    checkpoint(done)
    finally:
        if progress is not None:
            progress.stop()
        if metrics_f is not None:
            metrics_f.close()
    train_time = time.perf_counter() - t_train

    result = FitResult(run_dir=run_dir, checkpoint=last_ckpt, steps=plan.total_steps, final_loss=loss_val,
                       time_s=0.0, train_time_s=train_time, config=info)
    if d.main and cfg.eval != "none":
        say(f"training done in {train_time:.1f}s; evaluating ({cfg.eval}, fast={cfg.eval_fast}) ...")
        result.eval, result.eval_random = _evaluate(cfg, plan, run_dir, device)
    result.time_s = time.perf_counter() - t_start
    if d.main:
        _write_json(run_dir / "summary.json", result.to_dict())
    return result


def _make_inputs(spec: MethodSpec, plan: _Plan, teacher, stream: Optional[RealStream], aug_syn, aug_real, norm_real,
                 z_gen: torch.Generator, device: torch.device, channels_last: bool) -> Tuple[Dict[str, Any], Dict[str, Tensor]]:
    """The student inputs of one step (augmented/normalised) and the raw images some losses need."""
    cl = (lambda x: x.contiguous(memory_format=torch.channels_last)) if channels_last else (lambda x: x)
    inputs: Dict[str, Any] = {}
    batch: Dict[str, Tensor] = {}
    syn = teacher.sample(plan.n_syn, generator=z_gen) if plan.n_syn else None
    x_real = stream.next().to(device, non_blocking=True).float() if stream is not None else None
    obj = spec.objective
    if obj == "distill":
        if syn is not None:
            inputs["x_syn"] = cl(aug_syn(syn.images))
            inputs["targets"] = [t.float() for t in syn.targets]
        if x_real is not None:
            inputs["v1"], inputs["v2"] = cl(aug_real(x_real)), cl(aug_real(x_real))
    elif obj in ("vicreg", "simsiam"):
        v1, v2 = [], []
        if syn is not None:
            v1.append(aug_syn(syn.images))
            v2.append(aug_syn(syn.images))
        if x_real is not None:
            v1.append(aug_real(x_real))
            v2.append(aug_real(x_real))
        inputs["v1"], inputs["v2"] = cl(torch.cat(v1)), cl(torch.cat(v2))
    elif obj == "encoder":
        # E sees dataset-normalised images (as the linear probe will); G reconstructs in [-1, 1]
        if syn is not None:
            inputs["x_syn"] = cl(aug_syn(syn.images))
            batch["x_syn"], batch["ws"] = syn.images, syn.ws
        if x_real is not None:
            inputs["x_real"] = cl(norm_real(x_real))
            batch["x_real"] = x_real * 2.0 - 1.0
    return inputs, batch


def _progress(cfg: FitConfig, d: _Dist, total: int):
    show = cfg.progress if cfg.progress is not None else (sys.stdout.isatty()
                                                          and not os.environ.get("GANDISTILL_NO_PROGRESS"))
    if not (show and d.main and total > 0):
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    p = Progress(TextColumn("[bold]fit[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                 TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
    p.start()
    p.add_task("", total=total)
    return p


def _resume(run_dir: Path, model: DistillModel, head, head_kind, opt, scaler, stream, z_gen, cfg: FitConfig,
            spec: MethodSpec) -> int:
    try:
        meta = json.loads((run_dir / CKPT_JSON).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"--resume: {run_dir / CKPT_JSON} is unreadable or corrupt ({type(e).__name__}: {e})") from None
    name = student_choice(cfg)[0]
    if meta.get("method") != spec.name or meta.get("student") != name:
        raise ValueError(f"--resume: {run_dir} was a '{meta.get('method')}' run of '{meta.get('student')}', "
                         f"not '{spec.name}' of '{name}'")
    _load_weights(model.student, run_dir / meta["weights"])
    if head is not None and meta.get("head"):
        _load_weights(head, run_dir / meta["head"])
    if not meta.get("train_state"):
        raise ValueError(f"--resume: {run_dir} has no optimizer state")
    state = torch.load(run_dir / meta["train_state"], map_location="cpu", weights_only=True)
    opt.load_state_dict(state["optimizer"])
    if state.get("rng_cpu") is not None:
        torch.set_rng_state(state["rng_cpu"])
    if state.get("rng_cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["rng_cuda"])
    if state.get("z_gen") is not None:
        z_gen.set_state(state["z_gen"])
    if stream is not None and state.get("stream"):
        stream.load_state(state["stream"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    return int(state["step"])


def _evaluate(cfg: FitConfig, plan: _Plan, run_dir: Path, device: torch.device):
    from gandistill.evaluate import evaluate

    kw = dict(protocol=cfg.eval, dataset=cfg.dataset, data_root=cfg.data_root, epochs=cfg.eval_epochs,
              fast=cfg.eval_fast, device=str(device), seed=cfg.seed, img_size=plan.img_size,
              max_train=cfg.eval_max_train, max_test=cfg.eval_max_test)
    res = evaluate(str(run_dir), **kw)
    rnd = None
    if cfg.eval_random:
        init = run_dir / "init"
        if (init / CKPT_JSON).exists():
            rnd = evaluate(str(init), **kw)
        else:  # resumed runs: a fresh random student of the same architecture
            torch.manual_seed(cfg.seed)
            rnd = evaluate(f"random:{student_choice(cfg)[0]}", **kw)
        rnd["source"] = "random-init"
    return res, rnd


def _probe_only(cfg, plan, teacher, train_ds, run_dir, info, say, device, t_start, load_dataset, d) -> FitResult:
    """``d-direct``: no training, a linear probe on the frozen discriminator features (images in [-1,1])."""
    from gandistill.evaluate import linear_probe

    if teacher is None or not hasattr(teacher, "features"):
        raise ValueError(f"method {plan.spec.name} needs a feature teacher such as sg2-discriminator")
    if d.main:
        _write_json(run_dir / "config.json", info)
    res = None
    if d.main:
        test_ds = load_dataset(cfg.dataset, root=cfg.data_root, split="test", img_size=plan.img_size)
        if cfg.eval_max_train or cfg.eval_max_test:
            from gandistill.evaluate import _FirstN

            train_ds = _FirstN(train_ds, cfg.eval_max_train) if cfg.eval_max_train else train_ds
            test_ds = _FirstN(test_ds, cfg.eval_max_test) if cfg.eval_max_test else test_ds
        say(f"probing frozen discriminator features {list(teacher.target_names)} ({teacher.num_features}-d) ...")
        res = linear_probe(teacher, train_ds, test_ds, epochs=cfg.eval_epochs or 90, fast=cfg.eval_fast,
                           device=device, seed=cfg.seed, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        res.pop("history", None)
        res.update(student=f"{plan.teacher_name}:{teacher.mode}", dataset=cfg.dataset, protocol="linear")
    result = FitResult(run_dir=run_dir, checkpoint=None, steps=0, final_loss=None,
                       time_s=time.perf_counter() - t_start, train_time_s=0.0, eval=res, config=info)
    if d.main:
        _write_json(run_dir / "summary.json", result.to_dict())
    return result
