"""Feedforward networks with per-layer feedback modules, for difference target propagation (DTP).

A *layered feedforward model with feedback* has forward layers ``F_1 .. F_N`` and feedback
modules ``G_2 .. G_N``::

    h_0 = x (flattened),   h_i = F_i(h_{i-1}),   logits = h_N
    G_i : h_i -> (an estimate in the space of) h_{i-1}

``FeedbackMLP`` (config name ``dtp-mlp``) is the MLP of Ernoult et al. 2022 (scalingDTP):
``F_i(h) = rho(W_i h + b_i)`` for hidden layers, ``F_N(h) = W_N h + b_N`` (logits), and each
feedback module "inverts" its forward block in reverse order, ``G_i(h_i) = V_i rho(h_i) + c_i``
(hidden), ``G_N(h_N) = V_N h_N + c_N``. ``G_1`` does not exist (``x`` needs no target).

The feedback parameters are ordinary ``nn.Parameter`` s (saved in checkpoints) with
``requires_grad=False``: the trainer's optimizer never sees them; the ``dtp`` rule trains them
itself by their own loss (``eqprop.rules.dtp``). Any model offering the same four methods
(``num_layers``, ``layer``, ``feedback_layer``, ``feedback_modules``) can be trained by ``dtp``.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FEEDFORWARD_ACTIVATIONS", "FeedbackConvNet", "FeedbackMLP"]

FEEDFORWARD_ACTIVATIONS = {
    "elu": F.elu,
    "tanh": torch.tanh,
    "relu": F.relu,
    "identity": lambda h: h,
}


class LayeredForward(nn.Module):
    """A feedforward stack ``h_i = F_i(h_{i-1})`` given ``input_view`` and ``layer(i, h)``."""

    num_layers: int

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[h_0, h_1, ..., h_N]`` (``h_0 = input_view(x)``)."""
        hs = [self.input_view(x)]
        for i in range(1, self.num_layers + 1):
            hs.append(self.layer(i, hs[-1]))
        return hs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[-1]


class FeedbackMLP(LayeredForward):
    """MLP ``sizes = [d_in, hidden..., n_classes]`` with feedback modules ``G_2..G_N``.

    x: (B, ...) flattened to (B, d_in); output: logits (B, n_classes).
    activation: ``elu`` (the paper's), ``tanh``, ``relu`` or ``identity`` (a linear network,
        for exact tests).
    feedback_init: ``random`` (independent of the forward weights, PyTorch's default init) or
        ``transpose`` (``V_i = W_i^T``, ``c_i = 0``: "symmetric" feedback, a debugging start).
    """

    is_feedback_model = True

    def __init__(self, sizes: Sequence[int], activation: str = "elu", feedback_init: str = "random"):
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least the input size and the number of classes, got {sizes}")
        if activation not in FEEDFORWARD_ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(FEEDFORWARD_ACTIVATIONS)}")
        if feedback_init not in ("random", "transpose"):
            raise ValueError(f"unknown feedback_init {feedback_init!r}; valid: random, transpose")
        self.sizes, self.activation = sizes, activation
        self.rho = FEEDFORWARD_ACTIVATIONS[activation]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        # feedback[k] is G_{k+2}: h_{k+2} (sizes[k+2]) -> h_{k+1} (sizes[k+1])
        self.feedback = nn.ModuleList(nn.Linear(sizes[i], sizes[i - 1]) for i in range(2, len(sizes)))
        if feedback_init == "transpose":
            with torch.no_grad():
                for i in range(2, len(sizes)):
                    self.feedback[i - 2].weight.copy_(self.layers[i - 1].weight.t())
                    self.feedback[i - 2].bias.zero_()
        for p in self.feedback.parameters():
            p.requires_grad_(False)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, activation={self.activation!r}"

    @property
    def num_layers(self) -> int:
        """N, the number of forward layers."""
        return len(self.layers)

    def input_view(self, x: torch.Tensor) -> torch.Tensor:
        """``h_0``: the input flattened to (B, d_in)."""
        return x.reshape(x.shape[0], -1)

    def layer(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """``F_i(h_{i-1})``, i in 1..N; (B, d_{i-1}) -> (B, d_i)."""
        a = self.layers[i - 1](h)
        return a if i == self.num_layers else self.rho(a)

    def feedback_layer(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """``G_i(h_i)``, i in 2..N; (B, d_i) -> (B, d_{i-1})."""
        g = self.feedback[i - 2]
        return g(h if i == self.num_layers else self.rho(h))

    def feedback_modules(self) -> dict[int, nn.Module]:
        """``{i: module holding G_i's parameters}`` for i in 2..N."""
        return {i: self.feedback[i - 2] for i in range(2, len(self.sizes))}

    def forward_modules(self) -> dict[int, nn.Module]:
        """``{i: module holding F_i's parameters}`` for i in 1..N."""
        return {i: self.layers[i - 1] for i in range(1, len(self.sizes))}



class FeedbackConvNet(LayeredForward):
    """Small conv net with feedback modules, sized for a CPU (config name ``dtp-conv``).

    x: (B, C, H, W) with H, W divisible by ``2**len(channels)``; output: logits (B, n_classes).
    Conv blocks ``F_i(h) = rho(conv_i(h))`` with 4x4 kernels, stride 2, padding 1 (each halves
    the image; strided convolutions replace the paper's max-pooling, whose inverse would need the
    pooling indices), then ``F_N(h) = W_N flatten(h) + b_N``. Feedback mirrors each block in
    reverse order: ``G_i(h_i) = convT_i(rho(h_i))`` (4x4 transposed convolution, stride 2) and
    ``G_N(h_N) = reshape(V_N h_N + c_N)``, ``V_N`` drawn independently from the distribution of
    ``W_N^T`` (``U(+-1/sqrt(n_flat))``). Feedback parameters have ``requires_grad=False``.
    """

    is_feedback_model = True

    def __init__(self, in_shape: Sequence[int], channels: Sequence[int], num_outputs: int, activation: str = "elu"):
        super().__init__()
        c, h, w = (int(v) for v in in_shape)
        channels = [int(v) for v in channels]
        k = 2 ** len(channels)
        if h % k or w % k:
            raise ValueError(f"image size {h}x{w} must be divisible by 2**len(channels) = {k}")
        if activation not in FEEDFORWARD_ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(FEEDFORWARD_ACTIVATIONS)}")
        self.in_shape, self.channels, self.activation = (c, h, w), channels, activation
        self.rho = FEEDFORWARD_ACTIVATIONS[activation]
        chans = [c, *channels]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 4, stride=2, padding=1) for a, b in itertools.pairwise(chans))
        self.last_shape = (chans[-1], h // k, w // k)
        n_flat = chans[-1] * (h // k) * (w // k)
        self.fc = nn.Linear(n_flat, num_outputs)
        # feedback of conv block i (i >= 2) and of the fc layer
        self.feedback_convs = nn.ModuleList(
            nn.ConvTranspose2d(b, a, 4, stride=2, padding=1) for a, b in itertools.pairwise(chans[1:]))
        self.feedback_fc = nn.Linear(num_outputs, n_flat)
        with torch.no_grad():  # drawn like the forward weights it mirrors (PyTorch's 1/sqrt(10) would be 14x too large)
            bound = 1 / n_flat ** 0.5
            self.feedback_fc.weight.uniform_(-bound, bound)
            self.feedback_fc.bias.uniform_(-bound, bound)
        for p in [*self.feedback_convs.parameters(), *self.feedback_fc.parameters()]:
            p.requires_grad_(False)

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}, channels={self.channels}, activation={self.activation!r}"

    @property
    def num_layers(self) -> int:
        return len(self.convs) + 1

    def input_view(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def layer(self, i: int, h: torch.Tensor) -> torch.Tensor:
        if i == self.num_layers:
            return self.fc(h.flatten(1))
        return self.rho(self.convs[i - 1](h))

    def feedback_layer(self, i: int, h: torch.Tensor) -> torch.Tensor:
        if i == self.num_layers:
            return self.feedback_fc(h).reshape(h.shape[0], *self.last_shape)
        return self.feedback_convs[i - 2](self.rho(h))

    def feedback_modules(self) -> dict[int, nn.Module]:
        out = {i: self.feedback_convs[i - 2] for i in range(2, self.num_layers)}
        out[self.num_layers] = self.feedback_fc
        return out

    def forward_modules(self) -> dict[int, nn.Module]:
        out = {i: self.convs[i - 1] for i in range(1, self.num_layers)}
        out[self.num_layers] = self.fc
        return out

