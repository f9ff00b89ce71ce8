"""Your own model: a Hopfield network with a skip coupling from the input to the second hidden layer.

    python docs/examples/own_model.py          # from any directory; writes runs/own_model/ here

1. Defines ``SkipHopfield`` below, following the model contract (docs/own_model.md).
2. Checks, in float64 on 16 Fashion-MNIST images, that centered EP (beta 1e-3, converged
   relaxations) gives RBP's gradient (relative error <= 1e-4), and that the fast update equals
   the autograd update of the energy (``eqprop.check_model``-style check, done by hand here).
3. Trains it for one epoch on Fashion-MNIST with centered EP through ``eqprop.Trainer``.

The same class trains from YAML by import path (docs/examples/own_model.yaml):

    PYTHONPATH=docs/examples eqprop train docs/examples/own_model.yaml
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

import eqprop
from eqprop.models import EnergyModel, get_activation
from eqprop.models.base import one_hot_targets, parity_groups


@dataclass
class SkipContext:
    x: torch.Tensor       # (B, d_in) flattened input
    drive1: torch.Tensor  # (B, h1) = W0 x + b0
    drive2: torch.Tensor  # (B, h2) = S x, the skip coupling


class SkipHopfield(EnergyModel):
    """E = sum_i G(s_i) - s1.(W0 x + b0) - s2.(W1 s1 + b1 + S x) - s3.(W2 s2 + b2);  C = |s3 - y|^2 / 2.

    input_shape: one sample's shape (flattened to d_in); num_outputs: classes (the last free layer).
    State: [s1 (B, hidden[0]), s2 (B, hidden[1]), s3 (B, num_outputs)].
    """

    def __init__(self, input_shape, num_outputs: int, hidden: list[int] = (256, 128), activation: str = "hard_sigmoid"):
        super().__init__()
        d_in, (h1, h2) = math.prod(input_shape), hidden
        self.activation = get_activation(activation)
        self.w0, self.w1, self.w2 = nn.Linear(d_in, h1), nn.Linear(h1, h2), nn.Linear(h2, num_outputs)
        self.skip = nn.Linear(d_in, h2, bias=False)
        self.sizes = [h1, h2, num_outputs]

    num_free_layers = 3

    def init_state(self, x):
        return [x.new_zeros(x.shape[0], d, dtype=self.param_dtype) for d in self.sizes]

    def context(self, x):
        x = x.flatten(1).to(self.param_dtype)
        return SkipContext(x, self.w0(x), self.skip(x))

    def layer_update(self, i, state, ctx, force=None):
        s1, s2, s3 = state
        u = [ctx.drive1 + s2 @ self.w1.weight,
             self.w1(s1) + ctx.drive2 + s3 @ self.w2.weight,
             self.w2(s2)][i]
        return self.activation(u if force is None else u + force)

    def update_groups(self, mode):
        return parity_groups(3, mode)  # async: layers 1 and 3, then 2

    def energy(self, x, state):
        ctx = self.context(x)
        s1, s2, s3 = state
        potential = sum(self.activation.potential(s).sum(-1) for s in state)
        return potential - (s1 * ctx.drive1).sum(-1) - (s2 * (self.w1(s1) + ctx.drive2)).sum(-1) - (s3 * self.w2(s2)).sum(-1)

    def output(self, state):
        return state[2]

    def cost(self, state, y):
        return 0.5 * ((state[2] - one_hot_targets(y, self.sizes[2], state[2])) ** 2).sum(-1)

    def cost_grad(self, state, y):
        return state[2] - one_hot_targets(y, self.sizes[2], state[2])


def check_gradient(model, x, y) -> float:
    """Relative L2 error of centered EP (beta 1e-3, converged) against RBP, in float64."""
    m = SkipHopfield(x.shape[1:], 10, hidden=[m_.out_features for m_ in (model.w0, model.w1)]).double()
    m.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    x = x.double()
    budget = dict(free_steps=2000, nudge_steps=2000, tol=1e-13)
    ep = eqprop.gradients(m, x, y, "ep-centered", beta=1e-3, **budget)
    rbp = eqprop.gradients(m, x, y, "rbp", adjoint_steps=2000, **budget)
    num = sum(float((ep[n] - rbp[n]).pow(2).sum()) for n in rbp)
    den = sum(float(rbp[n].pow(2).sum()) for n in rbp)
    # the fast update is the exact block minimisation of the energy
    state = [torch.rand_like(s) for s in m.init_state(x)]
    ctx = m.context(x)
    for i in range(3):
        torch.testing.assert_close(m.layer_update(i, state, ctx), m.autograd_layer_update(i, state, ctx))
    return math.sqrt(num / den)


def main(epochs: int = 1, out: str = "runs/own_model") -> dict:
    from eqprop.data import load_dataset

    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    torch.manual_seed(0)
    model = SkipHopfield((1, 28, 28), 10, hidden=[256, 128])
    x16, y16 = train.images[:16].float() / 255, train.labels[:16]
    err = check_gradient(model, x16, y16)
    print(f"centered EP (beta 1e-3) vs RBP, float64: relative error {err:.2e}")
    assert err <= 1e-4, err
    rule = eqprop.rules.EP(variant="centered", beta=0.5, free_steps=20, nudge_steps=8)
    optimizer = torch.optim.SGD([{"params": m.parameters(), "lr": lr} for m, lr in
                                 ((model.w0, 0.05), (model.skip, 0.05), (model.w1, 0.03), (model.w2, 0.02))], momentum=0.9)
    trainer = eqprop.Trainer(model, rule, optimizer, train, test, epochs=epochs, batch_size=64, out=out, resume=False)
    summary = trainer.fit()
    print(f"SkipHopfield on Fashion-MNIST, {epochs} epoch(s) of centered EP: test accuracy {100 * summary['test_acc']:.2f}%")
    return {**summary, "ep_vs_rbp_rel_error": err}


if __name__ == "__main__":
    main()
