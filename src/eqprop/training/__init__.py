"""Training: the Trainer assembles data, model, rule and optimizer; it computes nothing itself."""
from .checkpoint import load_checkpoint, save_checkpoint
from .trainer import DivergenceError, Trainer, train

__all__ = ["DivergenceError", "Trainer", "load_checkpoint", "save_checkpoint", "train"]
