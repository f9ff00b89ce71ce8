"""ff-EBM gradients: a deep Hopfield network split into blocks, and a chain with a conv front.

    python docs/examples/ffebm.py     (~10 s)

Prints, for each way of grouping the layers of a 5-layer Hopfield network into blocks, the
cosine and relative error between the chain's EP gradient (centered, beta = 1e-3) and its exact
gradient (implicit differentiation), and the same for a conv -> Hopfield -> linear chain.
"""
import torch
from torch import nn

import eqprop
from eqprop.models import FFEBM, HopfieldBlock, HopfieldMLP

budget = dict(free_steps=3000, nudge_steps=3000, tol=1e-14)
g = torch.Generator().manual_seed(1)
x = torch.rand(6, 12, generator=g, dtype=torch.float64)
y = torch.randint(0, 4, (6,), generator=g)
sizes = [12, 10, 9, 8, 7, 4]
torch.manual_seed(0)
deep = HopfieldMLP(sizes, gains=[1.5] * 5).double()


def flat(d):
    return torch.cat([v.flatten() for v in d.values()])


def compare(chain, label):
    ep = flat(eqprop.gradients(chain, x, y, "ffebm", beta=1e-3, **budget))
    ref = flat(eqprop.gradients(chain, x, y, "ffebm-implicit", adjoint_steps=5000, **budget))
    cos = float(ep @ ref / (ep.norm() * ref.norm()))
    print(f"{label:<34} cosine {cos:.9f}  rel. error {float((ep - ref).norm() / ref.norm()):.2e}")
    return ref


for grouping in ([5], [2, 3], [1, 2, 2], [1, 1, 1, 1, 1]):
    blocks, start = [], 0
    for n in grouping:  # block j holds layers start+1 .. start+n, driven by layer start
        blocks.append(HopfieldBlock(sizes[start:start + n + 1]))
        start += n
    chain = FFEBM(blocks, cost="mse").double()
    chain.load_state_dict(dict(zip(chain.state_dict().keys(), deep.state_dict().values())))  # same weights
    ref = compare(chain, f"blocks of {grouping} layers")
    if grouping == [5]:
        rbp = flat(eqprop.gradients(deep, x, y, "rbp", adjoint_steps=5000, **budget))
        print(f"{'  one block vs the Hopfield net (RBP)':<34} rel. error {float((ref - rbp).norm() / rbp.norm()):.2e}")

torch.manual_seed(0)
chain = FFEBM([nn.Unflatten(1, (3, 2, 2)), nn.Conv2d(3, 4, 2, padding=1), nn.ReLU(), nn.MaxPool2d(2, stride=1),
               HopfieldBlock([16, 10, 8], gains=[1.5, 1.5]), nn.Linear(8, 4)], cost="ce").double()
compare(chain, "conv -> Hopfield block -> linear")
