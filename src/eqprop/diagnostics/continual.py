"""The GDU check of continual EP (Ernoult et al. 2020, Theorem 1).

C-EP moves the weights at every nudged step, ``theta_{t+1} = theta_t - lr * Delta_t``. For
``beta -> 0`` and ``lr -> 0`` the per-step updates ``Delta_t`` equal the per-step BPTT gradients
(the contribution of time step ``T - t + 1`` to the gradient of a trajectory that sits at the
free fixed point), as for EP (``gdu_check``), but now with the weights moving under the
dynamics; a large ``lr`` breaks the match. Uses synchronous sweeps, like ``gdu_check``.
"""
from __future__ import annotations

import torch

from ..dynamics import relax
from ..rules.continual import ContinualEP
from .common import cast_copy
from .gdu import GDUResult, bptt_per_step


def cep_gdu_check(model, x, y, beta: float = 1e-4, lr: float = 1e-4, steps: int = 20, free_steps: int = 1000,
                  tol: float | None = 1e-13, dtype: torch.dtype | None = torch.float64) -> GDUResult:
    """Per-step C-EP updates (``lr`` in-phase rate) against per-step BPTT gradients at the
    initial weights, on one batch; ``label="C-EP"`` in the result."""
    m, x = cast_copy(model, x, dtype)
    free = relax(m, x, steps=free_steps, mode="sync", tol=tol).state
    bp = bptt_per_step(m, x, y, free, steps)
    rule = ContinualEP(beta=beta, lr=lr, nudge_steps=steps, free_steps=free_steps, mode="sync", tol=tol)
    _, per_step, _ = rule.run(m, x, y, record=True)  # moves m's weights (a copy)
    ep = torch.stack([torch.cat([d.flatten() for d in delta.values()]) for delta in per_step]).detach()
    cos = torch.nn.functional.cosine_similarity(ep, bp, dim=1)
    rel = (ep - bp).norm(dim=1) / bp.norm(dim=1).clamp_min(1e-300)
    return GDUResult(ep=ep.float(), bptt=bp.float(), cosine=cos.tolist(), rel_error=rel.tolist(), beta=beta, label="C-EP")
