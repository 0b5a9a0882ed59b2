"""What a run is asked to do (:class:`FitConfig`), what it returns (:class:`FitResult`), and how it
stops early (:class:`TrainingStopped`). Plain data: nothing here builds a network or reads a file."""
from __future__ import annotations

from gandistill.io.jsonable import jsonable  # noqa: E402

import datetime as _dt
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

# The default student: timm's resnet10t with its standard (stride-4) stem -- about 0.15 GFLOP per
# 32 px image for forward + backward, so the default run fits a few CPU minutes. Any other student
# gets the CIFAR stem automatically at <= 64 px (the paper's resnet18cifar), unless cifar_stem says otherwise.
DEFAULT_STUDENT = "resnet10t"
# 500 steps: chosen from the learning curve in the README (docs/img/learning_curve.png): on the bundled
# unconditional teacher, 200 / 400 / 800 steps give 10-shot 84.0 / 88.1 / 91.2 % and kNN-20 91.5 / 93.5 /
# 95.2 %; 500 keeps `gandistill fit` (training + closing probes) within about 5 minutes on 2 CPU cores.
DEFAULT_STEPS = 500
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
EVAL_PROTOCOLS = ("linear", "knn", "both", "none")
ENCODER_INPUTS = ("normalised", "raw")
#: where a run logs: metrics.jsonl always; TensorBoard and Weights & Biases when asked (optional extras)
LOGGERS = ("jsonl", "tensorboard", "wandb")


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
    bank: Optional[str] = None                     # feature bank folder (gandistill bank build): sampled instead of G
    student: Optional[str] = None                  # None: resnet10t with its standard stem (fast on CPU)
    cifar_stem: Optional[bool] = None              # None: auto (ResNet at <= 64 px), False for the default student
    student_kwargs: Dict[str, Any] = field(default_factory=dict)   # extra create_student kwargs
    dataset: str = "digits"
    data_root: Optional[str] = None
    train_split: str = "train"                     # the training images' split (stl10: "train+unlabeled")
    download: bool = False                         # fetch cifar10/cifar100/stl10 into data_root if missing (opt-in)
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
    encoder_input: str = "normalised"              # encoder method: "normalised" | "raw" (G's [-1, 1], as SnS)
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
    eval: str = "fewshot,knn,fast"                 # none, or probes: fewshot,knn,fast,linear | all | both
    eval_fast: bool = True
    eval_epochs: Optional[int] = None
    eval_random: bool = True                       # also probe a randomly initialised student
    eval_max_train: Optional[int] = None
    eval_max_test: Optional[int] = None
    eval_raw_pixels: bool = True                   # closing table: also probe the raw pixels
    ssl_twin: Optional[bool] = None                # also train + probe the method's SSL twin (MethodSpec.twin) in
                                                   # run_dir/twin; None: on for the embedded default teacher run
    resume: Union[bool, str] = False               # True: continue --out; "auto": the latest run of this config
    progress: Optional[bool] = None                # None: rich progress bar on a TTY
    loggers: Tuple[str, ...] = ()                  # beside metrics.jsonl: tensorboard, wandb (optional extras)

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
    teacher_conditional: bool = False              # the teacher's G/D takes class labels (c_dim > 0)
    probes: Optional[Dict[str, Any]] = None        # the closing probe table (ProbeTable.to_dict())
    twin: Optional[Dict[str, Any]] = None          # the SSL twin: method, run_dir, eval, contribution (distilled - twin)
    config: Dict[str, Any] = field(default_factory=dict)

    @property
    def top1(self) -> Optional[float]:
        return None if not self.eval else self.eval.get("top1")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["run_dir"], d["checkpoint"] = str(self.run_dir), (str(self.checkpoint) if self.checkpoint else None)
        d.pop("config")
        return d


def student_choice(cfg: FitConfig) -> Tuple[str, Optional[bool]]:
    """(timm name, cifar_stem) for ``cfg``: the default student keeps its standard stem unless told."""
    if cfg.student is None:
        return DEFAULT_STUDENT, (False if cfg.cifar_stem is None else cfg.cifar_stem)
    return cfg.student, cfg.cifar_stem


def default_run_dir(cfg: FitConfig) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.method}-{cfg.dataset}-{stamp}"


def config_dict(cfg: FitConfig) -> Dict[str, Any]:
    """The config as JSON-able values (without deep-copying modules passed in ``teacher_kwargs``)."""
    return {f.name: jsonable(getattr(cfg, f.name)) for f in fields(cfg)}
