"""Continual equilibrium propagation, C-EP (Ernoult et al. 2020; REFERENCES §3).

The free phase settles with the weights fixed. In the nudged phase the weights move at *every*
step, by the change of ``dF/dtheta`` that the step caused (local in space and time):

    s_{t+1}     = sweep(s_t; theta_t, beta)
    Delta_t     = (dF_beta/dtheta(s_{t+1}; theta_t) - dF_{beta_t}/dtheta(s_t; theta_t)) / beta
    theta_{t+1} = theta_t - lr * Delta_t

(``beta_0 = 0`` for the free state, ``beta`` afterwards; averaged over the batch). For ``lr -> 0``
and ``beta -> 0`` the updates ``-Delta_t`` follow the per-step BPTT gradients (GDU property;
``eqprop.diagnostics.cep_gdu_check``); for ``lr = 0`` the rule is positive EP.

Contract with the rest of the library: ``estimate`` runs the phase with moving weights, then
*restores* them and returns the accumulated update ``U = sum_t Delta_t`` as the gradient estimate
(``eqprop.gradients`` never changes the weights). ``step`` writes ``U`` to ``.grad``; a plain SGD
optimizer (momentum 0, constant rate) with the same ``lr`` then lands exactly on C-EP's weights
``theta_K = theta_0 - lr * U``. The trainer builds it like that from ``cep_lr`` (default: the
config's ``lr``); with momentum or a schedule the optimizer treats ``U`` as any gradient estimate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch

from ..dynamics import Nudge, sweep
from ..precision import cast_state
from .base import RelaxationRule, check_nudge, energy_contrast, trainable


def coupling_rates(model, lr: float | Sequence[float]) -> list[float]:
    """One rate per trainable parameter from one rate for all or one per coupling (module)."""
    names = [n for n, _ in trainable(model)]
    groups: list[str] = []
    for n in names:
        g = n.rsplit(".", 1)[0]
        if g not in groups:
            groups.append(g)
    rates = [float(lr)] if isinstance(lr, (int, float)) else [float(v) for v in lr]
    if len(rates) == 1:
        rates = rates * len(groups)
    if len(rates) != len(groups):
        raise ValueError(f"C-EP lr has {len(rates)} values but the model has {len(groups)} couplings "
                         f"({', '.join(groups)}); give one for all or one per coupling")
    by_group = dict(zip(groups, rates))
    return [by_group[n.rsplit(".", 1)[0]] for n in names]


@dataclass
class ContinualEP(RelaxationRule):
    """C-EP: positive nudge ``beta``; weights updated with rate ``lr`` at every nudged step.

    lr: in-phase rate, one for all couplings or one per coupling (like the config's ``lr``).
    relax_dtype: the free phase and every nudged sweep run on the low-precision copy (refreshed
        from the moving master weights at each step); ``Delta_t`` is taken on the master.
    """

    name: ClassVar[str] = "cep"
    beta: float = 0.2
    nudge_steps: int = 10
    lr: float | Sequence[float] = 0.0

    def __post_init__(self):
        super().__post_init__()
        check_nudge("beta", self.beta)

    def check_model(self, model):
        super().check_model(model)
        check_nudge("beta", self.beta, self.state_dtype(model))

    def run(self, model, x, y, record: bool = False):
        """The C-EP phases; weights are left *moved*. Returns (U, per-step Deltas or None, free)."""
        params = trainable(model)
        rates = coupling_rates(model, self.lr)
        _, _, free = self.settle(model, x)
        free.state = cast_state(free.state, model)
        scale = 1.0 / (self.beta * x.shape[0])
        total = {n: torch.zeros_like(p) for n, p in params}
        steps = [] if record else None
        state, beta_prev = free.state, 0.0
        for _ in range(self.nudge_steps):
            with torch.no_grad():
                system = self.relaxer(model)  # the copy follows the moved weights
                low = cast_state(state, system)
                new = cast_state(sweep(system, low, system.context(x), self.mode, nudge=Nudge(self.beta, y)), model)
            delta = energy_contrast(model, x, y, new, self.beta, state, beta_prev, scale, anchor=free.state)
            with torch.no_grad():
                for (n, p), lr in zip(params, rates):
                    total[n] += delta[n]
                    if lr:
                        p.sub_(lr * delta[n])
            if record:
                steps.append(delta)
            state, beta_prev = new, self.beta
        return total, steps, free

    def estimate(self, model, x, y):
        saved = [p.detach().clone() for _, p in trainable(model)]
        try:
            total, _, free = self.run(model, x, y)
        finally:
            with torch.no_grad():
                for (_, p), s in zip(trainable(model), saved):
                    p.copy_(s)
        return total, self.result(model, y, free, beta=self.beta)
