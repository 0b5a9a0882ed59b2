"""The teacher registry: ``register_teacher`` / ``create_teacher`` / ``list_teachers`` (timm style).

The built-in teachers register themselves by decorator in their own files, which
:mod:`gandistill.teachers` imports (any import of this module runs that package first).

A teacher is anything a :class:`~gandistill.teachers.base.Teacher` subclass describes: it samples
synthetic images with per-image targets (pooled generator block features h^g, the latent w, ...)
or extracts features from images (discriminator). Plug in your own generator like this::

    import torch
    from gandistill.teachers import Teacher, TeacherSample, register_teacher

    @register_teacher("my-gan", help="my generator's pooled features")
    class MyGanTeacher(Teacher):
        def __init__(self, ckpt=None, device="cpu"):
            super().__init__()
            self.G = torch.jit.load(ckpt).to(device)      # any generator you can run
            self.target_dims = (256, 512)                  # channels of each target block
            self.img_resolution = 32
            self.freeze()

        @torch.no_grad()
        def sample(self, n, generator=None):
            z = torch.randn(n, 128, generator=generator).to(self.device)
            img, feats = self.G(z)                        # img in [-1, 1], feats: list of [N,C,H,W]
            return TeacherSample(images=img.clamp(-1, 1),
                                 targets=[f.mean(dim=(2, 3)) for f in feats])

then ``gandistill fit --teacher my-gan --teacher-ckpt my.pt`` (after importing your module) or
``fit(FitConfig(teacher="my-gan", teacher_ckpt="my.pt"))``.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional

from gandistill.registry import Registry

TEACHERS: Registry = Registry("teacher")


def register_teacher(name: Optional[str] = None, *, help: str = "", overwrite: bool = False) -> Callable:
    """Decorator registering a teacher factory (a class or function taking ``ckpt=``, ``device=``, ...)."""
    return TEACHERS.register(name, help=help, overwrite=overwrite)


def create_teacher(name: str, ckpt: Optional[str] = None, device: Any = "cpu", **kwargs: Any):
    """Build the teacher ``name`` (frozen, in eval mode) from ``ckpt`` (default: the bundled teacher).

    ``None``-valued keyword arguments are dropped, so CLI defaults pass through unchanged.
    Unknown names raise ``KeyError`` listing close matches.
    """
    teacher = TEACHERS.create(name, ckpt=ckpt, device=device, **kwargs)
    if hasattr(teacher, "freeze"):
        teacher.freeze()
    return teacher


def list_teachers() -> List[str]:
    """Names accepted by :func:`create_teacher`."""
    return TEACHERS.names()


def describe_teacher(name: str) -> str:
    """One-line description of a registered teacher."""
    return TEACHERS.describe(name)
