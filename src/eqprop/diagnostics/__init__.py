"""Diagnostics: gradients against the exact ones, the GDU property (EP and C-EP), and the
bias decomposition of EP-family estimators (finite nudge vs asymmetry)."""
from .bias import BiasDecomposition, bias_decomposition
from .continual import cep_gdu_check
from .gdu import GDUResult, gdu_check
from .gradients import GradientComparison, compare_gradients

__all__ = ["BiasDecomposition", "GDUResult", "GradientComparison", "bias_decomposition", "cep_gdu_check",
           "compare_gradients", "gdu_check"]
