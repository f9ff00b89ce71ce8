"""Shared small problems for the GLEP tests."""
import numpy as np
import torch

from eqprop.lagrangian import QuarticChain, SquaredError, Task


def chain_task(B=2, N=60, n=3, dense_cost=False, seed=0, **kw):
    """A driven 3-oscillator quartic chain read out at nodes 0 and 2, a random drive and random
    targets; the cost sits on every 5th node of the second half (``dense_cost``: on every node).
    Returns ``(system, task, v0)`` (``v0``: the initial velocity)."""
    system = QuarticChain(n=n, d_input=2, readout_nodes=(0, n - 1), dt=0.1, seed=seed, **kw)
    g = torch.Generator().manual_seed(seed + 1)
    u = 0.5 * torch.randn(B, N + 1, 2, generator=g)
    target = 0.3 * torch.randn(B, N + 1, 2, generator=g)
    w = torch.ones(N + 1)
    if not dense_cost:
        w = torch.zeros(N + 1)
        w[N // 2::5] = 1
    q0 = 0.5 * torch.randn(B, n, generator=g)
    v0 = 0.5 * torch.randn(B, n, generator=g)
    return system, Task(u, q0, v0, SquaredError(target, w)), v0


def loglog_slope(xs, ys) -> float:
    return float(np.polyfit(np.log(np.asarray(xs)), np.log(np.asarray(ys)), 1)[0])
