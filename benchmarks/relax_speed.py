"""Time one EP training step: hand-derived layer updates vs the same relaxation by autograd.

Both paths run the same sweeps (``relax`` with the model's ``layer_update`` vs its
``autograd_layer_update``, which differentiates the energy), in one process, on the same batch.
Prints one JSON line per configuration:

    python benchmarks/relax_speed.py [--device cpu|cuda] [--dtype float32] [--batch 128] [--repeats 20]
"""
from __future__ import annotations

import argparse
import json

import torch
from common import AutogradUpdates, context, timed_ms

import eqprop
from eqprop.models import HopfieldMLP


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    configs = [
        ("784-500-10", [784, 500, 10], 20, 8),
        ("784-500-10", [784, 500, 10], 60, 20),
        ("784-512-512-512-10", [784, 512, 512, 512, 10], 60, 20),
    ]
    for name, sizes, free, nudge in configs:
        model = HopfieldMLP(sizes).to(device=device, dtype=dtype)
        x = torch.rand(args.batch, sizes[0], device=device, dtype=dtype)
        y = torch.randint(0, sizes[-1], (args.batch,), device=device)
        rule = eqprop.rules.EP(variant="centered", beta=0.5, free_steps=free, nudge_steps=nudge)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        fast = timed_ms(lambda: rule.estimate(model, x, y), args.repeats, device)
        peak_fast = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
        slow_model = AutogradUpdates(model)
        slow = timed_ms(lambda: rule.estimate(slow_model, x, y), max(1, args.repeats // 4), device)
        # the two paths must agree (same sweeps): compare the gradient estimates once
        g_fast = eqprop.gradients(model, x, y, rule)
        g_slow = eqprop.gradients(AutogradUpdates(model), x, y, rule)
        max_diff = max(float((g_fast[k] - g_slow[k]).abs().max()) for k in g_fast)
        print(json.dumps({
            "benchmark": "ep_training_step", "model": f"HopfieldMLP {name}", "rule": "ep-centered",
            "free_steps": free, "nudge_steps": nudge, "mode": "async", "batch": args.batch,
            "ms_per_batch_hand_derived": round(fast, 3), "ms_per_batch_autograd": round(slow, 3),
            "speedup": round(slow / fast, 2), "max_abs_grad_diff": max_diff,
            "peak_cuda_bytes": peak_fast, "dtype": args.dtype, **context(device),
        }), flush=True)


if __name__ == "__main__":
    main()
