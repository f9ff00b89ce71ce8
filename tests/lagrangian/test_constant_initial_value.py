"""Constant-initial-value GLEP: the nudged runs start where the free run starts."""
from glep_problems import chain_task, loglog_slope

from eqprop.lagrangian import ConstantInitialValue, reference_gradients, relative_error

BETAS = (1e-1, 1e-2, 1e-3)


def test_without_residual_does_not_converge_with_residual_slope_two():
    system, task, _ = chain_task(N=40)
    ref, _ = reference_gradients(system, task)
    bulk = [relative_error(ConstantInitialValue(beta=b, residual=False).gradients(system, task), ref) for b in BETAS]
    full = [relative_error(ConstantInitialValue(beta=b).gradients(system, task), ref) for b in BETAS]
    # the bulk term alone: an O(1) error that does not shrink with beta
    assert min(bulk) > 0.1, bulk
    assert bulk[-1] > 0.5 * bulk[0], bulk
    # with the final-time residual (tangent pass per parameter): O(beta^2)
    s = loglog_slope(BETAS, full)
    assert abs(s - 2) <= 0.1, (s, full)
    assert full[-1] <= 1e-5, full
