"""Generalized EP on vector-field models, and Jacobian homeostasis (Laborieux & Zenke 2024).

The estimators themselves are the ordinary rules: ``EP`` (one-sided or centered) and
``HolomorphicEP`` run unchanged on a ``VectorFieldMLP``, because they contrast
``model.contrast_energy``, which for a vector field is its pseudo-energy (see
``eqprop.models.vector_field``). As the nudge goes to zero their estimate becomes

    -(dF/dtheta)^T ds*/dbeta + dC/dtheta = -(dF/dtheta)^T J^{-1} dC/ds + dC/dtheta

while implicit differentiation of ``F(s*) = 0`` gives the true gradient with ``J^{-T}`` in place
of ``J^{-1}`` (``J = dF/ds`` at the fixed point): they agree when ``J`` is symmetric.

Jacobian homeostasis adds ``lambda * ||J - J^T||_F^2`` to the objective. With independent
standard normal probes ``e, e'``, ``E[(e'.(J e) - e.(J e'))^2] = ||J - J^T||_F^2``, so two
Jacobian-vector products per probe give an unbiased estimate that is differentiable in the
parameters (``homeostasis_loss``). ``add_homeostasis_grad`` adds its gradient to ``.grad``,
as the trainer does when the config sets ``homeostasis: lambda``.
"""
from __future__ import annotations

import torch

from .base import trainable


def _jvp_field(model, x, state):
    ctx = model.context(x)

    def field(*s):
        return tuple(model.vector_field(x, list(s), ctx=ctx))

    return field


def homeostasis_loss(model, x, state, probes: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Unbiased estimate of ``mean_batch ||J - J^T||_F^2`` at ``state``, differentiable in theta.

    ``J`` is the Jacobian of ``model.vector_field`` with respect to the free state, one per
    sample. ``probes`` pairs of random vectors are averaged.
    """
    if not hasattr(model, "vector_field"):
        raise ValueError(f"Jacobian homeostasis needs a vector-field model (e.g. VectorFieldMLP), got {type(model).__name__}")
    s = tuple(t.detach() for t in state)
    field = _jvp_field(model, x, s)
    total = 0.0
    for _ in range(probes):
        e = tuple(torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device) for t in s)
        e2 = tuple(torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device) for t in s)
        with torch.enable_grad():
            _, je = torch.func.jvp(field, s, e)
            _, je2 = torch.func.jvp(field, s, e2)
            a = sum((b * j).flatten(1).sum(1) for b, j in zip(e2, je)) - sum((b * j).flatten(1).sum(1) for b, j in zip(e, je2))
            total = total + (a * a).mean()
    return total / probes


def add_homeostasis_grad(model, x, state, coef: float, probes: int = 1, generator=None) -> float:
    """Add ``coef * d/dtheta homeostasis_loss`` to each parameter's ``.grad``; returns the loss."""
    params = [p for _, p in trainable(model)]
    with torch.enable_grad():
        loss = homeostasis_loss(model, x, state, probes=probes, generator=generator)
        grads = torch.autograd.grad(coef * loss, params, allow_unused=True)
    for p, g in zip(params, grads):
        if g is None:
            continue
        if p.grad is None:
            p.grad = g.detach().clone()
        else:
            p.grad.add_(g)
    return float(loss.detach())
