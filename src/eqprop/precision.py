"""Low-precision relaxation with float32 master weights.

Relaxation is most of an EP step's arithmetic and tolerates 16-bit states well (Scellier et al.
2023 ran theirs in 16 bits); the parameter update does not. ``relaxation_copy(model, dtype)``
returns a copy of ``model`` in ``dtype`` whose weights are refreshed from the master model on
every call (one ``copy_`` per tensor, no allocation after the first call), so a rule can settle the
copy in bfloat16 / float16 and take the energy contrast — and so the gradient — on the master in
float32 with the settled states cast up.
"""
from __future__ import annotations

import copy
import weakref

import torch

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32, "float64": torch.float64}

_copies: "weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module]" = weakref.WeakKeyDictionary()


def resolve(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown relaxation dtype {dtype!r}; valid: {', '.join(DTYPES)}") from None


@torch.no_grad()
def relaxation_copy(model: torch.nn.Module, dtype: str | torch.dtype | None):
    """``model`` itself when ``dtype`` is None or its own dtype; else a synced copy in ``dtype``."""
    dtype = resolve(dtype)
    if dtype is None or dtype == next(model.parameters()).dtype:
        return model
    low = _copies.get(model)
    if low is None or next(low.parameters()).dtype != dtype:
        low = copy.deepcopy(model).to(dtype)
        for p in low.parameters():
            p.requires_grad_(False)
        _copies[model] = low
    for dst, src in zip(low.parameters(), model.parameters()):
        dst.copy_(src)
    for dst, src in zip(low.buffers(), model.buffers()):
        dst.copy_(src)
    return low


_COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def cast_state(state, like: torch.nn.Module):
    """States settled in another precision, cast to the master model's dtype for the contrast
    (complex states to its complex counterpart; states already there are returned as they are)."""
    dtype = next(like.parameters()).dtype
    cdtype = _COMPLEX_OF.get(dtype)
    out = []
    for s in state:
        target = (cdtype or s.dtype) if s.is_complex() else dtype
        out.append(s if s.dtype == target else s.to(target))
    return out
