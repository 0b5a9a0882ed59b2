"""How good is a generator? Frechet distance and KID between real and generated images in a feature space.

* Frechet distance (Heusel et al. 2017): fit a Gaussian to each feature set,
  ``FD = |mu_r - mu_g|^2 + tr(S_r) + tr(S_g) - 2 tr((S_r^1/2 S_g S_r^1/2)^1/2)``; computed in float64
  with symmetric eigendecompositions (no scipy).
* KID (Binkowski et al. 2018): the unbiased estimator of the squared MMD with the polynomial kernel
  ``k(x, y) = (x.y / d + 1)^3``, averaged over ``subsets`` random subsets of ``subset_size`` per side
  (mean and std reported).

Feature spaces (the output always says which was used):

* ``inception``: torchvision's Inception-v3 pool features (2048-d) when the user passes a weights file
  (a torchvision ``inception_v3`` state dict, ``.pth`` or ``.safetensors``; nothing is downloaded).
  This is torchvision's Inception, not the TF-ported network of the official FID code, so the numbers
  are comparable among themselves, not with published FIDs.
* ``digits-judge``: the offline digits judge's 128-d features (:mod:`gandistill.gan.judge`), the default;
  only meaningful for digit images. It also reports the judge's class histogram of the generated
  images (mode coverage) and the share of confident labels.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor

from gandistill.data import load_all, load_dataset
from gandistill.gan.judge import bundled_judge_path, judge_features, label_stats, load_judge, predict
from gandistill.gan.sample import bundled_teacher_path, generate_images
from gandistill.gan.snapshot import generator_checkpoint
from gandistill.io.errors import GandistillError
from gandistill.io.files import read_bytes
from gandistill.io.tensors import read_safetensors
from gandistill.teachers.stylegan2.checkpoint import load_sg2

FEATURE_SPACES = ("auto", "digits-judge", "inception")


class ScoreError(GandistillError):
    """Bad input to ``gan score`` (missing weights file, wrong image size, too few samples)."""


def _sqrtm_psd(a: Tensor) -> Tensor:
    ev, vec = torch.linalg.eigh((a + a.T) / 2)
    return (vec * ev.clamp_min(0).sqrt()) @ vec.T


def gaussian_stats(f: Tensor) -> Tuple[Tensor, Tensor]:
    """Mean and (N-1)-normalised covariance of features ``f`` [N, D], float64."""
    f = f.double()
    if len(f) < 2:
        raise ScoreError(f"need at least 2 samples for a covariance, got {len(f)}")
    mu = f.mean(0)
    x = f - mu
    return mu, x.T @ x / (len(f) - 1)


def frechet_distance(mu1: Tensor, s1: Tensor, mu2: Tensor, s2: Tensor) -> float:
    """``|mu1 - mu2|^2 + tr(s1 + s2 - 2 (s1^1/2 s2 s1^1/2)^1/2)`` (float64, s1, s2 symmetric PSD)."""
    mu1, s1, mu2, s2 = (t.double() for t in (mu1, s1, mu2, s2))
    r = _sqrtm_psd(s1)
    m = r @ s2 @ r
    tr_cross = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2 * tr_cross)


def fd_from_features(f_real: Tensor, f_fake: Tensor) -> float:
    """Frechet distance between two feature sets."""
    return frechet_distance(*gaussian_stats(f_real), *gaussian_stats(f_fake))


def mmd2_unbiased_poly(x: Tensor, y: Tensor) -> float:
    """Unbiased squared MMD with k(a, b) = (a.b / d + 1)^3 (Binkowski et al. 2018, Eq. 4 with their kernel)."""
    x, y = x.double(), y.double()
    m, n, d = len(x), len(y), x.shape[1]
    if m < 2 or n < 2:
        raise ScoreError("KID needs at least 2 samples per side")
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def kid(f_real: Tensor, f_fake: Tensor, subsets: int = 50, subset_size: int = 1000, seed: int = 0) -> Tuple[float, float]:
    """KID: mean and std of the unbiased polynomial-kernel MMD^2 over random subsets."""
    # subsets of at most half of each set, so that they differ between draws and the std means something
    size = max(2, min(subset_size, len(f_real) // 2, len(f_fake) // 2))
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        i = torch.randperm(len(f_real), generator=g)[:size]
        j = torch.randperm(len(f_fake), generator=g)[:size]
        vals.append(mmd2_unbiased_poly(f_real[i], f_fake[j]))
    t = torch.tensor(vals, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(vals) > 1 else 0.0


class InceptionFeatures:
    """torchvision Inception-v3 pool features (2048-d) from a user-supplied weights file."""

    name = "inception"

    def __init__(self, weights: Union[str, Path], device: str = "cpu") -> None:
        p = Path(weights)
        if not p.is_file():
            raise ScoreError(f"Inception weights file not found: {p} (pass a torchvision inception_v3 state dict)")
        if p.suffix == ".safetensors":
            state, _ = read_safetensors(p, "Inception weights file", ScoreError)   # read, never mapped
        else:
            data = read_bytes(p, "Inception weights file", kind="weights")
            try:
                state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001 - any unreadable file is the user's bad input
                raise ScoreError(f"{p}: not a readable weights file ({type(e).__name__})") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
        try:
            net.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError) as e:
            raise ScoreError(f"{p}: not a torchvision inception_v3 state dict ({str(e).splitlines()[0][:200]})") from None
        net.fc = torch.nn.Identity()
        self.net = net.eval().to(device)
        self.device = device
        self.source = str(p)

    @torch.no_grad()
    def __call__(self, x: Tensor, batch: int = 100) -> Tensor:
        mean = torch.tensor([0.485, 0.456, 0.406], device=self.device).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], device=self.device).view(1, 3, 1, 1)
        out = []
        for s in range(0, len(x), batch):
            b = x[s:s + batch].to(self.device).float()
            if b.shape[1] == 1:
                b = b.expand(-1, 3, -1, -1)
            b = F.interpolate(b, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(self.net((b - mean) / std).double().cpu())
        return torch.cat(out)


class JudgeFeatures:
    """The offline digits judge's 128-d features."""

    name = "digits-judge"

    def __init__(self, path: Optional[Path] = None) -> None:
        self.judge = load_judge(path)
        self.source = str(path or bundled_judge_path())

    def __call__(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != (32, 32):
            x = F.interpolate(x.float(), size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
        return judge_features(self.judge.model, x)


def feature_space(space: str = "auto", inception: Optional[Union[str, Path]] = None, device: str = "cpu"):
    """``inception`` when a weights file is given (or asked), else the digits judge."""
    if space not in FEATURE_SPACES:
        raise ScoreError(f"unknown feature space {space!r}; known: {', '.join(FEATURE_SPACES)}")
    if space == "inception" or (space == "auto" and inception is not None):
        if inception is None:
            raise ScoreError("feature space 'inception' needs --inception PATH (nothing is downloaded)")
        return InceptionFeatures(inception, device)
    return JudgeFeatures()


def score_images(real: Tensor, fake: Tensor, space: str = "auto", inception: Optional[Union[str, Path]] = None,
                 kid_subsets: int = 50, kid_subset_size: int = 1000, seed: int = 0, device: str = "cpu") -> Dict[str, Any]:
    """FD and KID between image sets ``real`` and ``fake`` ([N, C, H, W] in [0, 1])."""
    fs = feature_space(space, inception, device)
    fr, ff = fs(real), fs(fake)
    k_mean, k_std = kid(fr, ff, kid_subsets, kid_subset_size, seed)
    out: Dict[str, Any] = {
        "feature_space": fs.name, "feature_source": fs.source, "feature_dim": int(fr.shape[1]),
        "n_real": len(real), "n_fake": len(fake),
        "fd": round(fd_from_features(fr, ff), 4), "kid": round(k_mean, 6), "kid_std": round(k_std, 6),
    }
    if fs.name == "digits-judge":
        out["judge_test_accuracy"] = fs.judge.meta.get("test_accuracy")
        out["real_labels"] = label_stats(predict(fs.judge.model, _to32(real)))
        out["generated_labels"] = label_stats(predict(fs.judge.model, _to32(fake)))
    return out


def _to32(x: Tensor) -> Tensor:
    if tuple(x.shape[-2:]) == (32, 32):
        return x
    return F.interpolate(x.float(), size=(32, 32), mode="bilinear", align_corners=False, antialias=True)


def score_generator(ckpt: Optional[Union[str, Path]] = None, n: int = 2000, data: str = "digits",
                    data_root: Optional[str] = None, split: str = "train", space: str = "auto",
                    inception: Optional[Union[str, Path]] = None, seed: int = 123, truncation_psi: float = 1.0,
                    kid_subsets: int = 50, kid_subset_size: int = 1000, device: str = "cpu") -> Dict[str, Any]:
    """Score a generator (gandistill folder, NVlabs ``.pkl``, GAN run folder or snapshot; default the
    bundled teacher) against ``n`` real images of ``data``/``split`` (all of them if fewer)."""
    if n < 2:
        raise ScoreError(f"--n must be >= 2, got {n}")
    try:
        p = generator_checkpoint(ckpt if ckpt is not None else bundled_teacher_path())
    except FileNotFoundError as e:
        raise ScoreError(str(e)) from None
    G = load_sg2(p, nets=("G_ema",), device=device).G_ema
    if G is None:
        raise ScoreError(f"{p} has no G_ema")
    G = G.float().eval()
    real, _ = load_all(load_dataset(data, root=data_root, split=split))
    if len(real) > n:
        real = real[torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))[:n]]
    fake = generate_images(G, n, seed=seed, c_dim=G.c_dim, truncation_psi=truncation_psi).add(1).div(2)
    if fake.shape[1] != real.shape[1]:
        raise ScoreError(f"generator makes {fake.shape[1]}-channel images, {data} has {real.shape[1]}")
    out = {"checkpoint": str(p), "conditional": G.c_dim > 0, "real": f"{data}/{split}",
           **score_images(real, fake, space, inception, kid_subsets, kid_subset_size, seed, device)}
    if out["feature_space"] == "digits-judge" and data != "digits":
        out["warning"] = "the digits judge is only meaningful for images of digits; pass --inception PATH"
    return out


__all__ = ["frechet_distance", "fd_from_features", "gaussian_stats", "kid", "mmd2_unbiased_poly",
           "score_images", "score_generator", "feature_space", "ScoreError", "FEATURE_SPACES"]
