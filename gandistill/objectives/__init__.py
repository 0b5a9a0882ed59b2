"""Training objectives as registered classes, one file per objective:

* ``distill``  (:mod:`.distill`)  -- squeeze (Eq. 11) + span (Eq. 12), ``L = alpha L_sq + (1-alpha) L_span``;
* ``vicreg``   (:mod:`.vicreg`)   -- VICReg between two augmented views;
* ``simsiam``  (:mod:`.simsiam`)  -- SimSiam with its predictor head;
* ``encoder``  (:mod:`.encoder`)  -- the post-hoc encoder of Eq. 3;
* ``probe``    (:mod:`.probe`)    -- no training, a probe on the frozen teacher's features.

See :mod:`gandistill.objectives.base` for the interface and how to register one of your own.
"""
from gandistill.objectives.base import (OBJECTIVES, Head, LossWeights, Objective, get_objective, list_objectives,
                                        register_objective)
from gandistill.objectives import distill, encoder, probe, simsiam, vicreg  # noqa: F401  (registers them)
from gandistill.objectives.simsiam import SimSiamPredictor, negative_cosine, simsiam_loss

__all__ = ["OBJECTIVES", "Objective", "Head", "LossWeights", "register_objective", "get_objective",
           "list_objectives", "SimSiamPredictor", "negative_cosine", "simsiam_loss"]
