"""Typed configuration of a StyleGAN2-ADA training run (``gandistill gan train``).

A run is fully described by one :class:`GanConfig`. Named presets live in :data:`GAN_CONFIGS`:

* ``tiny``  -- small channels at 32x32, used by the tests and for the bundled ``digits`` teacher;
* ``cifar`` -- the StyleGAN2-ADA paper's CIFAR-10 setting (512 channels, 2 mapping layers, lr 0.0025,
  gamma 0.01, batch 64, G EMA 500 kimg with ramp-up 0.05, no style mixing, no path-length reg.);
* ``stl``   -- an STL-10-like setting for 64/96 px.

Network constructor kwargs come from :func:`gandistill.teachers.stylegan2.configs.sg2_kwargs`
(``arch`` names the SG2 config); the fields below only hold the training objective and the schedule.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from gandistill.registry import close_matches
from gandistill.teachers.stylegan2.configs import get_sg2_config

#: differentiable augmentation ops understood by :class:`gandistill.gan.ada.AdaAugment`
ADA_OPS = ("xflip", "translate", "cutout", "brightness", "contrast", "saturation")
#: default ops for small data sets of digits / objects (no flip: digits are not mirror-symmetric)
DEFAULT_ADA_OPS = ("translate", "cutout", "brightness", "contrast", "saturation")


@dataclass
class GanConfig:
    """Everything a StyleGAN2-ADA run needs (defaults = the ``tiny`` preset)."""

    # --- data
    data: str = "digits"                 #: dataset name for ``gandistill.data.load_dataset``
    data_root: Optional[str] = None      #: root folder (imagefolder / torchvision sets)
    split: str = "train"
    resolution: Optional[int] = None     #: resize the data to this size (None = the data set's own)
    cond: bool = False                   #: condition G and D on one-hot labels c
    max_items: Optional[int] = None      #: use only the first N training images
    grey: Optional[bool] = None          #: tie G's toRGB output channels (R = G = B) for greyscale data;
    #: None = on exactly when every training image has R = G = B (e.g. digits)
    # --- networks
    arch: str = "tiny"                   #: SG2 config name for ``sg2_kwargs``
    net_overrides: Dict[str, Any] = field(default_factory=dict)
    #: optional overrides merged into G and D kwargs (keys: ``channel_base``, ``channel_max``,
    #: ``map_layers``, ``z_dim``, ``w_dim``, ``mbstd_group``)
    # --- objective
    batch: int = 32
    glr: float = 0.0025
    dlr: float = 0.0025
    betas: Tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 0.05
    r1_interval: int = 16                #: lazy R1 every N D steps (0 = no R1)
    lazy_adjust: bool = True             #: scale D lr/betas by interval/(interval+1) as in the ADA paper
    ema_kimg: float = 5.0
    ema_rampup: Optional[float] = 0.05
    style_mixing_prob: float = 0.0
    pl_weight: float = 0.0               #: path-length regularisation (only 0 is supported)
    clamp_fakes: bool = False            #: D sees G's images clamped to [-1, 1] (straight-through gradient)
    range_weight: float = 0.0            #: with clamp_fakes: weight of sum relu(|G(z)| - range_margin) in L_G
    range_margin: float = 4.0            #: raw outputs may overshoot to +-margin for free
    pack: int = 1                        #: PacGAN (Lin et al. 2018): D judges ``pack`` images at once, stacked
    #: along channels (D's input has 3 * pack channels); > 1 makes a G that drops modes easier to spot
    # --- adaptive discriminator augmentation
    augment: str = "ada"                 #: ``ada`` (adaptive p) | ``fixed`` (p = augment_p) | ``none``
    augment_ops: Tuple[str, ...] = DEFAULT_ADA_OPS
    augment_p: float = 0.0               #: initial / fixed probability p
    ada_target: float = 0.6              #: target of r_t = E[sign(D(real))]
    ada_interval: int = 4                #: adjust p every N steps
    ada_kimg: float = 500.0              #: p can go 0 -> 1 in this many kimg
    # --- schedule and output
    kimg: float = 50.0                   #: total training length in thousands of real images shown to D
    snap_kimg: float = 5.0               #: snapshot (weights + grid + state) every N kimg
    tick_kimg: float = 0.5               #: log a metrics line every N kimg
    out: str = "runs/gan"
    resume: Optional[str] = None         #: run folder or snapshot folder to continue from
    seed: int = 0
    grid_n: int = 64
    threads: Optional[int] = None        #: torch.set_num_threads (None = leave as is)
    device: str = "cpu"
    precision: str = "fp32"              #: ``fp32`` | ``bf16`` (autocast for the G and D main passes; R1 and EMA in fp32)
    keep_snapshots: int = 3              #: keep only the newest N snapshot folders (0 = all)
    progress: Optional[bool] = None      #: rich progress bar (None = only on a TTY)
    loggers: Tuple[str, ...] = ()        #: beside metrics.jsonl: tensorboard, wandb (optional extras)

    def validate(self) -> "GanConfig":
        """Raise ``ValueError`` with a clear message for impossible settings; return self."""
        if self.batch < 2:
            raise ValueError(f"batch must be >= 2 (minibatch-std and the loss need it), got {self.batch}")
        if self.kimg <= 0:
            raise ValueError(f"kimg must be > 0, got {self.kimg}")
        if self.snap_kimg <= 0 or self.tick_kimg <= 0:
            raise ValueError("snap_kimg and tick_kimg must be > 0")
        if self.augment not in ("ada", "fixed", "none"):
            raise ValueError(f"augment must be 'ada', 'fixed' or 'none', got {self.augment!r}")
        bad = [op for op in self.augment_ops if op not in ADA_OPS]
        if bad:
            raise ValueError(f"unknown augment op(s) {bad}; known: {', '.join(ADA_OPS)}")
        if not 0.0 <= self.augment_p <= 1.0:
            raise ValueError(f"augment_p must be in [0, 1], got {self.augment_p}")
        if self.pl_weight != 0:
            raise ValueError("path-length regularisation is not implemented; use pl_weight=0")
        if not 0.0 <= self.style_mixing_prob <= 1.0:
            raise ValueError(f"style_mixing_prob must be in [0, 1], got {self.style_mixing_prob}")
        if self.r1_interval < 0 or self.ada_interval < 1:
            raise ValueError("r1_interval must be >= 0 and ada_interval >= 1")
        if self.pack < 1 or self.batch % self.pack:
            raise ValueError(f"pack must be >= 1 and divide batch {self.batch}, got {self.pack}")
        if self.batch // self.pack < 2:
            raise ValueError(f"batch / pack must be >= 2 (D's minibatch-std needs it), got {self.batch}/{self.pack}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.glr <= 0 or self.dlr <= 0:
            raise ValueError("learning rates must be > 0")
        return self

    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["augment_ops"] = list(self.augment_ops)
        d["loggers"] = list(self.loggers)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "GanConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown GanConfig field(s): {unknown}")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        for k in ("augment_ops", "loggers"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def _preset(arch: str, **kw: Any) -> GanConfig:
    """A preset whose objective hyper-parameters come from the SG2 network config ``arch``
    (batch, lr, R1 gamma, EMA, style mixing); path-length regularisation is always off here."""
    sg = get_sg2_config(arch)
    base = dict(arch=arch, batch=sg.batch, glr=sg.lr, dlr=sg.lr, r1_gamma=sg.gamma, ema_kimg=sg.ema_kimg,
                ema_rampup=sg.ema_rampup, style_mixing_prob=sg.style_mixing_prob, pl_weight=0.0)
    base.update(kw)
    return GanConfig(**base)


#: named presets; use :func:`gan_config` to get a copy with overrides
GAN_CONFIGS: Dict[str, GanConfig] = {
    # tests and the bundled digits teacher: 32 px, 32-64 channels
    "tiny": _preset("tiny", data="digits", kimg=50.0, snap_kimg=5.0, tick_kimg=0.5),
    # the StyleGAN2-ADA paper's CIFAR-10 setting (NVlabs stylegan2-ada-pytorch `--cfg=cifar`)
    "cifar": _preset("cifar", data="cifar10", kimg=100000.0, snap_kimg=200.0, tick_kimg=4.0,
                     augment_ops=("xflip",) + DEFAULT_ADA_OPS),
    # STL-10-like: 96 px images trained at 64 px (StyleGAN2 needs a power of two)
    "stl": _preset("stl", data="stl10", split="train+unlabeled", resolution=64, kimg=50000.0, snap_kimg=200.0,
                   tick_kimg=4.0, augment_ops=("xflip",) + DEFAULT_ADA_OPS),
}


def gan_config(name: str = "tiny", **overrides: Any) -> GanConfig:
    """A validated copy of preset ``name`` with ``overrides`` (``None`` values are ignored)."""
    if name not in GAN_CONFIGS:
        hint = close_matches(name, GAN_CONFIGS)
        raise KeyError(f"unknown GAN config '{name}'. Known: {', '.join(GAN_CONFIGS)}"
                       + (f" (did you mean {', '.join(hint)}?)" if hint else ""))
    kw = {k: v for k, v in overrides.items() if v is not None}
    names = {f.name for f in dataclasses.fields(GanConfig)}
    unknown = sorted(set(kw) - names)
    if unknown:
        raise ValueError(f"unknown GanConfig field(s): {unknown}")
    return dataclasses.replace(GAN_CONFIGS[name], **kw).validate()
