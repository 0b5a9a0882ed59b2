"""LPIPS (Zhang et al. 2018), ``net='alex'``, version 0.1, in plain PyTorch, from local weight files only.

For images x, x0 in [-1, 1] (``[N, 3, H, W]``, H, W >= 31):

    s(x)     = (x - shift) / scale                       shift = [-.030, -.088, -.188], scale = [.458, .448, .450]
    f_l(x)   = relu_l(AlexNet features(s(x)))            l = 1..5, channels C_l = 64, 192, 384, 256, 256
    u(f)     = f / (sqrt(sum_c f^2) + 1e-10)              unit length across channels, per position
    d(x, x0) = sum_l mean_hw sum_c w_l[c] * (u(f_l(x)) - u(f_l(x0)))^2,   w_l >= 0 (the 1x1 ``lin`` layers)

The paper code (SnS ``encode.py``) uses this distance as the perceptual term of the encoder loss.

Weights are never downloaded. They come from files given by path:

* the backbone: a torchvision ``alexnet`` state dict (keys ``features.{0,3,6,8,10}.{weight,bias}``;
  ``classifier.*`` is ignored), or the LPIPS module layout ``net.slice{1..5}.{i}.*``;
* the linear layers: the ``lpips`` package's ``weights/v0.1/alex.pth`` (keys ``lin{0..4}.model.1.weight``,
  shape ``[1, C_l, 1, 1]``), or the same keys without ``.model.1``;
* or one combined file holding both (see :func:`combine_weights`, also
  ``python -m gandistill.losses.lpips LIN ALEXNET OUT``).

Files are ``.safetensors`` or ``torch.save`` files (read with ``weights_only=True``). Bad files raise
:class:`LPIPSWeightsError` naming the file.
"""
from __future__ import annotations

import io
import re
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from safetensors.torch import load as st_load, save_file
from torch import Tensor, nn
from torch.nn import functional as F

from gandistill.io.errors import GandistillError
from gandistill.io.safe_pickle import SafeLoadError, read_regular_file

PathLike = Union[str, Path]

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
CHANNELS = (64, 192, 384, 256, 256)
#: torchvision ``alexnet.features`` index of each conv, its shape, and where each LPIPS slice ends.
CONV_INDEX = (0, 3, 6, 8, 10)
CONV_SHAPES = ((64, 3, 11, 11), (192, 64, 5, 5), (384, 192, 3, 3), (256, 384, 3, 3), (256, 256, 3, 3))
SLICE_ENDS = (2, 5, 8, 10, 12)           # relu1 = features[0:2], relu2 = [2:5], ..., relu5 = [10:12]
MIN_SIZE = 31                            # conv1 (11, s4, p2) then two 3/2 max-pools must leave >= 1 pixel
EPS = 1e-10
MAX_FILE_BYTES = 1 << 30


class LPIPSWeightsError(GandistillError):
    """A weights file is missing, unreadable or does not hold LPIPS-alex / AlexNet weights."""


# --- files ----------------------------------------------------------------------------------------

def load_state_file(path: PathLike, what: str = "weights file") -> Dict[str, Tensor]:
    """A flat ``{name: tensor}`` from a ``.safetensors`` or ``torch.save`` file (no pickled code)."""
    p = Path(path)
    try:
        data = read_regular_file(p, MAX_FILE_BYTES, what=what)
    except FileNotFoundError:
        raise LPIPSWeightsError(f"{p}: {what} not found") from None
    except SafeLoadError as e:
        raise LPIPSWeightsError(str(e)) from None
    try:
        if p.suffix == ".safetensors":
            obj = st_load(data)
        else:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (any parse failure is a bad file)
        kind = "safetensors" if p.suffix == ".safetensors" else "torch.save (weights_only)"
        raise LPIPSWeightsError(f"{p}: cannot read the {what} as a {kind} file ({type(e).__name__}: "
                                f"{str(e)[:200]})") from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise LPIPSWeightsError(f"{p}: the {what} is not a state dict (a mapping of names to tensors)")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def _sample(keys, n: int = 6) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "") if keys else "(none)"


def _check(t: Tensor, shape: Tuple[int, ...], key: str, path: PathLike) -> Tensor:
    if tuple(t.shape) != tuple(shape):
        raise LPIPSWeightsError(f"{path}: {key} has shape {list(t.shape)}, expected {list(shape)}")
    if not t.is_floating_point() or not torch.isfinite(t).all():
        raise LPIPSWeightsError(f"{path}: {key} must be finite floating-point numbers")
    return t.detach().float().clone()


def has_backbone(sd: Mapping[str, Tensor]) -> bool:
    return any(re.match(r"(features|net\.slice\d)\.", k) for k in sd)


def has_lins(sd: Mapping[str, Tensor]) -> bool:
    return any(re.match(r"lin\d\.", k) for k in sd)


def backbone_state(sd: Mapping[str, Tensor], path: PathLike) -> Dict[str, Tensor]:
    """The five convs as ``{"<features index>.weight"/".bias": tensor}``, checked against AlexNet's shapes."""
    out: Dict[str, Tensor] = {}
    for s, (i, shape) in enumerate(zip(CONV_INDEX, CONV_SHAPES), start=1):
        for part, want in (("weight", shape), ("bias", shape[:1])):
            names = (f"features.{i}.{part}", f"net.slice{s}.{i}.{part}")
            key = next((k for k in names if k in sd), None)
            if key is None:
                raise LPIPSWeightsError(
                    f"{path}: no AlexNet weight {names[0]} (or {names[1]}); this is not a torchvision alexnet "
                    f"state dict. Keys found: {_sample(sd)}")
            out[f"{i}.{part}"] = _check(sd[key], want, key, path)
    return out


def lin_weights(sd: Mapping[str, Tensor], path: PathLike) -> List[Tensor]:
    """The five non-negative 1x1 weights ``w_l`` ([1, C_l, 1, 1]) of the ``lpips`` ``alex.pth`` layout."""
    out: List[Tensor] = []
    for l, c in enumerate(CHANNELS):
        names = (f"lin{l}.model.1.weight", f"lin{l}.weight")
        key = next((k for k in names if k in sd), None)
        if key is None:
            raise LPIPSWeightsError(f"{path}: no LPIPS linear layer {names[0]} (or {names[1]}); "
                                    f"not an lpips alex.pth file. Keys found: {_sample(sd)}")
        w = _check(sd[key], (1, c, 1, 1), key, path)
        if (w < 0).any():
            raise LPIPSWeightsError(f"{path}: {key} has negative entries; LPIPS linear weights are non-negative")
        out.append(w)
    return out


def load_lpips_weights(lpips_weights: PathLike, alexnet_weights: Optional[PathLike] = None
                       ) -> Tuple[Dict[str, Tensor], List[Tensor]]:
    """``(backbone, lins)`` from the lin file (or a combined file) and, if separate, the AlexNet file.

    ``alexnet_weights``, when given, supplies the backbone even if ``lpips_weights`` holds one too.
    """
    sd = load_state_file(lpips_weights, "LPIPS weights file")
    lins = lin_weights(sd, lpips_weights)
    if alexnet_weights is not None:
        return backbone_state(load_state_file(alexnet_weights, "AlexNet weights file"), alexnet_weights), lins
    if not has_backbone(sd):
        raise LPIPSWeightsError(
            f"{lpips_weights}: holds only the LPIPS linear layers, no AlexNet backbone; also pass the torchvision "
            "alexnet state dict (alexnet_weights=...), or make one combined file with "
            "`python -m gandistill.losses.lpips LIN ALEXNET OUT`")
    return backbone_state(sd, lpips_weights), lins


def combine_weights(lpips_weights: PathLike, alexnet_weights: PathLike, out: PathLike) -> Path:
    """Write one file with ``features.*`` (the five convs) and ``lin{l}.weight``: .safetensors or torch.save."""
    backbone, lins = load_lpips_weights(lpips_weights, alexnet_weights)
    sd = {f"features.{k}": v.contiguous() for k, v in backbone.items()}
    sd.update({f"lin{l}.weight": w.contiguous() for l, w in enumerate(lins)})
    out = Path(out)
    if out.suffix == ".safetensors":
        save_file(sd, str(out))
    else:
        torch.save(sd, out)
    return out


# --- the distance ---------------------------------------------------------------------------------

def alexnet_features() -> nn.Sequential:
    """torchvision's ``AlexNet.features`` up to relu5 (indices 0..11, the same module indices)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, 2), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, 2), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
    )


def unit_normalize(f: Tensor, eps: float = EPS) -> Tensor:
    """``f / (||f||_2 over channels + eps)`` (the norm's subgradient at 0 is 0, so no NaN gradients)."""
    return f / (torch.linalg.vector_norm(f, dim=1, keepdim=True) + eps)


class LPIPS(nn.Module):
    """LPIPS-alex v0.1: ``forward(x, x0)`` -> per-image distances ``[N]`` for images in [-1, 1]. Frozen."""

    name = "lpips-alex"

    def __init__(self, backbone: Mapping[str, Tensor], lins: Sequence[Tensor]) -> None:
        super().__init__()
        if len(lins) != len(CHANNELS):
            raise LPIPSWeightsError(f"LPIPS needs {len(CHANNELS)} linear layers, got {len(lins)}")
        self.features = alexnet_features()
        self.features.load_state_dict(dict(backbone), strict=True)
        self.lins = nn.ParameterList([nn.Parameter(w.detach().float().clone().view(1, c, 1, 1))
                                      for w, c in zip(lins, CHANNELS)])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    @classmethod
    def from_files(cls, lpips_weights: PathLike, alexnet_weights: Optional[PathLike] = None) -> "LPIPS":
        return cls(*load_lpips_weights(lpips_weights, alexnet_weights))

    def train(self, mode: bool = True) -> "LPIPS":
        return super().train(False)      # no dropout / BN: always the evaluation network

    def _check_input(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"LPIPS takes [N, 3, H, W] images (or 1 channel, repeated), got {tuple(x.shape)}")
        if min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(f"LPIPS-alex needs images of at least {MIN_SIZE}x{MIN_SIZE} (AlexNet's strides), "
                             f"got {tuple(x.shape[-2:])}")
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    def layer_features(self, x: Tensor) -> List[Tensor]:
        """relu1..relu5 of AlexNet on the scaled input."""
        h = (self._check_input(x).float() - self.shift) / self.scale
        out, start = [], 0
        for end in SLICE_ENDS:
            for i in range(start, end):
                h = self.features[i](h)
            out.append(h)
            start = end
        return out

    def forward(self, x: Tensor, x0: Tensor) -> Tensor:
        if x.shape != x0.shape:
            raise ValueError(f"LPIPS inputs differ in shape: {tuple(x.shape)} vs {tuple(x0.shape)}")
        d = x.new_zeros(x.shape[0], dtype=torch.float32)
        for f, f0, w in zip(self.layer_features(x), self.layer_features(x0), self.lins):
            diff = (unit_normalize(f) - unit_normalize(f0)).pow(2)
            d = d + F.conv2d(diff, w).mean(dim=(1, 2, 3))
        return d


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m gandistill.losses.lpips LPIPS_LIN(alex.pth) ALEXNET(.pth|.safetensors) "
              "OUT(.safetensors|.pth)", file=sys.stderr)
        return 2
    try:
        out = combine_weights(*args)
    except LPIPSWeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
