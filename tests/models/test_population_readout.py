"""HopfieldMLP with ``expand_output`` (k output units per class, Laydevant et al. 2021): the cost and its
gradient against autograd, the fused sweeps against the general ones, and the EP estimate against the
exact gradient (RBP), float64."""
import pytest
import torch

import eqprop
from eqprop.dynamics import Nudge, relax
from eqprop.models import HopfieldMLP, build_model


def _net(k=3, output_activation=None, seed=0):
    torch.manual_seed(seed)
    m = HopfieldMLP([12, 9, 4], output_activation=output_activation, expand_output=k, gains=[1.5, 1.5]).double()
    with torch.no_grad():
        for layer in m.layers:
            layer.bias.uniform_(-0.3, 0.3)
    return m


def _data(m, batch=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 12, generator=g, dtype=torch.float64)
    y = torch.randint(0, m.num_outputs, (batch,), generator=g)
    start = [torch.rand(batch, d, generator=g, dtype=torch.float64) for d in m.free_sizes]
    return x, y, start


def test_layer_sizes_targets_output_and_cost():
    m = _net(k=3)
    x, y, s = _data(m)
    assert m.sizes == [12, 9, 12] and m.free_sizes == [9, 12] and m.num_outputs == 4
    assert m.layers[1].weight.shape == (12, 9)
    t = m.output_targets(y, s[1])
    want = torch.zeros(6, 12, dtype=torch.float64)
    for b, c in enumerate(y.tolist()):
        want[b, 3 * c:3 * c + 3] = 1.0
    assert torch.equal(t, want)
    assert torch.equal(m.prepare_targets(y, s[1]), want)
    torch.testing.assert_close(m.output(s), s[1].view(6, 4, 3).mean(-1))
    torch.testing.assert_close(m.cost(s, y), 0.5 * ((s[1] - want) ** 2).sum(-1))
    soft = torch.softmax(torch.randn(6, 4, dtype=torch.float64), -1)  # float targets per class are repeated
    torch.testing.assert_close(m.output_targets(soft, s[1]), soft.repeat_interleave(3, -1))
    torch.testing.assert_close(m.output_targets(want, s[1]), want)  # ... of the layer's width pass
    leaf = [v.clone().requires_grad_(True) for v in s]
    g = torch.autograd.grad(m.cost(leaf, y).sum(), leaf[1])[0]
    torch.testing.assert_close(m.cost_grad(s, y), g, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_fused_nudged_sweeps_equal_the_general_path(mode):
    m = _net(k=3, output_activation="linear")
    x, y, start = _data(m)
    ctx = m.context(x)
    nudge = Nudge(0.4, y)
    with torch.no_grad():
        assert m.fused_relax(ctx, start, 7, mode, nudge) is not None
    fast = relax(m, x, start, steps=7, mode=mode, nudge=nudge, ctx=ctx).state
    ref = relax(m, x, start, steps=7, mode=mode, nudge=nudge, ctx=ctx, fused=False).state
    assert max(float((a - b).abs().max()) for a, b in zip(fast, ref)) < 1e-12


def test_centered_ep_matches_rbp_with_a_population_readout():
    """At a small beta and a settled net, centered EP's estimate is the exact gradient (RBP)."""
    m = _net(k=2)
    x, y, _ = _data(m, batch=8)
    ep = eqprop.rules.EP(variant="centered", beta=1e-3, free_steps=300, nudge_steps=300, mode="async")
    rbp = eqprop.rules.make_rule("rbp", free_steps=300, adjoint_steps=300, mode="async")
    g_ep, _ = ep.estimate(m, x, y)
    g_rbp, _ = rbp.estimate(m, x, y)
    for n, g in g_rbp.items():
        assert float(g.norm()) > 1e-4, n
        assert float((g_ep[n] - g).norm() / g.norm()) < 1e-4, n


def test_registry_and_errors():
    m = build_model("hopfield-mlp", (1, 4, 4), 3, hidden=[5], expand_output=4)
    assert m.layers[1].weight.shape == (12, 5) and m.num_outputs == 3
    assert "expand_output=4" in repr(m)
    with pytest.raises(ValueError, match="output='mse'"):
        HopfieldMLP([6, 5, 3], output="ce", expand_output=2)
    with pytest.raises(ValueError, match="expand_output must be an integer >= 1"):
        HopfieldMLP([6, 5, 3], expand_output=0)
    with pytest.raises(ValueError, match=r"class targets must lie in \[0, 2\]"):
        m.output_targets(torch.tensor([0, 3]), torch.zeros(2, 12))


def test_short_training_run_learns(tmp_path):
    """Three noisy binary patterns in 20-d, 4 output units per class: far above chance (33%)."""
    g = torch.Generator().manual_seed(0)
    centers = (torch.rand(3, 20, generator=g) > 0.5).float()
    y = torch.randint(0, 3, (1200,), generator=g)
    x = (centers[y] + 0.15 * torch.randn(1200, 20, generator=g)).clamp(0, 1)
    torch.manual_seed(0)
    model = HopfieldMLP([20, 32, 3], expand_output=4)
    rule = eqprop.rules.EP(variant="random", beta=0.3, free_steps=20, nudge_steps=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    trainer = eqprop.Trainer(model, rule, opt, (x[:1000], y[:1000]), (x[1000:], y[1000:]), epochs=2,
                             batch_size=32, out=str(tmp_path / "run"), progress=False, schedule="none")
    trainer.fit()
    assert trainer.history[-1]["test_acc"] > 0.9, trainer.history
