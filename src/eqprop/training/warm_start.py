"""Warm starts: each training sample's free state from the previous epoch, kept on the device.

With ``warm_start=true`` the trainer starts every sample's free phase from the state it settled
to the last time it was seen (Scellier et al. 2023 discuss this "persistent" initialisation);
samples not seen yet start from the model's initial state. The bank is not checkpointed: a
resumed run starts its first epoch cold.
"""
from __future__ import annotations

import torch


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
