"""A small binarized network (BNN) trained by backpropagation: sign weights, batch norm.

``BinaryMLP([784, 500, 10])``: each layer is a bias-free linear map with weights ``sign(W)``
(straight-through estimator: the gradient passes where ``|W| <= 1``; ``weight_ste="identity"``
passes it everywhere, as BinaryConnect and Laborieux et al. 2021 do, so that hidden weights may
grow past 1 under a metaplastic optimizer), followed by ``BatchNorm1d``; hidden layers then apply ``hardtanh`` (the weak-RESET RRAM anchor code's MLP) or
``sign`` with a straight-through gradient (``activation="sign"``, binary activations). The input
stays in full precision; the output is the last batch norm (logits). Under
``eqprop.optim.RRAMOptimizer`` the weights already hold ``+-1`` (the sign of ``R_1 - R_2``) and
the sign in the forward pass leaves them unchanged.

``BinaryConv2d`` and ``BinaryConvNet`` are the convolutional counterparts (Laborieux et al.
2021's ConvBNN: two sign-weight convolutions with batch norm and sign activations, then a
sign-weight linear readout). ``track_running_stats=False`` normalises with the batch's own
statistics at test time too (the paper's setting since its 2023 update); evaluate in large batches.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BinaryConv2d", "BinaryConvNet", "BinaryLinear", "BinaryMLP", "identity_ste", "sign_ste"]


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sign(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """``sign(x)`` forward; gradient ``1[|x| <= 1]`` backward (straight-through, clipped)."""
    return _SignSTE.apply(x)


class _SignIdentity(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.sign(x)

    @staticmethod
    def backward(ctx, g):
        return g


def identity_ste(x: torch.Tensor) -> torch.Tensor:
    """``sign(x)`` forward; the gradient passes unchanged backward (BinaryConnect's estimator)."""
    return _SignIdentity.apply(x)


_WEIGHT_STE = {"clipped": sign_ste, "identity": identity_ste}


def _weight_ste(name: str):
    if name not in _WEIGHT_STE:
        raise ValueError(f"unknown weight_ste {name!r}; valid: {', '.join(_WEIGHT_STE)}")
    return _WEIGHT_STE[name]


class BinaryLinear(nn.Linear):
    """``y = x sign(W)^T`` (no bias); ``W``: (out, in), initialised ``U(-0.05, 0.05)``."""

    def __init__(self, in_features: int, out_features: int, weight_ste: str = "clipped"):
        super().__init__(in_features, out_features, bias=False)
        self._ste = _weight_ste(weight_ste)
        nn.init.uniform_(self.weight, -0.05, 0.05)

    def forward(self, x):
        return F.linear(x, self._ste(self.weight))


class BinaryConv2d(nn.Conv2d):
    """A bias-free convolution with weights ``sign(W)``; ``W``: (out, in, k, k), ``U(-0.05, 0.05)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 weight_ste: str = "clipped"):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self._ste = _weight_ste(weight_ste)
        nn.init.uniform_(self.weight, -0.05, 0.05)

    def forward(self, x):
        return self._conv_forward(x, self._ste(self.weight), None)


class BinaryMLP(nn.Module):
    """Binarized MLP: ``sizes = [d_in, hidden..., n_classes]``; inputs ``(B, ...)`` flattened.

    ``binary_parameters()`` are the sign weights (to put on devices); ``float_parameters()`` the
    batch-norm scales and shifts (an ordinary optimizer).
    """

    def __init__(self, sizes: Sequence[int], activation: str = "hardtanh", weight_ste: str = "clipped",
                 track_running_stats: bool = True):
        super().__init__()
        if activation not in ("hardtanh", "sign"):
            raise ValueError(f"unknown activation {activation!r}; valid: hardtanh, sign")
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least the input size and the number of classes, got {sizes}")
        self.sizes = sizes
        self.activation = activation
        self.linears = nn.ModuleList(BinaryLinear(a, b, weight_ste) for a, b in itertools.pairwise(sizes))
        self.norms = nn.ModuleList(nn.BatchNorm1d(b, track_running_stats=track_running_stats) for b in sizes[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(x.shape[0], -1)
        last = len(self.linears) - 1
        for i, (lin, bn) in enumerate(zip(self.linears, self.norms)):
            h = bn(lin(h))
            if i < last:
                h = F.hardtanh(h) if self.activation == "hardtanh" else sign_ste(h)
        return h

    def binary_parameters(self) -> list[nn.Parameter]:
        return [lin.weight for lin in self.linears]

    def float_parameters(self) -> list[nn.Parameter]:
        return [p for bn in self.norms for p in bn.parameters()]


class BinaryConvNet(nn.Module):
    """Binarized conv net for ``(B, C, H, W)`` images (Laborieux et al. 2021's ConvBNN, widths free):
    ``conv(5x5, stride 2, pad 2) -> BN -> sign -> conv(4x4, stride 2, pad 2) -> BN -> sign -> linear -> BN``,
    every weight ``sign(W)``. ``input_shape = (C, H, W)``; ``channels`` the two conv widths.
    """

    def __init__(self, input_shape: Sequence[int], num_outputs: int = 10, channels: Sequence[int] = (32, 64),
                 weight_ste: str = "clipped", track_running_stats: bool = True):
        super().__init__()
        c, h, w = (int(v) for v in input_shape)
        c1, c2 = (int(v) for v in channels)
        self.convs = nn.ModuleList([BinaryConv2d(c, c1, 5, stride=2, padding=2, weight_ste=weight_ste),
                                    BinaryConv2d(c1, c2, 4, stride=2, padding=2, weight_ste=weight_ste)])
        with torch.no_grad():
            n_flat = self.convs[1](self.convs[0](torch.zeros(1, c, h, w))).numel()
        self.linears = nn.ModuleList([BinaryLinear(n_flat, int(num_outputs), weight_ste)])
        self.norms = nn.ModuleList([nn.BatchNorm2d(c1, track_running_stats=track_running_stats),
                                    nn.BatchNorm2d(c2, track_running_stats=track_running_stats),
                                    nn.BatchNorm1d(int(num_outputs), track_running_stats=track_running_stats)])
        self.input_shape = (c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(x.shape[0], *self.input_shape)
        for conv, bn in zip(self.convs, self.norms):
            h = sign_ste(bn(conv(h)))
        return self.norms[-1](self.linears[0](h.flatten(1)))

    def binary_parameters(self) -> list[nn.Parameter]:
        return [conv.weight for conv in self.convs] + [lin.weight for lin in self.linears]

    def float_parameters(self) -> list[nn.Parameter]:
        return [p for bn in self.norms for p in bn.parameters()]
