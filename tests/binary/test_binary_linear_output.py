"""Binary EP with the comparative study's linear MSE output (issue 11, third pass).

Truths: RBP (implicit differentiation at the fixed point) in float64 for the gradients, the flip
rule written out by hand for the optimizer's first step, and the analytic fact that a hard-sigmoid
output unit clamped at 0 receives no gradient while a linear one receives its error.
"""
from pathlib import Path

import pytest
import torch

import eqprop
from eqprop.config import load_config
from eqprop.models import HopfieldMLP, binarize, build_model
from eqprop.optim import FlipOptimizer
from eqprop.training.optimizers import build_optimizer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CONVERGED = dict(free_steps=400, nudge_steps=400, tol=1e-14)


def net(output_activation, seed=0):
    """784-style toy net 12-10-4 in float64, binary weights, learned scales; output unit 0 driven
    below 0 for every input by its bias (the state a hard-sigmoid unit dies in)."""
    torch.manual_seed(seed)
    m = HopfieldMLP([12, 10, 4], gains=[2.0, 2.0], output_activation=output_activation).double()
    with torch.no_grad():
        torch.nn.init.uniform_(m.layers[0].bias, -0.2, 0.2)
        m.layers[1].bias.copy_(torch.tensor([-1.5, 0.3, 0.4, 0.5], dtype=torch.float64))
    return binarize(m, learn_alpha=True)


def batch(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 12, generator=g, dtype=torch.float64)
    return x, torch.tensor([0, 0, 1, 2, 3, 0])[:n]


def rel(a, b):
    return float((a - b).norm() / b.norm())


def test_linear_output_binary_weights_ep_matches_rbp_and_the_dead_unit_gets_its_error():
    m = net("linear")
    x, y = batch()
    ref = eqprop.gradients(m, x, y, "rbp", **CONVERGED, adjoint_steps=2000)
    ep = eqprop.gradients(m, x, y, "ep-centered", beta=1e-4, **CONVERGED)
    for k in ref:
        assert float(ref[k].norm()) > 1e-6, k
        assert rel(ep[k], ref[k]) < 1e-3, (k, rel(ep[k], ref[k]))
    # the linear output unit 0 sits near its drive (below -0.5 for every input, where a hard sigmoid would
    # clamp it) and still receives a gradient on its bias and incoming weights
    with torch.no_grad():
        out = eqprop.relax(m, x, steps=400, tol=1e-14).state[-1]
    assert float(out[:, 0].max()) < -0.5
    assert abs(float(ref["layers.1.bias"][0])) > 0.5
    assert float(ref["layers.1.parametrizations.weight.original"][0].abs().max()) > 0.1


def test_hard_sigmoid_output_unit_clamped_at_zero_gets_no_gradient():
    """The control: the same net with the hard-sigmoid output, unit 0 clamped at 0 for every input,
    gets exactly zero gradient on its bias and incoming weights from EP and from RBP."""
    m = net(None)
    x, y = batch()
    ref = eqprop.gradients(m, x, y, "rbp", **CONVERGED, adjoint_steps=2000)
    ep = eqprop.gradients(m, x, y, "ep-centered", beta=1e-4, **CONVERGED)
    for g in (ref, ep):
        assert float(g["layers.1.bias"][0]) == 0.0
        assert float(g["layers.1.parametrizations.weight.original"][0].abs().max()) == 0.0


def test_flip_optimizer_on_the_linear_output_net_flips_what_the_rule_says():
    """One step of the flip optimizer on the EP gradient of the linear-output net: the filtered
    gradient after one step is gamma * g, and exactly the weights with sign(H) gamma g > threshold flip;
    the biases take an SGD step."""
    m = net("linear")
    x, y = batch()
    gammas, thresholds, lr = [0.5, 0.5], [1e-3, 1e-3], 0.1
    hidden = [layer.parametrizations.weight.original for layer in m.layers]
    biases = [layer.bias for layer in m.layers]
    opt = FlipOptimizer([{"params": hidden}, {"params": biases}], gamma=gammas, threshold=thresholds, lr=lr)
    g = eqprop.gradients(m, x, y, "ep-centered", beta=1e-4, **CONVERGED)
    h0 = [h.detach().clone() for h in hidden]
    b0 = [b.detach().clone() for b in biases]
    for k in range(2):
        hidden[k].grad = g[f"layers.{k}.parametrizations.weight.original"].clone()
        biases[k].grad = g[f"layers.{k}.bias"].clone()
    opt.step()
    n_flip = 0
    for k in range(2):
        gk = g[f"layers.{k}.parametrizations.weight.original"]
        flip = torch.sign(h0[k]) * gammas[k] * gk > thresholds[k]
        n_flip += int(flip.sum())
        torch.testing.assert_close(hidden[k].detach(), torch.where(flip, -h0[k], h0[k]), rtol=0, atol=0)
        torch.testing.assert_close(biases[k].detach(), b0[k] - lr * g[f"layers.{k}.bias"], rtol=0, atol=1e-15)
    assert 0 < n_flip < sum(h.numel() for h in h0)
    # the dead-for-a-hard-sigmoid output unit 0 has incoming weights that flip
    flip_out = torch.sign(h0[1][0]) * gammas[1] * g["layers.1.parametrizations.weight.original"][0] > thresholds[1]
    assert bool(flip_out.any())


@pytest.mark.parametrize("ds", ["mnist", "fashion_mnist"])
def test_linear_output_configs_build_twins_that_differ_only_in_the_weights(ds):
    models = {}
    for kind in ("w", "fp"):
        cfg = load_config(CONFIGS / f"{ds}_mlp4096_binary_{kind}_linear.yaml", ["model.hidden=[16]"])
        assert cfg.model["output_activation"] == "linear"
        torch.manual_seed(0)
        m = build_model(cfg.model["name"], (1, 28, 28), 10,
                        **{k: v for k, v in cfg.model.items() if k != "name"})
        opt = build_optimizer(m, cfg.optim)
        models[kind] = (cfg, m, opt)
    (cw, mw, ow), (cf, mf, of) = models["w"], models["fp"]
    assert mw.output_activation.name == mf.output_activation.name == "linear"
    assert getattr(mw, "binary_weights", False) and not getattr(mf, "binary_weights", False)
    assert isinstance(ow, FlipOptimizer) and not isinstance(of, FlipOptimizer)
    assert cw.rule == cf.rule and cw.run["epochs"] == cf.run["epochs"] and cw.run["seed"] == cf.run["seed"]
    # same initial weights up to the binarisation: sign(H) = sign(W_fp), alpha = mean |W_fp|
    for lw, lf in zip(mw.layers, mf.layers):
        torch.testing.assert_close(lw.parametrizations.weight.original.detach(), lf.weight.detach())
        torch.testing.assert_close(lw.weight.detach(), lf.weight.abs().mean() * torch.sign(lf.weight.detach()))
