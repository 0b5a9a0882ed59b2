"""The CIFAR stem patch: a 3x3 stride-1 first convolution and no max-pool (small images).

ImageNet ResNets shrink the input 4x in the stem (7x7/2 conv + 3x3/2 max-pool), which leaves a
32x32 image at 1x1 by the last stage. The "CIFAR variant" used by the paper (and solo-learn,
SnS ``resnet18cifar``) keeps the stem at full resolution instead. This module applies that change
in place to timm ``ResNet`` (resnet*, seresnet*, resnext*, wide_resnet*, ecaresnet*, ...) and
``ResNetV2`` models; deep ("tiered") stems keep their 3x3 convs and only lose the first stride.
"""
from __future__ import annotations

import torch.nn as nn

_FAMILY_CLASSES = ("ResNet", "ResNetV2")


def is_resnet_family(model: nn.Module) -> bool:
    """True for timm ``ResNet`` / ``ResNetV2`` instances (the models the patch knows)."""
    return type(model).__name__ in _FAMILY_CLASSES and type(model).__module__.startswith("timm.")


def _small_conv(old: nn.Conv2d) -> nn.Conv2d:
    conv = nn.Conv2d(old.in_channels, old.out_channels, kernel_size=3, stride=1, padding=1,
                     bias=old.bias is not None)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # timm's ResNet init
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv.to(device=old.weight.device, dtype=old.weight.dtype)


def _patch_first_conv(stem: nn.Module, attr: str) -> None:
    """Replace ``stem.<attr>`` by a 3x3/1 conv, or un-stride the first conv of a deep stem."""
    first = getattr(stem, attr)
    if isinstance(first, nn.Conv2d):
        setattr(stem, attr, _small_conv(first))
        return
    if isinstance(first, nn.Sequential):  # deep stem: conv3x3/2 -> ... ; keep kernels, drop the stride
        conv = next(m for m in first.modules() if isinstance(m, nn.Conv2d))
        if conv.kernel_size != (3, 3):
            idx = next(i for i, m in enumerate(first) if m is conv)
            first[idx] = _small_conv(conv)
        else:
            conv.stride = (1, 1)
            conv.padding = (1, 1)
        return
    raise TypeError(f"unexpected stem module {type(first).__name__} at '{attr}'")


def apply_cifar_stem(model: nn.Module) -> nn.Module:
    """Patch a timm ResNet/ResNetV2 in place for small images; returns the model.

    Raises:
        ValueError: the model is not of the ResNet family.
    """
    name = type(model).__name__
    if name == "ResNet":
        _patch_first_conv(model, "conv1")
        model.maxpool = nn.Identity()
    elif name == "ResNetV2":
        stem = model.stem
        _patch_first_conv(stem, "conv" if hasattr(stem, "conv") else "conv1")
        for pool_name in ("pad", "pool"):
            if hasattr(stem, pool_name):
                setattr(stem, pool_name, nn.Identity())
    else:
        raise ValueError(f"the CIFAR stem patch supports timm ResNet/ResNetV2 models, not {name}")
    model.gandistill_cifar_stem = True  # marker for export/reload
    return model


__all__ = ["is_resnet_family", "apply_cifar_stem"]
