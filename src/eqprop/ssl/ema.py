"""The EMA target network of BYOL: ``theta_t <- tau theta_t + (1 - tau) theta`` after each step,
with tau rising from ``base_tau`` to ``final_tau`` on a cosine over training (solo-learn's
``MomentumUpdater``); buffers (BatchNorm statistics) are copied. ``tau = 0`` makes the target
the online network itself (SimSiam-like; no copy is kept then)."""
from __future__ import annotations

import copy
import math

import torch
from torch import nn


def cosine_tau(step: int, total: int, base_tau: float, final_tau: float) -> float:
    """``final - (final - base) (cos(pi step / total) + 1) / 2``."""
    if total <= 0:
        return base_tau
    return final_tau - (final_tau - base_tau) * (math.cos(math.pi * min(step, total) / total) + 1) / 2


def make_target(online: nn.Module) -> nn.Module:
    target = copy.deepcopy(online)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    if not 0 <= tau <= 1:
        raise ValueError(f"EMA tau must be in [0, 1], got {tau}")
    for pt, po in zip(target.parameters(), online.parameters()):
        pt.mul_(tau).add_(po.detach(), alpha=1 - tau)
    for bt, bo in zip(target.buffers(), online.buffers()):
        bt.copy_(bo)
