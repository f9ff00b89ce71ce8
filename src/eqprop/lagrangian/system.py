"""The Lagrangian system interface GLEP works on (Pourcel, Basu, Ernoult, Gilra 2025; REFERENCES §6).

A system is a Lagrangian ``L(q, qdot, t) = 1/2 qdot^T M qdot - V(q, theta, u_t)`` with a diagonal
mass ``M`` (possibly trainable) and a potential ``V`` whose parameters ``theta`` are the module's
parameters. It is integrated by the variational (Stormer-Verlet) integrator of
:mod:`eqprop.lagrangian.integrator`, whose discrete Lagrangian (scheme ``"kdk"``) is::

    L_d(q_k, q_k+1) = e^{gamma t_k+1/2} (1 / 2 dt) dq^T M dq
                      - (dt / 2) [e^{gamma t_k} V(q_k, u_k) + e^{gamma t_k+1} V(q_k+1, u_k+1)]

(``gamma`` = mass-proportional damping, 0 by default; the weights make the damped motion
``M qddot + gamma M qdot = -dV/dq`` variational). ``S = sum_k L_d`` is the action.

A :class:`Task` is what one batch asks of the system: the inputs ``u``, the initial state
``(q_0, p_0)`` (tensors, or functions of the system when they depend on ``theta``, e.g. a
learned mass at a fixed initial velocity) and the cost ``C = dt sum_k c_k(q_k)``.

Shapes: ``q, p`` (B, n); ``u`` (B, N+1, d_u) for scheme ``"kdk"`` (one input per node
``k = 0..N``) and (B, N, d_u) for ``"dkd"`` (one input per step, as the HRU); costs per sample (B,).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

SCHEMES = ("kdk", "dkd")


class LagrangianSystem(nn.Module):
    """Base class: a potential ``V(q, theta, u)``, a diagonal mass, a step ``dt`` and damping ``gamma``.

    Subclasses implement :meth:`potential` and, for speed and forward-mode (tangent) passes,
    :meth:`force`; the default force differentiates the potential with autograd.

    scheme: ``"kdk"`` (velocity Verlet: kick, drift, kick; the potential at the nodes, as the
    discrete Lagrangian above) or ``"dkd"`` (position Verlet: drift, kick, drift; the potential
    at the step's midpoint, as the HRU's leapfrog; needs a fixed mass and ``gamma = 0``).
    """

    scheme: ClassVar[str] = "kdk"

    def __init__(self, dim: int, dt: float, gamma: float = 0.0):
        super().__init__()
        if not dt > 0:
            raise ValueError(f"dt must be > 0, got {dt}")
        self.dim, self.dt, self.gamma = dim, float(dt), float(gamma)
        if self.scheme == "dkd" and self.gamma != 0:
            raise ValueError("the 'dkd' scheme is implemented without damping (gamma = 0)")

    def potential(self, q: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``V(q, theta, u)`` per sample: q (B, n), u (B, d_u) -> (B,)."""
        raise NotImplementedError

    def force(self, q: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``dV/dq``: (B, n). Default: autograd through :meth:`potential` (keeps the graph)."""
        with torch.enable_grad():
            qq = q if q.requires_grad else q.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.potential(qq, u).sum(), qq, create_graph=True)
        return g

    def mass(self) -> torch.Tensor:
        """The diagonal of ``M``: (n,). Default: ones."""
        return torch.ones(self.dim, dtype=torch.get_default_dtype())

    def readout(self, q: torch.Tensor) -> torch.Tensor:
        """What the cost reads: (B, n) -> (B, d_out). Default: all of ``q``."""
        return q

    def mass_is_trainable(self) -> bool:
        return self.mass().requires_grad

    # -- the time weights of the damped discrete Lagrangian -----------------------------------
    def node_weight(self, k: int) -> float:
        """``e^{gamma t_k}``: the weight of ``V`` at node ``k``."""
        return float(torch.exp(torch.tensor(self.gamma * k * self.dt, dtype=torch.float64))) if self.gamma else 1.0

    def step_weight(self, k: int) -> float:
        """``e^{gamma t_k+1/2}``: the weight of the kinetic term of step ``k -> k+1``."""
        return float(torch.exp(torch.tensor(self.gamma * (k + 0.5) * self.dt, dtype=torch.float64))) if self.gamma else 1.0


# -- costs ------------------------------------------------------------------------------------
class NodeCost:
    """A cost ``C = dt sum_k c_k(q_k)``; ``c_k`` per sample (B,). Independent of ``theta``."""

    def nodes(self, N: int) -> list[int]:
        """The nodes ``k`` in ``0..N`` that carry a cost."""
        raise NotImplementedError

    def node_cost(self, system, q: torch.Tensor, k: int) -> torch.Tensor:
        raise NotImplementedError

    def grad(self, system, q: torch.Tensor, k: int) -> torch.Tensor:
        """``dc_k/dq`` (B, n), by autograd on a detached copy of ``q``."""
        with torch.enable_grad():
            qq = q.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.node_cost(system, qq, k).sum(), qq)
        return g

    def repeat(self, r: int) -> "NodeCost":
        """The same cost for a batch repeated ``r`` times along dim 0."""
        raise NotImplementedError


@dataclass
class SquaredError(NodeCost):
    """``c_k = w_k / 2 |readout(q_k) - target_k|^2``; target (B, N+1, d_out), weight (N+1,)."""

    target: torch.Tensor
    weight: torch.Tensor

    def nodes(self, N):
        return [k for k in range(N + 1) if float(self.weight[k]) != 0]

    def node_cost(self, system, q, k):
        return 0.5 * float(self.weight[k]) * (system.readout(q) - self.target[:, k]).square().sum(-1)

    def repeat(self, r):
        return SquaredError(self.target.repeat(r, 1, 1), self.weight)


@dataclass
class LinearCost(NodeCost):
    """``c_k = <g_k, q_k>`` with fixed g (B, N+1, n): an error signal linearised at the free run
    (how RHEL injects the error of a readout outside the Hamiltonian)."""

    g: torch.Tensor

    def nodes(self, N):
        return [k for k in range(N + 1) if bool((self.g[:, k] != 0).any())]

    def node_cost(self, system, q, k):
        return (self.g[:, k] * q).sum(-1)

    def grad(self, system, q, k):
        return self.g[:, k]

    def repeat(self, r):
        return LinearCost(self.g.repeat(r, 1, 1))


@dataclass
class Task:
    """One batch: inputs ``u``, initial state ``q0, p0`` and the cost.

    u: (B, N+1, d_u) (scheme "kdk") or (B, N, d_u) ("dkd"). q0, p0: (B, n) tensors, or
    callables ``system -> (B, n)`` when they depend on ``theta`` (e.g. ``p0 = M(theta) v0``).
    ``p0`` is the canonical momentum ``-dS/dq_0``.
    """

    u: torch.Tensor
    q0: torch.Tensor | Callable
    p0: torch.Tensor | Callable
    cost: NodeCost

    def steps(self, system) -> int:
        """N, the number of integration steps."""
        return self.u.shape[1] - (1 if system.scheme == "kdk" else 0)

    def initial_state(self, system) -> tuple[torch.Tensor, torch.Tensor]:
        q0 = self.q0(system) if callable(self.q0) else self.q0
        p0 = self.p0(system) if callable(self.p0) else self.p0
        return q0, p0

    def repeat(self, r: int) -> "Task":
        """The task for the batch repeated ``r`` times (e.g. the +beta and -beta echoes side by side)."""
        def rep(x):
            if callable(x):
                return lambda s: x(s).repeat(r, 1)
            return x.repeat(r, 1)
        return Task(self.u.repeat(r, 1, 1), rep(self.q0), rep(self.p0), self.cost.repeat(r))
