"""Student network S_theta = projector o backbone, with any timm backbone.

``features(x)`` is the backbone output (pooled, ``[N, num_features]``; what linear probes read);
``forward(x)`` is the projector output z (``[N, proj_out]``; what the losses see).
"""
from __future__ import annotations

import difflib
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

import timm
import torch
import torch.nn as nn

from .cifar_stem import apply_cifar_stem, is_resnet_family
from .grouped import forward_groups
from .projector import build_projector

CIFAR_STEM_MAX_SIZE = 64


class UnknownStudentError(KeyError, ValueError):
    """Unknown timm model name (catchable as KeyError or ValueError)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass
class StudentConfig:
    """How to build a student (kept on the module as ``student.config`` for checkpoints/export)."""

    name: str = "resnet18"
    img_size: int = 32
    proj_layers: int = 5
    proj_hidden: int = 512
    proj_out: int = 2048
    pretrained: bool = False
    cifar_stem: Optional[bool] = None  # None: auto (ResNet family and img_size <= 64)
    proj_final_bn: bool = False        # SimSiam: BatchNorm1d(proj_out, affine=False) closes the projector

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class Student(nn.Module):
    """Backbone (timm, ``num_classes=0``) followed by a projector MLP."""

    def __init__(self, backbone: nn.Module, projector: nn.Module, num_features: int, proj_out: int,
                 config: Optional[StudentConfig] = None):
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.num_features = int(num_features)
        self.proj_out = int(proj_out)
        self.config = config

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone representation h = f(x), ``[N, num_features]``."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Projected representation z = g(f(x)), ``[N, proj_out]``."""
        return self.projector(self.backbone(x))

    def forward_groups(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        """``[self(x) for x in xs]`` as one batched pass with per-pass BatchNorm statistics
        (:func:`gandistill.students.grouped.forward_groups`): faster, same maths."""
        return forward_groups(self, xs)


def list_students(pattern: str = "*") -> List[str]:
    """timm model names matching an fnmatch ``pattern`` (every one can be a student)."""
    return list(timm.list_models(pattern))


def _unknown(name: str) -> UnknownStudentError:
    names = timm.list_models()
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    if len(close) < 5:
        stem = name.split(".")[0].rstrip("0123456789_")[:6]
        close += [n for n in names if stem and n.startswith(stem) and n not in close][: 5 - len(close)]
    hint = f" Close timm names: {', '.join(close)}." if close else ""
    return UnknownStudentError(f"unknown student backbone '{name}' (not a timm model).{hint} "
                               "See `gandistill.students.list_students(pattern)`.")


def _create_backbone(name: str, img_size: int, pretrained: bool, **kw: Any) -> nn.Module:
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0, img_size=img_size, **kw)
    except TypeError as err:  # CNNs do not take img_size
        if "img_size" not in str(err):
            raise
    return timm.create_model(name, pretrained=pretrained, num_classes=0, **kw)


def create_student(name: str, img_size: int = 32, proj_layers: int = 5, proj_hidden: Optional[int] = 512,
                   proj_out: int = 2048, pretrained: bool = False, cifar_stem: Optional[bool] = None,
                   proj_final_bn: bool = False, **timm_kwargs: Any) -> Student:
    """Build ``Student(backbone=timm.create_model(name, num_classes=0), projector=MLP)``.

    Args:
        name: any ``timm.create_model`` name (see ``list_students``).
        img_size: training resolution; ResNet-family backbones get the CIFAR stem when <= 64.
        proj_layers: projector depth L (L-1 hidden [Linear, BN, ReLU] blocks + Linear); 0 = identity.
        proj_hidden, proj_out: projector widths (paper: 512 and 2048).
        pretrained: load timm's pretrained weights (never by default; needs them cached locally).
        cifar_stem: force the stem patch on/off; ``None`` = automatic.
        proj_final_bn: end the projector with ``BatchNorm1d(proj_out, affine=False)`` (SimSiam).
        **timm_kwargs: passed to ``timm.create_model`` (e.g. ``drop_path_rate``).

    Raises:
        UnknownStudentError (KeyError and ValueError): unknown name, with close timm names.

    >>> s = create_student("resnet18", img_size=32)
    >>> s(torch.zeros(2, 3, 32, 32)).shape, s.features(torch.zeros(2, 3, 32, 32)).shape
    (torch.Size([2, 2048]), torch.Size([2, 512]))
    """
    if not isinstance(name, str) or not timm.is_model(name):
        raise _unknown(str(name))
    if img_size < 1:
        raise ValueError(f"img_size must be positive, got {img_size}")
    backbone = _create_backbone(name, img_size, pretrained, **timm_kwargs)
    use_stem = is_resnet_family(backbone) and img_size <= CIFAR_STEM_MAX_SIZE if cifar_stem is None else cifar_stem
    if use_stem:
        apply_cifar_stem(backbone)  # raises ValueError for other families
        if pretrained:
            warnings.warn(f"{name}: the CIFAR stem replaces the pretrained first convolution (re-initialised)",
                          stacklevel=2)
    # the pooled (pre-logits) width: differs from num_features for models with a head conv (MobileNetV3)
    num_features = int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)
    projector = build_projector(num_features, proj_layers, proj_hidden, proj_out, final_bn=proj_final_bn)
    out = num_features if proj_layers == 0 else proj_out
    cfg = StudentConfig(name, img_size, proj_layers, proj_hidden, out, pretrained, bool(use_stem),
                        proj_final_bn=bool(proj_final_bn))
    return Student(backbone, projector, num_features, out, cfg)


__all__ = ["Student", "StudentConfig", "UnknownStudentError", "create_student", "list_students"]
