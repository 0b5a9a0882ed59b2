"""gandistill: distil image representations from pretrained StyleGAN2-ADA generators into timm backbones.

>>> import gandistill as gd
>>> result = gd.fit(gd.FitConfig(method="sns", steps=100))      # doctest: +SKIP
>>> gd.evaluate(result.run_dir, protocol="knn")                  # doctest: +SKIP

Public names are imported lazily, so ``import gandistill`` stays cheap (no torch/timm import).
"""
from __future__ import annotations

import os
import sys

# OpenMP threads that spin while waiting make PyTorch on a shared or busy CPU several times slower
# (measured: 2 threads at load 6 on 2 cores, 3.1 s vs 0.44 s per student step). Threads that sleep
# cost little on an idle machine, so default to that -- only if torch is not loaded yet (OpenMP reads
# the variable once) and the user has not chosen a policy.
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import importlib.abc
import importlib.util
import types
from importlib import import_module
from typing import Any

try:  # the installed distribution's version
    from importlib.metadata import version as _version

    __version__ = _version("gandistill")
except Exception:  # pragma: no cover - source checkout without metadata
    __version__ = "0.1.0"

_EXPORTS = {
    # teachers
    "create_teacher": "gandistill.teachers",
    "list_teachers": "gandistill.teachers",
    "register_teacher": "gandistill.teachers",
    "Teacher": "gandistill.teachers",
    "TeacherSample": "gandistill.teachers",
    # students
    "create_student": "gandistill.students",
    "list_students": "gandistill.students",
    # distillation
    "SqueezeModule": "gandistill.squeeze",
    "MethodSpec": "gandistill.methods",
    "get_method": "gandistill.methods",
    "list_methods": "gandistill.methods",
    "register_method": "gandistill.methods",
    "FitConfig": "gandistill.engine",
    "FitResult": "gandistill.engine",
    "TrainingStopped": "gandistill.engine",
    "fit": "gandistill.engine",
    # evaluation
    "evaluate": "gandistill.evaluation",
    "linear_probe": "gandistill.evaluation",
    "knn_eval": "gandistill.evaluation",
    # objectives, probes and plug-ins
    "register_objective": "gandistill.objectives",
    "list_objectives": "gandistill.objectives",
    "register_probe": "gandistill.evaluation.probes",
    "load_plugins": "gandistill.plugins",
    # data and augmentation
    "load_dataset": "gandistill.data",
    "list_datasets": "gandistill.data",
    "build_augment": "gandistill.augment",
    # StyleGAN2 checkpoints
    "load_sg2": "gandistill.teachers.stylegan2",
    "save_sg2": "gandistill.teachers.stylegan2",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

# ``gandistill.evaluate`` is both a module and a function: the module is an alias of
# :mod:`gandistill.evaluation.run` (``import gandistill.evaluate as ev``, ``from gandistill.evaluate import
# load_student`` keep working, with no file of that name), and calling it runs ``evaluate``.
_MODULE_ALIASES = {f"{__name__}.evaluate": f"{__name__}.evaluation.run",
                   # modules that moved into the package they belong to (issue 17): old import paths still work
                   f"{__name__}.export": f"{__name__}.students.export",
                   f"{__name__}.bank": f"{__name__}.teachers.bank"}
_CALLABLE_SUBMODULES = {"evaluate": "evaluate"}      # package attribute -> the function a call runs


class _CallableModule(types.ModuleType):
    """A module whose call runs its function of the same name as the alias."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, "evaluate")(*args, **kwargs)


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: Any) -> types.ModuleType:
        module = import_module(self.target)
        if self.target.endswith(".evaluation.run") and type(module) is types.ModuleType:
            module.__class__ = _CallableModule
        self.spec = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        """The target module ran already; it keeps its own spec."""
        module.__spec__ = self.spec


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds ``gandistill.evaluate`` (an alias, see :data:`_MODULE_ALIASES`) without importing anything heavy first."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname in _MODULE_ALIASES:
            return importlib.util.spec_from_loader(fullname, _AliasLoader(_MODULE_ALIASES[fullname]))
        return None


if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _AliasFinder())


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'gandistill' has no attribute {name!r}")
    if name in _CALLABLE_SUBMODULES:
        return import_module(f"{__name__}.{name}")
    value = getattr(import_module(mod), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
