"""Binary EP (Laydevant et al. 2021, REFERENCES §5): binary weights and binary (0/1) neurons.

Binary weights
--------------
``binarize(model)`` re-parametrises every coupling weight of a Hopfield model (``HopfieldMLP``,
``ConvHopfield``, their readout included) as

    W_l = alpha_l * sign(H_l)        (the sign of H's sign bit: sign(+0) = +1, sign(-0) = -1)

where ``H_l`` is a real "hidden" tensor (the parameter the optimizer sees) and ``alpha_l`` a
per-layer scale, fixed (a buffer) or learned (a parameter). It uses
``torch.nn.utils.parametrize``, so the model's own code reads ``layer.weight`` as before and every
rule (the EP family, BPTT, RBP) runs unchanged: the energy, the relaxation and the contrasts all see
the binary weight. The gradient reaching ``H_l`` is the straight-through estimate
``dL/dH_l := dL/dW_l`` (the gradient with respect to the binary weight itself, neither scaled by
``alpha_l`` nor clipped), and ``dL/dalpha_l = sum dL/dW_l * sign(H_l)`` exactly. That is what
:class:`eqprop.optim.FlipOptimizer` filters and thresholds; a plain optimizer on ``H_l`` gives the
usual "latent weight" BNN training instead.

Binary activations
------------------
:class:`StepHopfieldMLP`: each neuron keeps an internal state ``s in [0, 1]`` and emits
``rho(s) = 1[s >= 1/2]``; the neighbours only see the emitted bits (the input stays full
precision). The paper's settling dynamics (a low-pass filter of rate ``g``, "gamma_neur"):

    s_i <- clamp((1 - g) s_i + g (W_{i-1} rho(s_{i-1}) + b_{i-1} + W_i^T rho(s_{i+1}) + f_i), 0, 1)

with the nudge ``f_out = beta (t - s_out)`` on the output layer (``C = 1/2 |s_out - t|^2`` on the
internal state; ``t`` the one-hot target repeated ``expand_output`` times per class, the
prediction the per-class mean of the output neurons). The function the EP rules contrast is

    E(x, s) = sum_i 1/2 |s_i|^2 - sum_k rho(s_{k+1}) . (W_k rho(s_k) + b_k)     (rho(s_0) = x)

whose parameter derivatives give the paper's update ``dW_k ~ rho(s_{k+1}) rho(s_k)^T`` at the
nudged minus the free state. It is a pseudo-energy: the dynamics above are not its gradient flow
(``rho`` is a step), so the exact references (BPTT/RBP), which differentiate through ``rho``,
see a zero gradient and are refused on this model.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from .hopfield import HopfieldMLP

__all__ = ["BinarySign", "StepHopfieldMLP", "binarize", "binary_couplings", "is_binary_hidden"]


class _BinarizeSTE(torch.autograd.Function):
    """``alpha * sign(h)`` with the sign of ``h``'s sign bit (``+0 -> +1``); backward: ``dh = g``
    (straight through), ``dalpha = sum g sign(h)``."""

    @staticmethod
    def forward(ctx, h, alpha):
        ctx.save_for_backward(h)
        ctx.alpha_shape = alpha.shape
        return torch.copysign(alpha.expand_as(h), h)

    @staticmethod
    def backward(ctx, g):
        (h,) = ctx.saved_tensors
        g_alpha = None
        if ctx.needs_input_grad[1]:
            g_alpha = (g * torch.copysign(torch.ones((), dtype=h.dtype, device=h.device), h)).sum()
            g_alpha = g_alpha.reshape(ctx.alpha_shape)
        return g, g_alpha


def _capturing(h: torch.Tensor) -> bool:
    """Whether a CUDA graph is being recorded on ``h``'s device now."""
    return h.is_cuda and torch.cuda.is_current_stream_capturing()


class BinarySign(nn.Module):
    """The parametrisation ``H -> alpha * sign(H)`` of one coupling weight.

    alpha: the initial scale (a number > 0); learn_alpha: make it a parameter (else a buffer).
    """

    def __init__(self, alpha: float, learn_alpha: bool = False, dtype: torch.dtype | None = None,
                 device: torch.device | None = None):
        super().__init__()
        alpha = float(alpha)
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"the binary weights' scale alpha must be a finite number > 0, got {alpha}")
        t = torch.tensor(alpha, dtype=dtype, device=device)
        if learn_alpha:
            self.alpha = nn.Parameter(t)
        else:
            self.register_buffer("alpha", t)

    _cache = None  # (key, h's storage kept alive, weight): the last weight computed without a graph

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.to(h.dtype) if self.alpha.dtype != h.dtype else self.alpha
        if torch.is_grad_enabled() or _capturing(h):
            return _BinarizeSTE.apply(h, alpha)
        # Without a graph (relaxations), every access to ``layer.weight`` would recompute the
        # binarisation; reuse it while neither H nor alpha changed (in-place changes bump _version;
        # a replaced tensor has another storage, and the cache keeps the old one alive). Not while a
        # CUDA graph is recorded: a cached weight would be read by every replay after the
        # optimizer has flipped H; the graph must record the binarisation itself.
        key = (h.data_ptr(), h._version, self.alpha.data_ptr(), self.alpha._version, h.dtype, h.device)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[2]
        w = _BinarizeSTE.apply(h, alpha)
        self._cache = (key, h.detach(), w)
        return w

    def _apply(self, fn, *args, **kw):
        self._cache = None
        return super()._apply(fn, *args, **kw)

    def extra_repr(self) -> str:
        return f"alpha={float(self.alpha):.4g}, learned={isinstance(self.alpha, nn.Parameter)}"


def binary_couplings(model) -> list[tuple[str, nn.Module]]:
    """The modules whose ``weight`` is a coupling of ``model`` (name, module), input side first.

    HopfieldMLP / StepHopfieldMLP: ``layers.k`` (and ``readout``); ConvHopfield: ``convs.k``,
    ``dense`` or ``readout``.
    """
    names = []
    for attr in ("layers", "convs"):
        mods = getattr(model, attr, None)
        if isinstance(mods, nn.ModuleList):
            names += [(f"{attr}.{k}", m) for k, m in enumerate(mods)]
    for attr in ("dense", "readout"):
        m = getattr(model, attr, None)
        if isinstance(m, nn.Module):
            names.append((attr, m))
    if not names:
        raise ValueError(
            f"binarize: {type(model).__name__} has no couplings it knows (layers, convs, dense, readout); "
            f"binary weights apply to HopfieldMLP, ConvHopfield and StepHopfieldMLP"
        )
    return names


def is_binary_hidden(p: torch.Tensor) -> bool:
    """Whether ``p`` is the hidden tensor ``H`` of a binarized weight (set by ``binarize``)."""
    return bool(getattr(p, "binary_hidden", False))


def binarize(model, alpha: float | Sequence[float] | None = None, learn_alpha: bool = False):
    """Make every coupling weight of ``model`` binary: ``W_l = alpha_l sign(H_l)``, in place.

    alpha: the per-layer scales; None (default) takes ``alpha_l = mean |W_l|`` of the current
        (initial) weights, the XNOR-Net choice of the paper; one number for every layer or one
        per coupling (input side first, readout last).
    learn_alpha: learn the scales (``dL/dalpha_l`` by the rule, like any parameter).

    ``H_l`` starts as the current weight (its sign is the binary weight) and is tagged
    ``binary_hidden = True`` for :class:`eqprop.optim.FlipOptimizer`. Returns ``model``.
    """
    couplings = binary_couplings(model)
    if alpha is None:
        alphas = [None] * len(couplings)
    elif isinstance(alpha, (int, float)):
        alphas = [float(alpha)] * len(couplings)
    else:
        alphas = [float(a) for a in alpha]
        if len(alphas) != len(couplings):
            raise ValueError(
                f"alpha has {len(alphas)} values but the model has {len(couplings)} couplings "
                f"({', '.join(n for n, _ in couplings)}); give one alpha for all or one per coupling"
            )
    for (name, mod), a in zip(couplings, alphas):
        if parametrize.is_parametrized(mod, "weight"):
            raise ValueError(f"binarize: {name}.weight is already parametrized (binarized twice?)")
        with torch.no_grad():
            if a is None:
                a = float(mod.weight.abs().mean())  # alpha in the weight's dtype (float64 models stay float64)
        w = mod.weight
        parametrize.register_parametrization(mod, "weight", BinarySign(a, learn_alpha, w.dtype, w.device))
        mod.parametrizations.weight.original.binary_hidden = True
    model.binary_weights = True
    return model


class StepHopfieldMLP(HopfieldMLP):
    """Layered Hopfield network with binary (0/1) neurons, the settling of Laydevant et al. 2021.

    Args:
        sizes: ``[d_0, hidden..., n_classes]``; the free output layer has ``n_classes * expand_output``
            neurons.
        expand_output: output neurons per class (the prediction is their mean); 1 = one per class.
        neuron_rate: ``g`` of the settling filter (the paper's ``gamma_neur``, 0.5), in (0, 1].
        threshold: the firing threshold of ``rho(s) = 1[s >= threshold]`` (0.5).
        init_value: the internal state every relaxation starts from (the paper: 1).
        gains: initial weight gains per coupling, as in :class:`HopfieldMLP`.

    State: ``state[i]`` is the internal state ``(B, d_{i+1})`` in [0, 1]; ``binary_state`` gives
    the emitted bits. Only ``output="mse"`` (the output layer is in the dynamics).
    """

    def __init__(self, sizes: Sequence[int], expand_output: int = 1, neuron_rate: float = 0.5,
                 threshold: float = 0.5, init_value: float = 1.0, gains: Sequence[float] | None = None):
        if not 0 < float(neuron_rate) <= 1:
            raise ValueError(f"neuron_rate (the settling filter's g) must lie in (0, 1], got {neuron_rate}")
        if not 0 < float(threshold) < 1:
            raise ValueError(f"threshold must lie in (0, 1) (the states live in [0, 1]), got {threshold}")
        super().__init__(sizes, "hard_sigmoid", "mse", gains, expand_output=expand_output)
        self.neuron_rate = float(neuron_rate)
        self.threshold = float(threshold)
        self.init_value = float(init_value)

    def rho(self, s: torch.Tensor) -> torch.Tensor:
        """The emitted bits ``1[s >= threshold]`` (same dtype)."""
        return (s >= self.threshold).to(s.dtype)

    def binary_state(self, state) -> list[torch.Tensor]:
        return [self.rho(s) for s in state]

    emitted = binary_state  # what each layer's neighbours see (``eqprop.diagnostics.silent_units``)

    def init_state(self, x):
        b = x.shape[0]
        return [torch.full((b, d), self.init_value, dtype=self.param_dtype, device=self.param_device)
                for d in self.free_sizes]

    def drive(self, i, state, ctx):
        u = ctx.input_drive if i == 0 else self.layers[i](self.rho(state[i - 1]))
        if i + 1 < self.num_free_layers:
            u = u + self.rho(state[i + 1]) @ self.feedback_weight(i)
        return u

    def layer_update(self, i, state, ctx, force=None):
        if torch.is_grad_enabled():
            raise ValueError(
                "StepHopfieldMLP has step (0/1) neurons: differentiating through its relaxation (bptt, rbp) "
                "gives a zero gradient; train it with an EP-family rule (e.g. ep-random, as in Laydevant et al.)"
            )
        u = self.drive(i, state, ctx)
        if force is not None:
            u = u + force
        g = self.neuron_rate
        return ((1 - g) * state[i] + g * u).clamp(0.0, 1.0)

    def energy(self, x, state):
        x = self.prepare_input(x)
        e = sum(0.5 * (s * s).sum(-1) for s in state)
        below = [x] + [self.rho(s) for s in state[:-1]]
        for layer, lo, hi in zip(self.layers, below, state):
            e = e - (self.rho(hi) * layer(lo)).sum(-1)
        return e

    @property
    def holomorphic(self) -> bool:
        return False

    def extra_repr(self) -> str:
        return (f"sizes={self.sizes}, classes={self.num_outputs}, expand_output={self.expand_output}, "
                f"neuron_rate={self.neuron_rate}, threshold={self.threshold}")
