"""The layered Hopfield network of equilibrium propagation (REFERENCES §1).

Layers ``s_0 = x`` (clamped input), ``s_1 .. s_n`` free. With couplings ``W_k`` (``layers[k]``,
mapping layer k to k+1, weight shape ``(d_{k+1}, d_k)``) and biases ``b_k`` (of layer k+1):

    E(x, s) = sum_{i>=1} sum G(s_i) - sum_{k>=0} s_{k+1} . (W_k s_k + b_k)

where ``G`` is the activation's potential (``1/2 s^2`` on the box [0, 1] for the hard sigmoid).
Minimising ``E`` in layer ``i`` alone gives the fixed-point update

    s_i <- sigma(W_{i-1} s_{i-1} + b_{i-1} + W_i^T s_{i+1})

Two output conventions:

- ``output="mse"``: the last layer (``sizes[-1]`` units) is free and in the energy; the cost is
  ``C = 1/2 |s_n - y|^2`` (one-hot ``y``). With ``expand_output = k > 1`` (a population
  read-out, Laydevant et al. 2021) the last layer has ``k`` units per class, ``y`` is the one-hot
  target with each entry repeated ``k`` times, and the prediction is each class's mean unit.
- ``output="ce"``: the last size is a readout *outside* the energy (Laborieux et al. 2021):
  ``logits = W_out s_n + b_out`` and ``C = cross_entropy(logits, y)``; the nudge ``beta * C``
  acts on the last free layer through ``W_out^T (softmax(logits) - y)``.

States may be complex (holomorphic EP): the real parameters are then cast to the state's dtype
inside the update, energy and cost, so every formula above is the holomorphic extension in ``s``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .activations import HardSigmoid, Linear, Sigmoid, get_activation
from .base import (EnergyModel, coupling_rows, is_zero, like, named_contrast, one_hot_targets, parity_groups, plain_energy, real,
                   rows, stacked_terms, t_mm)

OUTPUTS = ("mse", "ce")


@dataclass
class MLPContext:
    x: torch.Tensor            # (B, d_0), flattened input in the model's dtype
    input_drive: torch.Tensor  # (B, d_1) = W_0 x + b_0, fixed during a relaxation
    # (d_1, B) contiguous, ``input_drive`` being its transpose; set where the fused sweeps apply
    input_drive_t: torch.Tensor | None = None


class HopfieldMLP(EnergyModel):
    """Layered Hopfield energy with a hand-derived layer update.

    Args:
        sizes: ``[d_0, d_1, ..., d_L]``: input size, hidden sizes, number of outputs.
        activation: ``"hard_sigmoid"`` (default) or ``"sigmoid"``.
        output: ``"mse"`` (output layer in the energy) or ``"ce"`` (softmax readout outside it).
        output_activation: activation of the output layer with ``output="mse"``; default: the
            same as ``activation``. ``"linear"`` is the comparative study's output (Scellier et
            al. 2023): a hard-sigmoid output unit driven below 0 for every input is clamped there
            and no rule's gradient reaches it (a dead class, docs/compare.md).
        gains: per-coupling multiplier of the initial weights, uniform in
            ``+- gain / sqrt(fan_in)``; default 1 for every coupling (readout included).
        expand_output: output units per class with ``output="mse"`` (the last layer then has
            ``sizes[-1] * expand_output`` units; the prediction is each class's mean unit); 1 = one
            per class.

    State: ``state[i]`` has shape ``(B, d_{i+1})`` (``self.sizes`` are the layer sizes, the output
    layer's expanded); inputs ``x`` have shape ``(B, d_0)`` (images are flattened).
    """

    expand_output: int = 1

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "hard_sigmoid",
        output: str = "mse",
        gains: Sequence[float] | None = None,
        output_activation: str | None = None,
        expand_output: int = 1,
    ):
        super().__init__()
        sizes = [int(s) for s in sizes]
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; valid outputs: {', '.join(OUTPUTS)}")
        if int(expand_output) != expand_output or int(expand_output) < 1:
            raise ValueError(f"expand_output must be an integer >= 1 (output units per class), got {expand_output}")
        if expand_output > 1 and output != "mse":
            raise ValueError(f"expand_output={expand_output} needs output='mse' (the output units in the energy); "
                             f"the cross-entropy readout has one logit per class")
        self.expand_output = int(expand_output)
        if sizes:
            sizes[-1] *= self.expand_output
        if min(sizes, default=1) < 1:
            raise ValueError(f"every layer size must be >= 1 (model.hidden); got sizes {sizes}")
        if len(sizes) < (3 if output == "ce" else 2):
            raise ValueError(
                f"sizes must list the input size, the hidden sizes and the number of outputs "
                f"(at least one hidden layer with output='ce'); got {sizes}"
            )
        self.sizes = sizes
        self.output_kind = output
        self.activation = get_activation(activation)
        self.output_activation = _output_activation(output_activation, output)
        free = sizes[1:] if output == "mse" else sizes[1:-1]
        self.free_sizes = free
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:len(free)], free))
        self.readout = nn.Linear(sizes[-2], sizes[-1]) if output == "ce" else None
        n_coupling = len(self.layers) + (1 if self.readout is not None else 0)
        gains = [1.0] * n_coupling if gains is None else [float(g) for g in gains]
        if len(gains) != n_coupling:
            raise ValueError(f"gains needs one value per coupling ({n_coupling}), got {len(gains)}")
        self.reset_parameters(gains)

    def reset_parameters(self, gains: Sequence[float]) -> None:
        """Weights uniform in ``+- gain / sqrt(fan_in)``, biases zero."""
        mods = list(self.layers) + ([self.readout] if self.readout is not None else [])
        for mod, g in zip(mods, gains):
            bound = g / math.sqrt(mod.in_features)
            nn.init.uniform_(mod.weight, -bound, bound)
            nn.init.zeros_(mod.bias)

    # -- contract -------------------------------------------------------------------------
    @property
    def num_free_layers(self) -> int:
        return len(self.free_sizes)

    @property
    def num_outputs(self) -> int:
        """Classes (or target values): the width of ``output(state)``."""
        return self.sizes[-1] // self.expand_output

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """(B, d_0) or (B, ...) with prod(...) = d_0 -> (B, d_0) in the parameters' dtype."""
        if x.dim() > 2 and math.prod(x.shape[1:]) == self.sizes[0]:
            x = x.flatten(1)
        if x.dim() != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(
                f"HopfieldMLP{tuple(self.sizes)} expects inputs of shape (batch, {self.sizes[0]}) "
                f"(or images with {self.sizes[0]} values each); got {tuple(x.shape)}"
            )
        return x.to(dtype=self.param_dtype, device=self.param_device)

    def init_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        b = x.shape[0]
        return [torch.zeros(b, d, dtype=self.param_dtype, device=self.param_device) for d in self.free_sizes]

    def context(self, x: torch.Tensor) -> MLPContext:
        x = self.prepare_input(x)
        if self._fusable(x.dtype):  # the drive made as (d_1, B), the layout of the fused sweeps
            layer = self.layers[0]
            drive_t = torch.addmm(layer.bias.unsqueeze(1), layer.weight, x.T)
            return MLPContext(x=x, input_drive=drive_t.T, input_drive_t=drive_t)
        return MLPContext(x=x, input_drive=self.layers[0](x))

    def drive(self, i: int, state, ctx: MLPContext) -> torch.Tensor:
        """``u_i = W_{i-1} s_{i-1} + b_{i-1} + W_i^T s_{i+1}``: the input to layer ``i`` from its
        neighbours (``-dE/ds_i`` without ``G'(s_i)``); the feedback weight is ``feedback_weight(i)``."""
        u = ctx.input_drive if i == 0 else _linear(self.layers[i], state[i - 1])
        if i + 1 < self.num_free_layers:
            u = u + state[i + 1] @ like(self.feedback_weight(i), state[i + 1])
        return u

    def feedback_weight(self, i: int) -> torch.Tensor:
        """The weight carrying layer ``i + 1`` down to layer ``i``; tied: ``layers[i + 1].weight``."""
        return self.layers[i + 1].weight

    def layer_update(self, i, state, ctx: MLPContext, force=None):
        u = self.drive(i, state, ctx)
        return self.activation_of(i)(u if force is None else u + force)

    def update_groups(self, mode: str):
        return parity_groups(self.num_free_layers, mode)

    def energy(self, x, state):
        x = self.prepare_input(x)
        e = self.layer_potentials(state)
        below = [x] + list(state[:-1])
        for layer, lo, hi in zip(self.layers, below, state):
            e = e - (hi * _linear(layer, lo)).sum(-1)
        return e

    def output(self, state):
        """(B, num_outputs): the output layer (per class the mean of its ``expand_output`` units) or the
        cross-entropy readout's logits."""
        s = state[self.output_index]
        if self.readout is not None:
            return _linear(self.readout, s)
        k = self.expand_output
        return s if k == 1 else s.view(s.shape[0], -1, k).mean(-1)

    def output_targets(self, y, like: torch.Tensor) -> torch.Tensor:
        """The MSE cost's target for the output *layer*, ``(B, sizes[-1])`` in ``like``'s dtype: class
        indices (B,) -> one-hot, each entry repeated ``expand_output`` times; float targets of width
        ``num_outputs`` are repeated the same way, of the layer's width pass."""
        k = self.expand_output
        if k > 1 and y.is_floating_point() and y.shape[-1] == self.sizes[-1]:
            return y.to(like.dtype)
        t = one_hot_targets(y, self.num_outputs, like)
        return t if k == 1 else t.repeat_interleave(k, dim=-1)

    def cost(self, state, y):
        if self.readout is None:
            s = state[self.output_index]
            return 0.5 * ((s - self.output_targets(y, s)) ** 2).sum(-1)
        out = self.output(state)
        return -(one_hot_targets(y, self.num_outputs, out) * _log_softmax(out)).sum(-1)

    def prepare_targets(self, y, like: torch.Tensor):
        """Targets as ``cost``/``cost_grad`` take them, made once per batch: class indices (B,) ->
        one-hot (B, num_outputs) in ``like``'s dtype (the range checked here; with the MSE output the
        output layer's targets, ``output_targets``); float targets pass."""
        if type(self).cost is not HopfieldMLP.cost:  # another cost (e.g. an ff-EBM block's error)
            return y
        if self.readout is None:
            return self.output_targets(y, like)
        return one_hot_targets(y, self.num_outputs, like)

    def cost_grad(self, state, y):
        if self.readout is None:
            s = state[self.output_index]
            return s - self.output_targets(y, s)
        out = self.output(state)
        t = one_hot_targets(y, self.num_outputs, out)
        p = _log_softmax(out).exp() if out.is_complex() else torch.softmax(out, dim=-1)
        return (p - t) @ like(self.readout.weight, out)

    def contrast_grads(self, x, y, terms, anchor=None):
        """The contrast ``d/dtheta Re sum_j w_j F_{beta_j}(s^j)`` in closed form.

        With ``A_k = [w_1 s^1_{k+1}; w_2 s^2_{k+1}; ...]`` and ``L_k = [s^1_k; s^2_k; ...]`` (the
        phases stacked along the batch): ``dW_k = -A_k^T L_k``, ``db_k = -sum_rows A_k``, computed as
        one product per phase accumulated in place (the stacked copy is not made), the sign carried
        by the small row factors, not by the product. The input is the same in every phase, so the input coupling needs only the
        weighted state difference ``U = sum_j w_j s^j_1``: ``dW_0 = -U^T x``. With the
        cross-entropy readout, ``dW_out = sum_j (w_j beta_j (p_j - t))^T s^j_n`` (``p`` the softmax).
        ``None`` (autograd instead) for a subclass with another energy or cost.
        """
        if not plain_energy(self, HopfieldMLP) or any(type(m) is not nn.Linear for m in self.layers):
            return None
        x = self.prepare_input(x)
        terms = stacked_terms(terms, x.shape[0])
        if terms is None:
            return None
        g = {}
        neg = [(st, beta, -w) for st, beta, w in terms]  # the sign on the rows, not on the (d_k+1, d_k) product
        a, lo = coupling_rows(neg, 0, x)
        g["layers.0.weight"], g["layers.0.bias"] = t_mm(a, lo), real(a.sum(0))
        for k in range(1, len(self.layers)):  # one product per phase, accumulated (no stacked copy)
            gw = gb = None
            for st, _, w in neg:
                a, lo = rows(w, st[k]), st[k - 1]
                if gw is None:
                    gw, gb = t_mm(a, lo), real(a.sum(0))
                else:
                    if gw.is_complex() or a.is_complex() or lo.is_complex() or a.dtype != gw.dtype or lo.dtype != gw.dtype:
                        gw = gw + t_mm(a, lo)
                    else:
                        gw.addmm_(a.T, lo)
                    gb = gb + real(a.sum(0))
            g[f"layers.{k}.weight"], g[f"layers.{k}.bias"] = gw, gb
        if self.readout is not None:
            out, err, t = self.output_index, [], None
            for st, beta, w in terms:
                s = st[out]
                if is_zero(beta):
                    err.append(torch.zeros(s.shape[0], self.num_outputs, dtype=s.dtype, device=s.device))
                    continue
                z = _linear(self.readout, s)
                t = one_hot_targets(y, self.num_outputs, z) if t is None else t
                p = _log_softmax(z).exp() if z.is_complex() else torch.softmax(z, dim=-1)
                err.append(rows(w, rows(beta, p - t)))
            a = torch.cat(err)
            g["readout.weight"] = t_mm(a, torch.cat([st[out] for st, _, _ in terms]))
            g["readout.bias"] = real(a.sum(0))
        return named_contrast(self, g)

    # -- the fused sweeps -------------------------------------------------------------------
    def _fusable(self, dtype: torch.dtype) -> bool:
        """Whether ``fused_relax`` applies: this class's update, drive and cost (a subclass that
        redefines any of them keeps the general path), plain ``nn.Linear`` couplings (no
        parametrisation), a known activation and real floating-point states."""
        t = type(self)
        if t is not HopfieldMLP and any(getattr(t, m) is not getattr(HopfieldMLP, m) for m in _FUSED_USES):
            return False
        if dtype.is_complex or not dtype.is_floating_point or any(type(m) is not nn.Linear for m in self.layers):
            return False
        return all(type(self.activation_of(i)) in _IN_PLACE for i in range(self.num_free_layers))

    def _fused_weights(self):
        """``(weights, their transposes, bias columns (d, 1), row bounds of the layers in the state
        buffer)``, kept between relaxations while the parameters stay the same tensors (in-place
        optimizer steps keep them; the cached views hold the old storage alive, so a replaced
        parameter cannot reuse its address)."""
        key = tuple(t.data_ptr() for layer in self.layers for t in (layer.weight, layer.bias))
        cached = self.__dict__.get("_fused_cache")
        if cached is None or cached[0] != key:
            ws = [layer.weight.detach() for layer in self.layers]
            bounds = [0]
            for d in self.free_sizes:
                bounds.append(bounds[-1] + d)
            cached = (key, (ws, [w.T for w in ws], [layer.bias.detach().unsqueeze(1) for layer in self.layers], bounds))
            self.__dict__["_fused_cache"] = cached
        return cached[1]

    def fused_relax(self, ctx: MLPContext, state, steps: int, mode: str, nudge=None, clamp=None):
        """``steps`` sweeps of ``relax`` (``mode``, ``nudge``, ``clamp``) in one function, or ``None``
        where it does not apply (``relax`` then runs the general ``sweep``, the reference this path
        is tested against: same states to rounding, float64 1e-12).

        The states live as the rows of one ``(sum_i d_i, B)`` buffer (two for "sync"): each layer's
        drive is written there by ``addmm`` (the bias or the input drive as its added term, the
        feedback ``W_{i+1}^T s_{i+1}`` accumulated in place), the activation applied in place, no
        tensor allocated per sweep. In this layout the output layer's drive ``W s`` is a
        ``(d_out, d) x (d, B)`` product, several times faster on CPU than ``(B, d) x (d, d_out)``
        for a narrow output. The MSE nudge ``-beta (s_out - y)`` is folded into the output's
        update: ``beta y`` (with the bias) is added once per relaxation, ``-beta s_out`` by the
        ``addmm``'s scale. Returns ``[(B, d_i)]``: transposed views of the buffer (a new buffer
        per call; the input ``state`` is not modified).
        """
        dt = getattr(ctx, "input_drive_t", None)
        n = self.num_free_layers
        if (dt is None or steps < 1 or torch.is_grad_enabled() or len(state) != n or not self._fusable(dt.dtype)
                or any(s.dtype != dt.dtype or s.device != dt.device for s in state)):
            return None
        beta = None if nudge is None else nudge.beta
        if isinstance(beta, torch.Tensor) or isinstance(beta, complex):
            return None  # per-sample or complex nudges: the general path
        out = self.output_index
        ws, wts, bias, bounds = self._fused_weights()
        B = dt.shape[1]
        bufs = [dt.new_empty(bounds[-1], B) for _ in range(1 if mode == "async" else 2)]
        views = [[buf[bounds[i]:bounds[i + 1]] for i in range(n)] for buf in bufs]
        for v, s in zip(views[0], state):  # the start state; in "sync" every free row of bufs[1] is written before read
            v.copy_(s.T)
        if clamp is not None:
            for vs in views:
                vs[out].copy_(clamp.value.T)
        acts = [_IN_PLACE[type(self.activation_of(i))] for i in range(n)]
        force, fold, general_force = None, 0.0, False
        if beta is not None and beta != 0:
            if self.readout is None:  # MSE: -beta (s_out - y), folded
                fold = float(beta)
                t = nudge.targets(self, state)
                force = torch.add(dt if out == 0 else bias[out], t.T, alpha=fold).contiguous()  # b + beta y
            else:
                general_force = True
        groups = self.update_groups(mode) if mode == "async" else [list(range(n))]
        whole = mode == "sync" and clamp is None and all(a is _CLAMP01 for a in acts)

        def plan(src, dst):
            """The calls of one sweep's updates ``dst[i] <- sigma(drive_i(src) + force)`` as bound
            torch functions (built once per relaxation; ``dst[i]`` is ``src[i]`` in "async")."""
            ops = []
            for group in groups:
                for i in group:
                    if clamp is not None and i == out:
                        continue
                    d, folded = dst[i], fold != 0.0 and i == out
                    general = general_force and i == out
                    if general:  # the force from the state before d is overwritten
                        cell: list = []
                        ops.append(lambda src=src, cell=cell: cell.append(nudge.force(self, [v.T for v in src]).T))
                    lower = (force if folded else dt) if i == 0 else (force if folded else bias[i])
                    if folded and d is src[i]:  # in place: -beta s_out + W s + (b + beta y)
                        if i == 0:
                            ops += [functools.partial(d.mul_, -fold), functools.partial(d.add_, lower)]
                        else:
                            ops += [functools.partial(d.addmm_, ws[i], src[i - 1], beta=-fold),
                                    functools.partial(d.add_, lower)]
                    elif i == 0:
                        ops.append(functools.partial(torch.addmm, lower, wts[1], src[1], out=d) if n > 1
                                   else functools.partial(d.copy_, lower))
                    else:
                        ops.append(functools.partial(torch.addmm, lower, ws[i], src[i - 1], out=d))
                    if i + 1 < n and (i > 0 or (folded and d is src[i])):
                        ops.append(functools.partial(d.addmm_, wts[i + 1], src[i + 1]))
                    if folded and d is not src[i]:
                        ops.append(functools.partial(d.add_, src[i], alpha=-fold))
                    if general:
                        ops.append(lambda d=d, cell=cell: d.add_(cell.pop()))
                    if not whole and acts[i] is not None:
                        ops.append(functools.partial(getattr(d, acts[i][0]), *acts[i][1]))
            return ops

        if mode == "async":
            sweeps = [plan(views[0], views[0])]
        else:
            sweeps = [plan(views[0], views[1]) + ([functools.partial(bufs[1].clamp_, 0.0, 1.0)] if whole else []),
                      plan(views[1], views[0]) + ([functools.partial(bufs[0].clamp_, 0.0, 1.0)] if whole else [])]
        cur = 0
        for _ in range(steps):
            for op in sweeps[cur]:
                op()
            if mode == "sync":
                cur = 1 - cur
        return [v.T for v in views[cur]]

    def extra_repr(self) -> str:
        out = f", output_activation={self.output_activation.name}" if self.output_activation else ""
        out += f", expand_output={self.expand_output}" if self.expand_output > 1 else ""
        return f"sizes={self.sizes}, activation={self.activation.name}, output={self.output_kind!r}{out}"


def _output_activation(name: str | None, output: str):
    """The output layer's own activation (``None``: the hidden layers'); only for an output in the energy."""
    if name is None:
        return None
    if output != "mse":
        raise ValueError(f"output_activation applies to output='mse' (an output layer in the energy); "
                         f"with output={output!r} the readout is outside the energy: drop output_activation")
    return get_activation(name)


def _linear(layer: nn.Linear, s: torch.Tensor) -> torch.Tensor:
    """``layer(s)``; for complex ``s`` the real weights are cast to its dtype."""
    if not s.is_complex():
        return layer(s)
    return F.linear(s, like(layer.weight, s), like(layer.bias, s))


def _log_softmax(z: torch.Tensor) -> torch.Tensor:
    """``log_softmax`` over the last dim, also for complex logits (holomorphic extension)."""
    if not z.is_complex():
        return F.log_softmax(z, dim=-1)
    return z - torch.logsumexp(z, dim=-1, keepdim=True)


# the activations ``fused_relax`` applies in place (tensor method, arguments; None: nothing to do),
# and the methods whose HopfieldMLP versions it stands for
_CLAMP01 = ("clamp_", (0.0, 1.0))
_IN_PLACE = {HardSigmoid: _CLAMP01, Sigmoid: ("sigmoid_", ()), Linear: None}
_FUSED_USES = ("context", "drive", "feedback_weight", "layer_update", "update_groups", "activation_of",
               "cost_grad", "output", "prepare_targets", "prepare_input", "init_state", "output_index")
