"""Physical optimizers: they turn a rule's ``.grad`` into changes of physical weights."""
from .binary import FlipOptimizer, FlipStats
from .device import RRAMOptimizer

__all__ = ["FlipOptimizer", "FlipStats", "RRAMOptimizer"]
