"""Warm starts: each training sample's free state from the previous epoch, kept on the device.

With ``rule.warm_start: true`` every sample's free phase starts from the state it settled to the
last time it was seen (Scellier et al. 2023 discuss this "persistent" initialisation); samples
not seen yet start from the model's initial state. The rule owns the setting; the bank lives in
the ``WarmStart`` callback the rule hands the trainer (``rule.callbacks()``), which needs the
batch's sample indices. The bank is not checkpointed: a resumed run starts its first epoch cold.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..callbacks import Callback


class StateBank:
    """Per-sample free states: ``layers[k]`` is (N, *shape_k); ``seen`` marks stored samples."""

    def __init__(self, num_samples: int, dtype: torch.dtype | None = None):
        self.num_samples = num_samples
        self.dtype = dtype
        self.layers: list[torch.Tensor] | None = None
        self.seen: torch.Tensor | None = None

    def get(self, idx: torch.Tensor, cold: list[torch.Tensor]) -> list[torch.Tensor]:
        """The stored states of samples ``idx`` (B,), and ``cold[k]`` rows where none is stored."""
        if self.layers is None:
            return cold
        seen = self.seen[idx]
        out = []
        for bank, c in zip(self.layers, cold):
            rows = bank[idx].to(c.dtype)
            out.append(torch.where(seen.view(-1, *([1] * (c.dim() - 1))), rows, c))
        return out

    def put(self, idx: torch.Tensor, state: list[torch.Tensor]) -> None:
        if self.layers is None:
            dev = state[0].device
            self.layers = [torch.zeros(self.num_samples, *s.shape[1:], dtype=self.dtype or s.dtype, device=dev)
                           for s in state]
            self.seen = torch.zeros(self.num_samples, dtype=torch.bool, device=dev)
        for bank, s in zip(self.layers, state):
            bank[idx] = s.detach().to(bank.dtype)
        self.seen[idx] = True


class WarmStart(Callback):
    """Feeds ``state=`` (the bank's rows) to ``rule.step`` and stores the free states it returns."""

    def __init__(self, dtype: torch.dtype | None = None):
        self.dtype = dtype
        self.bank: StateBank | None = None

    def on_fit_start(self, trainer):
        if trainer.num_train is None:
            raise ValueError("rule.warm_start=true needs in-memory training data (tensors or a Dataset), "
                             "so that each sample has an index; it cannot run on a DataLoader")
        self.bank = StateBank(trainer.num_train, self.dtype)

    def before_step(self, trainer, batch):
        if batch.index is None:
            raise ValueError("rule.warm_start=true needs the batch's sample indices; this data gives none")
        batch.step_kwargs["state"] = self.bank.get(batch.index, trainer.model.init_state(batch.x))

    def after_step(self, trainer, batch, result):
        self.bank.put(batch.index, result.state)


@dataclass
class WarmStartable:
    """Mixin of the rules whose free phase can start from a given state (``estimate(..., state=)``).

    warm_start: start each training sample's free phase from its last free state (a callback).
    """

    warm_start: bool = False

    def callbacks(self) -> list:
        if not self.warm_start:
            return []
        from ..precision import resolve

        return [WarmStart(resolve(getattr(self, "relax_dtype", None)))]
