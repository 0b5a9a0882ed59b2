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
    "evaluate": "gandistill.evaluate",
    "linear_probe": "gandistill.evaluate",
    "knn_eval": "gandistill.evaluate",
    # data and augmentation
    "load_dataset": "gandistill.data",
    "list_datasets": "gandistill.data",
    "build_augment": "gandistill.augment",
    # StyleGAN2 checkpoints
    "load_sg2": "gandistill.teachers.stylegan2",
    "save_sg2": "gandistill.teachers.stylegan2",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

# submodules named like the function they export: ``gandistill.evaluate`` is both the module and
# (once imported, which also happens when any code imports the submodule) a callable forwarding to
# ``gandistill.evaluate.evaluate``, so ``gandistill.evaluate(run)`` and ``gandistill.evaluate.linear_probe`` work.
_CALLABLE_SUBMODULES = ("evaluate",)


class _CallableModule(types.ModuleType):
    """A module whose call runs its same-named function."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CALLABLE_SUBMODULES and type(value) is types.ModuleType:
            value.__class__ = _CallableModule        # the import system binding the submodule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'gandistill' has no attribute {name!r}")
    if name in _CALLABLE_SUBMODULES:
        return import_module(f"gandistill.{name}")
    value = getattr(import_module(mod), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
