"""Asymmetric (vector-field) networks: generalized EP, bias decomposition, Jacobian homeostasis."""
import copy

import pytest
import torch

import eqprop
from eqprop.diagnostics.bias import bias_decomposition, infinitesimal_estimate, linear_response
from eqprop.models import VectorFieldMLP
from eqprop.models.vector_field import tied_hopfield
from eqprop.rules import HolomorphicEP
from eqprop.rules.vector_field import add_homeostasis_grad, homeostasis_loss

CONVERGED = dict(free_steps=3000, nudge_steps=3000, tol=1e-14, adjoint_steps=5000)
RELAX = dict(free_steps=3000, nudge_steps=3000, tol=1e-14)


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(6, 12, generator=g, dtype=torch.float64), torch.randint(0, 4, (6,), generator=g)


def make_vf(asymmetry=0.0, output="mse", activation="sigmoid"):
    torch.manual_seed(0)
    return VectorFieldMLP([12, 10, 8, 4], activation=activation, output=output, gains=[2.0] * 3,
                          asymmetry=asymmetry, seed=0).double()


def tied_sum(g):
    """Gradient of the tied (symmetric) weights: forward W_{k+1} plus feedback B_k."""
    out = {n: v.clone() for n, v in g.items() if not n.startswith("feedback")}
    for n, v in g.items():
        if n.startswith("feedback."):
            out[f"layers.{int(n.split('.')[1]) + 1}.weight"] += v
    return out


def flat(g):
    return torch.cat([v.flatten() for v in g.values()])


def rel(a, b):
    return float((flat(a) - flat(b)).norm() / flat(b).norm())


def test_asymmetry_knob_sets_the_angle():
    for angle in (0.0, 20.0, 60.0, 90.0):
        m = make_vf(angle)
        assert m.asymmetry_angles() == pytest.approx([angle, angle], abs=1e-3)
        for k, b in enumerate(m.feedback):
            assert float(b.detach().norm()) == pytest.approx(float(m.layers[k + 1].weight.detach().norm()))
    assert make_vf(0.0).jacobian_asymmetry() == 0.0


@pytest.mark.parametrize("output", ["mse", "ce"])
def test_fast_update_equals_autograd_update(output, batch):
    x, y = batch
    m = make_vf(40.0, output=output)
    state = [torch.rand(6, d, dtype=torch.float64, generator=torch.Generator().manual_seed(d)) for d in m.free_sizes]
    ctx = m.context(x)
    for i in range(m.num_free_layers):
        torch.testing.assert_close(m.layer_update(i, state, ctx), m.autograd_layer_update(i, state, ctx))
    # fixed point of the relaxation = zero of the vector field
    s = eqprop.relax(m, x, steps=3000, tol=1e-14).state
    with torch.no_grad():
        assert max(float(f.abs().max()) for f in m.vector_field(x, s)) < 1e-10


@pytest.mark.parametrize("output", ["mse", "ce"])
def test_zero_asymmetry_is_symmetric_ep(output, batch):
    """B = W: RBP and generalized EP on the VF net equal RBP and EP on the Hopfield net (tied
    gradient = forward + feedback part); exactly for RBP and for the infinitesimal-nudge and
    holomorphic estimators, to O(beta^2) for centered EP at finite beta."""
    x, y = batch
    vf = make_vf(0.0, output=output)
    hop = tied_hopfield(vf)
    assert rel(tied_sum(eqprop.gradients(vf, x, y, "rbp", **CONVERGED)), eqprop.gradients(hop, x, y, "rbp", **CONVERGED)) < 1e-12
    hep = HolomorphicEP(N=12, radius=0.3, **RELAX)
    assert rel(tied_sum(eqprop.gradients(vf, x, y, hep)), eqprop.gradients(hop, x, y, hep)) < 1e-9
    errs = []
    for beta in (2e-3, 1e-3):
        a = tied_sum(eqprop.gradients(vf, x, y, "ep-centered", beta=beta, **CONVERGED))
        b = eqprop.gradients(hop, x, y, "ep-centered", beta=beta, **CONVERGED)
        errs.append(rel(a, b))
    assert errs[1] < 1e-5 and errs[1] < 0.3 * errs[0]  # O(beta^2)
    # the infinitesimal-nudge limits coincide
    outs = []
    for m in (vf, hop):
        free = eqprop.relax(m, x, steps=3000, tol=1e-14).state
        outs.append(infinitesimal_estimate(m, x, y, free, linear_response(m, x, y, free)))
    assert rel(tied_sum(outs[0]), outs[1]) < 1e-10


def test_generalized_ep_is_exact_without_asymmetry_and_biased_with_it(batch):
    x, y = batch
    for angle, exact in ((0.0, True), (45.0, False)):
        m = make_vf(angle)
        ref = eqprop.gradients(m, x, y, "rbp", **CONVERGED)
        hep = eqprop.gradients(m, x, y, HolomorphicEP(N=16, radius=0.3, **RELAX))
        assert (rel(hep, ref) < 1e-8) == exact, (angle, rel(hep, ref))


def test_bias_decomposition_separates_nudge_and_asymmetry(batch):
    x, y = batch
    rows = []
    for angle in (0.0, 15.0, 30.0, 60.0, 90.0):
        bd = bias_decomposition(make_vf(angle), x, y, "ep-centered", beta=0.2, **CONVERGED)
        assert bd.total <= bd.nudge + bd.asymmetry + 1e-12
        rows.append(bd)
    asym = [r.asymmetry for r in rows]
    nudge = [r.nudge for r in rows]
    assert asym[0] < 1e-9  # symmetric: no asymmetry bias
    assert all(b > a for a, b in zip(asym, asym[1:])), asym  # grows with the angle
    assert asym[-1] > 0.1
    assert nudge[0] > 1e-3  # the finite nudge is visible at beta = 0.2 ...
    assert max(nudge) / min(nudge) < 1.5, nudge  # ... and stays about the same
    # the cosine with the exact gradient falls with the asymmetry
    assert rows[0].cosine > rows[-1].cosine + 0.05
    # the holomorphic estimator removes the nudge part only
    hep = bias_decomposition(make_vf(60.0), x, y, HolomorphicEP(N=16, radius=0.2, **RELAX), **CONVERGED)
    assert hep.nudge < 1e-8 and hep.asymmetry == pytest.approx(rows[3].asymmetry, rel=1e-6)
    assert "asymmetry" in rows[2].table()


def test_bias_decomposition_of_a_symmetric_energy_model(batch):
    x, y = batch
    hop = tied_hopfield(make_vf(0.0))
    bd = bias_decomposition(hop, x, y, "ep-positive", beta=0.05, **CONVERGED)
    assert bd.asymmetry < 1e-9 and bd.nudge > 1e-3


def test_homeostasis_estimator_is_unbiased_and_its_gradient_symmetrises(batch):
    x, _ = batch
    m = make_vf(50.0)
    state = eqprop.relax(m, x, steps=200).state
    exact = m.jacobian_asymmetry() ** 2
    gen = torch.Generator().manual_seed(0)
    est = float(homeostasis_loss(m, x, state, probes=400, generator=gen).detach())
    assert est == pytest.approx(exact, rel=0.1)
    # gradient: matches d/dtheta 2 sum ||W_{k+1} - B_k||^2 in direction
    add_homeostasis_grad(m, x, state, coef=1.0, probes=400, generator=gen)
    g = torch.cat([m.layers[k + 1].weight.grad.flatten() for k in range(2)])
    want = torch.cat([4 * (m.layers[k + 1].weight - m.feedback[k]).detach().flatten() for k in range(2)])
    assert float(g @ want / (g.norm() * want.norm())) > 0.9
    assert m.layers[0].weight.grad is None or float(m.layers[0].weight.grad.abs().max()) == 0.0


def test_training_with_homeostasis_lowers_asymmetry_and_raises_cosine(batch):
    """A few SGD steps of generalized EP with and without homeostasis, from 60 degrees."""
    x, y = batch
    results = {}
    for lam in (0.0, 0.05):
        m = make_vf(60.0)
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        rule = eqprop.rules.EP(variant="centered", beta=0.1, free_steps=300, nudge_steps=300, tol=1e-12)
        gen = torch.Generator().manual_seed(0)
        for _ in range(30):
            opt.zero_grad()
            out = rule.step(m, x, y)
            if lam:
                add_homeostasis_grad(m, x, out.state, lam, probes=4, generator=gen)
            opt.step()
        ref = eqprop.gradients(m, x, y, "rbp", **CONVERGED)
        est = eqprop.gradients(m, x, y, "ep-centered", beta=0.01, **CONVERGED)
        cos = float(flat(est) @ flat(ref) / (flat(est).norm() * flat(ref).norm()))
        results[lam] = (m.jacobian_asymmetry(), cos)
    (j0, c0), (j1, c1) = results[0.0], results[0.05]
    assert j1 < 0.7 * j0, results
    assert c1 > c0, results


def test_vector_field_model_has_no_energy(batch):
    x, y = batch
    with pytest.raises(NotImplementedError, match="no energy"):
        make_vf(10.0).energy(x, make_vf(10.0).init_state(x))
    with pytest.raises(ValueError, match="vector-field model"):
        homeostasis_loss(tied_hopfield(make_vf()), x, tied_hopfield(make_vf()).init_state(x))


def test_builder_and_trainer_keys():
    from eqprop.config import load_config
    from eqprop.models import build_model
    from eqprop.models.homeostasis import AsymmetryLog, Homeostasis

    cfg = load_config(None, ["model.name=vector-field-mlp", "model.hidden=[16]", "model.asymmetry=30.0",
                             "model.activation=sigmoid", "model.homeostasis=0.1"])
    m = build_model("vector-field-mlp", (1, 4, 4), 3, **cfg.settings("model"))
    assert isinstance(m, VectorFieldMLP) and m.asymmetry_angles() == pytest.approx([30.0], abs=1e-4)
    assert [type(c) for c in m.callbacks()] == [AsymmetryLog, Homeostasis]  # the model owns its extras
    assert copy.deepcopy(m).jacobian_asymmetry() > 0


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_conv_vector_field(pool):
    """The conv version: fast update = autograd of the pseudo-energy; zero asymmetry = the conv
    Hopfield network's exact gradient; asymmetry biases generalized EP; homeostasis estimate."""
    from eqprop.models import VectorFieldConv
    from eqprop.models.conv import ConvHopfield

    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 4, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (4,), generator=g)

    def make(angle):
        torch.manual_seed(0)
        return VectorFieldConv((1, 4, 4), [3, 4], 3, pool=pool, activation="sigmoid", gains=[2.0] * 3,
                               asymmetry=angle, seed=0).double()

    m = make(30.0)
    assert m.asymmetry_angles() == pytest.approx([30.0, 30.0], abs=1e-3)
    state = [torch.rand(4, *s.shape[1:], dtype=torch.float64, generator=g) for s in m.init_state(x)]
    ctx = m.context(x)
    for i in range(m.num_free_layers):
        torch.testing.assert_close(m.layer_update(i, state, ctx), m.autograd_layer_update(i, state, ctx))
    # zero asymmetry: the symmetric conv network's gradient (tied = forward + feedback part)
    sym = make(0.0)
    hop = ConvHopfield((1, 4, 4), [3, 4], 3, pool=pool, activation="sigmoid").double()
    hop.load_state_dict({k: v for k, v in sym.state_dict().items() if not k.startswith("feedback")})
    ref_v = eqprop.gradients(sym, x, y, "rbp", **CONVERGED)
    ref_h = eqprop.gradients(hop, x, y, "rbp", **CONVERGED)
    tied = {n: v.clone() for n, v in ref_v.items() if not n.startswith("feedback")}
    tied["convs.1.weight"] += ref_v["feedback.0"]
    tied["dense.weight"] += ref_v["feedback.1"]
    assert rel(tied, ref_h) < 1e-10
    # generalized EP: exact without asymmetry, biased with it
    for model, biased in ((sym, False), (m, True)):
        bd = bias_decomposition(model, x, y, "ep-centered", beta=0.05, **CONVERGED)
        assert (bd.asymmetry > 1e-3) == biased, bd.asymmetry
    assert float(homeostasis_loss(m, x, eqprop.relax(m, x, steps=300).state, probes=4).detach()) > 0
