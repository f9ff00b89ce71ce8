"""The fused sweeps of HopfieldMLP (``fused_relax``, the default path of ``relax``) against the
general ``sweep`` (``relax(..., fused=False)``), the reference: same states and same EP gradients
to 1e-12 in float64."""
import itertools

import pytest
import torch

import eqprop
from eqprop.dynamics import Clamp, Nudge, relax
from eqprop.models import HopfieldMLP
from eqprop.rules.base import FreshGrads, autograd_contrast, weighted_contrast

TOL = 1e-12
SIZES = ([12, 7, 4], [12, 9, 6, 4])


def _model(sizes, output_activation=None, activation="hard_sigmoid", output="mse", seed=0):
    torch.manual_seed(seed)
    m = HopfieldMLP(sizes, activation=activation, output=output, output_activation=output_activation).double()
    with torch.no_grad():  # biases away from zero so that their terms count
        for layer in m.layers:
            layer.bias.uniform_(-0.5, 0.5)
    return m


def _data(m, seed=1, batch=6):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, m.sizes[0], generator=g, dtype=torch.float64)
    y = torch.randint(0, m.num_outputs, (batch,), generator=g)
    start = [torch.rand(batch, d, generator=g, dtype=torch.float64) for d in m.free_sizes]
    return x, y, start


def _gap(a, b):
    return max(float((p - q).abs().max()) for p, q in zip(a, b))


@pytest.mark.parametrize("sizes,out_act,mode,beta", list(itertools.product(
    SIZES, [None, "linear"], ["sync", "async"], [None, 0.3, -0.3])))
def test_fused_states_equal_general_sweeps(sizes, out_act, mode, beta):
    m = _model(sizes, out_act)
    x, y, start = _data(m)
    before = [s.clone() for s in start]
    ctx = m.context(x)
    nudge = None if beta is None else Nudge(beta, y)
    with torch.no_grad():
        assert m.fused_relax(ctx, start, 9, mode, nudge) is not None  # the fast path applies here
    fast = relax(m, x, start, steps=9, mode=mode, nudge=nudge, ctx=ctx).state
    ref = relax(m, x, start, steps=9, mode=mode, nudge=nudge, ctx=ctx, fused=False).state
    assert _gap(fast, ref) < TOL
    assert _gap(fast, start) > 1e-3  # the sweeps moved the state
    assert all(torch.equal(a, b) for a, b in zip(start, before))  # the start state untouched
    assert [tuple(s.shape) for s in fast] == [(6, d) for d in m.free_sizes]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("case", ["clamp", "sigmoid", "ce", "one_layer"])
def test_fused_other_settings(case, mode):
    """The clamped output (CL/CpL), the sigmoid, the cross-entropy readout (its nudge force taken as
    in the general path) and a network without hidden layer."""
    kw = dict(sigmoid=dict(activation="sigmoid"), ce=dict(output="ce")).get(case, {})
    m = _model([12, 5] if case == "one_layer" else [12, 7, 5, 4], **kw)
    x, y, start = _data(m)
    nudge = None if case == "clamp" else Nudge(0.4, y)
    clamp = Clamp(torch.rand(6, m.free_sizes[-1], dtype=torch.float64)) if case == "clamp" else None
    ctx = m.context(x)
    with torch.no_grad():
        assert m.fused_relax(ctx, start, 8, mode, nudge, clamp) is not None
    fast = relax(m, x, start, steps=8, mode=mode, nudge=nudge, clamp=clamp, ctx=ctx).state
    ref = relax(m, x, start, steps=8, mode=mode, nudge=nudge, clamp=clamp, ctx=ctx, fused=False).state
    assert _gap(fast, ref) < TOL
    if clamp is not None:
        assert torch.equal(fast[-1], clamp.value)


def _general(m):
    m.fused_relax = lambda *a, **k: None  # the instance falls back to the general sweeps
    return m


@pytest.mark.parametrize("sizes,out_act,mode,variant", list(itertools.product(
    SIZES, [None, "linear"], ["sync", "async"], ["positive", "negative", "centered"])))
def test_fused_ep_gradients_equal_general(sizes, out_act, mode, variant):
    m, ref = _model(sizes, out_act), _general(_model(sizes, out_act))
    x, y, _ = _data(m)
    rule = eqprop.rules.EP(variant=variant, beta=0.25, free_steps=25, nudge_steps=8, mode=mode)
    g_fast, r_fast = rule.estimate(m, x, y)
    g_ref, r_ref = rule.estimate(ref, x, y)
    assert set(g_fast) == set(g_ref) == {n for n, _ in m.named_parameters()}
    for n in g_ref:
        assert float((g_fast[n] - g_ref[n]).abs().max()) < TOL, n
    assert max(float(g.abs().max()) for g in g_ref.values()) > 1e-3  # not trivially zero
    assert _gap(r_fast.state, r_ref.state) < TOL
    assert float((r_fast.loss - r_ref.loss).abs()) < TOL


def test_closed_form_contrast_equals_autograd_at_fused_states():
    """The closed-form contrast (per-phase products, the sign on the rows) on the transposed views
    the fused path returns, against autograd, float64."""
    m = _model([12, 9, 6, 4])
    x, y, start = _data(m)
    ctx = m.context(x)
    free = relax(m, x, start, steps=20, mode="sync", ctx=ctx).state
    plus = relax(m, x, free, steps=6, mode="sync", nudge=Nudge(0.2, y), ctx=ctx).state
    minus = relax(m, x, free, steps=6, mode="sync", nudge=Nudge(-0.2, y), ctx=ctx).state
    terms = [(plus, 0.2, 1 / 2.4), (minus, -0.2, -1 / 2.4)]
    fast = weighted_contrast(m, x, y, terms)
    ref = autograd_contrast(m, x, y, terms)
    assert isinstance(fast, FreshGrads)
    for n in ref:
        assert float((fast[n] - ref[n]).abs().max()) < TOL, n


def test_step_hands_fresh_grads_over_and_accumulates():
    """``Rule.step`` puts the closed-form gradients into an empty ``.grad`` without a copy, and a
    second step adds to it (as ``backward`` would)."""
    m = _model([12, 7, 4])
    x, y, _ = _data(m)
    rule = eqprop.rules.EP(beta=0.25, free_steps=10, nudge_steps=4)
    grads, _ = rule.estimate(m, x, y)
    rule.step(m, x, y)
    first = {n: p.grad.clone() for n, p in m.named_parameters()}
    for n in first:
        assert torch.allclose(first[n], grads[n], atol=1e-14, rtol=0)
    rule.step(m, x, y)
    for n, p in m.named_parameters():
        assert torch.allclose(p.grad, 2 * first[n], atol=1e-13, rtol=0)


def test_fused_declines_where_it_does_not_apply():
    m = _model([12, 7, 4])
    x, y, start = _data(m)
    ctx = m.context(x)
    with torch.no_grad():
        assert m.fused_relax(ctx, start, 0, "sync") is None                             # no sweep
        assert m.fused_relax(ctx, [s.float() for s in start], 3, "sync") is None       # other dtype
        assert m.fused_relax(ctx, start, 3, "sync", Nudge(torch.full((6,), 0.2), y)) is None  # per-sample beta
    with torch.enable_grad():
        assert m.fused_relax(ctx, start, 3, "sync") is None                             # a graph is wanted

    class Mine(HopfieldMLP):  # a subclass with its own update keeps the general path
        def layer_update(self, i, state, ctx, force=None):
            return 0.5 * super().layer_update(i, state, ctx, force)

    mine = Mine([12, 7, 4]).double()
    c = mine.context(x)
    assert c.input_drive_t is None
    with torch.no_grad():
        assert mine.fused_relax(c, start, 3, "sync") is None
    out = relax(mine, x, start, steps=3, mode="sync").state
    assert float(out[0].max()) <= 0.5  # its own update ran


def test_fused_follows_in_place_weight_updates():
    """The cached weight views see the optimizer's in-place steps and a replaced parameter."""
    m = _model([12, 7, 4])
    x, y, start = _data(m)
    relax(m, x, start, steps=3, mode="sync")
    with torch.no_grad():
        m.layers[1].weight.mul_(-2.0)
    m.layers[0].bias = torch.nn.Parameter(torch.rand(7, dtype=torch.float64))
    fast = relax(m, x, start, steps=5, mode="sync").state
    ref = relax(m, x, start, steps=5, mode="sync", fused=False).state
    assert _gap(fast, ref) < TOL
