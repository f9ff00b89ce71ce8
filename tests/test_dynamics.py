"""relax: energy descent, mode independence of the fixed point, tolerance, nudges and clamps."""
import pytest
import torch

from eqprop import Clamp, Nudge, relax
from eqprop.dynamics import sweep
from tests.conftest import make_net


def test_async_sweeps_never_raise_the_energy(tiny_batch):
    x, _ = tiny_batch
    model = make_net(gain=2.5)
    ctx = model.context(x)
    state = model.init_state(x)
    e = model.energy(x, state)
    for _ in range(30):
        state = sweep(model, state, ctx, "async")
        e_new = model.energy(x, state)
        assert (e_new <= e + 1e-12).all()
        e = e_new


@pytest.mark.parametrize("activation", ["hard_sigmoid", "sigmoid"])
def test_sync_and_async_reach_the_same_fixed_point(activation, tiny_batch):
    x, _ = tiny_batch
    model = make_net(activation=activation)
    a = relax(model, x, steps=5000, mode="async", tol=1e-13)
    s = relax(model, x, steps=5000, mode="sync", tol=1e-13)
    assert a.steps < s.steps  # asynchronous settles in fewer sweeps
    for u, v in zip(a.state, s.state):
        torch.testing.assert_close(u, v, atol=1e-10, rtol=0)


def test_tolerance_stops_early(tiny_batch):
    x, _ = tiny_batch
    r = relax(make_net(), x, steps=10_000, tol=1e-9)
    assert r.steps < 10_000 and r.residual <= 1e-9
    r = relax(make_net(), x, steps=7)
    assert r.steps == 7


@pytest.mark.parametrize("output", ["mse", "ce"])
@pytest.mark.parametrize("beta", [0.5, -0.5])
def test_nudged_fixed_point_is_stationary_for_total_energy(output, beta, tiny_batch):
    """KKT conditions of min over the box [0, 1] of E + beta C."""
    x, y = tiny_batch
    model = make_net(output=output)
    r = relax(model, x, steps=5000, tol=1e-13, nudge=Nudge(beta, y))
    s = [t.clone().requires_grad_(True) for t in r.state]
    g = torch.autograd.grad(model.total_energy(x, s, y, beta).sum(), s)
    for si, gi in zip(r.state, g):
        inside = (si > 1e-12) & (si < 1 - 1e-12)
        assert gi[inside].abs().max() < 1e-9
        assert (gi[si <= 1e-12] >= -1e-9).all() and (gi[si >= 1 - 1e-12] <= 1e-9).all()


def test_clamp_holds_the_output(tiny_batch):
    x, y = tiny_batch
    model = make_net()
    target = torch.nn.functional.one_hot(y, 4).double()
    r = relax(model, x, steps=50, clamp=Clamp(target))
    assert torch.equal(r.state[model.output_index], target)


def test_bad_arguments():
    model = make_net()
    x = torch.rand(2, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match="async, sync"):
        relax(model, x, mode="gauss-seidel")
    with pytest.raises(ValueError, match="either a nudge or a clamp"):
        relax(model, x, nudge=Nudge(0.1, torch.tensor([0, 1])), clamp=Clamp(torch.zeros(2, 4)))


def test_relax_keeps_no_graph_unless_asked(tiny_batch):
    x, _ = tiny_batch
    model = make_net()
    assert not any(t.requires_grad for t in relax(model, x, steps=3).state)
    assert all(t.requires_grad for t in relax(model, x, steps=3, track_graph=True).state)
