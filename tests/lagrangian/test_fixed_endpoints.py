"""Fixed-endpoint GLEP: a two-point boundary-value model, solved by Newton's method."""
import torch
from glep_problems import chain_task, loglog_slope

from eqprop.lagrangian import (FixedEndpoints, bvp_reference_gradients, integrate, reference_gradients,
                               relative_error, solve_bvp)


def _problem():
    system, task, _ = chain_task(B=1, N=20, dense_cost=True)
    with torch.no_grad():
        qN, _, qs = integrate(system, task, record=True)
    return system, task, qN, qs


def test_bvp_through_the_causal_end_point_is_the_causal_trajectory():
    system, task, qN, qs = _problem()
    Q, it, res = solve_bvp(system, task, qN)
    assert res <= 1e-12 and it >= 2
    assert float((Q - qs[:, 1:-1]).abs().max()) <= 1e-11


def test_fixed_endpoints_equals_autograd_through_the_bvp_solve_and_differs_from_causal():
    """The bulk term alone is the gradient of the boundary-value model (error O(beta^2)); that
    model is not the causal one: its gradient differs from autograd through the forward run."""
    system, task, qN, qs = _problem()
    Q, _, _ = solve_bvp(system, task, qN, init=qs[:, 1:-1])
    ref, loss_bvp = bvp_reference_gradients(system, task, qN, Q)
    causal, loss_causal = reference_gradients(system, task)
    assert torch.allclose(loss_bvp, loss_causal, rtol=1e-12)  # same trajectory, same cost ...
    betas = (1e-2, 1e-3, 1e-4)
    errs = [relative_error(FixedEndpoints(beta=b).gradients(system, task, qN, init=Q), ref) for b in betas]
    assert errs[-1] <= 1e-6, errs
    assert abs(loglog_slope(betas, errs) - 2) <= 0.1, errs
    assert relative_error(causal, ref) > 0.3  # ... but a different model, a different gradient
