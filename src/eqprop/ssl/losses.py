"""Non-contrastive losses: BYOL / SimSiam (cosine or Euclidean) and the isotropic loss (IsoLoss).

``p`` is the online prediction, ``z`` the online embedding it was computed from (``p = g(z)``),
``zt`` the target embedding of the other view (EMA network, or the online one for SimSiam); the
target never receives a gradient (stop-gradient).

IsoLoss (Halvagal, Laborieux, Zenke 2023) replaces the gradient the encoder receives,
``dL/dz = J_g^T dL/dp`` (for a linear predictor ``W_p^T dL/dp``, which multiplies mode m by its
eigenvalue), by ``dL/dp`` itself, so every mode of the embedding learns at the same rate:

    L_iso(z) = < z, sg(dL/dp) >,   hence   dL_iso/dz = dL/dp  evaluated at the current p.

The official code writes the cosine version with ``psqrt = z W_p^{1/2}``
(``solo/losses/isoloss.py``); :func:`isoloss_sqrt` is that form, and a test checks that both give
the same gradient. The value of L_iso is not a loss to report; log :func:`byol_loss` instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def byol_loss(p: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
    """BYOL's ``2 - 2 cos(p, sg(zt))`` averaged over the batch."""
    return 2 - 2 * F.cosine_similarity(p, zt.detach(), dim=-1).mean()


def simsiam_loss(p: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
    """SimSiam's ``-cos(p, sg(zt))`` averaged over the batch (BYOL's loss / 2 - 1: same gradient / 2)."""
    return -F.cosine_similarity(p, zt.detach(), dim=-1).mean()


def euclidean_loss(p: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
    """``mean_b |p - sg(zt)|^2``."""
    return (p - zt.detach()).square().sum(-1).mean()


def isoloss(p: torch.Tensor, z: torch.Tensor, zt: torch.Tensor, base: str = "byol") -> torch.Tensor:
    """IsoLoss for any predictor: ``sum_b <z_b, sg(dL_base/dp_b)>``, so that
    ``dL_iso/dz = dL_base/dp`` (per sample, with the base loss's batch mean).

    ``base``: ``"byol"`` (cosine, ``2 - 2 cos``), ``"simsiam"`` (``-cos``) or ``"euclidean"``.
    """
    losses = {"byol": byol_loss, "simsiam": simsiam_loss, "euclidean": euclidean_loss}
    if base not in losses:
        raise ValueError(f"isoloss base must be one of {sorted(losses)}, got {base!r}")
    with torch.enable_grad():
        pd = p.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(losses[base](pd, zt.detach()), pd)
    return (z * g).sum()


def isoloss_sqrt(p: torch.Tensor, psqrt: torch.Tensor, z: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
    """The official cosine form: ``-2 mean_b [ z.sg(zt)/sg(|p||zt|) - 1/2 sg(p.zt/(|p|^3 |zt|)) |psqrt|^2 ]``
    with ``p = z W_p`` and ``psqrt = z W_p^{1/2}`` (W_p symmetric positive semi-definite)."""
    pn, ztn = p.norm(dim=1), zt.norm(dim=1)
    sim = (z * zt.detach()).sum(1) / (pn * ztn).detach() \
        - 0.5 * ((p * zt).sum(1) / (pn ** 3 * ztn)).detach() * psqrt.norm(dim=1) ** 2
    return -2 * sim.mean()
