"""Physical optimizers: they turn a rule's ``.grad`` into changes of physical weights."""
from .device import RRAMOptimizer

__all__ = ["RRAMOptimizer"]
