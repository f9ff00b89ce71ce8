"""Collapse diagnostics and the linear probe on frozen features."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def effective_rank(x: torch.Tensor) -> float:
    """``exp(entropy)`` of the normalised eigenvalues of the covariance of x (N, D) (Roy & Vetterli
    2007): D for isotropic features, 1 for features on one line (collapse)."""
    x = x.double() - x.double().mean(0)
    s = torch.linalg.eigvalsh(x.T @ x / max(len(x) - 1, 1)).clamp_min(0)
    if float(s.sum()) <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def correlation_eigenvalues(z: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of ``z^T z / N`` (the uncentred correlation DirectPred uses), descending."""
    z = z.double()
    return torch.linalg.eigvalsh(z.T @ z / len(z)).flip(0)


def linear_probe(train_x, train_y, test_x, test_y, classes: int, steps: int = 300, lr: float = 0.1,
                 weight_decay: float = 1e-4, seed: int = 0) -> tuple[float, float]:
    """Softmax regression on standardised frozen features, full-batch Adam; (train, test) accuracy in %."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    xtr, xte = (train_x - mean) / std, (test_x - mean) / std
    g = torch.Generator().manual_seed(seed)
    W = (torch.randn(xtr.shape[1], classes, generator=g) * 0.01).requires_grad_(True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            loss = F.cross_entropy(xtr @ W + b, train_y) + weight_decay * W.square().sum()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = lambda x, y: 100.0 * float(((x @ W + b).argmax(1) == y).double().mean())  # noqa: E731
        return acc(xtr, train_y), acc(xte, test_y)
