"""Equilibrium propagation and its contrastive relatives (REFERENCES §1).

All contrast ``dF/dtheta`` at two settled states (``F_beta = E + beta C``):

- EP positive: ``(dF_b/dtheta(s*_b) - dE/dtheta(s*_0)) / b``            bias O(b)
- EP negative: ``(dE/dtheta(s*_0) - dF_-b/dtheta(s*_-b)) / b``          bias O(b)
- EP centered: ``(dF_b/dtheta(s*_b) - dF_-b/dtheta(s*_-b)) / (2b)``     bias O(b^2)
- EP random:   positive or negative, the sign drawn per batch
- CL:   output clamped to ``y``: ``dE/dtheta(s_clamped) - dE/dtheta(s*_0)``
- CpL:  output clamped to ``o + eta (y - o)`` (``o`` the free output), contrasted like EP
  with ``eta = beta`` in place of ``b`` (Stern et al. 2021).

The nudged / clamped phases start from the free equilibrium and run ``nudge_steps`` sweeps.
On a vector-field model (no energy) the same rules are *generalized* EP: the contrast is taken
of the model's ``contrast_energy``, the vector field's pseudo-energy around the free state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..dynamics import Clamp, Nudge, nudge_targets, relax
from ..models.base import one_hot_targets
from ..precision import cast_state
from .base import RelaxationRule, check_nudge, energy_contrast
from .warm_start import WarmStartable

VARIANTS = ("positive", "negative", "centered")


@dataclass
class _TwoPhase(WarmStartable, RelaxationRule):
    """A free phase, then one or two perturbed phases from the free state."""

    beta: float = 0.2
    nudge_steps: int = 10
    variant: str = "centered"
    variants: ClassVar[tuple[str, ...]] = VARIANTS

    def __post_init__(self):
        super().__post_init__()
        if self.variant not in self.variants:
            raise ValueError(
                f"unknown {type(self).__name__} variant {self.variant!r}; valid: {', '.join(self.variants)}"
            )
        check_nudge("beta", self.beta)

    def check_model(self, model):
        super().check_model(model)
        check_nudge("beta", self.beta, self.state_dtype(model))

    def signs(self) -> tuple[int, ...]:
        """Signs of the perturbed phases: +1 and/or -1."""
        return {"positive": (1,), "negative": (-1,), "centered": (1, -1)}[self.variant]

    def perturbed_phase(self, model, x, y, ctx, free, sign: int):
        raise NotImplementedError

    def contrast_beta(self, sign: int) -> float:
        """The ``beta`` with which the phase's state enters ``F`` in the contrast."""
        raise NotImplementedError

    supports_warm_start: ClassVar[bool] = True

    def estimate(self, model, x, y, state=None):
        """``state``: start the free phase there (a warm start, e.g. last epoch's free state)."""
        system, ctx, free = self.settle(model, x, state)
        signs = self.signs()
        states = {0: free.state}
        yt = nudge_targets(system, y, free.state)  # one-hot and label check once per batch
        states.update({s: self.perturbed_phase(system, x, yt, ctx, free, s) for s in signs})
        states = {k: cast_state(v, model) for k, v in states.items()}
        hi, lo = max(states), min(states)  # (+1, -1) centered, (+1, 0) positive, (0, -1) negative
        ba = self.contrast_beta(hi) if hi else 0.0
        bb = self.contrast_beta(lo) if lo else 0.0
        scale = 1.0 / ((hi - lo) * self.beta * x.shape[0])
        grads = energy_contrast(model, x, y, states[hi], ba, states[lo], bb, scale, anchor=states[0])
        signed_beta = self.beta * signs[0] if len(signs) == 1 else self.beta
        return grads, self.result(model, y, free, beta=signed_beta)


@dataclass
class EP(_TwoPhase):
    """Equilibrium propagation: nudge the output with ``+-beta * C``.

    ``variant``: "positive", "negative", "centered" (default) or "random" (sign drawn per batch
    from torch's global generator).
    """

    name: ClassVar[str] = "ep"
    variants: ClassVar[tuple[str, ...]] = VARIANTS + ("random",)

    def signs(self):
        if self.variant == "random":
            return (1,) if bool(torch.rand(()) < 0.5) else (-1,)
        return super().signs()

    def perturbed_phase(self, model, x, y, ctx, free, sign):
        nudge = Nudge(sign * self.beta, y)
        return relax(model, x, free.state, steps=self.nudge_steps, mode=self.mode, nudge=nudge, tol=self.tol, ctx=ctx,
                     capture=self.capture).state

    def contrast_beta(self, sign):
        return sign * self.beta


def _require_output_in_energy(model, rule: str):
    if not getattr(model, "output_in_energy", True):
        raise ValueError(
            f"{rule} clamps the output layer, so the output must be part of the energy; "
            f"build the model with output='mse'"
        )


@dataclass
class CpL(_TwoPhase):
    """Coupled learning: clamp the output to ``o +- beta (y - o)`` and contrast energies."""

    name: ClassVar[str] = "cpl"

    def check_model(self, model):
        super().check_model(model)
        _require_output_in_energy(model, "coupled learning (CpL)")

    def perturbed_phase(self, model, x, y, ctx, free, sign):
        _require_output_in_energy(model, "coupled learning (CpL)")
        o = model.output(free.state)
        t = one_hot_targets(y, o.shape[-1], o)
        clamp = Clamp(o + sign * self.beta * (t - o))
        return relax(model, x, free.state, steps=self.nudge_steps, mode=self.mode, clamp=clamp, tol=self.tol, ctx=ctx,
                     capture=self.capture).state

    def contrast_beta(self, sign):
        return 0.0


@dataclass
class CL(WarmStartable, RelaxationRule):
    """Contrastive learning: clamp the output to the target, contrast with the free state."""

    name: ClassVar[str] = "cl"
    nudge_steps: int = 10

    def check_model(self, model):
        super().check_model(model)
        _require_output_in_energy(model, "contrastive learning (CL)")

    supports_warm_start: ClassVar[bool] = True

    def estimate(self, model, x, y, state=None):
        system, ctx, free = self.settle(model, x, state)
        o = system.output(free.state)
        clamp = Clamp(one_hot_targets(y, o.shape[-1], o))
        clamped = relax(system, x, free.state, steps=self.nudge_steps, mode=self.mode, clamp=clamp, tol=self.tol, ctx=ctx,
                        capture=self.capture)
        a, b = cast_state(clamped.state, model), cast_state(free.state, model)
        grads = energy_contrast(model, x, y, a, 0.0, b, 0.0, 1.0 / x.shape[0], anchor=b)
        return grads, self.result(model, y, free)
