"""Energy-based models: they know their energy, their state shapes and a fast update step."""
from .activations import ACTIVATIONS, Activation, get_activation
from .base import EnergyModel
from .binary import BinarySign, StepHopfieldMLP, binarize
from .conv import ConvHopfield
from .feedforward import FeedbackConvNet, FeedbackMLP
from .ffebm import FFEBM, HopfieldBlock, build_ffebm
from .hamiltonian import HRU, HSSM, LinearHRU, NonlinearHRU
from .hopfield import HopfieldMLP
from .spiking import SpikingHopfieldMLP
from .vector_field import VectorFieldConv, VectorFieldMLP

from . import registry as _registry  # noqa: F401,E402  (registers the built-in models by config name)
from ..registry import MODELS  # noqa: E402


def build_model(name: str, input_shape, num_outputs: int, **settings):
    """The model registered as ``name`` (or ``"pkg.module:Class"``) for inputs of ``input_shape``."""
    entry = MODELS.get(name)
    settings = entry.check(settings, "model")
    return entry.build(settings, input_shape=tuple(input_shape), num_outputs=num_outputs)


__all__ = ["ACTIVATIONS", "Activation", "BinarySign", "StepHopfieldMLP", "binarize", "ConvHopfield", "EnergyModel", "FFEBM", "FeedbackConvNet", "FeedbackMLP", "HRU", "HSSM", "HopfieldBlock",
           "HopfieldMLP", "LinearHRU", "MODELS", "NonlinearHRU", "SpikingHopfieldMLP", "VectorFieldConv", "VectorFieldMLP",
           "build_ffebm", "build_model", "get_activation"]
