"""Predictors: learned (BYOL's MLP), DirectPred and DirectCopy.

DirectPred (Tian et al. 2021; as in ``solo/methods/directpred.py`` of fmi-basel/implicit-var-reg)
keeps an EMA of the embedding correlation, ``C <- tau C + (1 - tau) z^T z / B`` (z detached), and
sets ``W_p = U diag(s^alpha) U^T`` from ``C = U diag(lambda) U^T`` with, when ``normalize``,
``s = max(lambda, 0) / max(lambda) + eps``. DirectCopy (Wang et al. 2022) skips the
eigendecomposition: ``W_p = C / max(lambda) + eps I`` (alpha = 1). Both predict ``p = z W_p`` and
are not trained by gradients.
"""
from __future__ import annotations

import torch
from torch import nn


class MLPPredictor(nn.Module):
    """BYOL's learned predictor: Linear - BatchNorm - ReLU - Linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def matrix(self, z: torch.Tensor) -> torch.Tensor:
        """The least-squares linear map ``A`` with ``p ~ z A`` on the batch ``z`` (for its eigenvalues)."""
        with torch.no_grad():
            return torch.linalg.lstsq(z.double(), self(z).double()).solution.to(z.dtype)


class CorrelationPredictor(nn.Module):
    """DirectPred (``mode="directpred"``) or DirectCopy (``mode="directcopy"``)."""

    def __init__(self, dim: int, mode: str = "directpred", alpha: float = 0.5, tau: float = 0.5,
                 eps: float = 0.0, normalize: bool = True):
        super().__init__()
        if mode not in ("directpred", "directcopy"):
            raise ValueError(f"predictor mode must be 'directpred' or 'directcopy', got {mode!r}")
        if not 0 <= tau < 1:
            raise ValueError(f"predictor tau (EMA of the correlation) must be in [0, 1), got {tau}")
        if mode == "directcopy" and alpha != 1.0:
            raise ValueError("DirectCopy is DirectPred with alpha = 1 and no eigendecomposition; set alpha: 1.0")
        self.mode, self.alpha, self.tau, self.eps, self.normalize = mode, alpha, tau, eps, normalize
        self.register_buffer("C", torch.zeros(dim, dim))

    @torch.no_grad()
    def update(self, z: torch.Tensor) -> None:
        """``C <- tau C + (1 - tau) z^T z / B`` with z detached."""
        zn = z.detach().to(self.C.dtype) / z.shape[0] ** 0.5
        self.C.mul_(self.tau).add_(zn.T @ zn, alpha=1 - self.tau)

    @torch.no_grad()
    def eigen(self) -> tuple[torch.Tensor, torch.Tensor]:
        lam, U = torch.linalg.eigh(self.C.double())
        return lam.to(self.C.dtype), U.to(self.C.dtype)

    @torch.no_grad()
    def matrix(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """``W_p`` (d x d, symmetric)."""
        lam, U = self.eigen()
        top = lam.max().clamp_min(1e-30)
        if self.mode == "directcopy":
            C = self.C / top if self.normalize else self.C
            return C + self.eps * torch.eye(len(C), dtype=C.dtype, device=C.device)
        s = lam.clamp_min(0) / top + self.eps if self.normalize else lam.clamp(0, 1e6)
        return U @ torch.diag(s ** self.alpha) @ U.T

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.matrix()
