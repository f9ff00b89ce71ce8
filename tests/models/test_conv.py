"""ConvHopfield: hand-derived update vs autograd of its energy, and EP vs the exact gradient."""
import pytest
import torch

import eqprop
from eqprop.models.conv import ConvHopfield

CONVERGED = dict(free_steps=3000, nudge_steps=3000, tol=1e-14, adjoint_steps=5000)


def net(pool="max", output="mse", seed=0):
    """A small float64 net. Biases are made nonzero: with zero biases, a unit whose receptive
    field is all zeros sits exactly on the hard sigmoid's kink, where L is not differentiable."""
    torch.manual_seed(seed)
    m = ConvHopfield((2, 8, 8), [3, 4], 5, pool=pool, output=output, gains=[2.0, 2.0, 2.0]).double()
    for name, p in m.named_parameters():
        if name.endswith("bias"):
            torch.nn.init.uniform_(p, -0.2, 0.2)
    return m


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(2)
    return torch.rand(4, 2, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 5, (4,), generator=g)


@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("output", ["mse", "ce"])
def test_fast_update_equals_autograd_update(pool, output, batch):
    x, y = batch
    m = net(pool, output)
    state = [torch.rand(s.shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
             for i, s in enumerate(m.init_state(x))]
    ctx = m.context(x)
    for i in range(m.num_free_layers):
        torch.testing.assert_close(m.layer_update(i, state, ctx), m.autograd_layer_update(i, state, ctx).detach(),
                                   rtol=1e-12, atol=1e-12)
    s = [t.clone().requires_grad_(True) for t in state]
    g = torch.autograd.grad(m.cost(s, y).sum(), s[m.output_index])[0]
    torch.testing.assert_close(m.cost_grad(state, y), g)


@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("output", ["mse", "ce"])
def test_centered_ep_and_bptt_match_rbp(pool, output, batch):
    x, y = batch
    m = net(pool, output)
    ref = eqprop.gradients(m, x, y, "rbp", **CONVERGED)
    ep = eqprop.gradients(m, x, y, "ep-centered", beta=1e-3, **CONVERGED)
    bp = eqprop.gradients(m, x, y, "bptt", free_steps=600, backprop_steps=600)
    flat = lambda d: torch.cat([d[k].flatten() for k in ref])  # noqa: E731
    r = flat(ref)
    assert r.norm() > 1e-6
    assert float((flat(ep) - r).norm() / r.norm()) < 1e-3
    assert float((flat(bp) - r).norm() / r.norm()) < 1e-8


def test_rbp_matches_finite_differences(batch):
    x, y = batch
    m = net("avg", "ce")
    ref = eqprop.gradients(m, x, y, "rbp", **CONVERGED)
    h = 1e-6
    for name, p in m.named_parameters():
        flat = p.data.view(-1)
        for j in range(0, flat.numel(), max(1, flat.numel() // 3)):
            old = float(flat[j])
            flat[j] = old + h
            lp = float(eqprop.equilibrium_loss(m, x, y, steps=3000, tol=1e-15))
            flat[j] = old - h
            lm = float(eqprop.equilibrium_loss(m, x, y, steps=3000, tol=1e-15))
            flat[j] = old
            assert (lp - lm) / (2 * h) == pytest.approx(float(ref[name].view(-1)[j]), abs=1e-7, rel=1e-5), (name, j)


def test_async_sweeps_lower_the_energy_with_average_pooling(batch):
    x, _ = batch
    m = net("avg")
    ctx, state = m.context(x), m.init_state(x)
    e = m.energy(x, state)
    for _ in range(20):
        state = eqprop.dynamics.sweep(m, state, ctx, "async")
        e_new = m.energy(x, state)
        assert (e_new <= e + 1e-12).all()
        e = e_new


def test_shapes_and_errors():
    m = ConvHopfield((3, 32, 32), [128, 256, 512, 512], 10)
    assert m.map_shapes == [(128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
    assert m.num_free_layers == 5 and tuple(m.dense.weight.shape) == (10, 2048)
    m28 = ConvHopfield((1, 28, 28), [32, 64], 10, output="ce")
    assert m28.map_shapes == [(32, 14, 14), (64, 7, 7)] and m28.num_free_layers == 2
    with pytest.raises(ValueError, match="does not halve evenly"):
        ConvHopfield((1, 28, 28), [8, 8, 8], 10)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, 1, 28, 28\)"):
        m28.context(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="max, avg"):
        ConvHopfield((1, 28, 28), [8], 10, pool="median")


def test_channels_last_gives_the_same_relaxation_and_gradient(batch):
    x, y = batch
    a, b = net("max"), net("max")
    b.channels_last = True
    ra, rb = eqprop.relax(a, x, steps=30), eqprop.relax(b, x, steps=30)
    assert rb.state[0].is_contiguous(memory_format=torch.channels_last)
    for u, v in zip(ra.state, rb.state):
        torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)
    ga = eqprop.gradients(a, x, y, "ep-centered", beta=0.1, free_steps=30, nudge_steps=10)
    gb = eqprop.gradients(b, x, y, "ep-centered", beta=0.1, free_steps=30, nudge_steps=10)
    for k in ga:
        torch.testing.assert_close(ga[k], gb[k], rtol=1e-10, atol=1e-12)


def test_named_dchn_shapes():
    m = ConvHopfield.dchn32()
    assert m.map_shapes[-1] == (512, 2, 2) and m.in_shape == (3, 32, 32)
    assert ConvHopfield.dchn28(output="ce").map_shapes == [(32, 14, 14), (64, 7, 7)]
