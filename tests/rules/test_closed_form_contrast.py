"""The closed-form energy contrast (``model.contrast_grads``: one product per coupling over the
stacked phases) against the autograd contrast it replaces, in float64, to 1e-12."""
import pytest
import torch

from eqprop.dynamics import Nudge, relax
from eqprop.models import ConvHopfield, HopfieldMLP
from eqprop.rules import EP, CL, CpL, HolomorphicEP
from eqprop.rules.base import autograd_contrast, energy_contrast, weighted_contrast



@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _close(fast, ref):
    assert fast.keys() == ref.keys()
    assert sum(float(g.abs().sum()) for g in ref.values()) > 1e-3  # not a vacuous comparison
    for n in ref:
        assert fast[n].dtype == ref[n].dtype
        torch.testing.assert_close(fast[n], ref[n], atol=1e-12, rtol=0, msg=n)


def _states(model, x, y, beta, steps=15):
    """A free and two nudged relaxed states (real equilibria, not random points)."""
    free = relax(model, x, steps=steps)
    plus = relax(model, x, free.state, steps=steps // 2, nudge=Nudge(beta, y)).state
    minus = relax(model, x, free.state, steps=steps // 2, nudge=Nudge(-beta, y)).state
    return free.state, plus, minus


def _centered_terms(plus, minus, beta, B):
    return [(plus, beta, 1 / (2 * beta * B)), (minus, -beta, -1 / (2 * beta * B))]


@pytest.mark.parametrize("output", ["mse", "ce", "mse-linear"])
@pytest.mark.parametrize("sizes", [[12, 10, 4], [12, 9, 8, 7, 5]])
def test_mlp_closed_form_equals_autograd(output, sizes):
    torch.manual_seed(0)
    out_act = {"output_activation": "linear"} if output == "mse-linear" else {}  # the study's output layer
    m = HopfieldMLP(sizes, output=output.split("-")[0], gains=[1.5] * (len(sizes) - 1), **out_act)
    x, y = torch.rand(6, sizes[0]), torch.randint(0, sizes[-1], (6,))
    free, plus, minus = _states(m, x, y, 0.3)
    terms = _centered_terms(plus, minus, 0.3, 6)
    assert m.contrast_grads(x, y, terms) is not None
    _close(weighted_contrast(m, x, y, terms), autograd_contrast(m, x, y, terms))
    # three terms, per-sample (B,) weights and nudges (batched phases), a zero nudge
    bw = torch.rand(6)
    terms3 = [(plus, torch.full((6,), 0.3), bw), (free, 0.0, 0.7), (minus, -0.3, -bw - 0.7)]
    _close(weighted_contrast(m, x, y, terms3), autograd_contrast(m, x, y, terms3))


def test_mlp_closed_form_with_complex_states_and_weights():
    torch.manual_seed(1)
    m = HopfieldMLP([10, 8, 6, 4], activation="sigmoid", output="ce")
    x, y = torch.rand(5, 10), torch.randint(0, 4, (5,))
    st = [torch.rand(5, d) + 1j * 0.1 * torch.randn(5, d) for d in (8, 6)]
    st2 = [torch.rand(5, d) + 1j * 0.1 * torch.randn(5, d) for d in (8, 6)]
    terms = [(st, 0.2 + 0.1j, 0.5 - 0.3j), (st2, -0.2 + 0.05j, -0.5 + 0.3j)]
    _close(weighted_contrast(m, x, y, terms), autograd_contrast(m, x, y, terms))


@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("output", ["mse", "ce"])
def test_conv_closed_form_equals_autograd(pool, output):
    torch.manual_seed(2)
    m = ConvHopfield((2, 8, 8), [3, 4, 5], 3, pool=pool, output=output, gains=[1.0, 1.2, 1.2, 1.5])
    x, y = torch.rand(4, 2, 8, 8), torch.randint(0, 3, (4,))
    free, plus, minus = _states(m, x, y, 0.4, steps=12)
    terms = _centered_terms(plus, minus, 0.4, 4)
    assert m.contrast_grads(x, y, terms) is not None
    _close(weighted_contrast(m, x, y, terms), autograd_contrast(m, x, y, terms))
    terms3 = [(plus, 0.4, 0.5), (free, 0.0, torch.rand(4)), (minus, torch.full((4,), -0.4), -0.3)]
    _close(weighted_contrast(m, x, y, terms3), autograd_contrast(m, x, y, terms3))


def test_frozen_parameters_and_channels_last():
    torch.manual_seed(3)
    m = ConvHopfield((1, 8, 8), [3, 4], 3, channels_last=True)
    m.convs[0].bias.requires_grad_(False)
    x, y = torch.rand(3, 1, 8, 8), torch.randint(0, 3, (3,))
    _, plus, minus = _states(m, x, y, 0.5, steps=8)
    terms = _centered_terms(plus, minus, 0.5, 3)
    g = weighted_contrast(m, x, y, terms)
    assert "convs.0.bias" not in g
    _close(g, autograd_contrast(m, x, y, terms))


def test_a_subclass_with_another_energy_gets_the_autograd_contrast():
    class Scaled(HopfieldMLP):
        def energy(self, x, state):
            return 2.0 * super().energy(x, state)

    torch.manual_seed(4)
    m = Scaled([8, 6, 3])
    x, y = torch.rand(4, 8), torch.randint(0, 3, (4,))
    st = [[torch.rand(4, 6), torch.rand(4, 3)] for _ in range(2)]
    terms = [(st[0], 0.0, 1.0), (st[1], 0.0, -1.0)]
    assert m.contrast_grads(x, y, terms) is None
    plain = HopfieldMLP([8, 6, 3])
    plain.load_state_dict(m.state_dict())
    g, g1 = weighted_contrast(m, x, y, terms), weighted_contrast(plain, x, y, terms)
    for n in g:  # the autograd path honours the subclass's energy (twice the plain contrast)
        torch.testing.assert_close(g[n], 2 * g1[n], atol=1e-12, rtol=0)


@pytest.mark.parametrize("rule", [EP(beta=0.2, free_steps=10, nudge_steps=5, mode="sync"),
                                  EP(variant="positive", beta=0.2, free_steps=10, nudge_steps=5),
                                  CL(free_steps=10, nudge_steps=5), CpL(beta=0.3, free_steps=10, nudge_steps=5),
                                  HolomorphicEP(N=4, radius=0.2, free_steps=10, nudge_steps=5)],
                         ids=lambda r: f"{r.name}-{getattr(r, 'variant', '')}")
def test_every_ep_family_rule_gets_the_same_estimate_by_either_path(rule, monkeypatch):
    torch.manual_seed(5)
    m = HopfieldMLP([10, 8, 4], activation="sigmoid")
    x, y = torch.rand(6, 10), torch.randint(0, 4, (6,))
    fast = rule.estimate(m, x, y)[0]
    monkeypatch.setattr(HopfieldMLP, "contrast_grads", lambda *a, **k: None)
    ref = rule.estimate(m, x, y)[0]
    _close(fast, ref)


def test_energy_contrast_is_the_two_term_weighted_contrast():
    torch.manual_seed(6)
    m = HopfieldMLP([8, 6, 3])
    x, y = torch.rand(4, 8), torch.randint(0, 3, (4,))
    a, b = ([torch.rand(4, 6), torch.rand(4, 3)] for _ in range(2))
    _close(energy_contrast(m, x, y, a, 0.1, b, -0.1, 2.5), autograd_contrast(m, x, y, [(a, 0.1, 2.5), (b, -0.1, -2.5)]))
