"""The variational integrator: hand-derived force, time reversibility (the echo at beta = 0), the
HRU as a Lagrangian system."""
import torch

from eqprop.lagrangian import HRUSystem, LinearCost, Task, echo, integrate
from eqprop.lagrangian.system import LagrangianSystem
from eqprop.models.hamiltonian import LinearHRU, NonlinearHRU

from glep_problems import chain_task


def test_quartic_force_equals_autograd():
    system, task, _ = chain_task()
    q = torch.randn(4, 3)
    u = torch.randn(4, 2)
    auto = LagrangianSystem.force(system, q, u)
    assert torch.allclose(system.force(q, u), auto, rtol=0, atol=1e-13)


def _retrace(system, task):
    with torch.no_grad():
        qN, PN, qs = integrate(system, task, record=True)
        q0, p0, qe = echo(system, task, qN, PN, record=True)
    q_init, p_init = task.initial_state(system)
    scale = float(qs.abs().max())
    return (float((qe - qs).abs().max()) / scale, float((q0 - q_init).abs().max()) / scale,
            float((p0 - p_init).abs().max()) / float(p_init.abs().max()))


def test_echo_at_beta_zero_retraces_the_free_trajectory():
    """The free echo (flip the momentum, reversed inputs, no kicks) lands on every node of the
    forward run, back to the initial state, to rounding: <= 1e-12 (relative to the amplitude)."""
    for kw in ({}, {"gamma": 0.3}, {"learn_mass": True}):
        system, task, _ = chain_task(N=200, **kw)
        errs = _retrace(system, task)
        assert max(errs) <= 1e-12, (kw, errs)


def test_echo_retraces_on_the_hru():
    for cls in (LinearHRU, NonlinearHRU):
        torch.manual_seed(0)
        hru = cls(3, 5, 2).double()
        system = HRUSystem(hru)
        B, T = 3, 100
        u = torch.randn(B, T, 3)
        task = Task(u, 0.3 * torch.randn(B, 5), 0.3 * torch.randn(B, 5), LinearCost(torch.zeros(B, T + 1, 5)))
        assert max(_retrace(system, task)) <= 1e-12


def test_hru_system_is_the_hru_leapfrog():
    """HRUSystem runs exactly the HRU's own trajectory (nodes = the HRU states y_t)."""
    torch.manual_seed(0)
    hru = NonlinearHRU(3, 4, 2).double()
    u = torch.randn(2, 30, 3)
    with torch.no_grad():
        ys, ws, _ = hru.trajectory(hru.drive(u, hru.coefficients()))
        system = HRUSystem(hru)
        task = Task(u, torch.zeros(2, 4), torch.zeros(2, 4), LinearCost(torch.zeros(2, 31, 4)))
        qN, PN, qs = integrate(system, task, record=True)
    assert torch.equal(qs[:, 1:], ys) and torch.equal(PN, ws[:, -1])
