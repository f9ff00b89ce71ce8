"""What the diagnostics share: each works on a copy of the model cast to a precise dtype."""
from __future__ import annotations

import copy

import torch


def cast_copy(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None = torch.float64):
    """``(copy of model, x)`` both in ``dtype`` (default float64; None keeps them). The model
    itself is never changed; integer inputs (e.g. token ids) are left as they are."""
    m = copy.deepcopy(model)
    if dtype is not None:
        m = m.to(dtype)
        x = x.to(dtype) if x.is_floating_point() else x
    return m, x
