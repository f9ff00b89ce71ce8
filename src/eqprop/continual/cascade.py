"""A Benna-Fusi cascade synapse (Benna & Fusi 2016) driven by Adam.

Each weight is the first of ``n`` coupled hidden variables ("beakers") ``u_1 = W, u_2, ..., u_n``
with capacities ``C_k`` (``areas``) joined by conductances ``g_k`` (``couplings``; ``g_k`` joins
``u_k`` and ``u_{k+1}``, the last one leaks to ``u_{n+1} = 0``). A step moves ``u_1`` by Adam's
update ``Delta`` and lets the chain diffuse (explicit Euler, time step 1, old values on the right):

    u_1 <- u_1 + Delta + g_1 (u_2 - u_1) / C_1
    u_k <- u_k + [ g_{k-1} (u_{k-1} - u_k) + g_k (u_{k+1} - u_k) ] / C_k,      k = 2 .. n.

With geometric capacities and conductances (defaults: ``C = 1, 2, 4, 8``, ``g = 1e-2 .. 1e-5``,
Laborieux et al. 2021's beaker settings) a change of ``u_1`` is remembered on the timescales
``C_k / g_k``; without the leak, ``sum_k C_k u_k`` only changes by ``C_1 Delta``. One-dimensional
parameters (batch norm) get plain Adam. The deeper beakers start at the weight's initial value.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..optim.closure import run_closure

__all__ = ["CascadeAdam"]


class CascadeAdam(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 0.005, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, areas: Sequence[float] = (1, 2, 4, 8),
                 couplings: Sequence[float] = (1e-2, 1e-3, 1e-4, 1e-5)):
        areas, couplings = [float(a) for a in areas], [float(g) for g in couplings]
        if len(areas) < 2 or len(areas) != len(couplings):
            raise ValueError(f"a cascade needs >= 2 beakers and one coupling per beaker (the last one the leak); "
                             f"got {len(areas)} areas and {len(couplings)} couplings")
        if min(areas) <= 0 or min(couplings) < 0:
            raise ValueError(f"areas must be > 0 and couplings >= 0; got {areas}, {couplings}")
        for k, c in enumerate(areas):  # explicit Euler is stable when each beaker's outflow rate is <= 1
            if ((couplings[k - 1] if k else 0.0) + couplings[k]) / c > 1:
                raise ValueError(f"beaker {k + 1}: (g_{k} + g_{k + 1}) / C_{k + 1} > 1 makes the cascade unstable; "
                                 f"lower the couplings or raise the areas")
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      areas=areas, couplings=couplings))

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            b1, b2 = group["betas"]
            C, g = group["areas"], group["couplings"]
            for p in group["params"]:
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                    if p.dim() > 1:
                        st["beakers"] = p.detach().clone().unsqueeze(0).repeat(len(C) - 1, *[1] * p.dim())
                delta = torch.zeros_like(p)
                if p.grad is not None:
                    grad = p.grad
                    if group["weight_decay"]:
                        grad = grad.add(p, alpha=group["weight_decay"])
                    st["step"] += 1
                    st["exp_avg"].mul_(b1).add_(grad, alpha=1 - b1)
                    st["exp_avg_sq"].mul_(b2).addcmul_(grad, grad, value=1 - b2)
                    step_size = group["lr"] * math.sqrt(1 - b2 ** st["step"]) / (1 - b1 ** st["step"])
                    delta = -step_size * st["exp_avg"] / (st["exp_avg_sq"].sqrt() + group["eps"])
                if p.dim() <= 1:
                    p.add_(delta)
                    continue
                u = torch.cat([p.detach().unsqueeze(0), st["beakers"]])            # (n, ...) old values
                nxt = torch.cat([u[1:], torch.zeros_like(u[:1])])                   # u_{k+1}, u_{n+1} = 0
                prv = torch.cat([u[:1], u[:-1]])                                    # u_{k-1} (k=1: itself)
                shape = (-1,) + (1,) * p.dim()
                Ct, gt = u.new_tensor(C).view(shape), u.new_tensor(g).view(shape)
                gprev = torch.cat([u.new_zeros(1), u.new_tensor(g[:-1])]).view(shape)
                u_new = u + (gprev * (prv - u) + gt * (nxt - u)) / Ct
                u_new[0] += delta
                p.copy_(u_new[0])
                st["beakers"].copy_(u_new[1:])
        return loss
