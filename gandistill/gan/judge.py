"""The offline digits judge: a small CNN trained once on the bundled ``digits`` train split.

It serves two jobs where no Inception network is available (nothing is downloaded):

* a **feature space** for the Frechet distance and KID of ``gandistill gan score`` (its 128-d
  penultimate activations, the analogue of Inception's pool3 features for FID);
* a **class judge** for generated digits: the class histogram of its labels measures mode coverage
  (which classes an unconditional G forgets), the share of confident labels measures legibility.

The shipped weights live in ``gandistill/assets/digits-judge/`` (``judge.safetensors`` + ``judge.json``
with the recipe and the judge's accuracy on the real test split); ``scripts/train_digits_judge.py``
re-creates them. Only meaningful for images of digits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from gandistill.data import load_all, load_dataset
from gandistill.io.files import atomic_write_json
from gandistill.io.formats import JUDGE
from gandistill.io.schema import load_json
from gandistill.io.tensors import check_state, read_safetensors

JUDGE_RECIPE = ("DigitCNN (conv16-pool-conv32-pool-conv64-pool-fc128-fc10) trained with Adam + one-cycle "
                "lr 2e-3, batch 64, on digits/train with random +-3 px shifts")


class DigitCNN(nn.Module):
    """conv16-pool-conv32-pool-conv64-pool-fc128-fc10 on 32x32 grey images (about 2.5 MMAC per image).

    Input: [N, 3 or 1, 32, 32] in [0, 1] (channels are averaged to grey).
    """

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 4 * 4, 128), nn.ReLU())
        self.head = nn.Linear(128, 10)

    def _check(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3) or tuple(x.shape[-2:]) != (32, 32):
            raise ValueError(f"the digits judge takes [N, 1|3, 32, 32] images in [0, 1], got {tuple(x.shape)}")
        return x.mean(1, keepdim=True) * 2 - 1

    def features(self, x: Tensor) -> Tensor:
        """128-d penultimate activations (the feature space of FD / KID)."""
        return self.body(self._check(x))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits [N, 10]."""
        return self.head(self.features(x))


def shift_augment(x: Tensor, g: torch.Generator, max_shift: int = 3) -> Tensor:
    """Random integer translation (zero fill) per sample, so the judge tolerates off-centre digits."""
    n, _, h, w = x.shape
    pad = F.pad(x, (max_shift,) * 4)
    sx = torch.randint(0, 2 * max_shift + 1, (n,), generator=g)
    sy = torch.randint(0, 2 * max_shift + 1, (n,), generator=g)
    return torch.stack([pad[i, :, sy[i]:sy[i] + h, sx[i]:sx[i] + w] for i in range(n)])


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch: int = 500) -> Tensor:
    """Softmax probabilities [N, 10]."""
    model.eval()
    return torch.cat([F.softmax(model(x[s:s + batch]), 1) for s in range(0, len(x), batch)])


@torch.no_grad()
def judge_features(model: DigitCNN, x: Tensor, batch: int = 500) -> Tensor:
    """The judge's 128-d features of images ``x`` in [0, 1], float64."""
    model.eval()
    return torch.cat([model.features(x[s:s + batch]).double() for s in range(0, len(x), batch)])


def train_judge(epochs: int = 8, seed: int = 0) -> Tuple[DigitCNN, float]:
    """Train the judge on digits/train; returns (model, top-1 on the real digits/test split)."""
    xtr, ytr = load_all(load_dataset("digits", split="train"))
    xte, yte = load_all(load_dataset("digits", split="test"))
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = DigitCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * math.ceil(len(xtr) / 64))
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        for s in range(0, len(xtr), 64):
            i = perm[s:s + 64]
            loss = F.cross_entropy(model(shift_augment(xtr[i], g)), ytr[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    acc = (predict(model, xte).argmax(1) == yte).float().mean().item()
    return model, acc


def bundled_judge_path() -> Path:
    """``gandistill/assets/digits-judge/``."""
    return Path(__file__).resolve().parent.parent / "assets" / "digits-judge"


@dataclass
class Judge:
    """A loaded judge and what is known about it."""

    model: DigitCNN
    meta: Dict[str, Any]


def save_judge(model: DigitCNN, out_dir: Path, meta: Dict[str, Any]) -> Path:
    """Write ``judge.safetensors`` (fp16) + ``judge.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().half().contiguous() for k, v in model.state_dict().items()},
              str(out_dir / "judge.safetensors"))
    atomic_write_json(out_dir / "judge.json", meta, indent=1, default=None)
    return out_dir


def load_judge(path: Optional[Path] = None) -> Judge:
    """Load the shipped judge (or one saved by :func:`save_judge` at ``path``)."""
    path = Path(path) if path is not None else bundled_judge_path()
    w, j = path / "judge.safetensors", path / "judge.json"
    if not w.is_file() or not j.is_file():
        raise FileNotFoundError(f"no digits judge at {path} (expected judge.safetensors and judge.json); "
                                "re-create it with scripts/train_digits_judge.py")
    model = DigitCNN()
    raw, _ = read_safetensors(w, "judge weights")          # read, not mapped; stored as fp16 on purpose
    state = {k: v.float() for k, v in raw.items()}
    check_state(state, model.state_dict(), w, what="judge weights")
    model.load_state_dict(state, strict=True)
    return Judge(model.eval(), load_json(j, JUDGE, what="judge.json"))


def label_stats(prob: Tensor, confident: float = 0.9) -> Dict[str, Any]:
    """Class histogram of the judge's labels and confidence figures of probabilities ``prob`` [N, 10]."""
    conf, lab = prob.max(1)
    hist = torch.bincount(lab, minlength=prob.shape[1]).tolist()
    frac = torch.tensor(hist, dtype=torch.float64) / len(lab)
    nz = frac[frac > 0]
    ent = float(-(nz * nz.log()).sum() / math.log(prob.shape[1]))
    return {"n": len(lab), "mean_confidence": round(conf.mean().item(), 4),
            f"share_confident_{confident}": round((conf > confident).float().mean().item(), 4),
            "class_histogram": hist, "class_share_min": round(float(frac.min()), 4),
            "class_entropy_norm": round(ent, 4), "classes_with_3pct": int((frac >= 0.03).sum())}


__all__ = ["DigitCNN", "Judge", "JUDGE_RECIPE", "train_judge", "load_judge", "save_judge", "bundled_judge_path",
           "predict", "judge_features", "label_stats", "shift_augment"]
