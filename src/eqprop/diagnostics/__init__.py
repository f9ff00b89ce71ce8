"""Diagnostics: gradients against the exact ones, the GDU property (EP and C-EP), the
bias decomposition of EP-family estimators (finite nudge vs asymmetry), and ``check_model``
for a user's model."""
from .bias import BiasDecomposition, bias_decomposition
from .check import ModelCheck, check_model
from .continual import cep_gdu_check
from .gdu import GDUResult, gdu_check
from .gradients import GradientComparison, compare_gradients

__all__ = ["BiasDecomposition", "GDUResult", "GradientComparison", "ModelCheck", "bias_decomposition",
           "cep_gdu_check", "check_model", "compare_gradients", "gdu_check"]
