"""Holomorphic EP against the truth (RBP) in float64: geometric convergence in N at finite r."""
import numpy as np
import pytest
import torch

import eqprop
from eqprop.dynamics import Nudge, relax
from eqprop.rules import HolomorphicEP, make_rule
from eqprop.rules.holomorphic import cauchy_points, cauchy_weights
from tests.conftest import make_net

CONVERGED = dict(free_steps=3000, nudge_steps=3000, tol=1e-14)


def flat(g):
    return torch.cat([v.flatten() for v in g.values()])


def rel_error(g, ref):
    return float((flat(g) - flat(ref)).norm() / flat(ref).norm())


@pytest.fixture(scope="module", params=["mse", "ce"])
def setup(request):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 12, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=g)
    model = make_net(output=request.param, activation="sigmoid", gain=2.0)
    ref = eqprop.gradients(model, x, y, "rbp", adjoint_steps=5000, **CONVERGED)
    return model, x, y, ref


def test_cauchy_weights():
    for N in (2, 3, 4, 7, 16):
        b, w = cauchy_points(N, 0.5), cauchy_weights(N, 0.5)
        assert abs(sum(w)) < 1e-14  # a contrast: constant terms cancel
        assert abs(sum(wk * bk for wk, bk in zip(w, b)) - 1) < 1e-14  # derivative of b is 1
        assert abs(sum(wk * bk * bk for wk, bk in zip(w, b))) < 1e-14  # quadratic term cancels
    assert cauchy_points(2, 0.5) == [0.5, -0.5]
    assert cauchy_points(4, 1.0) == [1, 1j, -1, -1j]


def test_n2_is_centered_ep(setup):
    model, x, y, _ = setup
    hep = eqprop.gradients(model, x, y, HolomorphicEP(N=2, radius=0.5, **CONVERGED))
    ep = eqprop.gradients(model, x, y, "ep-centered", beta=0.5, **CONVERGED)
    for n in ep:
        torch.testing.assert_close(hep[n], ep[n], rtol=1e-12, atol=1e-15)


def test_cauchy_estimator_converges_geometrically_in_n(setup):
    """At r = 0.5 centered EP is visibly biased; the N-point estimator's error falls like q^N."""
    model, x, y, ref = setup
    Ns = [2, 3, 4, 6, 8, 10, 12]
    errs = [rel_error(eqprop.gradients(model, x, y, HolomorphicEP(N=N, radius=0.5, **CONVERGED)), ref) for N in Ns]
    assert errs[0] > 1e-3  # centered EP's finite-nudge bias at r = 0.5
    slope, _ = np.polyfit(Ns, np.log(errs), 1)
    rate = float(np.exp(slope))  # error ~ C * rate^N
    assert rate < 0.5, (rate, errs)
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    n_exact = next(N for N in (12, 16, 24, 32)
                   if rel_error(eqprop.gradients(model, x, y, HolomorphicEP(N=N, radius=0.5, **CONVERGED)), ref) <= 1e-6)
    assert n_exact <= 32


def test_batched_equals_sequential(setup):
    model, x, y, _ = setup
    a = eqprop.gradients(model, x, y, HolomorphicEP(N=5, radius=0.4, **CONVERGED))
    b = eqprop.gradients(model, x, y, HolomorphicEP(N=5, radius=0.4, batched=True, **CONVERGED))
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=1e-10, atol=1e-13)


def test_complex_nudged_state_is_stationary(setup):
    """The complex relaxation settles at a stationary point of the holomorphic F_b."""
    model, x, y, _ = setup
    b = 0.3 * np.exp(1j * 1.1)
    free = relax(model, x, steps=3000, tol=1e-14)
    s = relax(model, x, [t.to(torch.complex128) for t in free.state], steps=3000, tol=1e-14,
              nudge=Nudge(complex(b), y)).state
    assert s[0].is_complex() and float(s[-1].imag.abs().max()) > 1e-3
    ctx = model.context(x)
    for i in range(model.num_free_layers):
        force = -b * model.cost_grad(s, y) if i == model.output_index else None
        torch.testing.assert_close(model.layer_update(i, s, ctx, force), s[i], rtol=0, atol=1e-12)


def test_hard_sigmoid_is_refused_with_the_fix(tiny_batch):
    x, y = tiny_batch
    with pytest.raises(ValueError, match="activation='sigmoid'"):
        eqprop.gradients(make_net(), x, y, "hep")


def test_make_rule_takes_radius_from_beta():
    r = make_rule("hep", beta=0.3, N=6, nudge_steps=5)
    assert (r.radius, r.N, r.nudge_steps) == (0.3, 6, 5)
    assert make_rule("hep", beta=0.3, radius=0.7).radius == 0.7
    with pytest.raises(ValueError, match="N must be"):
        HolomorphicEP(N=1)


def test_float32_training_step_runs(tiny_batch):
    x, y = tiny_batch
    model = make_net(activation="sigmoid").float()
    out = HolomorphicEP(N=3, radius=0.5, free_steps=20, nudge_steps=10).step(model, x.float(), y)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
               for p in model.parameters())
    assert out.stats["N"] == 3


def test_holomorphic_ep_on_the_conv_hopfield_network():
    from eqprop.models.conv import ConvHopfield

    torch.manual_seed(0)
    model = ConvHopfield((1, 4, 4), [3, 4], 3, pool="avg", activation="sigmoid", gains=[2.0] * 3).double()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (4,), generator=g)
    ref = eqprop.gradients(model, x, y, "rbp", adjoint_steps=5000, **CONVERGED)
    ep = eqprop.gradients(model, x, y, "ep-centered", beta=0.5, **CONVERGED)
    two = eqprop.gradients(model, x, y, HolomorphicEP(N=2, radius=0.5, **CONVERGED))
    assert rel_error(two, ep) < 1e-12 and rel_error(ep, ref) > 1e-3
    assert rel_error(eqprop.gradients(model, x, y, HolomorphicEP(N=12, radius=0.5, **CONVERGED)), ref) < 1e-6
    maxpool = ConvHopfield((1, 4, 4), [3], 3, pool="max", activation="sigmoid").double()
    with pytest.raises(ValueError, match="holomorphic"):
        eqprop.gradients(maxpool, x, y, "hep")
