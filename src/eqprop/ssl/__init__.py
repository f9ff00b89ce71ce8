"""Non-contrastive self-supervised learning (BYOL, SimSiam, DirectPred, DirectCopy, IsoLoss) and
the linear-network analysis of Halvagal, Laborieux and Zenke (2023). See docs/ssl.md."""
from .ema import cosine_tau, ema_update, make_target
from .losses import byol_loss, euclidean_loss, isoloss, isoloss_sqrt, simsiam_loss
from .predictors import CorrelationPredictor, MLPPredictor
from .probe import correlation_eigenvalues, effective_rank, linear_probe

__all__ = ["byol_loss", "simsiam_loss", "euclidean_loss", "isoloss", "isoloss_sqrt", "CorrelationPredictor",
           "MLPPredictor", "cosine_tau", "ema_update", "make_target", "effective_rank", "correlation_eigenvalues",
           "linear_probe"]
