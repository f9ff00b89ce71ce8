"""The built-in models by config name, each built from the data's shape and its own settings.

A builder takes ``input_shape`` (one sample's shape, e.g. ``(1, 28, 28)``), ``num_outputs`` and
the ``model:`` section's settings; settings it passes on (``**kw``) are the model class's own
keyword arguments, so their defaults live in the class.
"""
from __future__ import annotations

import math

from ..registry import ConfigError, register_model
from .bnn import BinaryConvNet, BinaryMLP
from .conv import ConvHopfield
from .feedforward import FeedbackConvNet, FeedbackMLP
from .ffebm import build_ffebm
from .hamiltonian import HSSM
from .hopfield import HopfieldMLP
from .vector_field import VectorFieldConv, VectorFieldMLP


def _flat_sizes(input_shape, hidden, num_outputs) -> list[int]:
    return [math.prod(input_shape), *[int(h) for h in hidden], num_outputs]


@register_model("hopfield-mlp", settings_from=HopfieldMLP, exclude=("sizes",))
def hopfield_mlp(input_shape, num_outputs, hidden: list[int] = (500,), **kw) -> HopfieldMLP:
    """Layered Hopfield network ``[prod(input_shape), *hidden, num_outputs]``."""
    return HopfieldMLP(_flat_sizes(input_shape, hidden, num_outputs), **kw)


@register_model("vector-field-mlp", settings_from=VectorFieldMLP, exclude=("sizes",))
def vector_field_mlp(input_shape, num_outputs, hidden: list[int] = (500,), **kw) -> VectorFieldMLP:
    """Layered network with separate feedback weights (``asymmetry`` in degrees)."""
    return VectorFieldMLP(_flat_sizes(input_shape, hidden, num_outputs), **kw)


def _image_shape(input_shape, name):
    if len(input_shape) != 3:
        raise ConfigError(f"model {name!r} needs images (C, H, W); the data's samples have shape {tuple(input_shape)}")
    return input_shape


@register_model("conv-hopfield", settings_from=ConvHopfield, exclude=("in_shape",))
def conv_hopfield(input_shape, num_outputs, channels: list[int] = (32, 64), **kw) -> ConvHopfield:
    """Convolutional Hopfield network (DCHN): 3x3 convolutions with 2x2 pooling."""
    return ConvHopfield(_image_shape(input_shape, "conv-hopfield"), channels, num_outputs, **kw)


@register_model("vector-field-conv", settings_from=VectorFieldConv, exclude=("in_shape",))
def vector_field_conv(input_shape, num_outputs, channels: list[int] = (32, 64), **kw) -> VectorFieldConv:
    """Convolutional network with separate feedback kernels."""
    return VectorFieldConv(_image_shape(input_shape, "vector-field-conv"), channels, num_outputs, **kw)


register_model("ffebm", build_ffebm)


@register_model("bnn-mlp", settings_from=BinaryMLP, exclude=("sizes",))
def bnn_mlp(input_shape, num_outputs, hidden: list[int] = (1024, 1024), **kw) -> BinaryMLP:
    """Binarized MLP (sign weights with a straight-through estimator, batch norm); trained by ``bp``."""
    return BinaryMLP(_flat_sizes(input_shape, hidden, num_outputs), **kw)


@register_model("hssm", settings_from=HSSM, exclude=("d_input", "d_output"))
def hssm(input_shape, num_outputs, **kw) -> HSSM:
    """Hamiltonian state-space model on sequences ``(T, channels)``."""
    if len(input_shape) != 2:
        raise ConfigError(f"model 'hssm' needs sequence data (steps, channels) per sample; got {tuple(input_shape)}")
    return HSSM(input_shape[-1], num_outputs, **kw)


@register_model("dtp-mlp", settings_from=FeedbackMLP, exclude=("sizes",))
def dtp_mlp(input_shape, num_outputs, hidden: list[int] = (256, 256), **kw) -> FeedbackMLP:
    """Feedforward MLP with feedback modules ``G_i`` (difference target propagation); trained by
    ``dtp`` or, as the reference, ``bp``."""
    return FeedbackMLP(_flat_sizes(input_shape, hidden, num_outputs), **kw)


@register_model("dtp-conv", settings_from=FeedbackConvNet, exclude=("in_shape",))
def dtp_conv(input_shape, num_outputs, channels: list[int] = (16, 32), **kw) -> FeedbackConvNet:
    """Small conv net (strided 4x4 convolutions) with feedback modules; trained by ``dtp`` or ``bp``."""
    return FeedbackConvNet(_image_shape(input_shape, "dtp-conv"), channels, num_outputs, **kw)


# -- binary EP (Laydevant et al. 2021): binary weights, binary neurons --------------------------
from .binary import StepHopfieldMLP, binarize  # noqa: E402


@register_model("binary-hopfield-mlp", settings_from=HopfieldMLP, exclude=("sizes",))
def binary_hopfield_mlp(input_shape, num_outputs, hidden: list[int] = (500,), alpha: float | list[float] | None = None,
                        learn_alpha: bool = False, **kw) -> HopfieldMLP:
    """``hopfield-mlp`` with binary weights ``alpha_l sign(H_l)`` (``alpha``: None = mean |W| at init)."""
    return binarize(HopfieldMLP(_flat_sizes(input_shape, hidden, num_outputs), **kw), alpha, learn_alpha)


@register_model("binary-conv-hopfield", settings_from=ConvHopfield, exclude=("in_shape",))
def binary_conv_hopfield(input_shape, num_outputs, channels: list[int] = (32, 64),
                         alpha: float | list[float] | None = None, learn_alpha: bool = False, **kw) -> ConvHopfield:
    """``conv-hopfield`` with binary weights ``alpha_l sign(H_l)`` on every coupling."""
    model = ConvHopfield(_image_shape(input_shape, "binary-conv-hopfield"), channels, num_outputs, **kw)
    return binarize(model, alpha, learn_alpha)


@register_model("step-hopfield-mlp", settings_from=StepHopfieldMLP, exclude=("sizes",))
def step_hopfield_mlp(input_shape, num_outputs, hidden: list[int] = (500,), weights: str = "binary",
                      alpha: float | list[float] | None = None, learn_alpha: bool = False, **kw) -> StepHopfieldMLP:
    """Layered Hopfield network with binary (0/1) neurons; ``weights``: "binary" (default) or "float"."""
    if weights not in ("binary", "float"):
        raise ConfigError(f"model.weights must be 'binary' or 'float', got {weights!r}")
    model = StepHopfieldMLP(_flat_sizes(input_shape, hidden, num_outputs), **kw)
    return binarize(model, alpha, learn_alpha) if weights == "binary" else model


@register_model("bnn-conv", settings_from=BinaryConvNet, exclude=("input_shape", "num_outputs"))
def bnn_conv(input_shape, num_outputs, **kw) -> BinaryConvNet:
    """Binarized conv net (sign weights, batch norm, sign activations; Laborieux et al. 2021's ConvBNN)."""
    return BinaryConvNet(_image_shape(input_shape, "bnn-conv"), num_outputs, **kw)


# -- EqSpike (Martin et al. 2021): the Hopfield MLP with integrate-and-fire neurons ----------------
from .spiking import SpikingHopfieldMLP  # noqa: E402


@register_model("spiking-hopfield-mlp", settings_from=SpikingHopfieldMLP, exclude=("sizes",))
def spiking_hopfield_mlp(input_shape, num_outputs, hidden: list[int] = (500,), **kw) -> SpikingHopfieldMLP:
    """``hopfield-mlp`` (hard sigmoid, MSE output) whose neurons exchange spikes (rule ``eqspike``)."""
    return SpikingHopfieldMLP(_flat_sizes(input_shape, hidden, num_outputs), **kw)
