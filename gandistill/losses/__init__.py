"""Losses of Squeeze-and-Span as pure functions of embedding batches.

>>> import torch
>>> from gandistill.losses import vicreg_var, vicreg_cov
>>> z = torch.randn(8, 4)
>>> vicreg_var(z).shape, vicreg_cov(z).shape
(torch.Size([]), torch.Size([]))
"""
from .distill import VarCovOn, mix_losses, squeeze_loss
from .gather import dist_ready, gather_rows
from .vicreg import (DEFAULT_EPS, check_embeddings, covariance_matrix, invariance, span_loss, vicreg_cov,
                     vicreg_loss, vicreg_var)

__all__ = ["DEFAULT_EPS", "VarCovOn", "check_embeddings", "covariance_matrix", "dist_ready", "gather_rows",
           "invariance", "mix_losses", "span_loss", "squeeze_loss", "vicreg_cov", "vicreg_loss", "vicreg_var"]
