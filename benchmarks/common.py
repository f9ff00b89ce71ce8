"""Pieces the benchmarks share: the autograd baseline, timing, and the JSON record's context."""
from __future__ import annotations

import platform
import resource
import time
from datetime import date

import torch


class AutogradUpdates(torch.nn.Module):
    """The same model, relaxed with layer updates computed by autograd of its energy.

    This is the straightforward implementation every benchmark compares against: same sweeps,
    same fixed point, but ``sigma(G'(s_i) - dE/ds_i)`` by ``torch.autograd.grad`` of the energy.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)

    def layer_update(self, i, state, ctx, force=None):
        return self.model.autograd_layer_update(i, state, ctx, force).detach()

    def named_parameters(self, *a, **k):
        return self.model.named_parameters(*a, **k)

    def parameters(self, *a, **k):
        return self.model.parameters(*a, **k)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_ms(fn, repeats: int, device: torch.device, warmup: int = 1) -> float:
    """Mean wall time of ``fn()`` in ms over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return 1000 * (time.perf_counter() - t0) / repeats


def context(device: torch.device) -> dict:
    """Where and when a record was measured."""
    info = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "date": str(date.today()),
        "peak_rss_mb_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    return info
