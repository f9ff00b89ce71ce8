"""Binary EP (issue 11): binary weights through the model contract, the flip optimizer, binary neurons.

Truths: RBP (implicit differentiation) and finite differences of the equilibrium loss in float64
for the gradients; a hand-written loop of the paper's flip rule for the optimizer; the paper's
update formulas written out by hand for the binary neurons.
"""
import math

import pytest
import torch

import eqprop
from eqprop.models import ConvHopfield, HopfieldMLP, StepHopfieldMLP, binarize, build_model
from eqprop.optim import FlipOptimizer
from eqprop.training.optimizers import param_groups

CONVERGED = dict(free_steps=400, nudge_steps=400, tol=1e-14)


def mlp(learn_alpha=True, seed=0):
    torch.manual_seed(seed)
    m = HopfieldMLP([12, 10, 8, 4], gains=[2.0, 2.0, 2.0]).double()
    for n, p in m.named_parameters():
        if n.endswith("bias"):
            torch.nn.init.uniform_(p, -0.2, 0.2)  # off the hard sigmoid's kinks
    return binarize(m, learn_alpha=learn_alpha)


def batch(shape=(6, 12), classes=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64), torch.randint(0, classes, (shape[0],), generator=g)


def rel(a, b):
    return float((a - b).norm() / b.norm())


def test_weights_are_alpha_sign_of_hidden_and_only_hidden_and_scales_are_parameters():
    m = mlp()
    names = [n for n, _ in m.named_parameters()]
    assert "layers.0.parametrizations.weight.original" in names
    assert "layers.0.parametrizations.weight.0.alpha" in names
    for layer in m.layers:
        h = layer.parametrizations.weight.original
        alpha = layer.parametrizations.weight[0].alpha
        assert torch.equal(layer.weight, alpha * torch.where(h.signbit(), -1.0, 1.0).double())
        assert set(layer.weight.detach().abs().unique().tolist()) == {float(alpha.detach())}
    with torch.no_grad():
        m.layers[0].parametrizations.weight.original[0, 0] = 0.0
        a0 = float(m.layers[0].parametrizations.weight[0].alpha)
        assert float(m.layers[0].weight[0, 0]) == a0  # sign(+0) = +1
        m.layers[0].parametrizations.weight.original[0, 0] = -0.0
        assert float(m.layers[0].weight[0, 0]) == -a0  # sign(-0) = -1: negating H always flips W
    fixed = binarize(HopfieldMLP([5, 4, 3]), alpha=0.25)
    assert all("alpha" not in n for n, _ in fixed.named_parameters())
    assert float(fixed.layers[1].weight.detach().abs().max()) == 0.25


def test_bad_settings_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="one per coupling"):
        binarize(HopfieldMLP([5, 4, 3]), alpha=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="already parametrized"):
        binarize(mlp())
    with pytest.raises(ValueError, match="alpha must be"):
        binarize(HopfieldMLP([5, 4, 3]), alpha=0.0)
    with pytest.raises(ValueError, match="binarize the model first"):
        FlipOptimizer(HopfieldMLP([5, 4, 3]).parameters())
    with pytest.raises(ValueError, match="one per binary layer"):
        FlipOptimizer(mlp().parameters(), gamma=[0.1, 0.2])


@pytest.mark.parametrize("rule", ["ep-centered", "bptt"])
def test_ep_and_bptt_match_rbp_with_binary_weights_fixed(rule):
    """Binary weights held fixed: the estimate for the real-valued scales and biases (and the
    straight-through gradient of the hidden weights, = dL/dW) matches RBP."""
    m = mlp()
    x, y = batch()
    ref = eqprop.gradients(m, x, y, "rbp", **CONVERGED, adjoint_steps=2000)
    est = eqprop.gradients(m, x, y, rule, beta=1e-4, **CONVERGED) if rule != "bptt" else \
        eqprop.gradients(m, x, y, "bptt", free_steps=400)
    tol = 1e-3 if rule == "ep-centered" else 1e-8
    for k in ref:
        assert float(ref[k].norm()) > 1e-6, k
        assert rel(est[k], ref[k]) < tol, (k, rel(est[k], ref[k]))


def test_scale_gradient_matches_finite_differences_and_hidden_gradient_is_dL_dW():
    m = mlp()
    x, y = batch()
    ref = eqprop.gradients(m, x, y, "rbp", **CONVERGED, adjoint_steps=2000)
    alpha = m.layers[1].parametrizations.weight[0].alpha
    eps = 1e-6
    with torch.no_grad():
        alpha += eps
        up = eqprop.equilibrium_loss(m, x, y, steps=2000, tol=1e-15)
        alpha -= 2 * eps
        down = eqprop.equilibrium_loss(m, x, y, steps=2000, tol=1e-15)
        alpha += eps
    fd = (up - down) / (2 * eps)
    assert abs(float(fd) - float(ref["layers.1.parametrizations.weight.0.alpha"])) < 1e-6 * max(1.0, abs(float(fd)))
    # straight through: the hidden weight's gradient is the gradient w.r.t. the binary weight itself
    twin = HopfieldMLP([12, 10, 8, 4]).double()
    with torch.no_grad():
        for a, b in zip(twin.layers, m.layers):
            a.weight.copy_(b.weight)
            a.bias.copy_(b.bias)
    exact = eqprop.gradients(twin, x, y, "rbp", **CONVERGED, adjoint_steps=2000)
    for k in range(3):
        torch.testing.assert_close(ref[f"layers.{k}.parametrizations.weight.original"], exact[f"layers.{k}.weight"],
                                   rtol=1e-9, atol=1e-12)


def test_conv_hopfield_binary_weights_ep_matches_rbp():
    torch.manual_seed(0)
    m = ConvHopfield((2, 8, 8), [3, 4], 3, pool="avg", gains=[2.0, 2.0, 2.0]).double()
    for n, p in m.named_parameters():
        if n.endswith("bias"):
            torch.nn.init.uniform_(p, -0.2, 0.2)
    binarize(m, learn_alpha=True)
    x, y = batch((3, 2, 8, 8), 3)
    ref = eqprop.gradients(m, x, y, "rbp", **CONVERGED, adjoint_steps=2000)
    ep = eqprop.gradients(m, x, y, "ep-centered", beta=1e-4, **CONVERGED)
    flat = lambda d: torch.cat([d[k].flatten() for k in ref])  # noqa: E731
    assert rel(flat(ep), flat(ref)) < 1e-3
    assert float(ref["dense.parametrizations.weight.0.alpha"].abs()) > 1e-6


def test_flip_optimizer_flips_exactly_what_a_hand_written_loop_flips():
    torch.manual_seed(3)
    m = binarize(HopfieldMLP([30, 20, 5]).double())
    gammas, thresholds, lr = [0.3, 0.1], [0.02, 0.05], 0.07
    opt = FlipOptimizer(m.parameters(), gamma=gammas, threshold=thresholds, lr=lr)
    hidden = [layer.parametrizations.weight.original for layer in m.layers]
    biases = [layer.bias for layer in m.layers]
    h_ref = [h.detach().clone() for h in hidden]
    b_ref = [b.detach().clone() for b in biases]
    m_ref = [torch.zeros_like(h) for h in hidden]
    flips = [0, 0]
    g = torch.Generator().manual_seed(5)
    for _ in range(12):
        grads_h = [torch.randn(h.shape, generator=g, dtype=torch.float64) * 0.1 + 0.03 for h in hidden]
        grads_b = [torch.randn(b.shape, generator=g, dtype=torch.float64) for b in biases]
        for p, gr in zip(hidden + biases, grads_h + grads_b):
            p.grad = gr.clone()
        opt.step()
        for k in range(2):  # the paper's rule, elementwise
            for idx in range(h_ref[k].numel()):
                m_ref[k].view(-1)[idx] = (1 - gammas[k]) * m_ref[k].view(-1)[idx] + gammas[k] * grads_h[k].view(-1)[idx]
                w = h_ref[k].view(-1)[idx]
                sign = math.copysign(1.0, w)
                if sign * m_ref[k].view(-1)[idx] > thresholds[k]:
                    h_ref[k].view(-1)[idx] = -w
                    flips[k] += 1
            b_ref[k] -= lr * grads_b[k]
    for k in range(2):
        assert torch.equal(hidden[k].detach(), h_ref[k])
        torch.testing.assert_close(opt.state[hidden[k]]["m"], m_ref[k], rtol=1e-13, atol=1e-15)
        torch.testing.assert_close(biases[k].detach(), b_ref[k], rtol=0, atol=1e-14)
    assert [opt.flips["binary0"], opt.flips["binary1"]] == flips  # unnamed groups: binary0, binary1
    assert 0 < flips[0] < h_ref[0].numel() * 12 and flips[1] > 0


def test_step_neurons_follow_the_papers_update_and_ep_contrasts_the_emitted_bits():
    torch.manual_seed(0)
    m = binarize(StepHopfieldMLP([12, 9, 3], expand_output=2, neuron_rate=0.5).double())
    x, y = batch((5, 12), 3)
    g = torch.Generator().manual_seed(4)
    s = [torch.rand(5, 9, generator=g, dtype=torch.float64), torch.rand(5, 6, generator=g, dtype=torch.float64)]
    ctx = m.context(x)
    W0, b0, W1, b1 = m.layers[0].weight, m.layers[0].bias, m.layers[1].weight, m.layers[1].bias
    H = lambda t: (t >= 0.5).double()  # noqa: E731
    t = torch.nn.functional.one_hot(y, 3).double().repeat_interleave(2, -1)
    beta = 3.0
    hid = (0.5 * s[0] + 0.5 * (x @ W0.T + b0 + H(s[1]) @ W1)).clamp(0, 1)
    out = (0.5 * s[1] + 0.5 * (H(s[0]) @ W1.T + b1 + beta * (t - s[1]))).clamp(0, 1)
    with torch.no_grad():
        torch.testing.assert_close(m.layer_update(0, s, ctx), hid)
        torch.testing.assert_close(m.layer_update(1, s, ctx, -beta * m.cost_grad(s, y)), out)
    assert m.output(s).shape == (5, 3)
    assert torch.equal(m.init_state(x)[0], torch.ones(5, 9, dtype=torch.float64))
    # EP (positive nudge) = the paper's (rho(s^b) rho(s^b)^T - rho(s^0) rho(s^0)^T) / (beta B), negated
    rule = eqprop.rules.EP(variant="positive", beta=beta, free_steps=20, nudge_steps=10, mode="sync")
    grads, _ = rule.estimate(m, x, y)
    free = eqprop.relax(m, x, steps=20, mode="sync").state
    nudged = eqprop.relax(m, x, free, steps=10, mode="sync", nudge=eqprop.dynamics.Nudge(beta, y)).state
    c = 1 / (beta * 5)
    dW1 = c * (H(nudged[1]).T @ H(nudged[0]) - H(free[1]).T @ H(free[0]))
    dW0 = c * (H(nudged[0]).T @ x - H(free[0]).T @ x)
    torch.testing.assert_close(grads["layers.1.parametrizations.weight.original"], -dW1)
    torch.testing.assert_close(grads["layers.0.parametrizations.weight.original"], -dW0)
    torch.testing.assert_close(grads["layers.1.bias"], -c * (H(nudged[1]) - H(free[1])).sum(0))
    assert float(dW1.abs().sum()) > 0
    with pytest.raises(ValueError, match="zero gradient"):
        eqprop.gradients(m, x, y, "rbp", free_steps=5)


def test_registered_models_build():
    a = build_model("binary-hopfield-mlp", (1, 28, 28), 10, hidden=[16])
    b = build_model("binary-conv-hopfield", (1, 8, 8), 3, channels=[2, 3], learn_alpha=True)
    c = build_model("step-hopfield-mlp", (1, 28, 28), 10, hidden=[16], weights="float", expand_output=3)
    assert a.binary_weights and b.binary_weights and not hasattr(c, "binary_weights")
    assert c.layers[1].weight.shape == (30, 16)
    with pytest.raises(eqprop.ConfigError, match="binary"):
        build_model("step-hopfield-mlp", (4,), 2, weights="ternary")


@pytest.mark.parametrize("kind", ["binary-w", "binary-wa"])
def test_short_training_run_learns_and_logs_flips(tmp_path, kind):
    """Three noisy binary patterns in 20-d: binary EP must beat chance (33%) by far, and the flip
    statistics are in the epoch record."""
    g = torch.Generator().manual_seed(0)
    centers = (torch.rand(3, 20, generator=g) > 0.5).float()
    y = torch.randint(0, 3, (1200,), generator=g)
    x = (centers[y] + 0.15 * torch.randn(1200, 20, generator=g)).clamp(0, 1)
    torch.manual_seed(0)
    if kind == "binary-w":
        model = binarize(HopfieldMLP([20, 64, 3]))
        rule = eqprop.rules.EP(variant="random", beta=0.3, free_steps=20, nudge_steps=8)
        opt = FlipOptimizer(param_groups(model, 0.05), gamma=1e-2, threshold=1e-4)
    else:
        model = binarize(StepHopfieldMLP([20, 64, 3], expand_output=4))
        rule = eqprop.rules.EP(variant="random", beta=2.0, free_steps=15, nudge_steps=8, mode="sync")
        opt = FlipOptimizer(param_groups(model, 1e-4), gamma=1e-2, threshold=1e-4)
    trainer = eqprop.Trainer(model, rule, opt, (x[:1000], y[:1000]), (x[1000:], y[1000:]), epochs=2,
                             batch_size=32, out=str(tmp_path / "run"), progress=False, schedule="none")
    summary = trainer.fit()
    assert trainer.history[-1]["test_acc"] > 0.8, trainer.history
    assert trainer.history[0]["flips/layers.0.weight"] > 0
    assert 0 < trainer.history[0]["flip_rate/layers.1.weight"] <= 1
    assert summary is not None


def test_cached_weight_without_graph_follows_every_change_of_hidden_and_scale():
    m = mlp()
    layer = m.layers[0]
    h, alpha = layer.parametrizations.weight.original, layer.parametrizations.weight[0].alpha
    with torch.no_grad():
        w1 = layer.weight
        assert layer.weight is w1  # reused while nothing changed
        h[0, 0] = -h[0, 0]  # a flip (in place)
        assert torch.equal(layer.weight, alpha * torch.where(h.signbit(), -1.0, 1.0).double())
        alpha.mul_(2.0)
        assert torch.equal(layer.weight, alpha * torch.where(h.signbit(), -1.0, 1.0).double())
        h.data = -h.data.clone()  # a replaced tensor
        assert torch.equal(layer.weight, alpha * torch.where(h.signbit(), -1.0, 1.0).double())
    m.float()
    with torch.no_grad():
        assert layer.weight.dtype == torch.float32
    assert layer.weight.requires_grad  # with grad enabled: the graph to H and alpha


def test_no_cached_weight_while_a_cuda_graph_is_recorded(monkeypatch):
    """While a graph is recorded the binarisation must be part of it (a cached weight would be read,
    stale, by every replay after a flip). The CUDA condition itself is not exercised here (CPU)."""
    import eqprop.models.binary as binary

    m = mlp()
    layer = m.layers[0]
    with torch.no_grad():
        w1 = layer.weight
        monkeypatch.setattr(binary, "_capturing", lambda h: True)
        w2 = layer.weight
        assert w2 is not w1 and torch.equal(w2, w1)  # recomputed, not the cached tensor
        monkeypatch.setattr(binary, "_capturing", lambda h: False)
        assert layer.weight is w1  # outside a capture the cache serves again


def test_flip_cap_flips_only_the_best_supported_weights_a_hand_loop_picks():
    """max_flip_rate: per step at most floor(rate * N) flips per tensor, the largest sign(H) m first;
    checked against a plain Python loop that sorts the candidates; uncapped tensors keep the paper's rule."""
    torch.manual_seed(4)
    m = binarize(HopfieldMLP([30, 20, 5]).double())
    gamma, threshold, caps = 0.3, 0.01, [0.05, None]
    opt = FlipOptimizer(m.parameters(), gamma=gamma, threshold=threshold, lr=0.0, max_flip_rate=caps)
    hidden = [layer.parametrizations.weight.original for layer in m.layers]
    h_ref = [h.detach().clone().view(-1) for h in hidden]
    m_ref = [torch.zeros_like(h) for h in h_ref]
    g = torch.Generator().manual_seed(6)
    capped_steps, flips = 0, [0, 0]
    for _ in range(10):
        grads = [torch.randn(h.shape, generator=g, dtype=torch.float64) * 0.1 + 0.05 for h in hidden]
        for p, gr in zip(hidden, grads):
            p.grad = gr.clone()
        opt.step()
        for k in range(2):
            scores = []
            for idx in range(h_ref[k].numel()):
                m_ref[k][idx] = (1 - gamma) * m_ref[k][idx] + gamma * grads[k].view(-1)[idx]
                s = math.copysign(1.0, h_ref[k][idx]) * float(m_ref[k][idx])
                if s > threshold:
                    scores.append((s, idx))
            limit = len(scores) if caps[k] is None else int(caps[k] * h_ref[k].numel())
            capped_steps += k == 0 and len(scores) > limit
            for _, idx in sorted(scores, reverse=True)[:limit]:
                h_ref[k][idx] = -h_ref[k][idx]
                flips[k] += 1
    for k in range(2):
        assert torch.equal(hidden[k].detach().view(-1), h_ref[k])
    assert [opt.flips["binary0"], opt.flips["binary1"]] == flips
    assert capped_steps >= 3 and flips[0] <= 10 * int(0.05 * 600) and flips[1] > 10 * int(0.05 * 100)
    with pytest.raises(ValueError, match="max_flip_rate must lie in"):
        FlipOptimizer(m.parameters(), max_flip_rate=1.5)
    with pytest.raises(ValueError, match="max_flip_rate has 3 values"):
        FlipOptimizer(m.parameters(), max_flip_rate=[0.1, 0.1, 0.1])


def test_lr_list_has_one_rate_per_coupling_of_a_binarized_model():
    """A binarized coupling (bias, hidden weight, learned scale) is one group with the coupling's rate."""
    model = binarize(HopfieldMLP([6, 5, 3]), learn_alpha=True)
    groups = param_groups(model, [0.05, 0.025])
    assert [g["name"] for g in groups] == ["layers.0", "layers.1"]
    assert [g["lr"] for g in groups] == [0.05, 0.025]
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
    opt = FlipOptimizer(groups, gamma=0.5, threshold=0.0)
    assert sorted(opt.flips) == ["layers.0.weight", "layers.1.weight"]
    with pytest.raises(eqprop.ConfigError, match="2 couplings"):
        param_groups(model, [0.05, 0.05, 0.025, 0.025])


def test_step_runs_the_closure_with_gradients_and_returns_its_loss():
    model = binarize(HopfieldMLP([6, 5, 3]))
    opt = FlipOptimizer(param_groups(model, 0.05), gamma=0.5, threshold=0.0)
    x = torch.rand(4, 6)

    def closure():
        opt.zero_grad()
        loss = model.layers[0](x).square().sum()
        loss.backward()  # fails if the closure ran under step's no_grad
        return loss

    loss = opt.step(closure)
    assert loss is not None and loss.requires_grad and model.layers[0].bias.grad is not None
    assert opt.step() is None
