"""Your own data: 20-dimensional float features in 3 classes, trained through ``eqprop.Trainer``.

    python docs/examples/own_data.py      # from any directory; writes runs/own_data/ here

Any ``TensorDataset`` (or ``(x, y)`` tensors, any map-style ``Dataset``, a ``DataLoader``) goes
straight to the trainer: x (N, 20) float32 features, y (N,) int64 classes. No image assumptions.
"""
from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

import eqprop


def blobs(n: int, generator: torch.Generator) -> TensorDataset:
    """Three Gaussian clusters in 20 dimensions (linearly separable with margin), features in ~[0, 1]."""
    centers = torch.tensor([[0.8] * 10 + [0.2] * 10, [0.2] * 10 + [0.8] * 10, [0.5] * 20])
    centers[2, ::2] = 0.9
    y = torch.randint(0, 3, (n,), generator=generator)
    x = centers[y] + 0.08 * torch.randn(n, 20, generator=generator)
    return TensorDataset(x.float(), y)


def main(out: str = "runs/own_data", epochs: int = 5) -> dict:
    g = torch.Generator().manual_seed(0)
    train, test = blobs(3000, g), blobs(1000, g)
    torch.manual_seed(0)
    model = eqprop.models.HopfieldMLP([20, 32, 3], output="mse")
    rule = eqprop.rules.EP(variant="centered", beta=0.5, free_steps=20, nudge_steps=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = eqprop.Trainer(model, rule, optimizer, train, test, epochs=epochs, batch_size=32, out=out,
                             resume=False, progress=False)
    summary = trainer.fit()
    print(f"own features, {epochs} epochs of centered EP: test accuracy {100 * summary['test_acc']:.2f}%")
    return summary


if __name__ == "__main__":
    main()
