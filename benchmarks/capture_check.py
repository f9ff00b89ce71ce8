"""Captured relaxations on the device at hand: do they capture, and do they equal eager?

The CPU tests (tests/capture) check the static-buffer plumbing with the eager backend; this
program is the first thing to run on a GPU: for a float64 MLP and a float64 DCHN it relaxes every
phase kind (free, nudged +-beta, clamped; sync and async) captured and eager, twice with an
in-place weight update between, and prints one JSON line per model with the largest difference,
how many phases were captured, the backend, and any capture warning. A last line times one
CIFAR-shaped DCHN training step (centered EP, bf16, batch 128 on CUDA) eager and captured.

    python benchmarks/capture_check.py --device cuda
"""
from __future__ import annotations

import argparse
import json
import warnings

import torch
from common import context, timed_ms

import eqprop
from eqprop import capture
from eqprop.dynamics import Clamp, Nudge, relax
from eqprop.models import HopfieldMLP
from eqprop.models.conv import ConvHopfield


def check(model, x, y, steps=6):
    """Largest |captured - eager| over the phases, before and after an in-place weight update."""
    worst = 0.0
    t = torch.nn.functional.one_hot(y, model.num_outputs).to(x.dtype)
    for round_ in range(2):
        for mode in ("sync", "async"):
            free = relax(model, x, steps=steps, mode=mode).state
            for kw in (dict(), dict(state=free, nudge=Nudge(0.3, y)), dict(state=free, nudge=Nudge(-0.3, y)),
                       dict(state=free, clamp=Clamp(0.5 * t + 0.25))):
                ref = relax(model, x, steps=steps, mode=mode, **kw).state
                got = relax(model, x, steps=steps, mode=mode, capture=True, **kw).state
                worst = max(worst, max(float((a - b).abs().max()) for a, b in zip(got, ref)))
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.05)  # in place: the captured phases must see it without re-capture
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=128, help="batch of the timed DCHN step")
    ap.add_argument("--channels", default="128,256,512,512", help="channels of the timed DCHN")
    ap.add_argument("--free", type=int, default=60)
    ap.add_argument("--nudge", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    info = context(device)
    torch.manual_seed(0)
    nets = {
        "mlp": (HopfieldMLP([64, 48, 32, 10], gains=[1.5] * 3), (16, 64)),
        "dchn": (ConvHopfield((3, 16, 16), [8, 16], 10, gains=[1.5] * 3), (16, 3, 16, 16)),
    }
    for name, (model, shape) in nets.items():
        model = model.double().to(device)
        x = torch.rand(*shape, dtype=torch.float64, device=device)
        y = torch.randint(0, 10, (shape[0],), device=device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            worst = check(model, x, y)
        print(json.dumps({"check": "capture_vs_eager", "model": name, "dtype": "float64", "max_abs_diff": worst,
                          "captured_phases": capture.captured_phases(model),
                          "backend": capture.backend_for(device).name,
                          "warnings": [str(w.message) for w in caught], **info}), flush=True)
        capture.clear(model)
    channels = [int(c) for c in args.channels.split(",")]
    model = ConvHopfield((3, 32, 32), channels, 10, gains=[0.4, 0.7, 0.6, 0.3, 0.4][: len(channels) + 1]).to(device)
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    rec = {"check": "dchn_step", "batch": args.batch, "channels": channels, "free_steps": args.free,
           "nudge_steps": args.nudge, "relax_dtype": "bfloat16"}
    grads = {}
    for graph in (False, True):
        rule = eqprop.rules.EP(variant="centered", beta=0.25, free_steps=args.free, nudge_steps=args.nudge,
                               relax_dtype="bfloat16", capture=graph)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rec[f"{'captured' if graph else 'eager'}_ms_per_train_batch"] = round(
                timed_ms(lambda: rule.estimate(model, x, y), args.repeats, device), 2)
            grads[graph] = rule.estimate(model, x, y)[0]
        if graph:
            rec["captured_phases"] = capture.captured_phases(rule.relaxer(model))
            rec["warnings"] = [str(w.message) for w in caught]
    a = torch.cat([g.flatten() for g in grads[False].values()])
    b = torch.cat([grads[True][k].flatten() for k in grads[False]])
    rec["grad_cosine_captured_vs_eager"] = round(float(a @ b / (a.norm() * b.norm())), 6)
    print(json.dumps({**rec, **info}), flush=True)


if __name__ == "__main__":
    main()
