"""Training: the Trainer assembles a model, a rule, an optimizer and data; it computes nothing itself."""
from .augment import Augment
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .logging import CSVLogger, JSONLLogger, TensorBoardLogger
from .run import RunConfig
from .trainer import DivergenceError, Trainer, train

__all__ = ["Augment", "CSVLogger", "CheckpointError", "DivergenceError", "JSONLLogger", "RunConfig",
           "TensorBoardLogger", "Trainer", "load_checkpoint", "save_checkpoint", "train"]
