"""Generalized EP on vector-field models, and Jacobian homeostasis (Laborieux & Zenke 2024).

The estimators themselves are the ordinary rules: ``EP`` (one-sided or centered) and
``HolomorphicEP`` run unchanged on a ``VectorFieldMLP``, because they contrast
``model.contrast_energy``, which for a vector field is its pseudo-energy (see
``eqprop.models.vector_field``). As the nudge goes to zero their estimate becomes

    -(dF/dtheta)^T ds*/dbeta + dC/dtheta = -(dF/dtheta)^T J^{-1} dC/ds + dC/dtheta

while implicit differentiation of ``F(s*) = 0`` gives the true gradient with ``J^{-T}`` in place
of ``J^{-1}`` (``J = dF/ds`` at the fixed point): they agree when ``J`` is symmetric.

Jacobian homeostasis (now in ``eqprop.models.homeostasis``, re-exported here) adds ``lambda * ||J - J^T||_F^2`` to the objective. With independent
standard normal probes ``e, e'``, ``E[(e'.(J e) - e.(J e'))^2] = ||J - J^T||_F^2``, so two
Jacobian-vector products per probe give an unbiased estimate that is differentiable in the
parameters (``homeostasis_loss``). ``add_homeostasis_grad`` adds its gradient to ``.grad``,
as the trainer does when the config sets ``homeostasis: lambda``.
"""
from __future__ import annotations

from ..models.homeostasis import add_homeostasis_grad, homeostasis_loss

__all__ = ["add_homeostasis_grad", "homeostasis_loss"]
