"""The hand-derived layer update against autograd of the energy, and the model's contract."""
import pytest
import torch

from eqprop.models import HopfieldMLP, build_model, get_activation
from tests.conftest import make_net


def autograd_update(model, x, state, i, beta=0.0, y=None):
    """sigma(G'(s_i) - dF/ds_i): the update the energy's own gradient prescribes."""
    s = [t.clone().requires_grad_(True) for t in state]
    f = model.total_energy(x, s, y, beta).sum()
    g = torch.autograd.grad(f, s[i])[0]
    act = model.activation
    return act(act.inverse(s[i].detach()) - g)


def random_state(model, b, gen):
    return [torch.rand(b, d, generator=gen, dtype=torch.float64) * 0.98 + 0.01 for d in model.free_sizes]


@pytest.mark.parametrize("activation", ["hard_sigmoid", "sigmoid"])
@pytest.mark.parametrize("output", ["mse", "ce"])
def test_fast_update_equals_autograd_update(activation, output, tiny_batch):
    x, y = tiny_batch
    model = make_net(output=output, activation=activation, gain=2.0)
    gen = torch.Generator().manual_seed(3)
    state = random_state(model, x.shape[0], gen)
    ctx = model.context(x)
    for i in range(model.num_free_layers):
        fast = model.layer_update(i, state, ctx)
        torch.testing.assert_close(fast, autograd_update(model, x, state, i), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(fast, model.autograd_layer_update(i, state, ctx), rtol=1e-10, atol=1e-10)
    # the nudge: force -beta dC/ds_out equals autograd of E + beta C
    out = model.output_index
    for beta in (0.3, -0.7):
        force = -beta * model.cost_grad(state, y)
        fast = model.layer_update(out, state, ctx, force)
        slow = autograd_update(model, x, state, out, beta=beta, y=y)
        torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)


def test_cost_grad_equals_autograd(tiny_batch):
    x, y = tiny_batch
    for output in ("mse", "ce"):
        model = make_net(output=output)
        state = random_state(model, x.shape[0], torch.Generator().manual_seed(0))
        s = [t.clone().requires_grad_(True) for t in state]
        g = torch.autograd.grad(model.cost(s, y).sum(), s[model.output_index])[0]
        torch.testing.assert_close(model.cost_grad(state, y), g)


def test_layer_update_is_exact_minimiser(tiny_batch):
    """Each layer update minimises E in that layer: any perturbation inside the box raises E."""
    x, _ = tiny_batch
    model = make_net(gain=2.0)
    state = random_state(model, x.shape[0], torch.Generator().manual_seed(5))
    ctx = model.context(x)
    for i in range(model.num_free_layers):
        new = list(state)
        new[i] = model.layer_update(i, state, ctx)
        e_new = model.energy(x, new)
        assert (e_new <= model.energy(x, state) + 1e-12).all()
        for _ in range(5):
            pert = list(new)
            pert[i] = (new[i] + 0.05 * torch.randn_like(new[i])).clamp(0, 1)
            assert (model.energy(x, pert) >= e_new - 1e-12).all()


def test_shapes_and_parameters():
    m = HopfieldMLP([784, 500, 10])
    assert [tuple(p.shape) for p in m.parameters()] == [(500, 784), (500,), (10, 500), (10,)]
    assert m.free_sizes == [500, 10] and m.output_in_energy
    m = HopfieldMLP([784, 500, 10], output="ce")
    assert m.free_sizes == [500] and not m.output_in_energy
    assert tuple(m.readout.weight.shape) == (10, 500)
    x = torch.rand(3, 1, 28, 28)  # images are flattened
    assert [tuple(s.shape) for s in m.init_state(m.prepare_input(x))] == [(3, 500)]


def test_bad_input_names_the_problem():
    m = HopfieldMLP([784, 50, 10])
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, 784\)"):
        m.context(torch.rand(4, 100))
    with pytest.raises(ValueError, match="hard_sigmoid, linear, sigmoid"):
        HopfieldMLP([4, 3, 2], activation="relu")
    with pytest.raises(ValueError, match="mse, ce"):
        HopfieldMLP([4, 3, 2], output="hinge")
    with pytest.raises(ValueError, match="hopfield-mlp"):
        build_model("resnet", (784,), 10)
    with pytest.raises(ValueError, match=r"lie in \[0, 9\]"):
        m.cost(m.init_state(torch.rand(2, 784)), torch.tensor([3, 12]))
    with pytest.raises(ValueError, match="at least one hidden layer"):
        HopfieldMLP([4, 2], output="ce")


def test_sigmoid_potential_inverts_activation():
    act = get_activation("sigmoid")
    u = torch.linspace(-6, 6, 50, dtype=torch.float64)
    torch.testing.assert_close(act.inverse(act(u)), u)
    s = act(u).requires_grad_(True)
    g = torch.autograd.grad(act.potential(s).sum(), s)[0]
    torch.testing.assert_close(g, u)
