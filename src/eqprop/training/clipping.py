"""Gradient-norm clipping (``optim.clip_grad_norm``), as a callback between the rule and the optimizer.

When the update direction the rule wrote, all parameters together, has a norm above ``max_norm``,
every ``.grad`` is scaled by ``max_norm / norm``: the direction
is kept, the step bounded. Backpropagating through a relaxation that sits near an unstable point can
return a gradient tens of times its usual size (RESULTS.md, issue 10: one such BPTT step wrecked a
two-hidden-layer net); clipping is the usual remedy (Pascanu et al. 2013). Under data parallelism it
runs after the gradients are all-reduced, so every process clips alike.

Each epoch's record gets ``clipped_steps`` (steps whose direction was scaled down) and
``grad_norm_max`` (the largest norm before clipping).
"""
from __future__ import annotations

import math

import torch

from ..callbacks import Callback
from ..registry import ConfigError

__all__ = ["ClipGradNorm"]


class ClipGradNorm(Callback):
    """Scales the rule's update direction down to norm ``max_norm`` (> 0) when it is longer."""

    def __init__(self, max_norm: float):
        if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) or not (
                math.isfinite(max_norm) and max_norm > 0):
            raise ConfigError(f"optim.clip_grad_norm must be a number > 0 (or null for no clipping), got {max_norm!r}")
        self.max_norm = float(max_norm)
        self.clipped, self.largest = 0, 0.0

    def after_step(self, trainer, batch, result) -> None:
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        if not grads:
            return
        # on the device, no host sync: every step is multiplied by min(1, max_norm / norm), exactly
        # max_norm / norm when clipped (torch's clip_grad_norm_ adds 1e-6 to the norm), by 1 otherwise
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, dtype=torch.float64) for g in grads]))
        scale = (self.max_norm / norm).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.to(g.dtype))
        self.largest = torch.maximum(norm, torch.as_tensor(self.largest, dtype=norm.dtype, device=norm.device))
        self.clipped = self.clipped + (norm > self.max_norm).long()

    def on_epoch_end(self, trainer, record) -> None:
        record["clipped_steps"], record["grad_norm_max"] = int(self.clipped), float(self.largest)
        self.clipped, self.largest = 0, 0.0
