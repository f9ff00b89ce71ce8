"""The ``closure`` of ``torch.optim.Optimizer.step``, shared by eqprop's optimizers."""
from __future__ import annotations

import torch


def run_closure(closure):
    """``closure()`` with gradients enabled (``step`` itself runs under ``no_grad``), or ``None``."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()
