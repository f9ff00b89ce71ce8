"""What every learning rule shares: its result type, ``.grad`` writing and the energy contrast.

A rule is configuration only (a dataclass) with one method that matters,
``estimate(model, x, y) -> (grads, StepResult)``: ``grads`` maps each trainable parameter's name
(as in ``model.named_parameters()``) to the rule's estimate of ``dL/dtheta`` where
``L = mean_batch C(s*_0, y)``. ``step`` adds those estimates to ``p.grad`` like ``backward`` would.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..dynamics import MODES, Relaxed, relax


@dataclass
class StepResult:
    """What a rule returns for one batch.

    loss: mean cost at the free state (scalar, detached).
    output: the model's prediction at the free state, (B, num_outputs), detached.
    state: the free state (list of detached tensors), e.g. for warm starts.
    stats: numbers about the step (sweeps used, residuals, the beta used, ...).
    """

    loss: torch.Tensor
    output: torch.Tensor
    state: list
    stats: dict = field(default_factory=dict)


def trainable(model) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def as_grad_dict(model, grads) -> dict[str, torch.Tensor]:
    """Pair gradients (in ``trainable`` order, ``None`` for unused) with names; None -> zeros."""
    return {
        n: (torch.zeros_like(p) if g is None else g.detach())
        for (n, p), g in zip(trainable(model), grads)
    }


def energy_contrast(model, x, y, a, beta_a, b, beta_b, scale: float) -> dict[str, torch.Tensor]:
    """``scale * d/dtheta [F_{beta_a}(s_a) - F_{beta_b}(s_b)]`` summed over the batch, states fixed.

    ``F_beta = E + beta * C``. Every EP-family estimator is one such contrast: e.g. centered EP is
    ``a = s*_{+beta}, b = s*_{-beta}, scale = 1 / (2 beta B)``.
    """
    params = [p for _, p in trainable(model)]
    a = [t.detach() for t in a]
    b = [t.detach() for t in b]
    with torch.enable_grad():
        diff = model.total_energy(x, a, y, beta_a).sum() - model.total_energy(x, b, y, beta_b).sum()
        grads = torch.autograd.grad(diff * scale, params, allow_unused=True)
    return as_grad_dict(model, grads)


@dataclass
class Rule:
    """Base of all rules: the free-phase budget and relaxation mode every rule needs."""

    name: ClassVar[str] = "rule"
    free_steps: int = 30
    mode: str = "async"
    tol: float | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown relaxation mode {self.mode!r}; valid modes: {', '.join(MODES)}")
        if self.free_steps < 1:
            raise ValueError(f"free_steps must be >= 1, got {self.free_steps}")

    def estimate(self, model, x, y) -> tuple[dict[str, torch.Tensor], StepResult]:
        raise NotImplementedError

    def step(self, model, x, y) -> StepResult:
        """Estimate the gradient and add it to each parameter's ``.grad``."""
        grads, result = self.estimate(model, x, y)
        for n, p in trainable(model):
            g = grads[n]
            if p.grad is None:
                p.grad = g.clone()
            else:
                p.grad.add_(g)
        return result

    @torch.no_grad()
    def infer(self, model, x, y, steps: int | None = None) -> StepResult:
        """Inference only (evaluation): the free phase and its loss/prediction, no gradient.

        ``steps`` overrides ``free_steps`` (e.g. a longer budget at test time).
        """
        free = relax(model, x, steps=steps or self.free_steps, mode=self.mode, tol=self.tol)
        return self.result(model, y, free)

    # -- shared pieces -----------------------------------------------------------------------
    def free_phase(self, model, x, ctx) -> Relaxed:
        return relax(model, x, steps=self.free_steps, mode=self.mode, tol=self.tol, ctx=ctx)

    def result(self, model, y, free: Relaxed, **stats) -> StepResult:
        with torch.no_grad():
            loss = model.cost(free.state, y).mean()
            out = model.output(free.state)
        stats = {"free_steps": free.steps, "free_residual": free.residual, **stats}
        return StepResult(loss=loss.detach(), output=out.detach(), state=[s.detach() for s in free.state], stats=stats)
