"""The objective interface and its registry (timm's task pattern: one objective, one class, one file).

An :class:`Objective` owns everything that differs between the paper's training objectives:

* ``build_head``  -- the trainable head beside the student (T_phi, SimSiam's predictor, none) and the
  width the student's projector must end in;
* ``inputs``      -- the student inputs of one step from the teacher's sample and the real images;
* ``forward``     -- the student (and head) passes of one step, in ONE call so DDP sees them all;
* ``loss``        -- the loss dict (``loss`` + logged components) from the forward's outputs.

A :class:`~gandistill.methods.MethodSpec` names its objective (``objective="distill"``) and stays data.
Register a new one from any module::

    from gandistill.objectives import Objective, register_objective

    @register_objective("mine")
    class Mine(Objective):
        ...

and ``register_method(MethodSpec("theirs", "mine", ...))`` makes ``gandistill fit --method theirs``
train it (load the module with ``GANDISTILL_PLUGINS=module``, see :mod:`gandistill.plugins`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from torch import Tensor, nn

from gandistill.registry import Registry

Inputs = Dict[str, Any]
Batch = Dict[str, Tensor]
Out = Dict[str, Tensor]


@dataclass
class LossWeights:
    """Resolved loss weights of a run (method defaults overridden by the config)."""

    sim: float
    var: float
    cov: float
    alpha: float
    var_cov_on: str = "student"
    gather: bool = False          # var/cov over the global batch under DDP


class Head(NamedTuple):
    """The trainable head of an objective and the width the student's output must have."""

    module: Optional[nn.Module]
    kind: Optional[str]           # the checkpoint file stem ("squeeze", "predictor") or None
    proj_out: int


class Objective:
    """One training objective. Subclasses override what differs; the defaults fit a headless,
    real-and/or-synthetic objective. Objectives hold no state: one instance per lookup."""

    name: str = ""
    trains: bool = True               # False: nothing is trained (the run probes the teacher instead)
    needs_synthetic: bool = False     # refuse alpha = 0 (nothing to distil from)
    bank_refusal: Optional[str] = None  # why a feature bank cannot replace the teacher (None: it can)
    #: the outputs the collapse monitor watches, first present wins
    embedding_keys: Tuple[str, ...] = ()

    def check_teacher(self, spec: Any, teacher_name: str, teacher: Any) -> None:
        """Refuse a teacher this objective cannot use (called after the teacher is built)."""

    def build_head(self, plan: Any, teacher: Any) -> Head:
        return Head(None, None, plan.dim)

    def inputs(self, plan: Any, parts: Any, syn: Any, x_real: Optional[Tensor],
               cl: Callable[[Tensor], Tensor]) -> Tuple[Inputs, Batch]:
        """``(student inputs, raw batch the loss needs)`` from the teacher's sample ``syn`` (or None)
        and the real images ``x_real`` in [0, 1] (or None); ``cl`` sets the memory format."""
        raise NotImplementedError

    def forward(self, student: nn.Module, head: Optional[nn.Module], **inputs: Any) -> Out:
        raise NotImplementedError

    def loss(self, w: LossWeights, out: Out, teacher: Any = None, batch: Optional[Batch] = None) -> Dict[str, Tensor]:
        raise NotImplementedError(f"objective {self.name!r} has no training loss")

    def embedding(self, out: Out) -> Optional[Tensor]:
        """The student embedding the collapse monitor watches (None: there is none)."""
        for k in self.embedding_keys:
            if k in out:
                return out[k]
        return None


OBJECTIVES: Registry = Registry("objective")


def register_objective(name: Optional[str] = None, *, help: str = "", overwrite: bool = False):
    """Class decorator: register an :class:`Objective` subclass under ``name`` (default: ``cls.name``)."""

    def deco(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Objective)):
            raise TypeError(f"register_objective takes an Objective subclass, got {cls!r}")
        key = name or cls.name
        if not key:
            raise ValueError(f"objective {cls.__name__} needs a name")
        cls.name = key
        OBJECTIVES.register(key, help=help or (cls.__doc__ or "").strip().split("\n")[0], overwrite=overwrite)(cls)
        return cls

    return deco


def get_objective(name: str) -> Objective:
    """A fresh instance of the objective registered as ``name`` (``KeyError`` with close matches)."""
    return OBJECTIVES.create(name)


def list_objectives() -> List[str]:
    return OBJECTIVES.names()
