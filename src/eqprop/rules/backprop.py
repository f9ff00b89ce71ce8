"""Backpropagation for feedforward models: the reference every feedforward rule is compared with.

A feedforward model maps ``x (B, ...)`` to logits ``(B, num_classes)`` with its ``forward``; the
loss is the mean cross-entropy with class targets ``y (B,)``; the gradient is autograd's. Energy-
based models have no forward pass (their exact gradients are ``bptt`` and ``rbp``); sequence
models use ``bptt``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..models import FFEBM, EnergyModel
from .base import Rule, StepResult, as_grad_dict, trainable


@dataclass
class Backprop(Rule):
    """Autograd of the mean cross-entropy of ``model(x)``; the model is in train mode for
    ``estimate`` (e.g. batch norm uses batch statistics) and eval mode for ``infer``."""

    name: ClassVar[str] = "bp"

    def check_model(self, model) -> None:
        if isinstance(model, (EnergyModel, FFEBM)):
            raise ValueError(f"rule 'bp' trains feedforward models (a forward pass to logits); "
                             f"{type(model).__name__} is energy-based: its exact gradient is 'bptt' or 'rbp'")
        if getattr(model, "is_sequence_model", False):
            raise ValueError(f"{type(model).__name__} is a sequence model: train it with 'bptt' or 'rhel'")
        if type(model).forward is torch.nn.Module.forward:
            raise ValueError(f"rule 'bp' needs a model with a forward pass; {type(model).__name__} has none")

    def estimate(self, model, x, y):
        params = [p for _, p in trainable(model)]
        model.train()
        with torch.enable_grad():
            out = model(x)
            loss = F.cross_entropy(out, y)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        return as_grad_dict(model, grads), StepResult(loss=loss.detach(), output=out.detach(), state=[])

    def infer(self, model, x, y, steps=None):
        return feedforward_infer(model, x, y)


@torch.no_grad()
def feedforward_infer(model, x, y) -> StepResult:
    """Evaluation of a feedforward classifier: ``model(x)`` in eval mode and its cross-entropy."""
    was = model.training
    model.eval()
    out = model(x)
    model.train(was)
    return StepResult(loss=F.cross_entropy(out, y), output=out, state=[])
