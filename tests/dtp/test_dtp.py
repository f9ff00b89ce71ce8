"""DTP: the update against the theory in float64 (linear nets), feedback training, diagnostics, trainer.

Theory used (linear layers ``h_i = W_i h_{i-1} + b_i``; targets ``t_{i-1} = h_{i-1} + G_i(t_i) - G_i(h_i)``):

- ``G_i(h) = V_i h + c_i`` gives ``t_{i-1} - h_{i-1} = V_i (t_i - h_i)`` exactly (any ``c_i``, any beta).
- ``V_i = W_i^T``: ``t_i - h_i = -beta dl/dh_i`` (backprop's error), so the DTP update / beta *is*
  BP's gradient (checked to 1e-10 relative).
- ``G_i = F_i^{-1}``: ``t_i - h_i = -beta (W_N..W_{i+1})^{-1} dl/dh_N``: the Gauss-Newton-type
  target of Meulemans et al. 2020; it equals BP only for orthogonal weights (checked to 1e-10).
- L-DRL minimises ``E = sigma^2 |V - W^T|_F^2 + const`` for a linear layer: trained to convergence,
  ``V -> W^T`` and the update -> BP's gradient; DTP's and DRL's reconstruction losses drive V to W^{-1}.
"""
from __future__ import annotations

import math

import pytest
import torch

from eqprop import Trainer
from eqprop.models import FeedbackMLP, HopfieldMLP, build_model
from eqprop.rules import DTP, make_rule
from eqprop.rules.dtp import (
    angle_degrees,
    bp_gradients,
    jacobian_distance,
    layer_angles,
)

D = torch.float64


def _rel(a, b):
    return float((a - b).detach().norm() / b.detach().norm())


def _linear(sizes, seed=0, **kw):
    torch.manual_seed(seed)
    return FeedbackMLP(sizes, activation="identity", **kw).to(D)


def _batch(model, n=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, model.sizes[0], generator=g, dtype=D)
    y = torch.randint(0, model.sizes[-1], (n,), generator=g)
    return x, y


@pytest.mark.parametrize("beta", [0.01, 0.7, 3.0])
def test_linear_transpose_feedback_equals_bp(beta):
    m = _linear([7, 6, 5, 4], feedback_init="transpose")
    with torch.no_grad():  # the feedback biases must not matter (difference correction)
        for g in m.feedback:
            g.bias.normal_()
    x, y = _batch(m)
    dtp, _, _ = DTP(beta=beta).forward_update(m, x, y)
    bp = bp_gradients(m, x, y)
    for k in bp:
        assert _rel(dtp[k], bp[k]) < 1e-10, k


def test_random_feedback_is_not_bp():
    """The check above can fail: random feedback gives a different update below the top layer."""
    m = _linear([7, 6, 5, 4])
    x, y = _batch(m)
    dtp, _, _ = DTP().forward_update(m, x, y)
    bp = bp_gradients(m, x, y)
    assert _rel(dtp["layers.2.weight"], bp["layers.2.weight"]) < 1e-10  # output layer: always BP
    assert _rel(dtp["layers.0.weight"], bp["layers.0.weight"]) > 0.3


def _set_inverse(m):
    with torch.no_grad():
        for i in range(2, len(m.sizes)):
            W, b = m.layers[i - 1].weight, m.layers[i - 1].bias
            Winv = torch.linalg.inv(W)
            m.feedback[i - 2].weight.copy_(Winv)
            m.feedback[i - 2].bias.copy_(-Winv @ b)


def test_linear_inverse_feedback_gives_gauss_newton_targets():
    m = _linear([5, 5, 5, 5])
    _set_inverse(m)
    x, y = _batch(m)
    beta = 0.5
    dtp, _, _ = DTP(beta=beta).forward_update(m, x, y)
    hs = m.forward_all(x)
    with torch.no_grad():
        e = torch.softmax(hs[-1], -1) - torch.nn.functional.one_hot(y, 5).to(D)  # dl/dh_N per sample
        N = m.num_layers
        for i in range(1, N + 1):
            J = torch.eye(5, dtype=D)  # J_{N<-i} = W_N ... W_{i+1}
            for k in range(i + 1, N + 1):
                J = m.layers[k - 1].weight @ J
            delta = torch.linalg.solve(J, e.t()).t()  # (B, 5): J^{-1} e per sample
            expect = delta.t() @ hs[i - 1] / len(y)
            assert _rel(dtp[f"layers.{i - 1}.weight"], expect) < 1e-10
            assert _rel(dtp[f"layers.{i - 1}.bias"], delta.mean(0)) < 1e-10
    bp = bp_gradients(m, x, y)
    assert angle_degrees(dtp["layers.0.weight"], bp["layers.0.weight"]) > 5  # not BP for general W


def test_linear_inverse_of_orthogonal_weights_is_bp():
    m = _linear([5, 5, 5, 5])
    with torch.no_grad():
        for lin in m.layers:
            lin.weight.copy_(torch.linalg.qr(torch.randn(5, 5, dtype=D))[0])
    _set_inverse(m)
    x, y = _batch(m)
    dtp, _, _ = DTP(beta=0.9).forward_update(m, x, y)
    bp = bp_gradients(m, x, y)
    for k in bp:
        assert _rel(dtp[k], bp[k]) < 1e-10, k


def _train_feedback(m, rule, rounds, n=256):
    """``rounds`` batches at the rule's rate, then as many at a tenth of it (annealing the SGD noise)."""
    state = {}
    fine = DTP(**{**rule.__dict__, "feedback_lr": [v / 10 for v in rule.feedback_lr]})
    for r in range(2 * rounds):
        x, _ = _batch(m, n=n, seed=100 + r)
        (rule if r < rounds else fine).train_feedback(m, rule.activations(m, x), state)


def test_ldrl_trained_to_convergence_gives_bp():
    torch.manual_seed(0)
    m = _linear([7, 6, 5, 4])
    rule = DTP(feedback="l-drl", feedback_steps=[10], feedback_lr=[0.02], noise=[0.5], feedback_momentum=0.5)
    x, y = _batch(m, n=64)
    before = layer_angles(rule, m, x, y)
    _train_feedback(m, rule, 60)
    for i in (2, 3):
        W, V = m.layers[i - 1].weight, m.feedback[i - 2].weight
        assert _rel(V, W.t()) < 0.02, i
    after = layer_angles(rule, m, x, y)
    assert before[1] > 30 and after[1] < 2 and after[2] < 2, (before, after)
    hs = rule.activations(m, x)
    assert jacobian_distance(m, 2, hs, exact=True) < 0.02


@pytest.mark.parametrize("feedback", ["dtp", "drl"])
def test_reconstruction_losses_learn_the_inverse(feedback):
    """DTP's and DRL's feedback losses make a square linear layer's feedback its inverse."""
    torch.manual_seed(0)
    m = _linear([5, 5, 5, 5])
    with torch.no_grad():
        for lin in m.layers:
            lin.weight.copy_(torch.eye(5, dtype=D) + 0.3 * torch.randn(5, 5, dtype=D))
    rule = DTP(feedback=feedback, feedback_steps=[10], feedback_lr=[0.02], noise=[0.3], feedback_momentum=0.5)
    _train_feedback(m, rule, 60)
    for i in (2, 3):
        W, V = m.layers[i - 1].weight, m.feedback[i - 2].weight
        assert _rel(V, torch.linalg.inv(W)) < 0.02, (feedback, i)


def test_jacobian_distance_estimate_matches_exact():
    torch.manual_seed(0)
    m = FeedbackMLP([6, 8, 7, 3], activation="elu").to(D)
    x = torch.randn(32, 6, dtype=D)
    hs = DTP().activations(m, x)
    for i in (2, 3):
        exact = jacobian_distance(m, i, hs, exact=True)
        est = jacobian_distance(m, i, hs, probes=64, generator=torch.Generator().manual_seed(0))
        assert abs(est - exact) < 0.1 * exact, (i, est, exact)
    t = FeedbackMLP([6, 8, 7, 3], activation="identity", feedback_init="transpose").to(D)
    assert jacobian_distance(t, 2, DTP().activations(t, x), exact=True) < 1e-12


def test_settings_and_model_check():
    with pytest.raises(ValueError, match="feedback"):
        DTP(feedback="bogus")
    with pytest.raises(ValueError, match="noise"):
        DTP(noise=[0.0])
    rule = make_rule("dtp", strict=True, feedback="drl", noise=0.2, feedback_steps=[3, 4])
    assert rule.noise == [0.2] and rule.feedback_steps == [3, 4]
    with pytest.raises(ValueError, match="dtp-mlp"):
        rule.estimate(HopfieldMLP([4, 3, 2]), torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))
    m = build_model("dtp-mlp", (1, 4, 4), 3, hidden=[5, 6, 7])  # 4 layers: 3 feedback modules
    with pytest.raises(ValueError, match="feedback_steps has 2 values"):
        rule.estimate(m, torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long))
    assert not any(p.requires_grad for p in m.feedback.parameters())  # the optimizer never sees them


def _clusters(n, d=20, k=4, seed=0):
    centers = 2.0 * torch.randn(k, d, generator=torch.Generator().manual_seed(123))
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    return centers[y] + torch.randn(n, d, generator=g), y


def test_trainer_learns_and_logs_angles(tmp_path):
    """A short run through the Trainer beats chance by far, with the angle to BP below 30 degrees
    on every layer at every epoch (logged in metrics.jsonl and plotted)."""
    import json

    torch.manual_seed(0)
    train, test = _clusters(1024), _clusters(512, seed=1)
    model = FeedbackMLP([20, 32, 32, 4])
    rule = DTP(feedback="l-drl", feedback_steps=[20], feedback_lr=[0.002], noise=[0.1], probe_size=128)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    fb_before = [p.clone() for p in model.feedback.parameters()]
    summary = Trainer(model, rule, opt, train, test, epochs=3, batch_size=64, out=str(tmp_path), progress=False).fit()
    assert summary["test_acc"] > 0.9
    assert all(not torch.equal(a, b) for a, b in zip(fb_before, model.feedback.parameters()))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    for r in records:
        angles = [r[f"dtp_angle_{i}"] for i in (1, 2, 3)]
        assert max(angles) < 30, angles
        assert r["dtp_jac_dist_2"] < 0.5 and r["dtp_jac_dist_3"] < 0.5
    assert (tmp_path / "dtp_diagnostics.png").exists()
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["callbacks"]["FeedbackOptimizerState"]["momentum"]  # feedback momentum is checkpointed


def test_without_feedback_training_angles_stay_large():
    """Control for the test above: with feedback_steps=0 the random feedback never aligns."""
    torch.manual_seed(0)
    model = FeedbackMLP([20, 32, 32, 4])
    x, y = _clusters(128)
    rule = DTP(feedback_steps=[0])
    rule.estimate(model, x, y)
    assert layer_angles(rule, model, x, y)[1] > 45
    assert math.isclose(layer_angles(rule, model, x, y)[3], 0, abs_tol=1e-3)


def test_conv_net_shapes_and_linear_transpose_limit():
    """dtp-conv: feedback maps each layer's output back to its input's shape; with the activation
    the identity and G_i the adjoint of F_i (transposed convolution with the same kernel, V_N = W_N^T)
    the DTP update equals BP's gradient (float64)."""
    torch.manual_seed(0)
    m = build_model("dtp-conv", (3, 8, 8), 5, channels=[4, 6], activation="identity").to(D)
    x = torch.randn(6, 3, 8, 8, dtype=D)
    y = torch.randint(0, 5, (6,))
    hs = DTP().activations(m, x)
    for i in m.feedback_modules():
        assert m.feedback_layer(i, hs[i]).shape == hs[i - 1].shape
    with torch.no_grad():
        m.feedback_convs[0].weight.copy_(m.convs[1].weight)  # ConvTranspose2d is Conv2d's adjoint
        m.feedback_fc.weight.copy_(m.fc.weight.t())
    dtp, _, _ = DTP(beta=0.7).forward_update(m, x, y)
    bp = bp_gradients(m, x, y)
    for k in bp:
        assert _rel(dtp[k], bp[k]) < 1e-10, k
    assert jacobian_distance(m, 2, hs, exact=True) < 1e-12


def test_diagnostics_every_batches(tmp_path):
    torch.manual_seed(0)
    train = _clusters(256)
    model = FeedbackMLP([20, 16, 4])
    rule = DTP(feedback_steps=[2], diagnostics_every=2, probe_size=32)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    t = Trainer(model, rule, opt, train, epochs=2, batch_size=64, out=str(tmp_path), progress=False)
    t.fit()
    diag = next(cb for cb in t.callbacks if type(cb).__name__ == "DTPDiagnostics")
    assert [h["epoch"] for h in diag.history] == [0, 0.5, 1, 1.5, 2]
    assert all("dtp_angle_1" in h and "dtp_jac_dist_2" in h for h in diag.history)
