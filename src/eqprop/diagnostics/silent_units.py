"""Silent hidden units: units that emitted nothing in any free state of an epoch.

A hidden unit whose emitted value is exactly 0 for every training sample takes no part in the
network's computation, and every rule that contrasts or differentiates states gives its incoming
weights no update: a hard-sigmoid unit clamped at 0 has a zero derivative, and an EP update
``rho(s^beta) rho(s_prev)^T - rho(s^0) rho(s_prev)^T`` is zero for a 0/1 neuron that fires in
neither phase. Such a unit stays silent, and the net trains with fewer units than it has. Binary
neurons make this common: with ``alpha = mean |W|`` and the firing threshold 1/2, most units of a
784-4096-100 net can never reach the threshold on MNIST (docs/binary_ep.md, "Silent hidden units").

``SilentUnits()`` (``run.silent_units: true``) is a callback: over each epoch it ORs, per hidden
layer, which units emitted a non-zero value in the free state of some training sample
(``StepResult.state``, through ``model.emitted``), and adds ``silent_units/<i>`` -- the fraction of
hidden layer ``i``'s units that never did -- to the epoch's record. It reads states the rule has
already computed, so watching costs one comparison per layer and batch and changes nothing the
run learns. Under data parallelism the masks are OR-ed over the processes.
"""
from __future__ import annotations

import torch

from ..callbacks import Callback
from ..registry import ConfigError


def hidden_layers(model) -> range:
    """Indices of the free layers that are hidden (the output layer in the energy excluded)."""
    n = model.num_free_layers
    return range(n - 1 if model.output_in_energy else n)


def emitted(model, state) -> list[torch.Tensor]:
    """What each free layer's neighbours see: ``model.emitted(state)`` where the model defines it
    (binary neurons emit bits), else the states themselves."""
    return model.emitted(state) if hasattr(model, "emitted") else list(state)


class SilentUnits(Callback):
    """Per epoch, ``silent_units/<i>``: the fraction of hidden layer ``i``'s units whose emitted
    value was 0 in the free state of every training sample of the epoch."""

    def __init__(self):
        self.active: dict[int, torch.Tensor] = {}

    def on_fit_start(self, trainer) -> None:
        if not hasattr(trainer.model, "num_free_layers"):
            raise ConfigError(f"run.silent_units counts the hidden units of a layered energy model's free state; "
                              f"{type(trainer.model).__name__} has no layers of units (num_free_layers): "
                              f"set run.silent_units=false")

    def after_step(self, trainer, batch, result) -> None:
        if not result.state:
            return
        out = emitted(trainer.model, result.state)
        for i in hidden_layers(trainer.model):
            fired = out[i].detach().ne(0).flatten(1).any(0)  # (units,) over the batch
            self.active[i] = fired if i not in self.active else self.active[i] | fired

    def on_epoch_end(self, trainer, record: dict) -> None:
        for i, fired in sorted(self.active.items()):
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                fired = fired.float()
                torch.distributed.all_reduce(fired, op=torch.distributed.ReduceOp.MAX)
            record[f"silent_units/{i}"] = 1.0 - float(fired.float().mean())
        self.active = {}
