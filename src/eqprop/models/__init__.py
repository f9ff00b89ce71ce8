"""Energy-based models: they know their energy, their state shapes and a fast update step."""
from .activations import ACTIVATIONS, Activation, get_activation
from .base import EnergyModel
from .hamiltonian import HRU, HSSM, LinearHRU, NonlinearHRU
from .hopfield import HopfieldMLP
from .vector_field import VectorFieldConv, VectorFieldMLP
from .ffebm import FFEBM, HopfieldBlock, build_ffebm

MODELS = {"hopfield-mlp": HopfieldMLP}
MODELS["hssm"] = HSSM
MODELS["vector-field-mlp"] = VectorFieldMLP
MODELS["ffebm"] = FFEBM


def get_model_class(name: str):
    """Model class by registry name; ``ValueError`` lists the valid names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}") from None


__all__ = ["ACTIVATIONS", "Activation", "EnergyModel", "FFEBM", "HRU", "HopfieldBlock", "VectorFieldConv", "VectorFieldMLP", "build_ffebm", "HSSM", "HopfieldMLP", "LinearHRU", "NonlinearHRU", "MODELS", "get_activation", "get_model_class"]
