"""Energy-based models: they know their energy, their state shapes and a fast update step."""
from .activations import ACTIVATIONS, Activation, get_activation
from .base import EnergyModel
from .conv import ConvHopfield
from .ffebm import FFEBM, HopfieldBlock, build_ffebm
from .hamiltonian import HRU, HSSM, LinearHRU, NonlinearHRU
from .hopfield import HopfieldMLP
from .vector_field import VectorFieldConv, VectorFieldMLP

# The config names of the model classes (training/builders.py builds each from a config).
MODELS = {
    "hopfield-mlp": HopfieldMLP,
    "conv-hopfield": ConvHopfield,
    "vector-field-mlp": VectorFieldMLP,
    "ffebm": FFEBM,
    "hssm": HSSM,
}


def get_model_class(name: str):
    """Model class by registry name; ``ValueError`` lists the valid names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}") from None


__all__ = ["ACTIVATIONS", "Activation", "ConvHopfield", "EnergyModel", "FFEBM", "HRU", "HSSM", "HopfieldBlock",
           "HopfieldMLP", "LinearHRU", "MODELS", "NonlinearHRU", "VectorFieldConv", "VectorFieldMLP",
           "build_ffebm", "get_activation", "get_model_class"]
