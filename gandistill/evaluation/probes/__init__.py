"""The probes of the suite as registered classes, one file each: ``fewshot`` (:mod:`.fewshot`),
``knn`` (:mod:`.knn`), ``fast`` (:mod:`.fast_linear`), ``linear`` (:mod:`.paper_linear`). LARS is not a
probe of its own: it is the optimiser option (``optimizer="lars"``) of both linear probes
(:mod:`gandistill.evaluation.lars`). See :mod:`.base` to register one of your own."""
from gandistill.evaluation.probes.base import (PROBES, Probe, ProbeInput, default_probes, get_probe, probe_names,
                                               register_probe)
from gandistill.evaluation.probes import fast_linear, fewshot, knn, paper_linear  # noqa: F401  (registers them)

__all__ = ["PROBES", "Probe", "ProbeInput", "register_probe", "get_probe", "probe_names", "default_probes"]
