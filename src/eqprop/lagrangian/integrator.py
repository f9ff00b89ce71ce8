"""The variational (Stormer-Verlet) integrator, its action, and the echo.

One step maps node ``k`` to node ``j = k +- 1``. Written for the weighted momentum
``pi = -dS/dq`` of the (possibly damped) discrete Lagrangian of :mod:`.system`, scheme ``"kdk"``::

    pi'   = pi - (dt/2) e^{gamma t_k} dV/dq (q_k, u_k)
    q_j   = q_k + dt M^{-1} pi' / e^{gamma t_{k+j}/2}         (t_{k+j}/2: the step's midpoint)
    pi_j  = pi' - (dt/2) e^{gamma t_j} dV/dq (q_j, u_j)

and scheme ``"dkd"`` (the HRU's leapfrog, input ``u`` per step)::

    q'  = q_k + (dt/2) M^{-1} pi;   pi_j = pi - dt dV/dq (q', u_step);   q_j = q' + (dt/2) M^{-1} pi_j

The same formula serves both directions: the map is time-reversible, so applying the step
``k+1 -> k`` to ``(q_k+1, -pi_k+1)`` lands on ``(q_k, -pi_k)``. That is the **echo**: flip the
momentum, run the same maps in reverse order (the time-reversed inputs). With damping the echo
runs with gain (the physical momentum ``p = e^{-gamma t} pi`` grows on the way back).

Nudges are momentum kicks at the nodes: stationarity of ``S + beta C`` gives
``pi_k(leaving) = pi_k(arriving) + beta dt dc_k/dq(q_k)`` forward in time, and a kick of the
same sign ``+beta dt dc_k/dq`` on the echo's (flipped) momentum.
"""
from __future__ import annotations

import torch

from .system import LagrangianSystem, Task


def step(system: LagrangianSystem, q, p, u, k: int, j: int):
    """One step from node ``k`` to node ``j = k +- 1``; ``u`` the task's inputs (B, ., d_u).

    Returns ``(q_j, p_j, record)``; ``record`` is what the step's action needs:
    ``(q_lo, q_hi, lo)`` for "kdk" (the two nodes, ``lo = min(k, j)``), ``(midpoint, lo)`` for "dkd".
    """
    dt, lo = system.dt, min(k, j)
    minv = 1.0 / system.mass()
    if system.scheme == "kdk":
        a = system.step_weight(lo)
        p = p - (0.5 * dt * system.node_weight(k)) * system.force(q, u[:, k])
        qj = q + (dt / a) * minv * p
        p = p - (0.5 * dt * system.node_weight(j)) * system.force(qj, u[:, j])
        return qj, p, ((q, qj, lo) if j > k else (qj, q, lo))
    mid = q + (0.5 * dt) * minv * p
    p = p - dt * system.force(mid, u[:, lo])
    return mid + (0.5 * dt) * minv * p, p, (mid, lo)


def step_action(system: LagrangianSystem, record, u) -> torch.Tensor:
    """The step's discrete Lagrangian per sample (B,), for the record of :func:`step`.

    Differentiable in ``theta`` (detach the record to get ``dS/dtheta`` at fixed positions).
    "dkd" returns only ``-dt V(midpoint)``: its kinetic part does not depend on ``theta``.
    """
    dt = system.dt
    if system.scheme == "kdk":
        q0, q1, k = record
        dq = q1 - q0
        kin = (system.step_weight(k) / (2 * dt)) * (system.mass() * dq * dq).sum(-1)
        pot = system.node_weight(k) * system.potential(q0, u[:, k]) + system.node_weight(k + 1) * system.potential(q1, u[:, k + 1])
        return kin - 0.5 * dt * pot
    mid, k = record
    return -dt * system.potential(mid, u[:, k])


def action(system: LagrangianSystem, qs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``S = sum_k L_d(q_k, q_k+1)`` per sample (B,) for node positions qs (B, N+1, n) ("kdk")."""
    if system.scheme != "kdk":
        raise ValueError("the action as a function of the node positions is written for scheme 'kdk'")
    return sum(step_action(system, (qs[:, k], qs[:, k + 1], k), u) for k in range(qs.shape[1] - 1))


def total_cost(system, task: Task, qs: torch.Tensor) -> torch.Tensor:
    """``C = dt sum_k c_k(q_k)`` summed over the batch, for the node positions qs (B, N+1, n)."""
    N = qs.shape[1] - 1
    return system.dt * sum(task.cost.node_cost(system, qs[:, k], k).sum() for k in task.cost.nodes(N))


def _kick(system, task, q, p, k, beta, nodes):
    if k not in nodes:
        return p
    g = task.cost.grad(system, q, k)
    b = beta[:, None] if torch.is_tensor(beta) else beta
    return p + (b * system.dt) * g


def integrate(system: LagrangianSystem, task: Task, beta=0.0, record: bool = False, accumulate=None, observe=None):
    """Run forward from ``task``'s initial state, nudged by ``S + beta C`` (beta a number or (B,)).

    Returns ``(q_N, P_N, qs)``: the final position, the boundary momentum
    ``P_N = dS_beta/dq_N`` (after the node-``N`` kick) and, if ``record``, every node position
    (B, N+1, n) (else None). Differentiable when run with autograd on. ``accumulate(record)``
    is called after every step (e.g. to sum ``dS/dtheta``), ``observe(q, k)`` at every node.
    """
    q, p = task.initial_state(system)
    N = task.steps(system)
    nodes = set(task.cost.nodes(N))
    nudged = not (isinstance(beta, float) and beta == 0.0)
    qs = [q] if record else None
    for k in range(N):
        if observe is not None:
            observe(q, k)
        if nudged:
            p = _kick(system, task, q, p, k, beta, nodes)
        q, p, rec = step(system, q, p, task.u, k, k + 1)
        if accumulate is not None:
            accumulate(rec)
        if record:
            qs.append(q)
    if observe is not None:
        observe(q, N)
    if nudged:
        p = _kick(system, task, q, p, N, beta, nodes)
    return q, p, (torch.stack(qs, 1) if record else None)


def echo(system: LagrangianSystem, task: Task, qN, PN, beta=0.0, record: bool = False, accumulate=None):
    """The echo: from the final state ``(q_N, P_N)`` flip the momentum and run the steps
    ``N -> N-1 -> ... -> 0`` (reversed inputs), kicking ``+beta dt dc_k/dq`` at each node.

    This integrates the nudged run with the *parametric final value* ``(q_N, P_N)`` backwards.
    Returns ``(q_0, p_0, qs)``: its initial state in the forward orientation (``p_0 = -dS_beta/dq_0``,
    after the node-0 kick) and, if ``record``, its node positions in forward time order (B, N+1, n).
    """
    N = task.steps(system)
    nodes = set(task.cost.nodes(N))
    nudged = not (isinstance(beta, float) and beta == 0.0)
    q, e = qN, -PN
    qs = [q] if record else None
    for k in range(N, 0, -1):
        if nudged:
            e = _kick(system, task, q, e, k, beta, nodes)
        q, e, rec = step(system, q, e, task.u, k, k - 1)
        if accumulate is not None:
            accumulate(rec)
        if record:
            qs.append(q)
    if nudged:
        e = _kick(system, task, q, e, 0, beta, nodes)
    return q, -e, (torch.stack(qs[::-1], 1) if record else None)
