"""Generalized Lagrangian EP (GLEP; Pourcel, Basu, Ernoult, Gilra 2025; REFERENCES §6).

For the nudged action ``S_beta = S + beta C`` and *any* boundary conditions of the nudged run,
with ``P = dS_beta/dq_N`` at the end and ``P = -dS_beta/dq_0`` (the momentum) at the start::

    dC/dtheta = d/dbeta|0 dS_beta/dtheta [q_beta]
                + [ <dP/dbeta, dq/dtheta> - <dP/dtheta, dq/dbeta> ]_{t=T} - [ same ]_{t=0}

``dS/dtheta`` at fixed positions is ``-dt sum_k dV/dtheta`` (+ the kinetic term when the mass is
trained). The boundary conditions decide which boundary terms are left; each estimator here is
one choice (docs/glep.md has the table):

* :class:`PFVP` -- parametric final value = Hamiltonian echo learning (RHEL is this case). The
  nudged run ends at the free run's final ``(q_N, P_N)``; integrating it backwards is the echo.
  Bulk term only (plus a local term when ``(q_0, p_0)`` depends on ``theta``), forward-only,
  local, ``1 + 2`` passes (central) or ``1 + 1`` (one-sided), memory O(1) in ``N``. The echo's end
  point gives the initial-state gradients ``dC/dq_0 = -dp_0/dbeta``, ``dC/dp_0 = +dq_0/dbeta``.
* :class:`ConstantInitialValue` -- the nudged runs start at the free run's ``(q_0, p_0)`` and run
  forward; the final-time residual needs ``dq_N/dtheta, dP_N/dtheta``: one tangent (forward-mode)
  pass per parameter (here batched with ``torch.func.jacfwd``). Forward-only, not local.
* :class:`FixedEndpoints` -- ``q_0`` and ``q_N`` clamped: the bulk term alone, but the model is the
  (non-causal) two-point boundary-value problem, solved by Newton's method on all interior nodes.

Every estimator has ``estimate(system, task) -> (grads, GLEPResult)`` and
``gradients(system, task) -> {name: tensor}``; ``grads`` maps ``system.named_parameters()`` names to
``dC/dtheta`` with ``C = dt sum_k c_k(q_k)`` summed over the batch. ``reference_gradients`` is
autograd through the same integrator (the truth the tests check against).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from .integrator import action, echo, integrate, step_action, total_cost
from .system import LagrangianSystem, Task

VARIANTS = ("central", "one-sided")


@dataclass
class GLEPResult:
    """What an estimator returns beside the parameter gradients.

    loss: ``C`` of the free run (summed over the batch). q0_grad, p0_grad: ``dC/dq_0``,
    ``dC/dp_0`` (B, n) where the variant gives them (PFVP), else None. stats: passes and settings.
    """

    loss: torch.Tensor
    q0_grad: torch.Tensor | None = None
    p0_grad: torch.Tensor | None = None
    stats: dict = field(default_factory=dict)


class _WritesGrad:
    """``step(system, task, ...)``: estimate and add the gradients to each parameter's ``.grad``
    (like ``loss.backward()``; then any torch optimizer), returning the :class:`GLEPResult`."""

    def step(self, system, task, *args, **kw) -> "GLEPResult":
        grads, result = self.estimate(system, task, *args, **kw)
        for n, p in _params(system):
            p.grad = grads[n].clone() if p.grad is None else p.grad.add_(grads[n])
        return result


def _params(system) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in system.named_parameters() if p.requires_grad]


def _detach(rec):
    return tuple(r.detach() if torch.is_tensor(r) else r for r in rec)


class _ActionGradient:
    """Accumulates ``sum_b w_b dS/dtheta`` (positions fixed) step by step: O(1) memory in N."""

    def __init__(self, system, u, weights):
        if system.scheme == "dkd" and system.mass().requires_grad:
            raise ValueError("scheme 'dkd' sums only -dt dV/dtheta: a trained mass needs scheme 'kdk'")
        self.system, self.u, self.w = system, u, weights
        self.named = _params(system)
        self.total = [torch.zeros_like(p) for _, p in self.named]

    def __call__(self, rec):
        with torch.enable_grad():
            s = (self.w * step_action(self.system, _detach(rec), self.u)).sum()
            gs = torch.autograd.grad(s, [p for _, p in self.named], allow_unused=True)
        for t, g in zip(self.total, gs):
            if g is not None:
                t.add_(g)

    def as_dict(self):
        return {n: t for (n, _), t in zip(self.named, self.total)}


def _betas(beta: float, variant: str, B: int, like: torch.Tensor):
    """Per-sample betas of the two nudged runs side by side (2B,), their weights, and 1/(db)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    hi, lo = (beta, -beta) if variant == "central" else (beta, 0.0)
    betas = torch.cat([torch.full((B,), hi), torch.full((B,), lo)]).to(like)
    inv = 1.0 / (hi - lo)
    weights = torch.cat([torch.full((B,), inv), torch.full((B,), -inv)]).to(like)
    return betas, weights, inv


def _free_loss(system, task):
    acc = []
    N = task.steps(system)
    nodes = set(task.cost.nodes(N))

    def observe(q, k):
        if k in nodes:
            acc.append(task.cost.node_cost(system, q, k).sum())

    with torch.no_grad():
        qN, PN, _ = integrate(system, task, observe=observe)
    loss = system.dt * torch.stack(acc).sum() if acc else torch.zeros((), dtype=qN.dtype)
    return qN, PN, loss


def initial_state_correction(system, task: Task, q0_grad, p0_grad) -> dict[str, torch.Tensor]:
    """The local boundary term at ``t = 0`` when ``q_0`` or ``p_0`` depend on ``theta``:
    ``<dq_0/dtheta, dC/dq_0> + <dp_0/dtheta, dC/dp_0>`` (e.g. ``p_0 = M(theta) v_0``, a learned mass)."""
    named = _params(system)
    out = {n: torch.zeros_like(p) for n, p in named}
    if not (callable(task.q0) or callable(task.p0)):
        return out
    with torch.enable_grad():
        q0, p0 = task.initial_state(system)
        s = (q0 * q0_grad).sum() * callable(task.q0) + (p0 * p0_grad).sum() * callable(task.p0)
        if not s.requires_grad:
            return out
        gs = torch.autograd.grad(s, [p for _, p in named], allow_unused=True)
    for (n, _), g in zip(named, gs):
        if g is not None:
            out[n] = g
    return out


@dataclass
class PFVP(_WritesGrad):
    """Parametric final value (the echo; Hamiltonian echo learning).

    beta: nudging strength (the echoes' kicks are ``+-beta dt dc_k/dq``); variant: "central"
    (echoes at ``+-beta``, error O(beta^2)) or "one-sided" (``beta`` and ``0``, error O(beta));
    initial_correction: add the local term for a ``theta``-dependent initial state.
    """

    name: ClassVar[str] = "glep-pfvp"
    beta: float = 1e-3
    variant: str = "central"
    initial_correction: bool = True

    def estimate(self, system: LagrangianSystem, task: Task):
        qN, PN, loss = _free_loss(system, task)                       # pass 1: forward, final state only
        B = qN.shape[0]
        betas, weights, inv = _betas(self.beta, self.variant, B, qN)
        two = task.repeat(2)
        acc = _ActionGradient(system, two.u, weights)
        with torch.no_grad():                                         # passes 2, 3: the echoes, one batch
            q0, p0, _ = echo(system, two, torch.cat([qN, qN]), torch.cat([PN, PN]), beta=betas, accumulate=acc)
        grads = acc.as_dict()
        q0_grad = -(p0[:B] - p0[B:]) * inv
        p0_grad = (q0[:B] - q0[B:]) * inv
        if self.initial_correction:
            for n, g in initial_state_correction(system, task, q0_grad, p0_grad).items():
                grads[n] = grads[n] + g
        stats = {"beta": self.beta, "variant": self.variant, "passes": 3 if self.variant == "central" else 2}
        return grads, GLEPResult(loss=loss, q0_grad=q0_grad, p0_grad=p0_grad, stats=stats)

    def gradients(self, system, task) -> dict[str, torch.Tensor]:
        return self.estimate(system, task)[0]


def final_state_tangents(system, task: Task):
    """``dq_N/dtheta`` and ``dP_N/dtheta`` of the free run: one forward-mode (tangent) pass per
    parameter element, batched by ``torch.func.jacfwd``. Returns two dicts name -> (B, n, *shape)."""
    names = [n for n, _ in _params(system)]
    run = _FinalState(system, task)

    def final(params):
        return torch.func.functional_call(run, {"system." + n: p for n, p in params.items()}, ())

    primal = {n: p.detach() for n, p in _params(system)}
    jq, jp = torch.func.jacfwd(final)(primal)
    return {n: jq[n] for n in names}, {n: jp[n] for n in names}


class _FinalState(nn.Module):
    """The free run's final state ``(q_N, P_N)`` as a module (so ``functional_call`` can swap parameters)."""

    def __init__(self, system, task):
        super().__init__()
        self.system, self.task = system, task

    def forward(self):
        qN, PN, _ = integrate(self.system, self.task)
        return qN, PN


@dataclass
class ConstantInitialValue(_WritesGrad):
    """Nudged runs from the free run's initial state, integrated forward.

    residual: add the final-time boundary term, which needs the tangents ``dq_N/dtheta``,
    ``dP_N/dtheta`` (one forward-mode pass per parameter); without it the estimate is wrong
    whatever beta.
    """

    name: ClassVar[str] = "glep-civ"
    beta: float = 1e-3
    variant: str = "central"
    residual: bool = True

    def estimate(self, system: LagrangianSystem, task: Task):
        _, _, loss = _free_loss(system, task)
        B = task.u.shape[0]
        like = task.u
        betas, weights, inv = _betas(self.beta, self.variant, B, like)
        two = task.repeat(2)
        acc = _ActionGradient(system, two.u, weights)
        with torch.no_grad():
            qN, PN, _ = integrate(system, two, beta=betas, accumulate=acc)
        grads = acc.as_dict()
        passes = 3 if self.variant == "central" else 2
        if self.residual:
            dq_db = (qN[:B] - qN[B:]) * inv
            dP_db = (PN[:B] - PN[B:]) * inv
            jq, jp = final_state_tangents(system, task)
            for n in grads:
                extra = jq[n].dim() - 2
                shape = (B, -1) + (1,) * extra
                r = (dP_db.reshape(shape) * jq[n] - jp[n] * dq_db.reshape(shape)).sum((0, 1))
                grads[n] = grads[n] + r
            passes += sum(p.numel() for _, p in _params(system))
        stats = {"beta": self.beta, "variant": self.variant, "residual": self.residual, "passes": passes}
        return grads, GLEPResult(loss=loss, stats=stats)

    def gradients(self, system, task):
        return self.estimate(system, task)[0]


# -- fixed endpoints: the two-point boundary-value problem ------------------------------------------
def _bvp_action(system, task, q_first, Q, q_last, beta):
    qs = torch.cat([q_first[:, None], Q, q_last[:, None]], 1)
    return action(system, qs, task.u).sum() + beta * total_cost(system, task, qs)


def solve_bvp(system, task: Task, q_last: torch.Tensor, beta: float = 0.0, init: torch.Tensor | None = None,
              tol: float = 1e-13, max_iter: int = 30):
    """Interior nodes ``q_1..q_N-1`` (B, N-1, n) making ``S + beta C`` stationary with ``q_0 = task.q0``
    and ``q_N = q_last`` clamped: Newton's method on the discrete Euler-Lagrange equations
    (dense Hessian of the action; small systems). ``init``: start (default: straight line).
    Returns ``(Q, iterations, residual)``."""
    if system.scheme != "kdk":
        raise ValueError("fixed endpoints are implemented for scheme 'kdk'")
    q_first = task.initial_state(system)[0].detach()
    q_last = q_last.detach()
    N = task.steps(system)
    if init is None:
        s = torch.linspace(0, 1, N + 1, dtype=q_first.dtype)[1:-1, None]
        init = q_first[:, None] * (1 - s) + q_last[:, None] * s
    Q = init.detach().clone()
    shape = Q.shape
    res = float("inf")
    for it in range(1, max_iter + 1):
        x = Q.reshape(-1).requires_grad_(True)
        with torch.enable_grad():
            f = lambda v: _bvp_action(system, task, q_first, v.reshape(shape), q_last, beta)  # noqa: E731
            H = torch.autograd.functional.hessian(f, x.detach(), vectorize=True)
            (g,) = torch.autograd.grad(f(x), x)
        H = H.detach()
        res = float(g.abs().max())
        if res < tol:
            return Q, it - 1, res
        Q = (x.detach() - torch.linalg.solve(H, g.detach())).reshape(shape)
    return Q, max_iter, res


@dataclass
class FixedEndpoints(_WritesGrad):
    """Nudged runs with both ends clamped (``q_0`` from the task, ``q_N`` given): bulk term only.

    The model is the boundary-value problem ``q(theta) = argstat S`` with those ends, not the
    causal run. tol, max_iter: Newton's stopping rule.
    """

    name: ClassVar[str] = "glep-fixed"
    beta: float = 1e-3
    variant: str = "central"
    tol: float = 1e-13
    max_iter: int = 30

    def estimate(self, system: LagrangianSystem, task: Task, q_last: torch.Tensor, init=None):
        B = task.u.shape[0]
        _, _, inv = _betas(self.beta, self.variant, B, task.u)
        hi, lo = (self.beta, -self.beta) if self.variant == "central" else (self.beta, 0.0)
        Q0, it0, _ = solve_bvp(system, task, q_last, 0.0, init, self.tol, self.max_iter)
        q_first = task.initial_state(system)[0].detach()
        named = _params(system)
        total = {n: torch.zeros_like(p) for n, p in named}
        iters = [it0]
        for b, w in ((hi, inv), (lo, -inv)):
            Q, it, _ = (Q0, 0, 0.0) if b == 0 else solve_bvp(system, task, q_last, b, Q0, self.tol, self.max_iter)
            iters.append(it)
            with torch.enable_grad():
                qs = torch.cat([q_first[:, None], Q, q_last.detach()[:, None]], 1)
                gs = torch.autograd.grad(action(system, qs, task.u).sum(), [p for _, p in named], allow_unused=True)
            for (n, _), g in zip(named, gs):
                if g is not None:
                    total[n] += w * g
        qs0 = torch.cat([q_first[:, None], Q0, q_last.detach()[:, None]], 1)
        loss = total_cost(system, task, qs0).detach()
        return total, GLEPResult(loss=loss, stats={"beta": self.beta, "variant": self.variant, "newton_iterations": iters})

    def gradients(self, system, task, q_last, init=None):
        return self.estimate(system, task, q_last, init)[0]


# -- references: autograd through the same integrator ----------------------------------------------
def reference_gradients(system: LagrangianSystem, task: Task, initial_state: bool = False):
    """``dC/dtheta`` by autograd through the causal run (float64 truth). With ``initial_state``,
    also returns ``(dC/dq_0, dC/dp_0)`` (B, n). Returns ``(grads, loss[, q0_grad, p0_grad])``."""
    named = _params(system)
    with torch.enable_grad():
        q0, p0 = task.initial_state(system)
        if initial_state:
            q0 = q0.detach().requires_grad_(True)
            p0 = p0.detach().requires_grad_(True)
        t = Task(task.u, q0, p0, task.cost)
        _, _, qs = integrate(system, t, record=True)
        loss = total_cost(system, t, qs)
        wrt = [p for _, p in named] + ([q0, p0] if initial_state else [])
        gs = torch.autograd.grad(loss, wrt, allow_unused=True)
    grads = {n: (torch.zeros_like(p) if g is None else g) for (n, p), g in zip(named, gs)}
    if initial_state:
        return grads, loss.detach(), gs[-2], gs[-1]
    return grads, loss.detach()


def bvp_reference_gradients(system: LagrangianSystem, task: Task, q_last, Q=None, tol=1e-13, max_iter=30):
    """``dC/dtheta`` of the boundary-value model by autograd through its solve: from the converged
    interior ``Q*`` one differentiable Newton step ``Q* - H^-1 dS/dQ (Q*, theta)``, whose derivative
    is that of the converged solve (implicit differentiation). Returns ``(grads, loss)``."""
    if Q is None:
        Q, _, _ = solve_bvp(system, task, q_last, 0.0, None, tol, max_iter)
    named = _params(system)
    q_first = task.initial_state(system)[0].detach()
    shape = Q.shape
    x = Q.reshape(-1).detach()
    f = lambda v: _bvp_action(system, task, q_first, v.reshape(shape), q_last.detach(), 0.0)  # noqa: E731
    H = torch.autograd.functional.hessian(f, x, vectorize=True).detach()
    with torch.enable_grad():
        xx = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(xx), xx, create_graph=True)
        Q1 = (x - torch.linalg.solve(H, g)).reshape(shape)
        qs = torch.cat([q_first[:, None], Q1, q_last.detach()[:, None]], 1)
        loss = total_cost(system, task, qs)
        gs = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    return {n: (torch.zeros_like(p) if g is None else g) for (n, p), g in zip(named, gs)}, loss.detach()


def relative_error(g: dict, ref: dict) -> float:
    """``|g - ref| / |ref|`` over all entries of the dicts (L2)."""
    num = sum(float((g[n] - ref[n]).square().sum()) for n in ref)
    den = sum(float(ref[n].square().sum()) for n in ref)
    return (num / den) ** 0.5


ESTIMATORS = {"pfvp": PFVP, "constant-initial-value": ConstantInitialValue, "fixed-endpoints": FixedEndpoints}
"""The GLEP estimators by boundary condition (for registries)."""
