"""Every estimator against the truth, in float64 with converged relaxations (issue acceptance).

Truth: RBP (implicit differentiation at the fixed point), itself checked against central finite
differences of ``equilibrium_loss``.
"""
import math

import numpy as np
import pytest
import torch

import eqprop
from tests.conftest import make_net

CONVERGED = dict(free_steps=3000, nudge_steps=3000, tol=1e-14, adjoint_steps=5000)


def rel_error(g, ref):
    return float((g - ref).norm() / ref.norm())


def cosine(g, ref):
    return float((g * ref).sum() / (g.norm() * ref.norm()))


@pytest.fixture(scope="module", params=["mse", "ce"])
def setup(request):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 12, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=g)
    model = make_net(output=request.param)
    ref = eqprop.gradients(model, x, y, "rbp", **CONVERGED)
    return model, x, y, ref


def test_rbp_matches_finite_differences(setup):
    model, x, y, ref = setup
    h = 1e-6
    for name, p in model.named_parameters():
        flat = p.data.view(-1)
        for j in torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:6].tolist():
            old = float(flat[j])
            flat[j] = old + h
            lp = float(eqprop.equilibrium_loss(model, x, y, steps=3000, tol=1e-15))
            flat[j] = old - h
            lm = float(eqprop.equilibrium_loss(model, x, y, steps=3000, tol=1e-15))
            flat[j] = old
            fd = (lp - lm) / (2 * h)
            assert fd == pytest.approx(float(ref[name].view(-1)[j]), abs=1e-7, rel=1e-5), (name, j)
    assert any(float(g.abs().max()) > 1e-3 for g in ref.values())  # not a vacuous comparison


def test_centered_ep_matches_rbp(setup):
    model, x, y, ref = setup
    ep = eqprop.gradients(model, x, y, "ep-centered", beta=1e-3, **CONVERGED)
    for name in ref:
        assert cosine(ep[name], ref[name]) >= 0.9999, name
        assert rel_error(ep[name], ref[name]) <= 1e-3, name


def test_bptt_with_enough_steps_matches_rbp(setup):
    model, x, y, ref = setup
    bp = eqprop.gradients(model, x, y, "bptt", free_steps=400, backprop_steps=400)
    for name in ref:
        assert rel_error(bp[name], ref[name]) <= 1e-8, name


def test_truncated_bptt_is_biased_when_too_short(setup):
    model, x, y, ref = setup
    bp = eqprop.gradients(model, x, y, "bptt", free_steps=400, backprop_steps=1)
    assert max(rel_error(bp[n], ref[n]) for n in ref) > 1e-2


def fitted_slope(rule, setup):
    model, x, y, ref = setup
    betas = [1e-4, 3e-4, 1e-3, 3e-3]  # small enough that no unit enters or leaves saturation
    errs = []
    for b in betas:
        g = eqprop.gradients(model, x, y, rule, beta=b, **CONVERGED)
        flat = torch.cat([g[n].flatten() for n in ref])
        flat_ref = torch.cat([ref[n].flatten() for n in ref])
        errs.append(rel_error(flat, flat_ref))
    return np.polyfit(np.log(betas), np.log(errs), 1)[0]


@pytest.mark.parametrize("rule,order", [("ep-positive", 1), ("ep-negative", 1), ("ep-centered", 2)])
def test_bias_order_in_beta(rule, order, setup):
    """One-sided EP's bias shrinks linearly with beta, centered EP's quadratically."""
    slope = fitted_slope(rule, setup)
    assert abs(slope - order) < 0.15, slope


def test_random_sign_is_one_of_the_one_sided_estimates(setup):
    model, x, y, _ = setup
    pos = eqprop.gradients(model, x, y, "ep-positive", beta=0.01, **CONVERGED)
    neg = eqprop.gradients(model, x, y, "ep-negative", beta=0.01, **CONVERGED)
    seen = set()
    for seed in range(8):
        torch.manual_seed(seed)
        r = eqprop.gradients(model, x, y, "ep-random", beta=0.01, **CONVERGED)
        n = next(iter(r))
        seen.add("pos" if torch.allclose(r[n], pos[n]) else "neg" if torch.allclose(r[n], neg[n]) else "?")
    assert seen == {"pos", "neg"}


def test_cl_and_cpl_need_the_output_in_the_energy(setup):
    model, x, y, _ = setup
    if model.output_in_energy:
        for rule in ("cl", "cpl-centered"):
            g = eqprop.gradients(model, x, y, rule, beta=0.01, free_steps=200, nudge_steps=200)
            assert all(torch.isfinite(v).all() for v in g.values())
    else:
        for rule in ("cl", "cpl-positive"):
            with pytest.raises(ValueError, match="output='mse'"):
                eqprop.gradients(model, x, y, rule)


def test_cpl_one_sided_variants_converge_to_centered(tiny_batch):
    """Coupled learning's one-sided estimates differ from the centered one by O(eta)."""
    x, y = tiny_batch
    model = make_net(output="mse")
    errs = []
    for eta in (0.02, 0.01):
        c = eqprop.gradients(model, x, y, "cpl-centered", beta=eta, **CONVERGED)
        p = eqprop.gradients(model, x, y, "cpl-positive", beta=eta, **CONVERGED)
        errs.append(sum(rel_error(p[n], c[n]) for n in c))
    assert errs[1] < 0.6 * errs[0]


def test_step_writes_grad_and_gradients_touches_nothing(setup):
    model, x, y, _ = setup
    model = __import__("copy").deepcopy(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rule = eqprop.rules.EP(variant="centered", beta=0.05, free_steps=50, nudge_steps=20)
    est = eqprop.gradients(model, x, y, rule)
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    out = rule.step(model, x, y)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, est[n])
    rule.step(model, x, y)  # accumulates like backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, 2 * est[n])
    assert out.output.shape == (6, 4) and math.isfinite(float(out.loss))
    assert out.stats["free_steps"] == 50


def test_rule_names_and_errors():
    assert eqprop.rules.rule_names()[:10] == [
        "cl", "ep-positive", "ep-negative", "ep-centered", "ep-random",
        "cpl-positive", "cpl-negative", "cpl-centered", "bptt", "rbp",
    ]
    with pytest.raises(ValueError, match="valid rules: cl, ep, ep-positive"):
        eqprop.rules.make_rule("ep-sideways")
    with pytest.raises(ValueError, match="positive, negative, centered"):
        eqprop.rules.EP(variant="sideways")
    with pytest.raises(ValueError, match="beta must be > 0"):
        eqprop.rules.EP(beta=-0.1)
    r = eqprop.rules.make_rule("bptt", backprop_steps=7, nudge_steps=9, free_steps=30, beta=0.3)
    assert r.backprop_steps == 7  # truncated BPTT is asked for by name, never implied by nudge_steps
    assert eqprop.rules.make_rule("bptt", nudge_steps=9).backprop_steps is None  # full BPTT


def test_misspelt_setting_is_an_error_not_a_default(tiny_batch):
    x, y = tiny_batch
    with pytest.raises(ValueError, match="unknown rule setting.*free_step\\b.*valid settings"):
        eqprop.gradients(make_net(), x, y, "ep-centered", free_step=100)


def test_warm_start_from_the_fixed_point_needs_no_free_sweeps(tiny_batch):
    """Starting the free phase at s*_0, one sweep gives the converged cold-start estimate.

    (Positive EP, which contrasts with the free state; centered EP uses only the nudged states.)
    """
    x, y = tiny_batch
    model = make_net()
    cold = eqprop.rules.EP(variant="positive", beta=0.01, free_steps=3000, nudge_steps=3000, tol=1e-14)
    g_cold, r_cold = cold.estimate(model, x, y)
    warm = eqprop.rules.EP(variant="positive", beta=0.01, free_steps=1, nudge_steps=3000, tol=1e-14)
    g_warm, _ = warm.estimate(model, x, y, state=r_cold.state)
    g_short, _ = warm.estimate(model, x, y)  # one sweep from zeros is far from s*_0
    for n in g_cold:
        torch.testing.assert_close(g_warm[n], g_cold[n], rtol=1e-8, atol=1e-10)
    assert max(rel_error(g_short[n], g_cold[n]) for n in g_cold) > 1e-2
