"""Diagnostics: gradients against the exact ones, and the GDU property."""
from .gdu import GDUResult, gdu_check
from .gradients import GradientComparison, compare_gradients

__all__ = ["GDUResult", "GradientComparison", "compare_gradients", "gdu_check"]
