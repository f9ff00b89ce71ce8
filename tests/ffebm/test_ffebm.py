"""ff-EBMs: the chain's EP gradient against its implicit-differentiation gradient (float64)."""

import pytest
import torch
from torch import nn

import eqprop
from eqprop.models import FFEBM, HopfieldBlock, HopfieldMLP, build_ffebm

CONVERGED = dict(free_steps=3000, nudge_steps=3000, tol=1e-14, adjoint_steps=5000)
SIZES = [12, 10, 9, 8, 7, 4]


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(6, 12, generator=g, dtype=torch.float64), torch.randint(0, 4, (6,), generator=g)


def flat(g):
    return torch.cat([v.flatten() for v in g.values()])


def cosine(a, b):
    return float(flat(a) @ flat(b) / (flat(a).norm() * flat(b).norm()))


def rel(a, b):
    return float((flat(a) - flat(b)).norm() / flat(b).norm())


def split(deep: HopfieldMLP, grouping, activation):
    """The deep net's couplings grouped into Hopfield blocks of ``grouping`` layers each."""
    blocks, start = [], 0
    for n in grouping:
        blocks.append(HopfieldBlock(SIZES[start:start + n + 1], activation=activation))
        start += n
    chain = FFEBM(blocks, cost="mse").double()
    chain.load_state_dict(dict(zip(chain.state_dict().keys(), deep.state_dict().values())))
    return chain


@pytest.mark.parametrize("activation", ["hard_sigmoid", "sigmoid"])
def test_splitting_a_deep_hopfield_net_keeps_the_gradient(activation, batch):
    """Whatever the grouping of the layers into blocks, the chain's EP gradient equals its own
    implicit-differentiation gradient; one block is the deep Hopfield network itself."""
    x, y = batch
    torch.manual_seed(0)
    deep = HopfieldMLP(SIZES, activation=activation, gains=[1.5] * 5).double()
    rbp = eqprop.gradients(deep, x, y, "rbp", **CONVERGED)
    for grouping in ([5], [2, 3], [1, 2, 2], [1, 1, 1, 1, 1]):
        chain = split(deep, grouping, activation)
        ref = eqprop.gradients(chain, x, y, "ffebm-implicit", **CONVERGED)
        ep = eqprop.gradients(chain, x, y, "ffebm", beta=1e-3, **CONVERGED)
        assert cosine(ep, ref) >= 0.999, grouping
        assert rel(ep, ref) < 1e-4, grouping
        if grouping == [5]:
            assert rel(ref, rbp) < 1e-10  # a chain of one block is the Hopfield network
    # feedforward limit: blocks of one layer are a sigmoid MLP, its gradient is backprop's
    chain = split(deep, [1] * 5, activation)
    h = x
    with torch.enable_grad():
        for blk in chain.blocks:
            h = blk.activation(blk.layers[0](h))
        loss = chain.cost(h, y).mean()
        bp = torch.autograd.grad(loss, list(chain.parameters()))
    ref = eqprop.gradients(chain, x, y, "ffebm-implicit", **CONVERGED)
    for g, r in zip(bp, ref.values()):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-12)


def test_chain_with_feedforward_blocks_matches_implicit_gradient(batch):
    """conv -> ReLU -> pool -> Hopfield block -> linear -> Hopfield block -> linear readout (CE)."""
    x, y = batch
    torch.manual_seed(0)
    chain = FFEBM([
        nn.Unflatten(1, (3, 2, 2)), nn.Conv2d(3, 4, 2, padding=1), nn.Tanh(), nn.MaxPool2d(2, stride=1),
        HopfieldBlock([16, 10, 8], activation="sigmoid", gains=[2.0, 2.0]),
        nn.Linear(8, 9),
        HopfieldBlock([9, 7, 6], activation="hard_sigmoid", gains=[1.5, 1.5]),
        nn.Linear(6, 4),
    ], cost="ce").double()
    ref = eqprop.gradients(chain, x, y, "ffebm-implicit", **CONVERGED)
    ep = eqprop.gradients(chain, x, y, "ffebm", beta=1e-3, **CONVERGED)
    assert cosine(ep, ref) >= 0.999
    for n in ref:  # every block receives a gradient, conv included
        assert float(ref[n].abs().max()) > 0, n
        assert rel({n: ep[n]}, {n: ref[n]}) < 1e-3, n
    # centered EP's bias is O(beta^2), one-sided O(beta)
    errs = {v: rel(eqprop.gradients(chain, x, y, eqprop.rules.FFEBMEP(beta=0.05, variant=v, **{k: CONVERGED[k] for k in ("free_steps", "nudge_steps", "tol")})), ref)
            for v in ("positive", "centered")}
    assert errs["centered"] < errs["positive"] / 5


def test_implicit_gradient_matches_finite_differences(batch):
    x, y = batch
    torch.manual_seed(0)
    chain = FFEBM([nn.Linear(12, 10), nn.Sigmoid(), HopfieldBlock([10, 8, 6], activation="sigmoid", gains=[2.0, 2.0]),
                   nn.Linear(6, 4)], cost="ce").double()
    ref = eqprop.gradients(chain, x, y, "ffebm-implicit", **CONVERGED)
    rule = eqprop.rules.FFEBMImplicit(free_steps=3000, tol=1e-15)
    for name, p in chain.named_parameters():
        flat_p = p.data.view(-1)
        j = 0
        old = float(flat_p[j])
        losses = []
        for h in (1e-6, -1e-6):
            flat_p[j] = old + h
            losses.append(float(rule.infer(chain, x, y).loss))
        flat_p[j] = old
        fd = (losses[0] - losses[1]) / 2e-6
        assert fd == pytest.approx(float(ref[name].view(-1)[j]), rel=1e-5, abs=1e-9), name


def test_build_ffebm_and_training_step():
    m = build_ffebm((1, 8, 8), 3, conv_channels=[4], hidden=[12, 10, 6], blocks=[2, 1])
    kinds = [type(b).__name__ for b in m.blocks]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "HopfieldBlock", "HopfieldBlock", "Linear"]
    assert m.blocks[4].sizes == [64, 12, 10] and m.blocks[5].sizes == [10, 6]
    mse = build_ffebm((16,), 3, hidden=[8], output="mse")
    assert mse.blocks[-1].sizes == [16, 8, 3]
    with pytest.raises(ValueError, match="split"):
        build_ffebm((16,), 3, hidden=[8, 8], blocks=[1])
    x = torch.rand(5, 1, 8, 8)
    y = torch.randint(0, 3, (5,))
    rule = eqprop.rules.make_rule("ffebm", beta=0.2, free_steps=10, nudge_steps=5)
    out = rule.step(m, x, y)
    assert out.output.shape == (5, 3) and all(p.grad is not None for p in m.parameters())
    with pytest.raises(ValueError, match="FFEBM"):
        eqprop.gradients(HopfieldMLP([4, 3, 2]), torch.rand(2, 4), torch.tensor([0, 1]), "ffebm")
    with pytest.raises(ValueError, match="ffebm"):
        eqprop.gradients(m, x, y, "ep-centered")
