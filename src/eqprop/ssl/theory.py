"""The linear-network analysis of Halvagal, Laborieux and Zenke (2023), simulated and solved.

Model (the paper's toy Siamese network, ``notebooks/toy_networks.ipynb`` of fmi-basel/implicit-var-reg):
a linear encoder ``z = W x`` (W: M x N) and a linear DirectPred predictor ``p = W_p z`` with
``W_p = U diag(lambda^alpha) U^T`` from the eigendecomposition ``W W^T = U diag(lambda) U^T`` (the
embedding correlation for white inputs). Inputs ``x ~ N(0, I)``; the two views add independent
Gaussian noise, ``x_{1,2} = x + sigma n_{1,2}``. Euclidean loss with a stop-gradient on the target:

    L     = 1/2 E | W_p W x1 - sg(W x2) |^2                      (BYOL / SimSiam, tau = 0)
    L_iso = 1/2 E | W x1 - sg(W x2 + W x1 - W_p W x1) |^2         (IsoLoss: d/dz L_iso = d/dp L)

Gradient descent with step ``eta`` (per step, expectation over x):

    dW = -eta W_p (k W_p - I) W      (standard),     dW = -eta (k W_p - I) W      (isotropic),   k = 1 + sigma^2

W_p commutes with C = W W^T, so C keeps its eigenbasis and each eigenvalue evolves alone; with
``u = lambda^alpha`` and t the number of steps (continuous-time limit):

    standard:  du/dt = 2 eta alpha u^2 (1 - k u)    ->  G(u(t)) = G(u0) + 2 eta alpha t,
               G(u) = -1/u + k ln(u / |1 - k u|)   (implicit; solved by bisection)
    isotropic: du/dt = 2 eta alpha u (1 - k u)      ->  u(t) = 1 / (k + (1/u0 - k) exp(-2 eta alpha t))

So the eigenvalue ``lambda^alpha`` is the per-mode learning rate of the standard loss (small modes
learn slowly), while under IsoLoss every mode follows the same logistic curve with the same rate
``2 eta alpha``: ``ln(u / (1/k - u))`` grows linearly with slope ``2 eta alpha`` in every mode.
"""
from __future__ import annotations

import math

import torch


def predictor_from_encoder(W: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """DirectPred's ``W_p = U diag(lambda^alpha) U^T`` of ``C = W W^T`` (eigenvalues clamped at 0)."""
    lam, U = torch.linalg.eigh(W @ W.T)
    return U @ torch.diag(lam.clamp_min(0) ** alpha) @ U.T


def simulate(W0: torch.Tensor, steps: int, eta: float, sigma: float = 0.3, alpha: float = 1.0,
             loss: str = "standard", n_samples: int = 4096, generator: torch.Generator | None = None,
             exact: bool = False) -> torch.Tensor:
    """Train the linear model by gradient descent on fresh Gaussian samples each step.

    Returns the eigenvalues of ``W W^T`` (ascending) after each step, shape (steps + 1, M), in W0's
    dtype. ``exact=True`` uses the expected gradient instead of a sampled one.
    """
    if loss not in ("standard", "iso"):
        raise ValueError(f"loss must be 'standard' or 'iso', got {loss!r}")
    W = W0.clone()
    m, n = W.shape
    out = [torch.linalg.eigvalsh(W @ W.T)]
    eye = torch.eye(m, dtype=W.dtype)
    k = 1 + sigma ** 2
    for _ in range(steps):
        Wp = predictor_from_encoder(W, alpha)
        if exact:
            err = (k * Wp - eye) @ W  # E[(W_p W x1 - W x2) x1^T] = (k W_p - I) W
        else:
            x = torch.randn(n, n_samples, generator=generator, dtype=W.dtype)
            x1 = x + sigma * torch.randn(n, n_samples, generator=generator, dtype=W.dtype)
            x2 = x + sigma * torch.randn(n, n_samples, generator=generator, dtype=W.dtype)
            err = (Wp @ W @ x1 - W @ x2) @ x1.T / n_samples
        grad = Wp.T @ err if loss == "standard" else err
        W = W - eta * grad
        out.append(torch.linalg.eigvalsh(W @ W.T))
    return torch.stack(out)


def _G(u: torch.Tensor, k: float) -> torch.Tensor:
    return -1.0 / u + k * torch.log(u / (1 - k * u).abs())


def analytic(lam0: torch.Tensor, steps: int, eta: float, sigma: float = 0.3, alpha: float = 1.0,
             loss: str = "standard") -> torch.Tensor:
    """The per-mode solution: eigenvalues at t = 0..steps, shape (steps + 1, M), float64."""
    lam0 = torch.as_tensor(lam0, dtype=torch.float64)
    if bool((lam0 <= 0).any()):
        raise ValueError("every initial eigenvalue must be > 0 (a zero mode never moves)")
    k = 1 + sigma ** 2
    t = torch.arange(steps + 1, dtype=torch.float64)[:, None]
    u0 = lam0[None, :] ** alpha
    r = 2 * eta * alpha
    if loss == "iso":
        u = 1.0 / (k + (1.0 / u0 - k) * torch.exp(-r * t))
    elif loss == "standard":
        target = _G(u0, k) + r * t
        star = 1.0 / k
        below = (u0 < star).expand_as(target)
        lo = torch.where(below, u0.expand_as(target), torch.full_like(target, star))
        hi = torch.where(below, torch.full_like(target, star), u0.expand_as(target))
        for _ in range(200):  # G rises on (0, 1/k) and falls on (1/k, inf): bisection toward 1/k
            mid = 0.5 * (lo + hi)
            g = _G(mid, k)
            go_up = torch.where(below, g < target, g > target)
            lo, hi = torch.where(go_up, mid, lo), torch.where(go_up, hi, mid)
        u = torch.where((u0 == star).expand_as(target), torch.full_like(target, star), 0.5 * (lo + hi))
    else:
        raise ValueError(f"loss must be 'standard' or 'iso', got {loss!r}")
    return u ** (1.0 / alpha)


def logistic_rates(lam: torch.Tensor, sigma: float, alpha: float, lo: float = 0.05, hi: float = 0.9) -> torch.Tensor:
    """Per mode, the slope over steps of ``ln(u / (1/k - u))`` (u = lambda^alpha) fitted by least
    squares where ``u k`` is within [lo, hi]: ``2 eta alpha`` in every mode under IsoLoss."""
    k = 1 + sigma ** 2
    u = lam.double().clamp_min(1e-300) ** alpha
    rates = []
    for j in range(u.shape[1]):
        uj = u[:, j]
        sel = (uj * k >= lo) & (uj * k <= hi)
        if int(sel.sum()) < 3:
            rates.append(math.nan)
            continue
        t = torch.arange(len(uj), dtype=torch.float64)[sel]
        y = torch.log(uj[sel] / (1 / k - uj[sel]))
        tc = t - t.mean()
        rates.append(float((tc * (y - y.mean())).sum() / (tc * tc).sum()))
    return torch.tensor(rates, dtype=torch.float64)
