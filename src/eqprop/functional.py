"""Two functions for checking a rule by hand: its gradient estimate and the loss it estimates."""
from __future__ import annotations

import torch

from .dynamics import relax
from .rules import Rule, make_rule


def gradients(model, x: torch.Tensor, y: torch.Tensor, rule: Rule | str, **settings) -> dict[str, torch.Tensor]:
    """The rule's estimate of ``dL/dtheta``, keyed like ``model.named_parameters()``.

    Neither ``.grad`` nor the weights are touched. ``rule`` is a rule object or its string name
    (then built with ``settings``, e.g. ``beta=0.1, free_steps=100``).
    """
    rule = make_rule(rule, **settings)
    grads, _ = rule.estimate(model, x, y)
    return grads


@torch.no_grad()
def equilibrium_loss(
    model, x: torch.Tensor, y: torch.Tensor, steps: int = 1000, tol: float | None = 1e-12, mode: str = "async"
) -> torch.Tensor:
    """Mean cost at the free fixed point, ``L(theta) = mean_batch C(s*_0(theta), y)``.

    Its finite differences in ``theta`` are the true gradient that the rules estimate; use float64
    and a converged relaxation (enough ``steps``, small ``tol``) for that.
    """
    free = relax(model, x, steps=steps, mode=mode, tol=tol)
    return model.cost(free.state, y).mean()
