"""EqSpike: the IF neuron against its analytic rate, the rate coding against HopfieldMLP's fixed
point, the spike-driven update against the rate-based EP update, event counts against a hand
count, FLOPs against torch's counter, and a short Fashion-MNIST run."""
from __future__ import annotations

import math

import pytest
import torch

import eqprop
from eqprop.dynamics import relax
from eqprop.models import HopfieldMLP
from eqprop.models.base import one_hot_targets
from eqprop.models.spiking import SpikingHopfieldMLP, if_rate, if_step
from eqprop.rules import EqSpike, make_rule
from eqprop.rules.eqspike import spike_driven_update
from tests.conftest import float64_one_thread


_f64 = pytest.fixture(autouse=True)(float64_one_thread)


@pytest.mark.parametrize("reset,leak", [("subtract", 0.0), ("zero", 0.0), ("zero", 0.05)])
def test_if_neuron_fires_at_its_analytic_rate(reset, leak):
    # dyadic currents: the membrane sums are exact in float64 (0.1 * 10 would round below 1)
    currents = torch.tensor([0.03125, 0.125, 0.25, 0.375, 0.5, 0.625, 0.875, 1.0])
    if reset == "subtract":  # the remainder is kept, so any current works
        currents = torch.cat([currents, torch.tensor([0.1, 1 / 3, 0.61])])
    v, count, steps = torch.zeros_like(currents), torch.zeros_like(currents), 3000
    for _ in range(steps):
        v, z = if_step(v, currents, leak, reset)
        count += z
    for c, n in zip(currents.tolist(), count.tolist()):
        assert abs(n - steps * if_rate(c, leak, reset)) <= 1.0, (c, n)
    if reset == "zero" and not leak:  # reset to zero loses the remainder: rate 1/ceil(1/I), not I
        assert count[5] == math.floor(steps / 2)


def test_spike_counts_rate_code_the_input_and_states_follow_hopfield_fixed_point():
    torch.manual_seed(0)
    m = SpikingHopfieldMLP([12, 9, 4], gains=[1.5, 1.5])
    x = torch.rand(5, 12)
    tr = m.run_phase(x, m.init_spike_state(x), 400, "spikes")
    assert (tr.spikes[0] - 400 * x).abs().max() < 1.0  # reset by subtraction: |count - T x| < 1
    # rates coding: the time-stepped dynamics settle where HopfieldMLP's sweeps do
    h = HopfieldMLP([12, 9, 4], gains=[1.5, 1.5])
    h.load_state_dict(m.state_dict())
    ref = relax(h, x, steps=300, mode="async").state
    got = m.run_phase(x, m.init_spike_state(x), 1500, "rates").state.s
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)
    # spikes: the states fluctuate around it, closer for a smaller dt
    errs = []
    for dt in (0.2, 0.02):
        m.dt = dt
        s = m.run_phase(x, m.init_spike_state(x), int(30 / dt), "spikes").state.s
        errs.append(max(float((a - b).abs().mean()) for a, b in zip(s, ref)))
    assert errs[1] < 0.5 * errs[0] and errs[1] < 0.02, errs


def _net(dt, stochastic=False):
    torch.manual_seed(0)
    m = SpikingHopfieldMLP([20, 15, 5], gains=[0.5, 0.5], dt=dt, stochastic=stochastic)
    with torch.no_grad():
        for layer in m.layers:
            layer.bias.uniform_(0.3, 0.5)
    return m


def _ep_update(m, x, y1h, beta):
    """(1/1) (s^b s^b - s^0 s^0) at the settled rate states: the EP update the rule integrates."""
    f = m.run_phase(x, m.init_spike_state(x), 3000, "rates")
    n = m.run_phase(x, f.state, 3000, "rates", beta, y1h)
    a, b = n.state.s, f.state.s
    return {f"layers.{k}.weight": a[k].T @ ([x, *a][k]) - b[k].T @ ([x, *b][k]) for k in range(2)}


def _rel(u, ref):
    u = {k: v.detach() for k, v in u.items()}
    return math.sqrt(sum(float(((u[k] - ref[k]) ** 2).sum()) for k in ref)) / math.sqrt(sum(float((r ** 2).sum()) for r in ref.values()))


def test_spike_driven_update_converges_to_the_rate_based_ep_update():
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(8, 20, generator=g), torch.randint(0, 5, (8,), generator=g)
    beta, errs = 0.5, {}
    for dt in (0.2, 0.05, 0.01):
        m = _net(dt)
        y1h = one_hot_targets(y, 5, x[:, :5])
        ref = _ep_update(m, x, y1h, beta)
        f = m.run_phase(x, m.init_spike_state(x, g), int(20 / dt), "spikes")
        n = m.run_phase(x, f.state, int(5 / dt), "spikes", beta, y1h, record=True)
        errs[dt] = _rel(spike_driven_update(m, x, f.state.s, n.record), ref)
        if dt == 0.01:  # without removing each spike's own kick the update is dominated by it
            assert _rel(spike_driven_update(m, x, f.state.s, n.record, own_kick=False), ref) > 5 * errs[dt] + 2
            # the same accumulation over analog rates is the EP update up to O(dt) (product rule)
            f = m.run_phase(x, m.init_spike_state(x), int(20 / dt), "rates")
            n = m.run_phase(x, f.state, int(5 / dt), "rates", beta, y1h, record=True)
            assert _rel(spike_driven_update(m, x, f.state.s, n.record, own_kick=False), ref) < 0.02
    assert errs[0.01] < 0.5 * errs[0.2] and errs[0.01] < 0.45, errs


def test_rule_gradient_is_minus_the_update_over_beta_batch_and_rates_coding_is_ep():
    m = _net(0.1)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 20, generator=g), torch.randint(0, 5, (4,), generator=g)
    rule = EqSpike(beta=0.4, free_steps=300, nudge_steps=300, coding="rates")
    grads, res = rule.estimate(m, x, y)
    y1h = one_hot_targets(y, 5, x[:, :5])
    ref = _ep_update(m, x, y1h, 0.4)
    for k in ref:  # rates coding: -(s^b s^b - s^0 s^0) / (beta B) at the settled states
        torch.testing.assert_close(grads[k], -ref[k] / (0.4 * 4), atol=1e-6, rtol=1e-5)
    torch.manual_seed(1)
    grads, res = EqSpike(beta=0.4, free_steps=40, nudge_steps=20).estimate(m, x, y)
    assert set(grads) == {n for n, _ in m.named_parameters()}
    assert res.stats["events_free"] > 0 and res.stats["events_nudge"] > 0 and res.output.shape == (4, 5)


def test_synaptic_events_equal_a_hand_count():
    m = SpikingHopfieldMLP([4, 3, 2], gains=[3.0, 3.0], dt=0.3)
    assert m.fan_out() == [3, 2, 3]  # input -> hidden; hidden -> output; output -> hidden
    x = torch.tensor([[0.0, 0.3, 0.7, 1.0], [0.5, 0.5, 0.2, 0.9]])
    y = torch.tensor([0, 1])
    torch.manual_seed(5)
    out = EqSpike(beta=0.5, free_steps=7, nudge_steps=4).estimate(m, x, y)[1]
    # the same run neuron by neuron, in plain Python
    torch.manual_seed(5)
    v = [t.tolist() for t in m.init_spike_state(x).v]
    w = [l.weight.tolist() for l in m.layers]
    b = [l.bias.tolist() for l in m.layers]
    sizes, fan = [4, 3, 2], [3, 2, 3]
    events = {"events_free": 0.0, "events_nudge": 0.0}
    for n in range(2):
        s = [[0.0] * 3, [0.0] * 2]
        for t in range(11):
            beta = 0.5 if t >= 7 else 0.0
            rates = [x[n].tolist(), s[0], s[1]]
            z = []
            for k in range(3):
                zk = []
                for i in range(sizes[k]):
                    v[k][n][i] += rates[k][i]
                    spike = 1.0 if v[k][n][i] >= 1.0 else 0.0
                    v[k][n][i] -= spike
                    zk.append(spike)
                    events["events_nudge" if t >= 7 else "events_free"] += spike * fan[k] / 2
                z.append(zk)
            new = []
            for k in range(2):
                row = []
                for i in range(sizes[k + 1]):
                    u = b[k][i] + sum(w[k][i][j] * z[k][j] for j in range(sizes[k]))
                    if k == 0:
                        u += sum(w[1][j][i] * z[2][j] for j in range(2))
                    else:
                        u -= beta * (s[1][i] - (1.0 if y[n] == i else 0.0))
                    row.append(min(1.0, max(0.0, s[k][i] + 0.3 * (u - s[k][i]))))
                new.append(row)
            s = new
    assert events["events_free"] > 0
    for k, val in events.items():
        assert out.stats[k] == pytest.approx(val, abs=1e-9)


def _addmm_inplace_flops(self_shape, mat1, mat2, *args, out_shape=None, **kwargs) -> int:
    return 2 * mat1[0] * mat1[1] * mat2[1]


def test_rate_flops_match_torch_flop_counter():
    from functools import partial

    from torch.utils.flop_counter import FlopCounterMode

    # torch's counter has no formula for the in-place ``addmm_`` (the closed-form contrast accumulates
    # its per-phase products with it): counted here as the out-of-place ``addmm`` is
    FlopCounterMode = partial(FlopCounterMode, custom_mapping={torch.ops.aten.addmm_: _addmm_inplace_flops})
    m = SpikingHopfieldMLP([30, 20, 7])
    x, y = torch.rand(6, 30), torch.randint(0, 7, (6,))
    rule = EqSpike(coding="rates", free_steps=9, nudge_steps=4)
    with FlopCounterMode(display=False) as fc:
        rule.estimate(m, x, y)
    assert fc.get_total_flops() == 6 * m.rate_flops(9, 4)
    with FlopCounterMode(display=False) as fc:
        rule.infer(m, x, y)
    assert fc.get_total_flops() == 6 * m.rate_flops(9, train=False)


def test_bad_settings_and_inputs_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="hard_sigmoid"):
        SpikingHopfieldMLP([4, 3, 2], activation="sigmoid")
    with pytest.raises(ValueError, match="'mse'"):
        SpikingHopfieldMLP([4, 3, 2], output="ce")
    with pytest.raises(ValueError, match="dt"):
        SpikingHopfieldMLP([4, 3, 2], dt=1.5)
    with pytest.raises(ValueError, match="reset"):
        SpikingHopfieldMLP([4, 3, 2], reset="hard")
    with pytest.raises(ValueError, match="coding"):
        EqSpike(coding="phase")
    m, x = SpikingHopfieldMLP([4, 3, 2]), torch.rand(2, 4)
    with pytest.raises(ValueError, match="coding"):
        m.run_phase(x, m.init_spike_state(x), 3, coding="phase")
    with pytest.raises(ValueError, match="variant"):
        EqSpike(variant="centered")
    with pytest.raises(ValueError, match="spiking-hopfield-mlp"):
        EqSpike().estimate(HopfieldMLP([4, 3, 2]), torch.rand(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        EqSpike().estimate(SpikingHopfieldMLP([4, 3, 2]), torch.randn(2, 4) - 2, torch.tensor([0, 1]))
    assert isinstance(make_rule("eqspike", strict=True, coding="rates"), EqSpike)


def test_short_fashion_mnist_run_learns_and_logs_events(tmp_path):
    from eqprop.config import config_from_dict

    torch.set_default_dtype(torch.float32)
    cfg = config_from_dict({
        "data": {"name": "fashion-mnist", "train_subset": 1280, "test_subset": 500},
        "model": {"name": "spiking-hopfield-mlp", "hidden": [64], "dt": 0.2},
        "rule": {"name": "eqspike", "beta": 0.5, "variant": "random", "free_steps": 30, "nudge_steps": 15},
        "optim": {"name": "sgd", "lr": [0.1, 0.05], "momentum": 0.0, "schedule": "none"},
        "run": {"epochs": 1, "batch_size": 32, "seed": 0, "out": str(tmp_path / "run"), "progress": False},
    })
    trainer = eqprop.Trainer.from_config(cfg)
    trainer.fit()
    rec = trainer.history[-1]
    assert rec["test_acc"] > 0.5, rec  # chance: 0.1
    assert rec["events_free"] > rec["events_nudge"] > 0
