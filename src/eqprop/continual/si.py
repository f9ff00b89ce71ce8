"""Synaptic intelligence (Zenke, Poole & Ganguli 2017).

During a task each parameter accumulates its contribution to the drop of the task loss, the path
integral of the gradient along the parameter's trajectory,

    omega_i = - sum_steps g_i(t) * (theta_i(t+1) - theta_i(t))  ~  - int g_i dtheta_i,

with ``g`` the gradient of the *task* loss alone (the penalty's part is taken off). At the end of
the task the importance grows by ``Omega_i += omega_i / ((Delta theta_i)^2 + xi)``, ``Delta`` the
parameter's net change over the task, the anchor moves to ``theta*``, and later tasks pay

    L_SI = c sum_i Omega_i (theta_i - theta*_i)^2,

added through its gradient ``2 c Omega (theta - theta*)`` (``add_penalty_grad``). Call order per
batch: ``loss.backward(); si.before_step(); si.add_penalty_grad(); opt.step(); si.after_step()``.
"""
from __future__ import annotations

import torch

__all__ = ["SynapticIntelligence"]


class SynapticIntelligence:
    """SI on ``params`` (e.g. ``model.binary_parameters()``); ``c`` the penalty strength, ``xi`` the damping."""

    def __init__(self, params, c: float = 0.1, xi: float = 0.1):
        self.params = list(params)
        if not c >= 0 or not xi > 0:
            raise ValueError(f"SI needs c >= 0 and xi > 0; got c={c}, xi={xi}")
        self.c, self.xi = float(c), float(xi)
        self.omega = [torch.zeros_like(p) for p in self.params]       # this task's path integral
        self.importance = [torch.zeros_like(p) for p in self.params]  # Omega
        self.anchor = [p.detach().clone() for p in self.params]       # theta* (start of the task)
        self._grad: list[torch.Tensor] | None = None
        self._before: list[torch.Tensor] | None = None

    def penalty(self) -> torch.Tensor:
        return self.c * sum((w * (p.detach() - a) ** 2).sum() for p, w, a in zip(self.params, self.importance, self.anchor))

    @torch.no_grad()
    def before_step(self) -> None:
        """Record the task loss's gradient and the parameters before the optimizer moves them."""
        self._grad = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in self.params]
        self._before = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def add_penalty_grad(self) -> None:
        for p, w, a in zip(self.params, self.importance, self.anchor):
            g = 2 * self.c * w * (p - a)
            p.grad = g if p.grad is None else p.grad.add_(g)

    @torch.no_grad()
    def after_step(self) -> None:
        if self._grad is None:
            raise RuntimeError("SynapticIntelligence.after_step() needs before_step() first (after loss.backward())")
        for o, g, b, p in zip(self.omega, self._grad, self._before, self.params):
            o.sub_(g * (p - b))
        self._grad = self._before = None

    @torch.no_grad()
    def after_task(self, model=None, x=None, y=None) -> None:
        for w, o, a, p in zip(self.importance, self.omega, self.anchor, self.params):
            w.add_(o / ((p - a) ** 2 + self.xi))
            o.zero_()
            a.copy_(p)

    def state_dict(self) -> dict:
        return {"omega": self.omega, "importance": self.importance, "anchor": self.anchor}

    def load_state_dict(self, state: dict) -> None:
        for k in ("omega", "importance", "anchor"):
            for mine, theirs in zip(getattr(self, k), state[k]):
                mine.copy_(theirs)
