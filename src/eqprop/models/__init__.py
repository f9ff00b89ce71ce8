"""Energy-based models: they know their energy, their state shapes and a fast update step."""
from .activations import ACTIVATIONS, Activation, get_activation
from .base import EnergyModel
from .hopfield import HopfieldMLP

MODELS = {"hopfield-mlp": HopfieldMLP}


def get_model_class(name: str):
    """Model class by registry name; ``ValueError`` lists the valid names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}") from None


__all__ = ["ACTIVATIONS", "Activation", "EnergyModel", "HopfieldMLP", "MODELS", "get_activation", "get_model_class"]
