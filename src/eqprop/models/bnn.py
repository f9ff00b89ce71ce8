"""A small binarized network (BNN) trained by backpropagation: sign weights, batch norm.

``BinaryMLP([784, 500, 10])``: each layer is a bias-free linear map with weights ``sign(W)``
(straight-through estimator: the gradient passes where ``|W| <= 1``), followed by
``BatchNorm1d``; hidden layers then apply ``hardtanh`` (the weak-RESET RRAM anchor code's MLP) or
``sign`` with a straight-through gradient (``activation="sign"``, binary activations). The input
stays in full precision; the output is the last batch norm (logits). Under
``eqprop.optim.RRAMOptimizer`` the weights already hold ``+-1`` (the sign of ``R_1 - R_2``) and
the sign in the forward pass leaves them unchanged.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BinaryLinear", "BinaryMLP", "sign_ste"]


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


class BinaryLinear(nn.Linear):
    """``y = x sign(W)^T`` (no bias); ``W``: (out, in), initialised ``U(-0.05, 0.05)``."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, bias=False)
        nn.init.uniform_(self.weight, -0.05, 0.05)

    def forward(self, x):
        return F.linear(x, sign_ste(self.weight))


class BinaryMLP(nn.Module):
    """Binarized MLP: ``sizes = [d_in, hidden..., n_classes]``; inputs ``(B, ...)`` flattened.

    ``binary_parameters()`` are the sign weights (to put on devices); ``float_parameters()`` the
    batch-norm scales and shifts (an ordinary optimizer).
    """

    def __init__(self, sizes: Sequence[int], activation: str = "hardtanh"):
        super().__init__()
        if activation not in ("hardtanh", "sign"):
            raise ValueError(f"unknown activation {activation!r}; valid: hardtanh, sign")
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least the input size and the number of classes, got {sizes}")
        self.sizes = sizes
        self.activation = activation
        self.linears = nn.ModuleList(BinaryLinear(a, b) for a, b in itertools.pairwise(sizes))
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in sizes[1:])

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
