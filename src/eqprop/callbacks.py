"""Callbacks: what a model, a rule or a logger adds to a training run, without the trainer naming it.

The trainer calls these hooks in this order for every run (every method is optional):

    on_fit_start(trainer)                       after a resume, before the first epoch
      before_step(trainer, batch)               may change batch.x, or add rule.step keywords
                                                to batch.step_kwargs (e.g. state= for warm starts)
      after_step(trainer, batch, result)        .grad is written, optimizer.step has not run:
                                                may add to .grad (e.g. a regulariser)
      on_batch_end(trainer, batch, result)      after optimizer.step
    on_epoch_end(trainer, record)               may add numbers to the epoch's record
    on_checkpoint(trainer)                      the epoch's checkpoint is on disk
    on_fit_end(trainer, summary)

``state_dict()`` / ``load_state_dict()`` are saved in (and restored from) the run's checkpoint;
they must hold only tensors, numbers, strings, lists and dicts (checkpoints are loaded with
``weights_only=True``).

Components own their callbacks: a model or rule that needs one returns it from its
``callbacks()`` method (e.g. ``EP(warm_start=True).callbacks()`` -> ``[WarmStart()]``), and the
trainer adds them to the run. This module imports nothing from eqprop, so every layer may use it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Batch:
    """One training batch as the trainer hands it to the rule.

    x: (B, ...) inputs on the run's device and dtype; y: (B,) class indices (or (B, k) targets);
    index: (B,) int64 positions of the samples in the training set (None when the data comes
    from a DataLoader that does not give them); step: global batch counter (0-based);
    step_kwargs: extra keywords for ``rule.step``.
    """

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor | None = None
    step: int = 0
    step_kwargs: dict = field(default_factory=dict)


class Callback:
    """Base class with no-op hooks; see the module docstring for the order they run in."""

    @property
    def key(self) -> str:
        """Name of this callback's entry in the checkpoint."""
        return type(self).__name__

    def on_fit_start(self, trainer) -> None:
        pass

    def before_step(self, trainer, batch: Batch) -> None:
        pass

    def after_step(self, trainer, batch: Batch, result) -> None:
        pass

    def on_batch_end(self, trainer, batch: Batch, result) -> None:
        pass

    def on_epoch_end(self, trainer, record: dict) -> None:
        pass

    def on_checkpoint(self, trainer) -> None:
        pass

    def on_fit_end(self, trainer, summary: dict) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def component_callbacks(*components) -> list[Callback]:
    """The callbacks that models and rules ask for (their optional ``callbacks()`` method)."""
    out: list[Callback] = []
    for c in components:
        make = getattr(c, "callbacks", None)
        if callable(make):
            out.extend(make())
    return out
