"""The exact gradients every estimator is checked against.

- ``BPTT``: backpropagation through the unrolled relaxation. The first
  ``free_steps - backprop_steps`` sweeps run without a graph, the last ``backprop_steps`` with
  one ("truncated BPTT", TBP, in the comparative study); ``backprop_steps=None`` unrolls all.
- ``RBP``: recurrent backprop (Almeida-Pineda), i.e. implicit differentiation at the free fixed
  point ``s* = f(s*)`` of the sweep map ``f``: solve ``lambda = dC/ds + J^T lambda`` with
  ``J = df/ds(s*)`` by fixed-point iteration, then ``dL/dtheta = (df/dtheta)^T lambda + dC/dtheta``.
  It is exact for converged relaxations whatever the mode, since the fixed point is the same.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..dynamics import relax, sweep
from .base import Rule, as_grad_dict, trainable
from .sequence import is_sequence_model, sequence_bptt, sequence_infer


@dataclass
class BPTT(Rule):
    """Backprop through the last ``backprop_steps`` sweeps of the free relaxation."""

    name: ClassVar[str] = "bptt"
    backprop_steps: int | None = None

    def estimate(self, model, x, y):
        if is_sequence_model(model):  # sequence models (HSSM): autograd through every time step
            return sequence_bptt(model, x, y)
        k = self.free_steps if self.backprop_steps is None else min(self.backprop_steps, self.free_steps)
        params = [p for _, p in trainable(model)]
        start = relax(model, x, steps=self.free_steps - k, mode=self.mode, tol=self.tol)
        with torch.enable_grad():
            ctx = model.context(x)
            state = [s.detach() for s in start.state]
            free = relax(model, x, state, steps=k, mode=self.mode, ctx=ctx, track_graph=True)
            loss = model.cost(free.state, y).mean()
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        return as_grad_dict(model, grads), self.result(model, y, free, backprop_steps=k)

    def check_model(self, model) -> None:
        if not is_sequence_model(model):
            super().check_model(model)

    def infer(self, model, x, y, steps=None):
        if is_sequence_model(model):
            return sequence_infer(model, x, y)
        return super().infer(model, x, y, steps)


@dataclass
class RBP(Rule):
    """Implicit differentiation at the free fixed point (recurrent backprop).

    adjoint_steps: iterations of the adjoint fixed point (default: ``free_steps``).
    adjoint_tol: stop once an iteration changes ``lambda`` by at most this (default: ``tol``).
    """

    name: ClassVar[str] = "rbp"
    adjoint_steps: int | None = None
    adjoint_tol: float | None = None

    def estimate(self, model, x, y):
        params = [p for _, p in trainable(model)]
        free = self.free_phase(model, x, model.context(x))
        tol = self.tol if self.adjoint_tol is None else self.adjoint_tol
        steps = self.free_steps if self.adjoint_steps is None else self.adjoint_steps
        with torch.enable_grad():
            ctx = model.context(x)  # with the graph to the input couplings
            s = [t.detach().requires_grad_(True) for t in free.state]
            fs = sweep(model, s, ctx, self.mode)
            cost = model.cost(s, y).mean()
            dc_ds = _grads(cost, s)
            dc_dtheta = torch.autograd.grad(cost, params, retain_graph=True, allow_unused=True)
            lam, done, change = dc_ds, 0, float("nan")
            for done in range(1, steps + 1):
                jt_lam = _grads(fs, s, lam)
                new = [c + j for c, j in zip(dc_ds, jt_lam)]
                change = max(float((a - b).abs().max()) for a, b in zip(new, lam))
                lam = new
                if tol is not None and change <= tol:
                    break
            f_theta = torch.autograd.grad(fs, params, grad_outputs=lam, allow_unused=True)
        grads = [
            None if a is None and b is None else (0 if a is None else a) + (0 if b is None else b)
            for a, b in zip(f_theta, dc_dtheta)
        ]
        return as_grad_dict(model, grads), self.result(model, y, free, adjoint_steps=done, adjoint_change=change)


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
