import math

import pytest
import torch

from eqprop.continual import MetaplasticAdam, f_meta, metaplastic_groups
from eqprop.models.bnn import BinaryMLP


def test_f_meta_attenuates_exactly_the_updates_toward_a_sign_flip():
    # First Adam step: m_hat / sqrt(v_hat) = sign(g) exactly (eps = 0), so the plain update is -lr sign(g).
    w0 = torch.tensor([[0.5, -0.5, 2.0, -2.0, 0.5, -0.5]], dtype=torch.float64)
    g = torch.tensor([[1.0, 1.0, 3.0, -3.0, -2.0, -2.0]], dtype=torch.float64)
    p = torch.nn.Parameter(w0.clone())
    p.grad = g.clone()
    lr, m = 0.1, 1.0
    MetaplasticAdam([p], lr=lr, eps=0.0, m=m).step()
    # by hand: w=0.5, g>0 -> update -0.1 shrinks |w| (toward the flip): times 1 - tanh(0.5)^2 = 0.7864477...
    fa, fb = 1 - math.tanh(0.5) ** 2, 1 - math.tanh(2.0) ** 2
    assert fa == pytest.approx(0.78644773, abs=1e-8) and fb == pytest.approx(0.07065082, abs=1e-8)
    expected = [0.5 - 0.1 * fa,   # toward flip: attenuated
                -0.5 - 0.1,       # |w| grows: whole
                2.0 - 0.1 * fb,   # toward flip, large |w|: strongly attenuated
                -2.0 + 0.1 * fb,  # toward flip (negative weight pushed up)
                0.5 + 0.1,        # grows
                -0.5 + 0.1 * fa]  # toward flip
    torch.testing.assert_close(p.detach()[0], torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-15)


def test_m_zero_is_plain_adam_and_1d_parameters_are_never_attenuated():
    torch.manual_seed(0)
    w, b = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    ours = [torch.nn.Parameter(w.clone()), torch.nn.Parameter(b.clone())]
    ref = [torch.nn.Parameter(w.clone()), torch.nn.Parameter(b.clone())]
    meta_b = torch.nn.Parameter(b.clone())
    # eps = 0: torch adds eps after the bias correction, the paper's code before it
    o1 = MetaplasticAdam(ours, lr=0.01, weight_decay=1e-3, m=0.0, eps=0.0)
    o2 = torch.optim.Adam(ref, lr=0.01, weight_decay=1e-3, eps=0.0)
    o3 = MetaplasticAdam([meta_b], lr=0.01, weight_decay=1e-3, m=3.0, eps=0.0)
    for _ in range(7):
        gw, gb = torch.randn_like(w), torch.randn_like(b)
        for ps in (ours, ref):
            ps[0].grad, ps[1].grad = gw.clone(), gb.clone()
        meta_b.grad = gb.clone()
        o1.step(), o2.step(), o3.step()
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(meta_b, ref[1], rtol=1e-12, atol=1e-14)


def test_large_hidden_weights_resist_a_sign_flip_that_small_ones_take():
    w0 = torch.linspace(0.05, 1.5, 30, dtype=torch.float64).reshape(5, 6)
    flips, grown = {}, {}
    for m in (0.0, 3.0):
        for sign in (1.0, -1.0):
            p = torch.nn.Parameter(w0.clone())
            opt = MetaplasticAdam([p], lr=0.01, m=m)
            for _ in range(100):  # a constant push: 100 steps of ~0.01 (down for sign=1, up for sign=-1)
                p.grad = sign * torch.ones_like(p)
                opt.step()
            if sign > 0:
                flips[m] = (p < 0).sum().item()
            else:
                grown[m] = p.detach().clone()
    # m = 0: every weight below ~1 flips; m = 3: only the small ones (f_meta ~ 1 near 0) do
    assert flips[0.0] >= 18 and flips[3.0] <= 10
    torch.testing.assert_close(grown[0.0], grown[3.0], rtol=0, atol=0)  # growing |W_h| is never attenuated


def test_groups_and_bad_input():
    net = BinaryMLP([8, 6, 4, 3])
    groups = metaplastic_groups(net, [1.0, 2.0, 0.5])
    assert [g["m"] for g in groups] == [1.0, 2.0, 0.5, 0.0]
    assert groups[-1]["params"] == net.float_parameters()
    with pytest.raises(ValueError, match="one per layer"):
        metaplastic_groups(net, [1.0, 2.0])
    with pytest.raises(ValueError, match="m must be finite and >= 0"):
        MetaplasticAdam(net.parameters(), m=-1.0)
    assert f_meta(torch.tensor([0.0]), 5.0).item() == 1.0


def test_hidden_weights_kept_in_the_optimizer_follow_the_same_rule():
    torch.manual_seed(3)
    w0 = 0.3 * torch.randn(4, 5, dtype=torch.float64)
    direct = torch.nn.Parameter(w0.clone())
    binary = torch.nn.Parameter(w0.clone())
    o1 = MetaplasticAdam([direct], lr=0.05, m=2.0, weight_decay=1e-3)
    o2 = MetaplasticAdam([binary], lr=0.05, m=2.0, weight_decay=1e-3, binary_scale=0.25)
    torch.testing.assert_close(binary.detach(), 0.25 * w0.sign())
    for _ in range(20):
        g = torch.randn_like(w0)
        direct.grad, binary.grad = g.clone(), g.clone()
        o1.step(), o2.step()
    torch.testing.assert_close(o2.state[binary]["hidden"], direct.detach(), rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(binary.detach(), 0.25 * direct.detach().sign())
    hidden = o2.state[binary]["hidden"].clone()
    o2.reset_moments()  # a new task: Adam starts afresh (first step = -lr sign(g) again), hidden weights stay
    assert set(o2.state[binary]) == {"hidden"}
    binary.grad = torch.ones_like(w0)
    o2.step()
    expected = torch.where(hidden > 0, hidden - 0.05 * f_meta(hidden, 2.0), hidden - 0.05)  # grad > 0 everywhere
    torch.testing.assert_close(o2.state[binary]["hidden"], expected, rtol=0, atol=1e-7)  # eps = 1e-8 aside
    torch.testing.assert_close(binary.detach(), 0.25 * expected.sign())
    with pytest.raises(ValueError, match="binary_scale must be > 0"):
        MetaplasticAdam([torch.nn.Parameter(w0.clone())], binary_scale=0.0)
