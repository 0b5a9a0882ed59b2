"""The probe interface and its registry: one class per probe, one file per probe.

A :class:`Probe` owns what differs between probes: running on one representation's features
(:meth:`Probe.run`), its headline top-1, its table columns, cells and caption, and its flat metrics
(the compare tables, the learning-curve script). The suite (:func:`~gandistill.evaluation.suite.probe_suite`),
``fit``'s closing table, ``gandistill eval`` and ``compare`` iterate :data:`PROBES` in
:attr:`Probe.order`. Register a new one from any module::

    from gandistill.evaluation.probes import Probe, register_probe

    @register_probe("centroid")
    class Centroid(Probe):
        header = "nearest centroid"
        def run(self, data): ...          # -> ({"top1": ...}, notes)

and ``--eval centroid`` / ``--protocol centroid`` run it (load the module with
``GANDISTILL_PLUGINS=module``, see :mod:`gandistill.plugins`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from torch import Tensor

from gandistill.registry import Registry

Result = Dict[str, Any]


@dataclass
class ProbeInput:
    """What every probe gets for one representation: features extracted once and shared."""

    train_feats: Tensor
    train_labels: Tensor
    test_feats: Tensor
    test_labels: Tensor
    model: Optional[Callable[[Tensor], Tensor]]   # None for precomputed features
    train: Any                                    # the datasets (a probe that augments reads images)
    test: Any
    num_classes: int
    config: Any                                   # the suite's ProbeConfig
    progress: Optional[Callable[[dict], None]] = None


class Probe:
    """One probe of the suite. Subclasses set the class attributes and :meth:`run`; the rendering
    defaults show one ``top1`` column."""

    name: str = ""
    header: str = ""                  # the table's row header
    order: int = 100                  # position in tables, in ``all`` and in the run order
    default: bool = False             # among the probes run when none are named
    headline: int = 100               # ProbeRow.top1(): the present probe with the lowest value wins
    fast_twin: Optional[str] = None   # --eval-fast / --fast: run this probe instead
    paper_twin: Optional[str] = None  # --full: run this probe instead
    caption_text: str = ""            # the table caption's line for this probe

    def check_config(self, cfg: Any) -> None:
        """Refuse settings of the suite's config this probe cannot run with."""

    def run(self, data: ProbeInput) -> Tuple[Optional[Result], List[str]]:
        """``(result or None when skipped, notes)`` for one representation."""
        raise NotImplementedError

    def top1(self, result: Result) -> Optional[float]:
        return float(result["top1"]) if result.get("top1") is not None else None

    def columns(self, results: Sequence[Result]) -> List[Tuple[str, str]]:
        """``(key, header)`` of this probe's columns, given the results of every row that ran it."""
        return [(self.name, self.header or self.name)] if results else []

    def cell(self, result: Optional[Result], key: str) -> str:
        return "-" if result is None else f"{result['top1']:.1f}"

    def caption(self, cfg: Any) -> str:
        return self.caption_text

    def metrics(self, result: Result) -> Dict[str, float]:
        """Flat metrics (compare tables, learning curves): ``{name: top1}`` by default."""
        return {self.name: float(result["top1"])}

    def to_json(self, result: Result) -> Result:
        """JSON-ready copy of a result (e.g. integer keys as strings)."""
        return result

    def from_json(self, result: Result) -> Result:
        return result


PROBES: Registry = Registry("probe")


def register_probe(name: Optional[str] = None, *, help: str = "", overwrite: bool = False):
    """Class decorator: register a :class:`Probe` subclass under ``name`` (default ``cls.name``)."""

    def deco(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Probe)):
            raise TypeError(f"register_probe takes a Probe subclass, got {cls!r}")
        key = name or cls.name
        if not key or key in ("all", "both", "none") or "," in key:
            raise ValueError(f"invalid probe name {key!r}")
        cls.name = key
        PROBES.register(key, help=help or (cls.__doc__ or "").strip().split("\n")[0], overwrite=overwrite)(cls)
        return cls

    return deco


def get_probe(name: str) -> Probe:
    """An instance of the probe registered as ``name`` (``KeyError`` with close matches)."""
    return PROBES.create(name)


def probe_names() -> Tuple[str, ...]:
    """Every registered probe, in table order."""
    return tuple(sorted(PROBES.names(), key=lambda n: (PROBES.get(n).order, n)))


def default_probes() -> Tuple[str, ...]:
    return tuple(n for n in probe_names() if PROBES.get(n).default)
