"""What every teacher is: a frozen module that produces distillation targets.

Teachers come in two shapes:

* *sampling* teachers (generator, latent, encoder) draw w ~ P(w) and return synthetic images
  together with per-image targets (:meth:`Teacher.sample`);
* *feature* teachers (discriminator) map a given image batch to a representation
  (:meth:`Teacher.features`).

A teacher is always frozen: ``eval()``, ``requires_grad_(False)``, and ``train()`` keeps it in eval
mode; the engine never wraps it in DDP.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from gandistill.teachers.stylegan2.checkpoint import available_nets, load_sg2

PathLike = Union[str, Path]


@dataclass
class TeacherSample:
    """One batch from a sampling teacher.

    images: [N,C,H,W] in [-1,1] (clamped); targets: list of [N,C_i] (pooled h^g blocks, or [w]);
    labels: [N] class ids for a conditional G (else None); ws: [N,num_ws,w_dim] (else None).
    """

    images: Tensor
    targets: List[Tensor] = field(default_factory=list)
    labels: Optional[Tensor] = None
    ws: Optional[Tensor] = None


class Teacher(nn.Module):
    """Base class: a frozen teacher. Subclasses set ``target_dims`` and implement ``sample`` or ``features``."""

    #: channels of each target tensor returned in ``TeacherSample.targets`` (or by ``features``)
    target_dims: Tuple[int, ...] = ()
    #: names of those targets (e.g. ``("b4", "b8", ...)`` or ``("w",)``)
    target_names: Tuple[str, ...] = ()
    img_resolution: int = 0
    img_channels: int = 3
    #: True when :meth:`sample` is implemented
    can_sample: bool = True

    def freeze(self) -> "Teacher":
        """eval() + requires_grad_(False): the teacher never trains."""
        super().train(False)
        self.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> "Teacher":  # noqa: D401 - keep frozen
        """Teachers stay in eval mode whatever the caller asks."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        for t in list(self.parameters()) + list(self.buffers()):
            return t.device
        return torch.device("cpu")

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> TeacherSample:
        raise NotImplementedError(f"teacher {type(self).__name__} does not sample images")

    def features(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"teacher {type(self).__name__} does not extract image features")

    def describe(self) -> dict:
        """JSON-able facts recorded in the run config."""
        return {
            "class": type(self).__name__,
            "target_names": list(self.target_names),
            "target_dims": list(self.target_dims),
            "img_resolution": self.img_resolution,
        }


def resolve_ckpt(ckpt: Optional[PathLike]) -> Path:
    """``ckpt`` as a Path, or the bundled digits teacher when None."""
    if ckpt is None or str(ckpt) == "":
        from gandistill.gan import bundled_teacher_path  # lazy: import circle (gan imports teachers)
        path = Path(bundled_teacher_path())
        if not path.exists():
            raise FileNotFoundError(
                f"the bundled digits teacher is missing ({path}); pass --teacher-ckpt PATH "
                "(an NVlabs .pkl or a gandistill SG2 folder) or train one with `gandistill gan train`"
            )
        return path
    path = Path(ckpt).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"teacher checkpoint not found: {path}")
    return path


def load_sg2_nets(ckpt: Optional[PathLike], want: Sequence[str]):
    """Load what ``ckpt`` has of the networks ``want`` (NVlabs pickle or ours, via ``load_sg2``).

    A generator request (``"G_ema"``) falls back to ``G`` when the checkpoint has no ``G_ema``.
    Returns ``(SG2Checkpoint, path)``; a requested network the checkpoint lacks is ``None`` on it.
    """
    path = resolve_ckpt(ckpt)
    have = set(available_nets(path))
    nets = []
    for n in want:
        if n == "G_ema" and n not in have and "G" in have:
            n = "G"
        if n in have and n not in nets:
            nets.append(n)
    if not nets:
        raise ValueError(f"{path} holds none of {list(want)} (it has {sorted(have) or 'no networks'})")
    return load_sg2(path, nets=tuple(nets), device="cpu"), path


def pool(x: Tensor) -> Tensor:
    """mu(.): global average pooling of a [N,C,H,W] map to [N,C] in fp32 ([N,C] passes through)."""
    x = x.float()
    return x.mean(dim=(2, 3)) if x.ndim == 4 else x


def use_fast_path(device: torch.device) -> bool:
    """Reduced-precision teacher forward only makes sense on an accelerator."""
    return torch.device(device).type == "cuda"
