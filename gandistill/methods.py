"""Methods as small specs: which parts of the training step are on, with their default weights.

Every row of the paper's Tables 1, 2 and 5 is the same step with parts switched on or off
(SnS's ``sns.py`` switches: ``--syn_ratio``, the loss weights, ``--a_depth``). A :class:`MethodSpec`
names the objective, the default teacher, the synthetic share alpha of the batch, the loss weights,
the squeeze depth, augmentation and optimiser defaults.
The objective itself -- heads, inputs, forward and loss -- is a registered class in
:mod:`gandistill.objectives`; :func:`method_loss` asks it for the loss.

Objectives (one file each under ``gandistill/objectives/``):

* ``distill``  -- squeeze (Eq. 11) on synthetic images vs T_phi(teacher targets), plus span (Eq. 12,
  VICReg on two real views) when alpha < 1: ``L = alpha * L_squeeze + (1 - alpha) * L_span``.
* ``vicreg``   -- VICReg between two augmented views of real / synthetic / mixed images.
* ``simsiam``  -- SimSiam: predictor MLP, symmetric negative cosine with stop-gradient.
* ``encoder``  -- the post-hoc encoder of Eq. 3 (L1 + perceptual + lambda*MSE(E(x), w+)).
* ``probe``    -- no training: a linear probe on the frozen discriminator's features.

>>> from gandistill.methods import get_method
>>> get_method("sns").alpha
0.5
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, List, Optional

from torch import Tensor

from gandistill.objectives import (OBJECTIVES, LossWeights, SimSiamPredictor, get_objective,  # noqa: F401
                                   negative_cosine, simsiam_loss)
from gandistill.registry import Registry


@dataclass(frozen=True)
class MethodSpec:
    """One method: what the training step does and its default hyper-parameters (SnS values)."""

    name: str
    objective: str
    help: str = ""
    teacher: Optional[str] = "sg2-generator"   # default teacher (None: real data only)
    alpha: float = 1.0                         # synthetic share of the batch and weight of the synthetic loss
    sim: float = 25.0                          # lambda (invariance / L_RD)
    var: float = 25.0                          # mu
    cov: float = 1.0                           # nu
    var_cov_on: str = "student"                # squeeze_loss: var/cov on the student only (SnS) or "both" (Eq. 11)
    squeeze_depth: int = 3                     # T_phi MLP depth; 0 = pooled concatenation (vanilla)
    augment: bool = True                       # augment the synthetic images
    proj_layers: int = 5                       # student projector depth
    proj_hidden: Optional[int] = 512           # None: the backbone's width (SimSiam)
    proj_final_bn: bool = False                # SimSiam: BatchNorm1d(dim, affine=False) after the last Linear
    dim: int = 2048                            # embedding width (projector / squeeze output)
    base_lr: float = 0.03                      # lr = base_lr * batch / 256
    weight_decay: float = 5e-4
    fixed_head_lr: bool = False                # SimSiam: the predictor's lr is not decayed
    paper: str = ""                            # the table row this reproduces
    twin: Optional[str] = None                 # the SSL twin: the same images without the teacher's features

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES.names())} "
                             f"(or one registered with @register_objective), got {self.objective!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha}")

    @property
    def trains(self) -> bool:
        """False for an objective that trains nothing (``probe``: the run probes the teacher)."""
        return get_objective(self.objective).trains

    @property
    def uses_synthetic(self) -> bool:
        return self.alpha > 0 and self.trains

    @property
    def uses_real(self) -> bool:
        return self.alpha < 1 or not self.trains

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


# The SSL twin of each method that learns from a teacher (``MethodSpec.twin``): the same student, data,
# steps, batch, augmentation and seed, trained by plain self-supervision on the images the method sees,
# so "method minus twin" is what the teacher's features add (``fit --ssl-twin``; README "The SSL twin").
# sns spans real images and squeezes synthetic ones: its twin is VICReg on the real images (the paper's
# yardstick, Fig. 4); the synthetic-only objectives' twin is VICReg on the same teacher's images; the
# mixed encoder's, VICReg on the same half-synthetic batch. SSL methods and d-direct have no twin.
TWINS: Dict[str, str] = {
    "sns": "vicreg-real",
    "squeeze": "vicreg-syn", "squeeze-var": "vicreg-syn", "squeeze-novarcov": "vicreg-syn",
    "vanilla": "vicreg-syn", "vanilla-noaug": "vicreg-syn",
    "encoder": "vicreg-syn", "encoder-mixed": "vicreg-mixed",
}


METHODS: Registry = Registry("method")


def register_method(spec: MethodSpec, overwrite: bool = False) -> MethodSpec:
    """Add ``spec`` to :data:`METHODS` under ``spec.name``."""
    METHODS.register(spec.name, help=spec.help, overwrite=overwrite)(lambda: spec)
    return spec


def get_method(name: str, **overrides: Any) -> MethodSpec:
    """The spec registered as ``name`` (``KeyError`` with close matches if unknown), with overrides."""
    spec = METHODS.create(name)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return replace(spec, **overrides) if overrides else spec


def list_methods() -> List[str]:
    return METHODS.names()


# SimSiam as SnS's simsiam.py (CIFAR): a 2-layer projector whose hidden width is the backbone's
# (512 for ResNet-18) ending in BatchNorm1d(dim, affine=False), dim 2048; predictor 2048-512-2048
# trained at the fixed (undecayed) lr; lr 0.03 x batch/256, wd 5e-4. STL-10 (presets): 3 layers.
_SIMSIAM: Dict[str, Any] = dict(proj_layers=2, proj_hidden=None, proj_final_bn=True,
                                fixed_head_lr=True, var=0.0, cov=0.0, sim=1.0)

for _spec in [
    MethodSpec("sns", "distill", "Squeeze and Span: squeeze on synthetic + VICReg span on real (alpha 0.5)",
               alpha=0.5, paper="Table 1 'Squeeze and span' (92.54 / 67.87)"),
    MethodSpec("squeeze", "distill", "Squeeze: T_phi target + var/cov, synthetic only",
               alpha=1.0, paper="Table 1 'Squeeze' (87.67 / 57.35); Table 5 e"),
    MethodSpec("vanilla", "distill", "vanilla distillation with augmentation: MSE to pooled h^g (depth 0)",
               alpha=1.0, sim=1.0, var=0.0, cov=0.0, squeeze_depth=0, paper="Table 1 'Vanilla (w/ aug)'; Table 5 b"),
    MethodSpec("vanilla-noaug", "distill", "vanilla distillation without augmentation (Table 5 a)",
               alpha=1.0, sim=1.0, var=0.0, cov=0.0, squeeze_depth=0, augment=False, paper="Table 5 a (74.20)"),
    MethodSpec("squeeze-novarcov", "distill", "ablation: T_phi without var/cov, weights 1/0/0 as SnS's script (collapses)",
               alpha=1.0, sim=1.0, var=0.0, cov=0.0, paper="Table 5 c (10.00, collapse)"),
    MethodSpec("squeeze-var", "distill", "ablation: T_phi + variance only (25/25/0)",
               alpha=1.0, sim=25.0, var=25.0, cov=0.0, paper="Table 5 d (79.10)"),
    MethodSpec("vicreg-real", "vicreg", "VICReg on real images", teacher=None, alpha=0.0, paper="Table 2 VICReg real"),
    MethodSpec("vicreg-syn", "vicreg", "VICReg on synthetic images", alpha=1.0, paper="Table 2 VICReg syn"),
    MethodSpec("vicreg-mixed", "vicreg", "VICReg on a half synthetic, half real batch", alpha=0.5,
               paper="Table 2 VICReg real & syn"),
    MethodSpec("simsiam-real", "simsiam", "SimSiam on real images", teacher=None, alpha=0.0, **_SIMSIAM,
               paper="Table 2 SimSiam real"),
    MethodSpec("simsiam-syn", "simsiam", "SimSiam on synthetic images", alpha=1.0, **_SIMSIAM,
               paper="Table 2 SimSiam syn"),
    MethodSpec("simsiam-mixed", "simsiam", "SimSiam on a half synthetic, half real batch", alpha=0.5, **_SIMSIAM,
               paper="Table 2 SimSiam real & syn"),
    MethodSpec("encoder", "encoder", "post-hoc encoder E against frozen G (Eq. 3), synthetic only",
               teacher="sg2-encoder", alpha=1.0, sim=1.0, var=0.0, cov=0.0, augment=False, proj_layers=2,
               base_lr=0.01, paper="Table 1 'Encoding' syn (57.15 / 32.19)"),
    MethodSpec("encoder-mixed", "encoder", "post-hoc encoder with real images too (reconstruction only)",
               teacher="sg2-encoder", alpha=0.5, sim=1.0, var=0.0, cov=0.0, augment=False, proj_layers=2,
               base_lr=0.01, paper="Table 1 'Encoding' syn & real (50.27 / 28.43)"),
    MethodSpec("d-direct", "probe", "discriminator direct use: linear probe on frozen D features (no training)",
               teacher="sg2-discriminator", alpha=0.0, sim=0.0, var=0.0, cov=0.0, augment=False, proj_layers=0,
               paper="Table 1 'Direct use' (single 63.81 / multi 77.58)"),
]:
    register_method(replace(_spec, twin=TWINS.get(_spec.name)))


def twin_of(name: str) -> Optional[str]:
    """The SSL twin method of ``name`` (``None`` when it has none, e.g. an SSL method itself)."""
    return get_method(name).twin


# --- the loss of a method: its objective's ------------------------------------------------------

def method_loss(spec: MethodSpec, w: LossWeights, out: Dict[str, Tensor], teacher: Any = None,
                batch: Optional[Dict[str, Tensor]] = None) -> Dict[str, Tensor]:
    """The loss dict (``loss`` + logged components) for the step outputs ``out`` of ``spec``'s objective
    (:meth:`gandistill.objectives.Objective.loss`; the output keys are the objective's)."""
    return get_objective(spec.objective).loss(w, out, teacher, batch)
