"""The paper's tables as data: every row, what it trains, and every number the paper prints.

A table row (:class:`RowSpec`) points at a run (:class:`RunSpec`): what is trained (method, teacher
and its options, data domain, loss weights lambda/mu/nu, squeeze depth, augmentation, relative budget)
and how it is probed. Rows of different tables that train the same student share one run id (Table 1
"Generator feature / Squeeze and span" = Table 2 "Real & Syn / Sq & Sp" = Table 5 f = Table 6 "Sq & Sp"),
so a comparison trains it once. Paper numbers are top-1 % (Tables 1, 2, 5) or squared MMD in the
column's unit (Table 6, ``TableSpec.units``); ``None`` where the paper prints a dash.

Sources: Yang et al. 2022, Tables 1, 2, 5, 6; Fig. 4 data from SnS's ``paper_plots/acc_vs_fid.py``.
The weights are SnS's scripts' (CIFAR-10); :mod:`gandistill.compare.presets` applies the per-dataset
changes (CIFAR-100: 10/10/1 for the squeeze rows).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

DOMAINS = ("syn", "real", "syn+real")
KINDS = ("train", "probe-d")
METRICS = ("top1", "mmd2")


@dataclass(frozen=True)
class RunSpec:
    """One training (or, for ``kind="probe-d"``, one frozen-discriminator probe) shared by rows.

    ``weights`` = (lambda, mu, nu) = (sim, var, cov); ``alpha`` the synthetic share of the batch;
    ``squeeze_depth`` 0 = parameter-free pooled concatenation (vanilla), 3 = T_phi's MLP.
    """

    id: str
    method: str
    teacher: Optional[str]
    domain: str
    kind: str = "train"
    teacher_kwargs: Dict[str, Any] = field(default_factory=dict)
    weights: Optional[Tuple[float, float, float]] = None
    alpha: Optional[float] = None
    squeeze_depth: Optional[int] = None
    augment: bool = True
    budget: float = 1.0
    note: str = ""

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"run {self.id}: domain must be one of {DOMAINS}, got {self.domain!r}")
        if self.kind not in KINDS:
            raise ValueError(f"run {self.id}: kind must be one of {KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class RowSpec:
    """One printed row: its labels as in the paper, its run, and the paper's number per column."""

    key: str
    group: str
    label: str
    run: str
    paper: Dict[str, Optional[float]]
    parts: Tuple[str, ...] = ()          # Table 5: the components switched on (L_RD, A, T_phi, L_var, L_cov, Span)
    note: str = ""


@dataclass(frozen=True)
class TableSpec:
    number: int
    title: str
    columns: Tuple[str, ...]             # dataset columns, in the paper's order
    rows: Tuple[RowSpec, ...]
    metric: str = "top1"
    units: Dict[str, float] = field(default_factory=dict)   # mmd2: the column's unit (paper prints value / unit)
    caption: str = ""

    def row(self, key: str) -> RowSpec:
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(f"table {self.number} has no row {key!r}; rows: {', '.join(r.key for r in self.rows)}")

    @property
    def keys(self) -> List[str]:
        return [r.key for r in self.rows]


SQ = (25.0, 25.0, 1.0)       # SnS defaults lambda / mu / nu
MSE = (1.0, 0.0, 0.0)        # plain L_RD

_RUNS = [
    RunSpec("d-single", "d-direct", "sg2-discriminator", "syn+real", kind="probe-d", teacher_kwargs={"mode": "single"},
            augment=False, budget=0.0, note="frozen D, b4.fc (512-d), linear probe"),
    RunSpec("d-multi", "d-direct", "sg2-discriminator", "syn+real", kind="probe-d", teacher_kwargs={"mode": "multi"},
            augment=False, budget=0.0, note="frozen D, pooled b32|b16|b8 + b4.fc, linear probe"),
    RunSpec("enc-syn", "encoder", "sg2-encoder", "syn", weights=MSE, alpha=1.0, augment=False,
            note="post-hoc E, Eq. 3 (L1 + LPIPS + 1.0 * MSE(E(x), w+))"),
    RunSpec("enc-mixed", "encoder-mixed", "sg2-encoder", "syn+real", weights=MSE, alpha=0.5, augment=False,
            note="post-hoc E; real images: L1 + LPIPS only"),
    RunSpec("w-vanilla", "vanilla", "sg2-latent", "syn", weights=MSE, alpha=1.0, squeeze_depth=0),
    RunSpec("w-squeeze", "squeeze", "sg2-latent", "syn", weights=SQ, alpha=1.0, squeeze_depth=3),
    RunSpec("w-sns", "sns", "sg2-latent", "syn+real", weights=SQ, alpha=0.5, squeeze_depth=3,
            note="SnS ships no script for this row: squeeze-and-span with regex mapping$"),
    RunSpec("g-vanilla-noaug", "vanilla-noaug", "sg2-generator", "syn", weights=MSE, alpha=1.0, squeeze_depth=0,
            augment=False),
    RunSpec("g-vanilla", "vanilla", "sg2-generator", "syn", weights=MSE, alpha=1.0, squeeze_depth=0),
    RunSpec("g-squeeze-novarcov", "squeeze-novarcov", "sg2-generator", "syn", weights=MSE, alpha=1.0, squeeze_depth=3,
            note="collapses in the paper (10.00 = chance)"),
    RunSpec("g-squeeze-var", "squeeze-var", "sg2-generator", "syn", weights=(25.0, 25.0, 0.0), alpha=1.0,
            squeeze_depth=3),
    RunSpec("g-squeeze", "squeeze", "sg2-generator", "syn", weights=SQ, alpha=1.0, squeeze_depth=3),
    RunSpec("g-sns", "sns", "sg2-generator", "syn+real", weights=SQ, alpha=0.5, squeeze_depth=3),
    RunSpec("simsiam-real", "simsiam-real", None, "real", alpha=0.0),
    RunSpec("simsiam-syn", "simsiam-syn", "sg2-generator", "syn", alpha=1.0),
    RunSpec("simsiam-mixed", "simsiam-mixed", "sg2-generator", "syn+real", alpha=0.5),
    RunSpec("vicreg-real", "vicreg-real", None, "real", weights=SQ, alpha=0.0),
    RunSpec("vicreg-syn", "vicreg-syn", "sg2-generator", "syn", weights=SQ, alpha=1.0),
    RunSpec("vicreg-mixed", "vicreg-mixed", "sg2-generator", "syn+real", weights=SQ, alpha=0.5),
]
RUNS: Dict[str, RunSpec] = {r.id: r for r in _RUNS}


def _p(c10: Optional[float], c100: Optional[float] = None, stl: Optional[float] = None,
       in100: Optional[float] = None, inet: Optional[float] = None) -> Dict[str, Optional[float]]:
    return {"cifar10": c10, "cifar100": c100, "stl10": stl, "imagenet100": in100, "imagenet": inet}


TABLE1 = TableSpec(1, "Representation transfer from different teachers (linear top-1)", ("cifar10", "cifar100"), (
    RowSpec("d-single", "Discriminator", "Direct use (single feature) | Syn. & Real", "d-single", _p(63.81, 30.11)),
    RowSpec("d-multi", "Discriminator", "Direct use (multi-feature) | Syn. & Real", "d-multi", _p(77.58, 51.63)),
    RowSpec("enc-syn", "Latent variable", "Encoding | Syn.", "enc-syn", _p(57.15, 32.19)),
    RowSpec("enc-mixed", "Latent variable", "Encoding | Syn. & Real", "enc-mixed", _p(50.27, 28.43)),
    RowSpec("w-vanilla", "Latent variable", "Vanilla distillation (w/ aug) | Syn.", "w-vanilla", _p(84.84, 53.26)),
    RowSpec("w-squeeze", "Latent variable", "Squeeze | Syn.", "w-squeeze", _p(86.99, 58.56)),
    RowSpec("w-sns", "Latent variable", "Squeeze and span | Syn. & Real", "w-sns", _p(90.95, 66.17)),
    RowSpec("g-vanilla", "Generator feature", "Vanilla distillation (w/ aug) | Syn.", "g-vanilla", _p(84.48, 52.77)),
    RowSpec("g-squeeze", "Generator feature", "Squeeze | Syn.", "g-squeeze", _p(87.67, 57.35)),
    RowSpec("g-sns", "Generator feature", "Squeeze and span | Syn. & Real", "g-sns", _p(92.54, 67.87)),
), caption="Top-1 accuracy of linear classification on CIFAR10 and CIFAR100 validation sets.")

TABLE2 = TableSpec(2, "Linear classification compared to SSL methods (top-1)",
                   ("cifar10", "cifar100", "stl10", "imagenet100", "imagenet"), (
    RowSpec("real-simsiam", "Real", "SimSiam", "simsiam-real", _p(90.94, 62.44, 71.30)),
    RowSpec("real-vicreg", "Real", "VICReg", "vicreg-real", _p(89.20, 63.31, 74.43)),
    RowSpec("syn-simsiam", "Syn", "SimSiam", "simsiam-syn", _p(85.11, 47.89, 73.38)),
    RowSpec("syn-vicreg", "Syn", "VICReg", "vicreg-syn", _p(84.68, 52.84, 70.80)),
    RowSpec("syn-squeeze", "Syn", "Squeeze (Ours)", "g-squeeze", _p(87.67, 57.35, 73.35)),
    RowSpec("mixed-simsiam", "Real & Syn", "SimSiam", "simsiam-mixed", _p(90.88, 62.68, 71.70)),
    RowSpec("mixed-vicreg", "Real & Syn", "VICReg", "vicreg-mixed", _p(90.46, 65.22, 75.05, 46.42, 47.32)),
    RowSpec("mixed-sns", "Real & Syn", "Sq & Sp (Ours)", "g-sns", _p(92.54, 67.87, 76.83, 53.32, 47.80)),
), caption="Top-1 accuracy on the validation set; ImageNet100/ImageNet need ResNet-50 teachers and are not preset.")

TABLE5 = TableSpec(5, "Ablation study on CIFAR10 (top-1)", ("cifar10",), (
    RowSpec("a", "ablation", "L_RD", "g-vanilla-noaug", _p(74.20), parts=("L_RD",)),
    RowSpec("b", "ablation", "+ A (augmentation)", "g-vanilla", _p(84.48), parts=("L_RD", "A")),
    RowSpec("c", "ablation", "+ T_phi (squeeze module)", "g-squeeze-novarcov", _p(10.00), parts=("L_RD", "A", "T_phi"),
            note="the paper's collapse: reported as chance"),
    RowSpec("d", "ablation", "+ L_var", "g-squeeze-var", _p(79.10), parts=("L_RD", "A", "T_phi", "L_var")),
    RowSpec("e", "ablation", "+ L_cov (Squeeze)", "g-squeeze", _p(87.67), parts=("L_RD", "A", "T_phi", "L_var", "L_cov")),
    RowSpec("f", "ablation", "+ Span (Sq & Sp)", "g-sns", _p(92.54),
            parts=("L_RD", "A", "T_phi", "L_var", "L_cov", "Span")),
), caption="T_phi: learnable squeeze module; A: data augmentation; L_RD, L_var, L_cov: the losses on.")

TABLE6 = TableSpec(6, "Squared MMD between synthetic and real representations", ("cifar10", "cifar100", "stl10"), (
    RowSpec("vicreg-syn", "VICReg", "Syn", "vicreg-syn", _p(3.44, 5.89, 5.39)),
    RowSpec("vicreg-mixed", "VICReg", "Real & Syn", "vicreg-mixed", _p(3.74, 16.8, 11.4)),
    RowSpec("squeeze", "Squeeze (Ours)", "Syn", "g-squeeze", _p(4.79, 1.24, 9.82)),
    RowSpec("sns", "Sq & Sp (Ours)", "Real & Syn", "g-sns", _p(0.45, 0.25, 3.71)),
), metric="mmd2", units={"cifar10": 1e-5, "cifar100": 1e-5, "stl10": 1e-3},
    caption="Lower is a smaller domain gap. The paper's second column header reads 'CIFAR10-' (CIFAR100).")

TABLES: Dict[int, TableSpec] = {t.number: t for t in (TABLE1, TABLE2, TABLE5, TABLE6)}

# Fig. 4: CIFAR-100 Sq & Sp top-1 against the teacher snapshot's FID (SnS paper_plots/acc_vs_fid.py)
FIGURE4_FID: Tuple[float, ...] = (87.51, 50.21, 41.71, 20.78, 11.03, 7.09, 5.22, 4.43, 4.13)
FIGURE4_TOP1: Tuple[float, ...] = (62.08, 60.52, 62.18, 62.91, 64.65, 66.56, 66.68, 67.63, 67.86)


def get_table(number: int) -> TableSpec:
    """Table ``number`` (1, 2, 5 or 6); ``KeyError`` naming the known tables otherwise."""
    try:
        return TABLES[int(number)]
    except (KeyError, ValueError):
        raise KeyError(f"no table {number!r}; the paper's tables here are {sorted(TABLES)} "
                       "(Tables 3 and 4 are ImageNet transfer results, not reproduced)") from None


def run_of(row: RowSpec) -> RunSpec:
    return RUNS[row.run]


def select_rows(table: TableSpec, rows: Optional[str]) -> List[RowSpec]:
    """The rows named in a comma list (``None``/empty: all), in the table's order; unknown keys raise."""
    if not rows:
        return list(table.rows)
    want = [r.strip() for r in rows.split(",") if r.strip()]
    bad = [w for w in want if w not in table.keys]
    if bad:
        raise KeyError(f"table {table.number} has no row(s) {bad}; rows: {', '.join(table.keys)}")
    return [r for r in table.rows if r.key in want]


__all__ = ["RunSpec", "RowSpec", "TableSpec", "RUNS", "TABLES", "TABLE1", "TABLE2", "TABLE5", "TABLE6",
           "FIGURE4_FID", "FIGURE4_TOP1", "get_table", "run_of", "select_rows"]
