"""What the rules share for sequence models (``model.is_sequence_model``, e.g. ``HSSM``).

A sequence model is read out by a plain forward pass (no relaxation), so inference is
``model.predict_loss(x, y)``; the exact gradient (BPTT) is autograd through that forward pass,
i.e. through every time step of every recurrent unit. ``rule=bptt`` dispatches here when it
meets a sequence model.
"""
from __future__ import annotations

import torch

from .base import StepResult, as_grad_dict, trainable


def is_sequence_model(model) -> bool:
    return bool(getattr(model, "is_sequence_model", False))


def sequence_bptt(model, x, y, parallel: bool = True) -> tuple[dict[str, torch.Tensor], StepResult]:
    """``dL/dtheta`` by backpropagation through time (autograd through the whole forward pass)."""
    params = [p for _, p in trainable(model)]
    with torch.enable_grad():
        out, loss = model.predict_loss(x, y, parallel=parallel)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return as_grad_dict(model, grads), StepResult(loss=loss.detach(), output=out.detach(), state=[], stats={})


@torch.no_grad()
def sequence_infer(model, x, y) -> StepResult:
    """Evaluation of a sequence model: one forward pass, its loss and outputs."""
    out, loss = model.predict_loss(x, y)
    return StepResult(loss=loss.detach(), output=out.detach(), state=[], stats={})
