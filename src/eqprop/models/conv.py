"""The deep convolutional Hopfield network (DCHN; Scellier et al. 2023, REFERENCES §1).

Free layers ``s_1 .. s_K`` are feature maps; coupling ``k`` is a 3x3 convolution (padding 1)
followed by 2x2 pooling (max or average), so layer ``k+1`` has half the height and width of
layer ``k``. A dense coupling joins the last map to the output:

    E(x, s) = sum_i sum G(s_i) - sum_{k<K} s_{k+1} . (P(conv_k(s_k)) + b_k) - s_out . (W_d flat(s_K) + b_d)

(``s_0 = x``; the last term only with ``output="mse"``; with ``output="ce"`` the dense layer is a
readout outside the energy, as in HopfieldMLP.) The layer update is hand-derived:

    s_k <- sigma( P(conv_{k-1}(s_{k-1})) + b_{k-1} + conv_k^T( P^T(s_{k+1}) ) )

where ``P^T`` is the adjoint of the pooling — unpooling to the arg-max positions (max pooling,
indices taken from the same forward pass over the current ``s_k``) or nearest upsampling / 4
(average pooling) — and ``conv_k^T`` is the transposed convolution. With max pooling the
energy is piecewise bilinear and the update is its exact layer-wise stationary point given the
pooling pattern; ``autograd_layer_update`` derives the same from the energy (tested).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .activations import get_activation
from .base import EnergyModel, coupling_rows, is_zero, like, named_contrast, one_hot_targets, parity_groups, plain_energy, real, rows, stacked_terms, t_mm
from .hopfield import OUTPUTS, HopfieldMLP, _output_activation

POOLS = ("max", "avg")


@dataclass
class ConvContext:
    """What stays fixed during one relaxation, and the per-layer cache of upward passes.

    ``up[k] = (s, P(conv_k(s)) + b_k, indices, conv shape)`` for the state tensor ``s`` of the
    layer below coupling ``k``; it is reused as long as that layer holds the same tensor, so each
    sweep computes every convolution once (it serves as the drive of the layer above *and* gives
    the pooling indices of the feedback into the layer below).
    """

    x: torch.Tensor            # (B, C, H, W) input in the model's dtype
    input_drive: torch.Tensor  # (B, C_1, H/2, W/2) = P(conv_0(x)) + b_0
    up: dict = field(default_factory=dict)


class ConvHopfield(EnergyModel):
    """Convolutional Hopfield network with a hand-derived layer update.

    Args:
        in_shape: ``(C, H, W)`` of one input; H and W must halve evenly at every layer.
        channels: channels of the free conv layers, e.g. ``[128, 256, 512, 512]``.
        num_outputs: classes (the dense output).
        pool: ``"max"`` (default) or ``"avg"``.
        activation, output, gains, output_activation: as in :class:`HopfieldMLP` (one gain per
            coupling, dense one included).
        channels_last: keep inputs and feature maps in channels-last memory layout (faster
            convolutions on GPUs); default: on CUDA only. Results are the same either way.

    State: ``state[k]`` (k < K) is ``(B, channels[k], H / 2^(k+1), W / 2^(k+1))``; with
    ``output="mse"`` ``state[K]`` is ``(B, num_outputs)``.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        channels: Sequence[int],
        num_outputs: int,
        pool: str = "max",
        activation: str = "hard_sigmoid",
        output: str = "mse",
        gains: Sequence[float] | None = None,
        channels_last: bool | None = None,
        output_activation: str | None = None,
    ):
        super().__init__()
        self.channels_last = channels_last
        c, h, w = (int(v) for v in in_shape)
        channels = [int(v) for v in channels]
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; valid pools: {', '.join(POOLS)}")
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; valid outputs: {', '.join(OUTPUTS)}")
        if not channels:
            raise ValueError("channels must list at least one conv layer")
        self.map_shapes = []
        for ch in channels:
            if h % 2 or w % 2:
                raise ValueError(
                    f"a {tuple(in_shape)} input cannot be pooled {len(channels)} times: a {h}x{w} map "
                    f"does not halve evenly; use fewer channels entries"
                )
            h, w = h // 2, w // 2
            self.map_shapes.append((ch, h, w))
        self.in_shape = (int(in_shape[0]), int(in_shape[1]), int(in_shape[2]))
        self.channels = channels
        self.pool = pool
        self.output_kind = output
        self.activation = get_activation(activation)
        self.output_activation = _output_activation(output_activation, output)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip([c, *channels[:-1]], channels))
        flat = math.prod(self.map_shapes[-1])
        self.dense = nn.Linear(flat, num_outputs) if output == "mse" else None
        self.readout = nn.Linear(flat, num_outputs) if output == "ce" else None
        self._num_outputs = int(num_outputs)
        n_coupling = len(channels) + 1
        gains = [1.0] * n_coupling if gains is None else [float(g) for g in gains]
        if len(gains) != n_coupling:
            raise ValueError(f"gains needs one value per coupling ({n_coupling}), got {len(gains)}")
        for mod, g in zip([*self.convs, self.dense or self.readout], gains):
            fan_in = mod.weight[0].numel()
            nn.init.uniform_(mod.weight, -g / math.sqrt(fan_in), g / math.sqrt(fan_in))
            nn.init.zeros_(mod.bias)

    # -- shapes --------------------------------------------------------------------------------
    @property
    def num_free_layers(self) -> int:
        return len(self.channels) + (1 if self.dense is not None else 0)

    @property
    def num_outputs(self) -> int:
        return self._num_outputs

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and x.shape[1] == math.prod(self.in_shape):
            x = x.view(-1, *self.in_shape)
        if x.dim() != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(
                f"ConvHopfield expects inputs of shape (batch, {', '.join(map(str, self.in_shape))}); "
                f"got {tuple(x.shape)}"
            )
        return x.to(dtype=self.param_dtype, device=self.param_device)

    @classmethod
    def dchn32(cls, num_outputs: int = 10, in_channels: int = 3, **kw) -> "ConvHopfield":
        """The DCHN of Scellier et al. 2023 for 32x32 images: channels 128-256-512-512, max
        pooling, gains [0.4, 0.7, 0.6, 0.3, 0.4]."""
        kw.setdefault("gains", [0.4, 0.7, 0.6, 0.3, 0.4])
        return cls((in_channels, 32, 32), [128, 256, 512, 512], num_outputs, **kw)

    @classmethod
    def dchn28(cls, num_outputs: int = 10, in_channels: int = 1, **kw) -> "ConvHopfield":
        """A DCHN for 28x28 images (MNIST, Fashion-MNIST): channels 32-64, max pooling."""
        kw.setdefault("gains", [0.5, 0.5, 0.5])
        return cls((in_channels, 28, 28), [32, 64], num_outputs, **kw)

    def _memory_format(self) -> torch.memory_format:
        use = self.param_device.type == "cuda" if self.channels_last is None else self.channels_last
        return torch.channels_last if use else torch.contiguous_format

    def init_state(self, x):
        b, kw = x.shape[0], dict(dtype=self.param_dtype, device=self.param_device)
        fmt = self._memory_format()
        state = [torch.zeros(b, *shape, **kw).contiguous(memory_format=fmt) for shape in self.map_shapes]
        if self.dense is not None:
            state.append(torch.zeros(b, self.num_outputs, **kw))
        return state

    # -- the couplings -------------------------------------------------------------------------
    def _conv(self, k: int, s: torch.Tensor) -> torch.Tensor:
        conv = self.convs[k]
        return F.conv2d(s, like(conv.weight, s), padding=1)

    def _forward(self, k: int, s: torch.Tensor):
        """``P(conv_k(s)) + b_k`` and the pooling indices (max) of that same pass."""
        z = self._conv(k, s)
        if self.pool == "max":
            if z.is_complex():
                raise ValueError("max pooling has no holomorphic extension; use pool='avg' with complex states")
            p, idx = F.max_pool2d(z, 2, return_indices=True)
        elif z.is_complex():  # avg_pool2d has no complex kernel: pool real and imaginary parts
            p, idx = torch.complex(F.avg_pool2d(z.real, 2), F.avg_pool2d(z.imag, 2)), None
        else:
            p, idx = F.avg_pool2d(z, 2), None
        return p + like(self.convs[k].bias, p).view(1, -1, 1, 1), idx, z.shape

    def _backward(self, k: int, s_above: torch.Tensor, idx, conv_shape) -> torch.Tensor:
        """``d/ds_k [s_{k+1} . P(conv_k(s_k))] = conv_k^T(P^T(s_{k+1}))`` (with ``feedback_kernel(k)``)."""
        up = self._unpool(s_above, idx, conv_shape)
        return F.conv_transpose2d(up, like(self.feedback_kernel(k), up), padding=1)

    def _unpool(self, s_above: torch.Tensor, idx, conv_shape) -> torch.Tensor:
        """``P^T(s_above)``: the adjoint of the pooling (unpooling to ``idx``, or nearest upsampling / 4)."""
        if self.pool == "max":
            return F.max_unpool2d(s_above, idx, 2, output_size=conv_shape[-2:])
        return s_above.repeat_interleave(2, -2).repeat_interleave(2, -1) / 4  # nearest upsampling (complex too)

    def feedback_kernel(self, k: int) -> torch.Tensor:
        """The kernel carrying layer ``k`` down to ``k - 1`` (transposed); tied: ``convs[k].weight``.
        With ``k == len(channels)``, the dense output's feedback weight (tied: ``dense.weight``)."""
        return self.dense.weight if k == len(self.channels) else self.convs[k].weight

    def _up(self, k: int, s: torch.Tensor, ctx: ConvContext):
        """``_forward(k, s)``, cached in ``ctx`` for as long as ``s`` is the same tensor."""
        hit = ctx.up.get(k)
        if hit is None or hit[0] is not s:
            hit = (s, *self._forward(k, s))
            ctx.up[k] = hit
        return hit[1:]

    def _dense_in(self, s_last: torch.Tensor) -> torch.Tensor:
        d = self.dense
        return F.linear(s_last.flatten(1), like(d.weight, s_last), like(d.bias, s_last))

    # -- contract --------------------------------------------------------------------------------
    def context(self, x):
        x = self.prepare_input(x).contiguous(memory_format=self._memory_format())
        return ConvContext(x=x, input_drive=self._forward(0, x)[0])

    def drive(self, i: int, state, ctx) -> torch.Tensor:
        """``u_i``: the input to layer ``i`` from its neighbours (``-dE/ds_i`` without ``G'(s_i)``)."""
        n_conv = len(self.channels)
        if i == n_conv:  # the dense output layer (MSE)
            return self._dense_in(state[i - 1])
        u = ctx.input_drive if i == 0 else self._up(i, state[i - 1], ctx)[0]
        if i + 1 < n_conv:
            _, idx, shape = self._up(i + 1, state[i], ctx)
            u = u + self._backward(i + 1, state[i + 1], idx, shape)
        elif self.dense is not None:
            u = u + (state[i + 1] @ like(self.feedback_kernel(n_conv), state[i + 1])).view_as(u)
        return u

    def layer_update(self, i, state, ctx, force=None):
        u = self.drive(i, state, ctx)
        return self.activation_of(i)(u if force is None else u + force.view_as(u))

    def update_groups(self, mode):
        return parity_groups(self.num_free_layers, mode)

    @property
    def holomorphic(self) -> bool:
        """Holomorphic EP needs a holomorphic activation and average pooling (max pooling is not)."""
        return self.pool == "avg" and EnergyModel.holomorphic.fget(self)

    def energy(self, x, state):
        x = self.prepare_input(x)
        e = self.layer_potentials(state)
        below = [x, *state[: len(self.channels) - 1]]
        for k, (lo, hi) in enumerate(zip(below, state)):
            e = e - (hi * self._forward(k, lo)[0]).flatten(1).sum(-1)
        if self.dense is not None:
            e = e - (state[-1] * self._dense_in(state[len(self.channels) - 1])).sum(-1)
        return e

    def output(self, state):
        s = state[self.output_index]
        if self.readout is None:
            return s
        return F.linear(s.flatten(1), like(self.readout.weight, s), like(self.readout.bias, s))

    # the costs are those of HopfieldMLP with one output unit per class: they read ``output``,
    # ``readout`` and ``output_targets``
    expand_output = 1
    cost = HopfieldMLP.cost
    prepare_targets = HopfieldMLP.prepare_targets
    output_targets = HopfieldMLP.output_targets

    def cost_grad(self, state, y):
        g = HopfieldMLP.cost_grad(self, state, y)
        return g.view_as(state[self.output_index])

    def contrast_grads(self, x, y, terms, anchor=None):
        """The contrast ``d/dtheta sum_j w_j F_{beta_j}(s^j)`` in closed form (real states).

        Coupling ``k``: ``dK_k = -conv_weight_grad(L_k, P_j^T(A_k))`` with ``L_k`` the phases'
        states of layer ``k`` stacked along the batch and ``A_k = [w_1 s^1_{k+1}; w_2 s^2_{k+1}; ...]``,
        one weight-gradient convolution per coupling; ``P_j^T`` unpools to the max positions of
        each phase's own ``conv_k(s^j_k)`` (one forward convolution over the stacked phases; none
        with average pooling). The input coupling unpools the weighted state difference
        ``U = sum_j w_j s^j_1`` once (``x`` is the same in every phase). Biases ``-sum A_k`` per
        channel; the dense output and the cross-entropy readout as in ``HopfieldMLP``.
        ``None`` (autograd instead) for complex states or a subclass with another energy.
        """
        methods = ("_forward", "_conv", "_dense_in", "_unpool")
        if not plain_energy(self, ConvHopfield, methods) or any(type(c) is not nn.Conv2d for c in self.convs):
            return None
        x = self.prepare_input(x).contiguous(memory_format=self._memory_format())
        terms = stacked_terms(terms, x.shape[0])
        if terms is None or any(t.is_complex() for st, _, _ in terms for t in st) or any(
                (isinstance(v, complex) or (isinstance(v, torch.Tensor) and v.is_complex()))
                for _, b, w in terms for v in (b, w)):
            return None
        g = {}
        for k, conv in enumerate(self.convs):
            a, lo = coupling_rows(terms, k, x)
            idx = shape = None
            if self.pool == "max":
                z = self._conv(k, lo)
                shape = z.shape
                idx = F.max_pool2d(z, 2, return_indices=True)[1]
                del z
            else:
                shape = (*lo.shape[:2], *lo.shape[-2:])
            up = self._unpool(a, idx, shape)
            g[f"convs.{k}.weight"] = -torch.nn.grad.conv2d_weight(lo, conv.weight.shape, up, padding=1)
            g[f"convs.{k}.bias"] = -a.sum((0, 2, 3))
        n_conv = len(self.channels)
        last = torch.cat([st[n_conv - 1].flatten(1) for st, _, _ in terms])
        if self.dense is not None:
            a = torch.cat([rows(w, st[n_conv]) for st, _, w in terms])
            g["dense.weight"] = -t_mm(a, last)
            g["dense.bias"] = -a.sum(0)
        if self.readout is not None:
            err, t = [], None
            for st, beta, w in terms:
                s = st[n_conv - 1]
                if is_zero(beta):
                    err.append(torch.zeros(s.shape[0], self.num_outputs, dtype=s.dtype, device=s.device))
                    continue
                z = self.output(st)
                t = one_hot_targets(y, self.num_outputs, z) if t is None else t
                err.append(rows(w, rows(beta, torch.softmax(z, dim=-1) - t)))
            a = torch.cat(err)
            g["readout.weight"] = t_mm(a, last)
            g["readout.bias"] = real(a.sum(0))
        return named_contrast(self, g)

    def extra_repr(self) -> str:
        return (f"in_shape={self.in_shape}, channels={self.channels}, pool={self.pool!r}, "
                f"activation={self.activation.name}, output={self.output_kind!r}")
