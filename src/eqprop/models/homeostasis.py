"""Jacobian homeostasis (Laborieux & Zenke 2024) for vector-field models, and its training callbacks.

With independent standard normal probes ``e, e'``, ``E[(e'.(J e) - e.(J e'))^2] = ||J - J^T||_F^2``,
so two Jacobian-vector products per probe give an unbiased estimate that is differentiable in the
parameters (``homeostasis_loss``). ``add_homeostasis_grad`` adds its gradient to ``.grad``; the
``Homeostasis`` callback does so after every rule step when the model has ``homeostasis > 0``
(``model: {name: vector-field-mlp, homeostasis: 0.1}``).
"""
from __future__ import annotations

import torch

from ..callbacks import Callback


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
    params = [p for p in model.parameters() if p.requires_grad]
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


class Homeostasis(Callback):
    """Adds ``coef * d/dtheta ||J - J^T||_F^2`` at the batch's free state to ``.grad`` (before the
    optimizer steps); the mean loss of the epoch is logged as ``homeostasis_loss``."""

    def __init__(self, coef: float, probes: int = 1):
        self.coef, self.probes = coef, probes
        self._sum, self._n = 0.0, 0

    def after_step(self, trainer, batch, result):
        self._sum += add_homeostasis_grad(trainer.model, batch.x, result.state, self.coef, self.probes)
        self._n += 1

    def on_epoch_end(self, trainer, record):
        record["homeostasis_loss"] = self._sum / max(self._n, 1)
        self._sum, self._n = 0.0, 0


class AsymmetryLog(Callback):
    """Logs ``||J - J^T||_F`` of the model (``model.jacobian_asymmetry()``) every epoch."""

    def on_epoch_end(self, trainer, record):
        record["jacobian_asymmetry"] = trainer.model.jacobian_asymmetry()
