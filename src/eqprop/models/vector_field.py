"""Asymmetric (vector-field) networks: forward and feedback couplings are separate parameters
(Scellier et al. 2018; Laborieux & Zenke 2024; REFERENCES §2).

Layers ``s_0 = x``, free ``s_1 .. s_n``. Forward couplings ``W_k`` (``layers[k]``, shape
``(d_{k+1}, d_k)``, as in ``HopfieldMLP``) and feedback couplings ``B_k`` (``feedback[k]``, same
shape as ``W_{k+1}``, carrying layer ``k+2`` down to layer ``k+1``). The dynamics

    s_i <- sigma(u_i),   u_i = W_{i-1} s_{i-1} + b_{i-1} + B_{i-1}^T s_{i+1}     (+ nudge force)

settle at a zero of the vector field ``F_i(s) = -G'(s_i) + u_i(s)``. With ``B_k = W_{k+1}`` this
is ``F = -dE/ds`` of the Hopfield energy; otherwise no energy exists. The Jacobian's asymmetry
is that of the couplings: ``J - J^T`` has the blocks ``W_{k+1} - B_k`` and their transposes, so
``||J - J^T||_F^2 = 2 sum_k ||W_{k+1} - B_k||_F^2`` (``jacobian_asymmetry``).

The knob ``asymmetry`` is the angle (degrees) between each ``B_k`` and ``W_{k+1}`` at
initialisation (same norm): 0 is the symmetric Hopfield network, 90 independent feedback.

``VectorFieldConv`` is the same for the convolutional Hopfield network (``ConvHopfield``): the
transposed convolutions and the dense feedback use their own kernels ``feedback[k]``.

The EP-family rules run on these models as *generalized EP*: they contrast the pseudo-energy

    Psi_beta(s; s_bar) = - sum_i s_i . u_i(theta, s_bar) + beta C(theta, s_bar)

(``contrast_energy``; ``s_bar`` = free state), whose parameter derivative contrasted between
nudged states is ``-(dF/dtheta)^T ds*/dbeta + dC/dtheta``: exact when ``J`` is symmetric,
biased by ``J - J^T`` otherwise.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .conv import ConvHopfield
from .hopfield import HopfieldMLP


class VectorFieldModel:
    """What every vector-field model shares (mixed into a layered model whose ``drive(i, state,
    ctx)`` reads its feedback weights through a hook, ``feedback_weight`` / ``feedback_kernel``,
    that the vector-field class points at its own ``feedback`` parameters): pseudo-energy,
    vector field, asymmetry knob and measurements. ``layer_update`` is the layered model's:
    ``sigma(drive + force)``."""

    homeostasis: float = 0.0      # coefficient of the Jacobian homeostasis loss (training callback)
    homeostasis_probes: int = 1   # random probe pairs of its estimate, per batch

    def callbacks(self) -> list:
        """What training this model adds: ``jacobian_asymmetry`` logged per epoch (MLP), and the
        homeostasis regulariser when ``homeostasis > 0``."""
        from .homeostasis import AsymmetryLog, Homeostasis

        out = [AsymmetryLog()] if hasattr(self, "jacobian_asymmetry") else []
        if self.homeostasis:
            out.append(Homeostasis(self.homeostasis, self.homeostasis_probes))
        return out

    def feedback_pairs(self) -> list[tuple[torch.Tensor, nn.Parameter]]:
        """``(forward weight, feedback weight)`` for every coupling that has feedback."""
        raise NotImplementedError

    @torch.no_grad()
    def set_asymmetry(self, angle: float, seed: int | None = None) -> None:
        """Set each feedback ``B = cos(a) W + sin(a) R`` with ``R`` random, orthogonal to the
        forward ``W`` and of the same norm: the angle between ``B`` and ``W`` is ``a`` degrees."""
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        a = math.radians(angle)
        for w, b in self.feedback_pairs():
            r = torch.randn(w.shape, generator=gen, dtype=torch.float64).to(w)
            r = r - (r * w).sum() / (w * w).sum() * w
            r = r * (w.norm() / r.norm())
            b.copy_(math.cos(a) * w + math.sin(a) * r)
        self.asymmetry = float(angle)

    @torch.no_grad()
    def asymmetry_angles(self) -> list[float]:
        """Angle in degrees between each feedback weight and its forward weight now."""
        out = []
        for w, b in self.feedback_pairs():
            c = float((w * b).sum() / (w.norm() * b.norm()))
            out.append(math.degrees(math.acos(max(-1.0, min(1.0, c)))))
        return out

    def vector_field(self, x, state, ctx=None) -> list[torch.Tensor]:
        """``F_i(s) = -G'(s_i) + u_i(s)`` for every free layer (zero at a fixed point)."""
        ctx = self.context(x) if ctx is None else ctx
        return [-self.activation_of(i).inverse(s) + self.drive(i, state, ctx) for i, s in enumerate(state)]

    def energy(self, x, state):
        raise NotImplementedError(
            f"a {type(self).__name__} with untied feedback has no energy; the EP-family rules use "
            "contrast_energy (the vector field's pseudo-energy) instead"
        )

    def autograd_layer_update(self, i, state, ctx, force=None):
        """Reference update by autograd of the pseudo-energy ``-s . u(s_bar)`` in ``s_i``."""
        track = torch.is_grad_enabled()  # differentiable in the anchor and theta under BPTT/RBP
        with torch.enable_grad():
            s = [t.detach().requires_grad_(j == i) for j, t in enumerate(state)]
            anchor = list(state) if track else [t.detach() for t in state]
            psi = self.contrast_energy(ctx.x, s, anchor=anchor).sum()
            u = -torch.autograd.grad(psi, s[i], create_graph=track)[0]
        return self.activation_of(i)(u if force is None else u + force.view_as(u))

    def contrast_energy(self, x, state, y=None, beta=0.0, anchor=None):
        """``Psi_beta(s; s_bar) = -sum_i s_i . u_i(s_bar) + beta C(s_bar)`` per sample (B,).

        Linear in ``state``: contrasted between nudged states it gives generalized EP.
        ``anchor`` (``s_bar``) defaults to ``state``.
        """
        anchor = state if anchor is None else anchor
        ctx = self.context(x)
        psi = 0.0
        for i, s in enumerate(state):
            psi = psi - (s * self.drive(i, anchor, ctx)).flatten(1).sum(-1)
        if isinstance(beta, torch.Tensor) or beta != 0.0:
            psi = psi + beta * self.cost(anchor, y)
        return psi


class VectorFieldMLP(VectorFieldModel, HopfieldMLP):
    """``HopfieldMLP`` with untied feedback couplings.

    Args:
        sizes, activation, output, gains: as ``HopfieldMLP``.
        asymmetry: angle in degrees between ``B_k`` and ``W_{k+1}`` at initialisation.
        seed: seed of the random direction used to build the asymmetric part (default: torch's
            global generator).
        homeostasis: coefficient ``lambda`` of ``lambda ||J - J^T||_F^2`` added during training
            (``eqprop.models.homeostasis``); homeostasis_probes: probe pairs of its estimate.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "hard_sigmoid", output: str = "mse",
                 gains: Sequence[float] | None = None, asymmetry: float = 0.0, seed: int | None = None,
                 homeostasis: float = 0.0, homeostasis_probes: int = 1):
        HopfieldMLP.__init__(self, sizes, activation=activation, output=output, gains=gains)
        self.homeostasis, self.homeostasis_probes = float(homeostasis), int(homeostasis_probes)
        self.feedback = nn.ParameterList(
            nn.Parameter(torch.empty_like(self.layers[k + 1].weight)) for k in range(self.num_free_layers - 1)
        )
        self.set_asymmetry(asymmetry, seed=seed)

    def feedback_pairs(self):
        return [(self.layers[k + 1].weight, b) for k, b in enumerate(self.feedback)]

    @torch.no_grad()
    def jacobian_asymmetry(self) -> float:
        """``||J - J^T||_F`` of the vector field (per sample; the same at every state)."""
        return math.sqrt(2 * sum(float(((w - b) ** 2).sum()) for w, b in self.feedback_pairs()))

    def feedback_weight(self, i: int) -> torch.Tensor:
        """``B_i``: the drive ``u_i`` (``HopfieldMLP.drive``) gets ``B_i^T s_{i+1}`` from above."""
        return self.feedback[i]

    def extra_repr(self) -> str:
        return HopfieldMLP.extra_repr(self) + f", asymmetry={self.asymmetry:g}"


class VectorFieldConv(VectorFieldModel, ConvHopfield):
    """``ConvHopfield`` with untied feedback: the transposed convolution into layer ``k`` uses
    its own kernel ``feedback[k-1]`` (same shape as ``convs[k].weight``), and, with
    ``output="mse"``, the dense output feeds back through ``feedback[-1]`` instead of
    ``dense.weight^T``. Args as ``ConvHopfield``, plus ``asymmetry`` and ``seed`` as
    ``VectorFieldMLP``. Jacobian homeostasis uses the JVP estimate (``homeostasis_loss``).
    """

    def __init__(self, in_shape, channels, num_outputs, pool: str = "max", activation: str = "hard_sigmoid",
                 output: str = "mse", gains=None, asymmetry: float = 0.0, seed: int | None = None):
        ConvHopfield.__init__(self, in_shape, channels, num_outputs, pool=pool, activation=activation,
                              output=output, gains=gains)
        fwd = [c.weight for c in self.convs[1:]] + ([self.dense.weight] if self.dense is not None else [])
        self.feedback = nn.ParameterList(nn.Parameter(torch.empty_like(w)) for w in fwd)
        self.set_asymmetry(asymmetry, seed=seed)

    def feedback_pairs(self):
        fwd = [c.weight for c in self.convs[1:]] + ([self.dense.weight] if self.dense is not None else [])
        return list(zip(fwd, self.feedback))

    def feedback_kernel(self, k: int) -> torch.Tensor:
        """``feedback[k - 1]`` in place of ``convs[k].weight`` (``ConvHopfield.drive``); the dense
        output's feedback is ``feedback[-1]``."""
        return self.feedback[-1] if k == len(self.channels) else self.feedback[k - 1]

    @property
    def holomorphic(self) -> bool:
        return ConvHopfield.holomorphic.fget(self)

    def extra_repr(self) -> str:
        return ConvHopfield.extra_repr(self) + f", asymmetry={self.asymmetry:g}"


def tied_hopfield(model: VectorFieldMLP) -> HopfieldMLP:
    """The symmetric ``HopfieldMLP`` with ``model``'s forward weights (feedback dropped)."""
    h = HopfieldMLP(model.sizes, activation=model.activation.name, output=model.output_kind)
    h = h.to(dtype=model.param_dtype, device=model.param_device)
    h.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("feedback")})
    return h
