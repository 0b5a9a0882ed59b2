"""Teacher diagnostics: the paper's Fig. 2 in numbers -- how class-structured is each of a GAN's
representations on its own generated images?

For ``n`` samples of the teacher (z ~ N(0, I), the ``sg2-generator`` teacher's sampling: one w per
image, truncation 1, random noise), each image is labelled by a classifier (the shipped digits judge
by default, :mod:`gandistill.gan.judge`, or one the user names) and four representations of the
same images are probed with the project's tuning-free probes
(:func:`~gandistill.evaluation.fewshot.fewshot_probe`, 1 and 10 labelled images per class;
:func:`~gandistill.evaluation.knn.knn_features`, cosine, k = 20, t = 0.1):

* ``h^g``  -- the pooled synthesis-block outputs, concatenated (what ``sg2-generator`` distils, Eq. 4);
* ``w``    -- the mapping network's output;
* ``D``    -- the discriminator's pooled multi-scale features (``sg2-discriminator``, mode multi), when
  the checkpoint has D;
* ``raw pixels`` -- the generated images themselves, flattened (the baseline every other row must beat).

The first ``fit_share`` of the samples are the probes' train set, the rest their test set. The paper
says h^g clusters by class (Fig. 2): a teacher whose h^g is no more class-structured than its own
pixels has little to give a student beyond its images.

>>> from gandistill.gan.diagnostics import teacher_diagnostics
>>> teacher_diagnostics(n=400)["rows"]["h^g"]["fewshot"]["10"]["mean"]    # doctest: +SKIP
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Union

import torch
from torch import Tensor

from gandistill.evaluation.fewshot import fewshot_probe
from gandistill.evaluation.knn import DEFAULT_T, knn_features
from gandistill.gan.judge import load_judge, predict
from gandistill.gan.sample import bundled_teacher_path
from gandistill.gan.snapshot import latest_snapshot
from gandistill.teachers.discriminator import DiscriminatorTeacher
from gandistill.teachers.generator import GeneratorTeacher
from gandistill.teachers.stylegan2.checkpoint import available_nets, load_sg2

PathLike = Union[str, Path]
# labeller(images in [0, 1] [N, C, H, W], representations {name: [N, D]}) -> labels [N] (long)
Labeller = Callable[[Tensor, Dict[str, Tensor]], Tensor]
REPRESENTATIONS = ("h^g", "w", "D", "raw pixels")


def resolve_teacher_path(teacher_path: Optional[PathLike]) -> Path:
    """A checkpoint folder / ``.pkl``; a GAN run folder gives its latest snapshot; None: the bundled teacher."""
    p = Path(teacher_path) if teacher_path is not None else Path(bundled_teacher_path())
    if not p.exists():
        raise FileNotFoundError(f"teacher checkpoint not found: {p}")
    if p.is_dir() and not (p / "gandistill_sg2.json").exists():
        snap = latest_snapshot(p)
        if snap is None:
            raise FileNotFoundError(f"{p} holds neither a gandistill checkpoint nor GAN snapshots")
        p = Path(snap)
    return p


def judge_labeller(path: Optional[PathLike] = None, batch: int = 500) -> Labeller:
    """The digits judge (shipped, or saved by ``scripts/train_digits_judge.py`` at ``path``) as a labeller."""
    model = load_judge(Path(path) if path is not None else None).model

    def label(images: Tensor, reps: Dict[str, Tensor]) -> Tensor:
        return predict(model, images, batch).argmax(1)

    return label


@torch.no_grad()
def sample_representations(G: torch.nn.Module, D: Optional[torch.nn.Module], n: int, seed: int = 123,
                           batch: int = 250) -> Dict[str, Tensor]:
    """``images`` (in [0, 1]) and the representations of :data:`REPRESENTATIONS` for ``n`` samples of G."""
    gt = GeneratorTeacher(G=G)
    dt = DiscriminatorTeacher(D=D, mode="multi") if D is not None else None
    gen = torch.Generator().manual_seed(seed)
    parts: Dict[str, list] = {"images": [], "h^g": [], "w": [], "D": []}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)             # G's per-layer noise draws from the global stream: fix it too
        for i in range(0, n, batch):
            s = gt.sample(min(batch, n - i), generator=gen)
            parts["images"].append(s.images.add(1).div(2).clamp(0, 1))
            parts["h^g"].append(torch.cat(s.targets, 1))
            parts["w"].append(s.ws[:, 0].float())
            if dt is not None:
                parts["D"].append(dt.features(s.images).float())
    out = {k: torch.cat(v) for k, v in parts.items() if v}
    out["raw pixels"] = out["images"].flatten(1)
    return out


def probe_representation(feats: Tensor, labels: Tensor, n_fit: int, shots: Sequence[int], draws: int, knn_k: int,
                         seed: int, num_classes: int) -> Dict[str, Any]:
    """Few-shot (per k: mean, std over draws) and kNN top-1 (%) of ``feats``, the first ``n_fit`` as train."""
    ftr, fte, ytr, yte = feats[:n_fit], feats[n_fit:], labels[:n_fit], labels[n_fit:]
    fs = fewshot_probe(ftr, ytr, fte, yte, shots=shots, draws=draws, seed=seed, num_classes=num_classes)
    knn = knn_features(ftr, ytr, fte, yte, k=knn_k, t=DEFAULT_T, num_classes=num_classes)
    return {"dim": int(feats.shape[1]), "knn": float(knn["top1"]),
            "fewshot": {str(k): {"mean": v["mean"], "std": v["std"]} for k, v in fs["shots"].items()},
            "skipped": {str(k): v for k, v in fs["skipped"].items()}}


def teacher_diagnostics(teacher_path: Optional[PathLike] = None, n: int = 4000, *, fit_share: float = 0.75,
                        labeller: Union[None, PathLike, Labeller] = None, shots: Sequence[int] = (1, 10),
                        draws: int = 5, knn_k: int = 20, seed: int = 123, num_classes: Optional[int] = None,
                        G: Optional[torch.nn.Module] = None, D: Optional[torch.nn.Module] = None) -> Dict[str, Any]:
    """Fig. 2 in numbers for a teacher (bundled folder, snapshot, GAN run folder or NVlabs ``.pkl``;
    or the networks ``G`` / ``D`` themselves). ``labeller``: None = the shipped digits judge, a judge
    folder, or a callable ``(images in [0,1], representations) -> labels``. Returns ``{"rows": {name:
    {"dim", "knn", "fewshot": {"1": {mean, std}, ...}}}, "labels": histogram, ...}``."""
    t0 = time.perf_counter()
    if not 0.0 < fit_share < 1.0:
        raise ValueError(f"fit_share must lie in (0, 1), got {fit_share}")
    source = "networks given"
    if G is None:
        path = resolve_teacher_path(teacher_path)
        have = available_nets(path)
        nets = tuple(x for x in (("G_ema" if "G_ema" in have else "G"), "D") if x in have)
        ck = load_sg2(path, nets=nets)
        G, D, source = ck.G_ema if ck.G_ema is not None else ck.G, ck.D, str(path)
    G = G.float().eval()
    notes = []
    if D is None:
        notes.append("no discriminator in the checkpoint: the D row is left out")
    reps = sample_representations(G, D.float().eval() if D is not None else None, n, seed)
    label = labeller if callable(labeller) else judge_labeller(labeller)
    labels = label(reps["images"], {k: reps[k] for k in REPRESENTATIONS if k in reps}).long().cpu()
    k_cls = int(num_classes or (int(labels.max()) + 1))
    n_fit = int(round(fit_share * n))
    rows = {name: probe_representation(reps[name], labels, n_fit, shots, draws, knn_k, seed, k_cls)
            for name in REPRESENTATIONS if name in reps}
    notes += sorted({reason for row in rows.values() for reason in row["skipped"].values()})
    if int(getattr(G, "c_dim", 0)) > 0:
        notes.append(f"class-conditional G (c_dim={G.c_dim}): labels cycle through the classes, so w and h^g "
                     "carry the conditioning label")
    return {"teacher": source, "n": n, "n_fit": n_fit, "n_test": n - n_fit, "seed": seed, "shots": list(shots),
            "draws": draws, "knn_k": knn_k, "labeller": "digits judge" if labeller is None else
            (str(labeller) if not callable(labeller) else getattr(labeller, "__name__", "callable")),
            "label_histogram": torch.bincount(labels, minlength=k_cls).tolist(), "rows": rows, "notes": notes,
            "time_s": round(time.perf_counter() - t0, 1)}


def diagnostics_markdown(results: Sequence[Dict[str, Any]], names: Optional[Sequence[str]] = None) -> str:
    """One markdown table: a row per (teacher, representation), columns 1-shot / 10-shot / kNN."""
    shots = sorted({int(k) for r in results for row in r["rows"].values() for k in row["fewshot"]})
    head = ["teacher", "representation", "dim", *[f"{k}-shot" for k in shots], f"kNN-{results[0]['knn_k']}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for i, r in enumerate(results):
        name = names[i] if names else Path(r["teacher"]).name
        for rep, row in r["rows"].items():
            cells = [f"{row['fewshot'][str(k)]['mean']:.1f} ± {row['fewshot'][str(k)]['std']:.1f}"
                     if str(k) in row["fewshot"] else ("skipped" if str(k) in row["skipped"] else "-") for k in shots]
            lines.append("| " + " | ".join([name, rep, str(row["dim"]), *cells, f"{row['knn']:.1f}"]) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["teacher_diagnostics", "diagnostics_markdown", "judge_labeller", "sample_representations",
           "probe_representation", "resolve_teacher_path", "REPRESENTATIONS"]
