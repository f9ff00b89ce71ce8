"""Continual EP: the GDU property with moving weights, and its contract with the library."""
import copy

import pytest
import torch

import eqprop
from eqprop.diagnostics import gdu_check
from eqprop.diagnostics.continual import cep_gdu_check
from eqprop.rules import ContinualEP, make_rule
from eqprop.rules.continual import coupling_rates
from tests.conftest import make_net


def test_cep_with_zero_rate_is_positive_ep(tiny_batch):
    x, y = tiny_batch
    for output in ("mse", "ce"):
        m = make_net(output=output)
        a = eqprop.gradients(m, x, y, "cep", beta=0.05, lr=0.0, free_steps=500, nudge_steps=100, tol=1e-14)
        b = eqprop.gradients(m, x, y, "ep-positive", beta=0.05, free_steps=500, nudge_steps=100, tol=1e-14)
        for n in a:
            torch.testing.assert_close(a[n], b[n], rtol=1e-10, atol=1e-12)


def test_gdu_per_step_updates_track_bptt_for_small_rates(tiny_batch):
    """Ernoult et al. 2020, Thm 1: per-step C-EP updates = per-step BPTT gradients as lr, beta -> 0."""
    x, y = tiny_batch
    model = make_net(gain=1.2)
    ep = gdu_check(model, x, y, beta=1e-3, steps=12)
    still = cep_gdu_check(model, x, y, beta=1e-3, lr=0.0, steps=12)
    torch.testing.assert_close(still.ep, ep.ep, rtol=1e-5, atol=1e-7)  # lr = 0: EP's GDU check
    small = cep_gdu_check(model, x, y, beta=1e-3, lr=1e-7, steps=12)
    assert min(small.cosine) >= 0.99 and max(small.rel_error) < 0.05
    large = cep_gdu_check(model, x, y, beta=1e-3, lr=1e-4, steps=12)
    assert min(large.cosine) < 0.9  # moving the weights too fast breaks the property
    assert small.label == "C-EP" and "C-EP" in small.table()


def test_gradients_restore_the_weights_and_sgd_lands_on_cep_weights(tiny_batch):
    x, y = tiny_batch
    m = make_net(output="ce")
    rule = ContinualEP(beta=0.1, lr=[0.003, 0.002, 0.001], free_steps=200, nudge_steps=10)
    before = copy.deepcopy(m.state_dict())
    est = eqprop.gradients(m, x, y, rule)
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    # C-EP's own weights after the phase
    moved = copy.deepcopy(m)
    rule.run(moved, x, y)
    # the trainer's way: write U to .grad, plain SGD with the same per-coupling rates
    rule.step(m, x, y)
    rates = coupling_rates(m, rule.lr)
    opt = torch.optim.SGD([{"params": [p], "lr": r} for p, r in zip(m.parameters(), rates)], momentum=0.0)
    opt.step()
    for (n, p), q in zip(m.named_parameters(), moved.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(p.grad, est[n])


def test_rates_per_coupling_and_errors():
    m = make_net()  # three couplings
    assert coupling_rates(m, 0.1) == [0.1] * 6
    assert coupling_rates(m, [0.1, 0.2, 0.3]) == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3]
    with pytest.raises(ValueError, match="one per coupling"):
        coupling_rates(m, [0.1, 0.2])
    with pytest.raises(ValueError, match="beta must be > 0"):
        ContinualEP(beta=0.0)
    r = make_rule("cep", beta=0.3, lr=[0.01], nudge_steps=4)
    assert (r.beta, r.lr, r.nudge_steps) == (0.3, [0.01], 4)


@pytest.mark.slow
@pytest.mark.requires_data("mnist")
def test_cep_trains_mnist_subset(tmp_path):
    from eqprop.config import load_config
    from eqprop.training import train

    cfg = load_config("configs/mnist_mlp_cep.yaml", [f"run.out={tmp_path}", "data.train_subset=3000",
                                                      "data.test_subset=1000", "run.epochs=2", "run.progress=false",
                                                      "model.hidden=[100]"])
    s = train(cfg)
    assert s["test_acc"] > 0.4  # chance is 0.1; C-EP learns slowly at stable in-phase rates
