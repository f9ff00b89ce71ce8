"""Two Lagrangian systems: a driven chain of coupled quartic oscillators, and the HRU.

:class:`QuarticChain` (scheme "kdk"), ``n`` oscillators on a line, input ``u_t`` (d_u,)::

    V(q, theta, u) = sum_i [ 1/2 k_i q_i^2 + 1/4 lam_i q_i^4 ] + sum_i 1/2 J_i (q_i+1 - q_i)^2
                     - sum_i (W u)_i q_i
    M = diag(m),   k = softplus(k_raw), lam = softplus(lam_raw), J free, W free,
    m = softplus(m_raw) if learn_mass (else ones, a buffer)

read out at the nodes ``readout_nodes`` (``readout(q) = q[:, readout_nodes]``).

:class:`HRUSystem` (scheme "dkd") wraps an :class:`eqprop.models.hamiltonian.HRU`: its leapfrog
(half drift, kick, half drift, unit step, momentum ``w = dt z``) *is* the dkd step with
``dt = 1``, ``M = 1`` and ``V = sum_i V~_i(q, B u)``; the nodes are the HRU's states ``y_t``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .system import LagrangianSystem


def _inv_softplus(x: float) -> float:
    return math.log(math.expm1(x))


class QuarticChain(LagrangianSystem):
    """A driven chain of ``n`` coupled quartic (Duffing) oscillators; see the module docstring.

    n: oscillators; d_input: input channels; readout_nodes: indices read by the cost;
    learn_mass: make ``m`` a parameter; dt: step; gamma: mass-proportional damping.
    """

    scheme = "kdk"

    def __init__(self, n: int = 4, d_input: int = 1, readout_nodes=(-1,), dt: float = 0.1,
                 gamma: float = 0.0, learn_mass: bool = False, seed: int | None = None):
        super().__init__(n, dt, gamma)
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        dtype = torch.get_default_dtype()
        rnd = lambda *s: torch.rand(*s, generator=g, dtype=dtype)  # noqa: E731
        self.k_raw = nn.Parameter(_inv_softplus(1.0) + 0.5 * (rnd(n) - 0.5))
        self.lam_raw = nn.Parameter(_inv_softplus(0.5) + 0.5 * (rnd(n) - 0.5))
        self.J = nn.Parameter(0.5 + 0.5 * rnd(n - 1))
        self.W = nn.Parameter(torch.randn(n, d_input, generator=g, dtype=dtype))
        m0 = 1.0 + 0.5 * rnd(n)
        if learn_mass:
            self.m_raw = nn.Parameter(torch.log(torch.expm1(m0)))
        else:
            self.register_buffer("m_fixed", torch.ones(n, dtype=dtype))
        self.learn_mass = learn_mass
        self.readout_nodes = list(readout_nodes)

    def coefficients(self) -> dict[str, torch.Tensor]:
        return {"k": F.softplus(self.k_raw), "lam": F.softplus(self.lam_raw)}

    def potential(self, q, u):
        c = self.coefficients()
        d = q[:, 1:] - q[:, :-1]
        return ((0.5 * c["k"] * q * q + 0.25 * c["lam"] * q ** 4).sum(-1) + 0.5 * (self.J * d * d).sum(-1)
                - ((u @ self.W.T) * q).sum(-1))

    def force(self, q, u):
        """``dV/dq`` (hand-derived; a test checks it against autograd)."""
        c = self.coefficients()
        d = self.J * (q[:, 1:] - q[:, :-1])  # (B, n-1)
        coupling = F.pad(-d, (0, 1)) + F.pad(d, (1, 0))
        return c["k"] * q + c["lam"] * q ** 3 + coupling - u @ self.W.T

    def mass(self):
        return F.softplus(self.m_raw) if self.learn_mass else self.m_fixed

    def readout(self, q):
        return q[:, self.readout_nodes]


class HRUSystem(LagrangianSystem):
    """An HRU (``LinearHRU`` or ``NonlinearHRU``, real) as a Lagrangian system of scheme "dkd".

    The task's ``u`` is the HRU's input (B, T, d_input), one per step; the state ``q = y``,
    ``p = w`` (2N channels). The parameters are the HRU's (``hru.*``).
    """

    scheme = "dkd"

    def __init__(self, hru):
        super().__init__(hru.d_state * (2 if hru.complex else 1), dt=1.0)
        self.hru = hru

    def potential(self, q, u):
        coef = self.hru.coefficients()
        return self.hru.potential(q, self.hru.drive(u, coef), coef).sum(-1)

    def force(self, q, u):
        coef = self.hru.coefficients()
        return self.hru.force(q, self.hru.drive(u, coef), coef)

    def mass(self):
        return torch.ones(self.dim, dtype=self.hru.B.dtype)
