"""RRAMOptimizer: grad -> clamped pulses on one device of each pair; checkpoints; any rule."""
from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from eqprop.devices import preset
from eqprop.devices.rram import pair_weight
from eqprop.models import HopfieldMLP
from eqprop.models.bnn import BinaryMLP
from eqprop.optim import RRAMOptimizer
from eqprop.rules import EP


def _bnn_step(model, dev_opt, x, y):
    dev_opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    dev_opt.step()


def test_pulses_clamped_one_device_per_synapse_and_sign_weight():
    w = torch.nn.Parameter(torch.tensor([[0.3, -0.2, 0.1, -0.4]]))
    opt = RRAMOptimizer([w], "ideal", lr=1.0, update="sgd", init_pulses=1)
    st = opt.device_state(w)
    # programming pulse on the device matching sign(w): device 1 for +, device 2 for -
    assert st["n"].tolist() == [[[1, 0, 1, 0]], [[0, 1, 0, 1]]]
    assert w.tolist() == [[1.0, -1.0, 1.0, -1.0]]
    w.grad = torch.tensor([[-100.0, 100.0, -2.6, 0.3]])   # u = -grad: +100, -100, +2.6, -0.3
    opt.step()
    assert st["n"].tolist() == [[[15, 0, 4, 0]], [[0, 15, 0, 1]]]
    assert opt.pulses_applied == 14 + 14 + 3 + 0
    assert torch.equal(w.detach(), pair_weight(st, opt.config))


def test_weight_follows_the_resistance_difference():
    w = torch.nn.Parameter(torch.zeros(1, 1))
    opt = RRAMOptimizer([w], "ideal", lr=1.0, update="sgd", init_pulses=0)
    assert float(w.detach()) == 0.0                       # identical fresh devices: R1 = R2
    w.grad = torch.tensor([[-5.0]])
    opt.step()
    assert float(w.detach()) == 1.0                       # device 1 raised
    for _ in range(3):
        w.grad = torch.tensor([[5.0]])
        opt.step()
    assert float(w.detach()) == -1.0                      # device 2 overtook (15 > 5 pulses, same slope)


def test_optimizer_state_round_trips_through_weights_only_checkpoint():
    """Train 3 steps with every imperfection, checkpoint, restore into fresh objects (another
    seed), train 3 more on both: identical weights, pulse counts and noise states."""
    torch.manual_seed(0)
    x, y = torch.rand(32, 20), torch.randint(0, 4, (32,))
    model = BinaryMLP([20, 16, 4])
    opt = RRAMOptimizer(model.binary_parameters(), preset("all"), lr=8.0, seed=3)
    for _ in range(3):
        _bnn_step(model, opt, x, y)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optim": opt.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)

    torch.manual_seed(1)
    model2 = BinaryMLP([20, 16, 4])
    opt2 = RRAMOptimizer(model2.binary_parameters(), preset("ideal"), lr=8.0, seed=99)
    model2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optim"])
    assert opt2.config == opt.config
    for _ in range(3):
        _bnn_step(model, opt, x, y)
        _bnn_step(model2, opt2, x, y)
    for p, p2 in zip(model.binary_parameters(), model2.binary_parameters()):
        assert torch.equal(p, p2)
        s, s2 = opt.device_state(p), opt2.device_state(p2)
        assert s.keys() == s2.keys()
        for k in s:
            assert s[k].dtype == s2[k].dtype, k
            assert torch.equal(s[k], s2[k]), k
    assert int(opt.pulse_counts()) == int(opt2.pulse_counts()) > 0


@pytest.mark.requires_data("mnist")
def test_bp_on_a_bnn_with_ideal_devices_beats_chance(mnist_small):
    x, y, xt, yt = mnist_small
    torch.manual_seed(0)
    model = BinaryMLP([784, 128, 10])
    dev = RRAMOptimizer(model.binary_parameters(), "ideal", lr=8.0, seed=0)
    fl = torch.optim.Adam(model.float_parameters(), lr=8e-3)
    for i in range(0, len(y), 100):
        fl.zero_grad()
        _bnn_step(model, dev, x[i:i + 100], y[i:i + 100])
        fl.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(xt).argmax(1) == yt).float().mean())
    assert acc > 0.6, acc
    for p in model.binary_parameters():
        assert set(p.unique().tolist()) <= {-1.0, 0.0, 1.0}


@pytest.mark.requires_data("mnist")
def test_ep_grad_drives_devices_on_a_hopfield_net(mnist_small):
    """The same optimizer under centered EP: weights stay scale * sign, and the net learns."""
    x, y, xt, yt = mnist_small
    torch.manual_seed(0)
    model = HopfieldMLP([784, 64, 10], output="ce")
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in model.named_parameters() if not n.endswith("weight")]
    scales = [float(w.detach().abs().mean()) for w in weights]
    dev = RRAMOptimizer(weights, "all", lr=8.0, scale=None, seed=0)
    fl = torch.optim.SGD(biases, lr=0.02)
    rule = EP(variant="centered", beta=0.5, free_steps=15, nudge_steps=6)
    for i in range(0, len(y), 100):
        dev.zero_grad()
        fl.zero_grad()
        rule.step(model, x[i:i + 100], y[i:i + 100])
        dev.step()
        fl.step()
    for w, s in zip(weights, scales):
        nz = w.detach()[w != 0]
        assert nz.numel() > 0.99 * w.numel()
        assert torch.allclose(nz.abs(), torch.full_like(nz, s))
    acc = float((rule.infer(model, xt, yt).output.argmax(1) == yt).float().mean())
    assert acc > 0.5, acc


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_optimizer_runs_on_cuda():
    w = torch.nn.Parameter(torch.randn(64, 32, device="cuda"))
    opt = RRAMOptimizer([w], "all", seed=0)
    w.grad = torch.randn_like(w)
    opt.step()
    assert opt.device_state(w)["n"].device.type == "cuda"
    assert set(w.unique().tolist()) <= {-1.0, 0.0, 1.0}


def test_cached_read_back_equals_the_full_model():
    """The optimizer refreshes log R at the pulsed devices only; after many steps with every
    imperfection it equals a fresh computation and the weights equal sign(R_1 - R_2)."""
    from eqprop.devices.rram import _pair_log_r, resistance

    torch.manual_seed(0)
    x, y = torch.rand(64, 30), torch.randint(0, 4, (64,))
    model = BinaryMLP([30, 20, 4])
    opt = RRAMOptimizer(model.binary_parameters(), preset("all"), lr=8.0, seed=5)
    for _ in range(50):
        _bnn_step(model, opt, x, y)
    for p in model.binary_parameters():
        st = opt.device_state(p)
        cached, _ = opt._log_r[p]
        assert torch.equal(cached, _pair_log_r(st, opt.config))
        r = resistance(st, opt.config)
        assert torch.equal(p.detach(), torch.sign(r[0] - r[1]))
