"""The exact gradients every estimator is checked against.

- ``BPTT``: backpropagation through the last ``backprop_steps`` sweeps of the free relaxation
  (truncated BPTT, "TBP" in the comparative study): the first ``free_steps - backprop_steps``
  sweeps run without a graph, the last ``backprop_steps`` with one. ``backprop_steps=None`` is
  full BPTT, through every sweep of the relaxation. On a sequence model (HSSM) it is autograd
  through every time step.
- ``RBP``: recurrent backprop (Almeida-Pineda), i.e. implicit differentiation at the free fixed
  point ``s* = f(s*)`` of the sweep map ``f``: solve ``lambda = dC/ds + J^T lambda`` with
  ``J = df/ds(s*)`` by fixed-point iteration, then ``dL/dtheta = (df/dtheta)^T lambda + dC/dtheta``.
  It is exact for converged relaxations whatever the mode, since the fixed point is the same.

``relax_dtype``: RBP settles the free phase on the low-precision copy and solves the adjoint at
that state on the master weights; BPTT runs the sweeps it does not differentiate on the copy (so
it needs ``backprop_steps``: full BPTT differentiates every sweep, in the parameters' dtype).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..dynamics import Relaxed, UnsettledError, iterate, relax, sweep
from ..precision import cast_state
from .base import RelaxationRule, as_grad_dict, trainable
from .sequence import is_sequence_model, sequence_bptt, sequence_infer


@dataclass
class BPTT(RelaxationRule):
    """Backpropagation through time, truncated to the last ``backprop_steps`` sweeps of the free
    relaxation; ``backprop_steps=None`` (default) is full BPTT through all ``free_steps`` sweeps.

    On a sequence model (``HSSM``): autograd through every time step (the relaxation settings
    are then unused).
    """

    name: ClassVar[str] = "bptt"
    backprop_steps: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.backprop_steps is not None and self.backprop_steps < 1:
            raise ValueError(f"backprop_steps must be >= 1 (or None: full BPTT), got {self.backprop_steps}")
        if self.relax_dtype is not None and self.backprop_steps is None:
            raise ValueError(
                f"bptt: relax_dtype={self.relax_dtype!r} applies to the sweeps BPTT does not differentiate, "
                f"and full BPTT (backprop_steps=None) differentiates all of them in the parameters' dtype; "
                f"set backprop_steps (truncated BPTT) or leave relax_dtype unset"
            )

    def estimate(self, model, x, y):
        if is_sequence_model(model):  # sequence models (HSSM): autograd through every time step
            return sequence_bptt(model, x, y)
        k = self.free_steps if self.backprop_steps is None else min(self.backprop_steps, self.free_steps)
        params = [p for _, p in trainable(model)]
        system = self.relaxer(model)
        start = relax(system, x, steps=self.free_steps - k, mode=self.mode, tol=self.tol, capture=self.capture)
        with torch.enable_grad():
            ctx = model.context(x)
            state = [s.detach() for s in cast_state(start.state, model)]
            free = relax(model, x, state, steps=k, mode=self.mode, ctx=ctx, track_graph=True)
            loss = model.cost(free.state, y).mean()
            if not loss.requires_grad:
                raise ValueError(_not_differentiable(model, "bptt"))
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        if params and all(g is None for g in grads):
            raise ValueError(_not_differentiable(model, "bptt"))
        return as_grad_dict(model, grads), self.result(model, y, free, backprop_steps=k)

    def check_model(self, model) -> None:
        if not is_sequence_model(model):
            super().check_model(model)

    def infer(self, model, x, y, steps=None):
        if is_sequence_model(model):
            return sequence_infer(model, x, y)
        return super().infer(model, x, y, steps)


@dataclass
class RBP(RelaxationRule):
    """Implicit differentiation at the free fixed point (recurrent backprop).

    adjoint_steps: iterations of the adjoint fixed point (default: ``free_steps``).
    adjoint_tol: stop once an iteration changes ``lambda`` by at most this (default: ``tol``).
    resettle: when the adjoint iteration grows instead of settling (its last change above its
        first), the free state is not a stable fixed point: the sweep's Jacobian has a spectral
        radius >= 1 there, as near a saddle that a relaxation can linger by with a last-sweep change
        of 1e-6 (docs/compare.md). The implicit gradient there is not that of the fixed point the
        relaxation is heading to, and can be huge. Then the free phase runs ``free_steps`` sweeps
        more from where it stopped (a whole block, whatever ``tol``) and the adjoint is solved
        again, at most ``resettle`` times; still growing, an ``UnsettledError``. 0: never (the
        adjoint's result is returned as is). Growth needs two adjoint iterations to be seen.
    """

    name: ClassVar[str] = "rbp"
    # a run recorded before resettle existed never resettled (config.resolve_recorded)
    absent_means: ClassVar[dict] = {"resettle": 0}
    adjoint_steps: int | None = None
    adjoint_tol: float | None = None
    resettle: int = 10

    def __post_init__(self):
        super().__post_init__()
        if self.resettle < 0:
            raise ValueError(f"resettle must be >= 0, got {self.resettle}")

    def estimate(self, model, x, y):
        params = [p for _, p in trainable(model)]
        system, ctx, free = self.settle(model, x)
        for attempt in range(self.resettle + 1):
            grads, done, first, last = self.implicit_gradient(model, x, y, free.state, params)
            growing = last > first or (math.isnan(last) and not math.isnan(first))
            if not growing or self.resettle == 0:
                break
            if attempt == self.resettle:
                raise UnsettledError(
                    f"rbp: after {free.steps} free sweeps the adjoint iteration still grows (its change "
                    f"{first:.3g} at the first iteration, {last:.3g} at iteration {done}): the free state is "
                    f"not a stable fixed point of the sweep. Raise rule.free_steps (now {self.free_steps}) or "
                    f"rule.resettle (now {self.resettle}) if the relaxation is still on its way (a rule.tol, now "
                    f"{self.tol}, may have stopped it by a saddle), or lower the learning rate if the network has "
                    f"lost its stable fixed points")
            # on from where it stopped, a whole block: a saddle's small last-sweep change would stop
            # a relaxation with a tolerance at once
            more = relax(system, x, free.state, steps=self.free_steps, mode=self.mode, ctx=ctx, capture=self.capture)
            free = Relaxed(state=more.state, steps=free.steps + more.steps, residual=more.residual)
        return as_grad_dict(model, grads), self.result(model, y, free, adjoint_steps=done, adjoint_change=last,
                                                       resettled=attempt)

    def implicit_gradient(self, model, x, y, state, params):
        """``(grads, adjoint iterations, first change, last change)`` at the free ``state``."""
        tol = self.tol if self.adjoint_tol is None else self.adjoint_tol
        steps = self.free_steps if self.adjoint_steps is None else self.adjoint_steps
        with torch.enable_grad():
            ctx = model.context(x)  # with the graph to the input couplings
            s = [t.detach().requires_grad_(True) for t in cast_state(state, model)]
            fs = sweep(model, s, ctx, self.mode)
            if not any(t.requires_grad for t in fs):
                raise ValueError(_not_differentiable(model, "rbp"))
            cost = model.cost(s, y).mean()
            dc_ds = _grads(cost, s)
            dc_dtheta = torch.autograd.grad(cost, params, retain_graph=True, allow_unused=True)
            changes = []
            lam, done, last = adjoint(fs, s, dc_ds, steps, tol, changes)
            f_theta = torch.autograd.grad(fs, params, grad_outputs=lam, allow_unused=True)
        if params and all(g is None for g in f_theta):  # the sweep does not depend on theta: never zeros
            raise ValueError(_not_differentiable(model, "rbp"))
        grads = [
            None if a is None and b is None else (0 if a is None else a) + (0 if b is None else b)
            for a, b in zip(f_theta, dc_dtheta)
        ]
        return grads, done, (changes[0] if changes else math.nan), last


def adjoint(fs, s, rhs, steps: int, tol: float | None, changes: list | None = None):
    """Solve ``lambda = rhs + J^T lambda`` (``J = dfs/ds``, graph kept) by fixed-point iteration
    from ``lambda = rhs``; returns ``(lambda, iterations, last change)``; ``changes``, if given,
    receives every iteration's change."""
    return iterate(lambda lam: [c + j for c, j in zip(rhs, _grads(fs, s, lam))], rhs, steps, tol, measure=True,
                   history=changes)


def _not_differentiable(model, rule: str) -> str:
    return (
        f"{rule}: one sweep of {type(model).__name__} carries no autograd graph to the state and the "
        f"parameters, so its gradient would be zero. layer_update must be differentiable when grad mode "
        f"is on (e.g. no .detach() or torch.no_grad inside; an autograd update needs create_graph="
        f"torch.is_grad_enabled(), as EnergyModel.autograd_layer_update does)"
    )


def _grads(outputs, inputs, grad_outputs=None):
    """Vector-Jacobian product that keeps the graph and returns zeros for unused inputs."""
    if isinstance(outputs, torch.Tensor):
        outputs, grad_outputs = [outputs], None
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs or [None] * len(outputs)) if o.requires_grad]
    gs = torch.autograd.grad(
        [o for o, _ in pairs], inputs,
        grad_outputs=None if grad_outputs is None else [g for _, g in pairs],
        retain_graph=True, allow_unused=True,
    )
    return [torch.zeros_like(i) if g is None else g for g, i in zip(gs, inputs)]
