"""Fig. 2: 2-D embeddings of a GAN's three representations (D features h^d, latent w, G features h^g).

For ``n`` synthetic images x = G(w) of a teacher, each representation is reduced to 2-D and drawn
coloured by class. The reducer is UMAP when ``umap-learn`` is installed (the paper's choice), else
t-SNE from scikit-learn when installed, else PCA (torch SVD); the plot's title says which.
Class labels of synthetic images: the requested class for a conditional G, else inferred as the
paper does by a classifier on real data -- here weighted kNN-20 on raw pixels of the real training
split (documented in the title; ~94 % on digits, much weaker on CIFAR). Given a student run folder,
a fourth panel shows the student's backbone features of real test images with their true labels.
The PNG is drawn with matplotlib (the optional extra ``plot``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.nn import functional as F

from gandistill.compare.plotting import pyplot
from gandistill.data import load_all, load_dataset
from gandistill.evaluation.features import extract_features
from gandistill.evaluation.knn import knn_predict
from gandistill.evaluation.loading import load_student
from gandistill.evaluation.splits import FirstN
from gandistill.io.errors import GandistillError
from gandistill.io.schema import load_json
from gandistill.teachers import create_teacher
from gandistill.teachers.base import resolve_ckpt
from gandistill.teachers.stylegan2.checkpoint import available_nets

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]   # matplotlib's tab10


def available_reducer(prefer: str = "auto") -> str:
    """``umap`` | ``tsne`` | ``pca``: the best installed reducer (or ``prefer`` when it is installed)."""
    def has(mod: str) -> bool:
        return importlib.util.find_spec(mod) is not None

    if prefer == "pca":
        return "pca"
    if prefer in ("auto", "umap") and has("umap"):
        return "umap"
    if prefer in ("auto", "tsne") and has("sklearn"):
        return "tsne"
    if prefer not in ("auto", "umap", "tsne"):
        raise ValueError(f"reducer must be auto | umap | tsne | pca, got {prefer!r}")
    return "pca"


def reduce_2d(x: Tensor, method: str, seed: int = 0) -> Tensor:
    """[N, D] -> [N, 2] with ``method`` (features standardised first)."""
    x = x.double()
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-8)
    if method == "umap":
        import umap  # type: ignore[import-not-found]  # lazy: optional, not a dependency

        return torch.as_tensor(umap.UMAP(n_components=2, random_state=seed).fit_transform(x.numpy()))
    if method == "tsne":
        from sklearn.manifold import TSNE  # type: ignore[import-not-found]  # lazy: optional, not a dependency

        return torch.as_tensor(TSNE(n_components=2, random_state=seed, init="pca").fit_transform(x.numpy()))
    u, s, _ = torch.linalg.svd(x - x.mean(0), full_matrices=False)
    return (u[:, :2] * s[:2]).float()


@dataclass
class Panel:
    title: str
    xy: Tensor
    labels: Tensor


def draw_panels(panels: Sequence[Panel], path: Path, title: str, size: float = 4.0) -> Path:
    """Scatter plots side by side (matplotlib), one colour per class, and a legend of the classes."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size + 0.6), squeeze=False)
    classes = sorted({int(c) for p in panels for c in p.labels.tolist()})
    for ax, p in zip(axes[0], panels):
        xy, lab = p.xy.float(), p.labels.long()
        for c in classes:
            m = lab == c
            if bool(m.any()):
                ax.scatter(xy[m, 0].tolist(), xy[m, 1].tolist(), s=6, color=_colour(c), label=str(c))
        ax.set_title(p.title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles[:20], names[:20], loc="lower center", ncol=min(20, len(handles)), fontsize=7,
                   markerscale=2, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _colour(c: int) -> str:
    """tab10 colour of class ``c``; black for an unknown class (< 0)."""
    return "black" if c < 0 else PALETTE[c % len(PALETTE)]


@torch.no_grad()
def pixel_knn_labels(images01: Tensor, dataset: str, data_root: Optional[str], k: int = 20) -> Tensor:
    """Class of each image by weighted kNN-k (t = 0.1, cosine) on raw pixels of the real training split."""
    ds = load_dataset(dataset, root=data_root, split="train")
    xr, yr = load_all(ds)
    if images01.shape[-2:] != xr.shape[-2:]:
        images01 = F.interpolate(images01, size=xr.shape[-2:], mode="bilinear", align_corners=False)
    return knn_predict(xr.flatten(1).float(), yr, images01.flatten(1).float(), k=k, t=0.1)


@torch.no_grad()
def embed_teacher(ckpt: Optional[str], n: int = 1000, *, dataset: str = "digits", data_root: Optional[str] = None,
                  reducer: str = "auto", seed: int = 0, device: str = "cpu") -> Tuple[List[Panel], str, str]:
    """(panels for h^d, w, h^g of ``n`` synthetic images, reducer used, label source)."""
    method = available_reducer(reducer)
    gen = create_teacher("sg2-generator", ckpt=ckpt, device=device)
    g = torch.Generator().manual_seed(seed)
    imgs, hg, ws, labels = [], [], [], []
    for s in range(0, n, 250):
        smp = gen.sample(min(250, n - s), generator=g)
        imgs.append(smp.images.float().cpu())
        hg.append(torch.cat([t.float().cpu() for t in smp.targets], 1))
        ws.append(smp.ws[:, 0].float().cpu())
        if smp.labels is not None:
            labels.append(smp.labels.cpu())
    x = torch.cat(imgs)
    if labels:
        y, source = torch.cat(labels), "classes requested from the conditional G"
    else:
        y, source = pixel_knn_labels((x + 1) / 2, dataset, data_root), f"classes by pixel kNN-20 on real {dataset}"
    panels = []
    if "D" in available_nets(resolve_ckpt(ckpt)):
        disc = create_teacher("sg2-discriminator", ckpt=ckpt, device=device, mode="multi")
        hd = torch.cat([disc.features(x[s:s + 250].to(device)).cpu() for s in range(0, n, 250)])
        panels.append(Panel("(a) discriminator feature h^d", reduce_2d(hd, method, seed), y))
    panels.append(Panel("(b) latent variable w", reduce_2d(torch.cat(ws), method, seed), y))
    panels.append(Panel("(c) generator feature h^g", reduce_2d(torch.cat(hg), method, seed), y))
    return panels, method, source


@torch.no_grad()
def embed_student(run_dir: str, n: int = 1000, *, dataset: Optional[str] = None, data_root: Optional[str] = None,
                  method: str = "pca", seed: int = 0, device: str = "cpu") -> Panel:
    """The student's backbone features of ``n`` real test images, with their true labels."""
    loaded = load_student(run_dir)
    name = dataset or (loaded.run_config.get("config") or {}).get("dataset") or "digits"
    test = FirstN(load_dataset(name, root=data_root, split="test", img_size=loaded.kwargs.get("img_size")), n)
    f, y = extract_features(loaded.model, test, 256, device)
    return Panel(f"(d) student {loaded.name} on real {name}", reduce_2d(f, method, seed), y)


def plot_embed(target: str, out: str, n: int = 1000, *, dataset: Optional[str] = None,
               data_root: Optional[str] = None, reducer: str = "auto", seed: int = 0, device: str = "cpu") -> Dict:
    """Draw Fig. 2 for a teacher checkpoint (``bundled`` = the bundled one) or a student run folder."""
    pyplot()   # refuse at once, before the embeddings are computed, when the extra 'plot' is missing
    run_dir = None
    p = Path(target)
    ckpt: Optional[str] = None if target in ("bundled", "") else target
    if p.is_dir() and (p / "checkpoint.json").exists():
        run_dir = str(p)
        try:
            info = load_json(p / "config.json", what="run config")
        except (OSError, GandistillError):
            info = {}
        info = info if isinstance(info, dict) else {}
        ckpt = (info.get("config") or {}).get("teacher_ckpt")
        dataset = dataset or (info.get("config") or {}).get("dataset")
    panels, method, source = embed_teacher(ckpt, n, dataset=dataset or "digits", data_root=data_root,
                                           reducer=reducer, seed=seed, device=device)
    if run_dir is not None:
        panels.append(embed_student(run_dir, n, dataset=dataset, data_root=data_root, method=method, seed=seed,
                                    device=device))
    title = f"2-D embedding ({method.upper()}) of {n} synthetic images; colour: {source}"
    path = draw_panels(panels, Path(out), title)
    return {"png": str(path), "reducer": method, "labels": source, "panels": [pp.title for pp in panels]}


__all__ = ["available_reducer", "reduce_2d", "draw_panels", "embed_teacher", "embed_student", "plot_embed"]
