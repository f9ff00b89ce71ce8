"""DCHN speed on CIFAR-10 shapes: ms per training and inference batch, and the arithmetic floor.

Paths, all in one process on the same batch and the same initial weights:
- ``autograd``: layer updates by autograd of the energy (the straightforward implementation);
- ``float32``: our hand-derived updates in float32 (eager);
- ``float32_graph``: the same with every relaxation phase captured (``rule.capture``: a replayed
  CUDA graph on CUDA, see ``eqprop.capture``);
- ``bf16``: the relaxation in bfloat16 (float32 master weights and gradient), channels_last on
  CUDA, eager;
- ``fastest``: bf16 + channels_last + captured phases;
- ``floor``: the convolutions alone — per sweep 4 convolutions and 3 transposed convolutions of
  the DCHN's shapes, bf16, channels_last — for the same number of sweeps, as one CUDA graph on
  CUDA (``floor_eager``: the same launched eagerly).

Per-epoch figures assume 391 training and 79 test batches (CIFAR-10, batch 128). Defaults are
the GPU setting (batch 128, centered EP 60/20 asynchronous); on a CPU use e.g.
``--batch 8 --free 6 --nudge 2 --paths float32,float32_graph,bf16,fastest,floor`` for a smoke run
(on a CPU the "graph" paths run the same static-buffer plumbing without a graph).
For each captured path the record says how many phases were captured and any capture warning
(a capture that failed falls back to eager, and the figure is then not a graph's).

    python benchmarks/dchn_speed.py --device cuda
"""
from __future__ import annotations

import argparse
import json
import warnings

import torch
import torch.nn.functional as F
from common import AutogradUpdates, context, timed_ms

import eqprop
from eqprop import capture
from eqprop.models.conv import ConvHopfield

TRAIN_BATCHES, TEST_BATCHES = 391, 79


def conv_floor(model: ConvHopfield, batch: int, sweeps: int, device, dtype=torch.bfloat16):
    """A function running ``sweeps`` x (4 conv + 3 transposed conv) on the model's shapes."""
    shapes = [model.in_shape, *model.map_shapes]
    mf = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    ins = [torch.rand(batch, c, h, w, device=device, dtype=dtype).to(memory_format=mf) for c, h, w in shapes[:-1]]
    outs = [torch.rand(batch, c, 2 * h, 2 * w, device=device, dtype=dtype).to(memory_format=mf)
            for c, h, w in model.map_shapes[1:]]
    ws = [conv.weight.detach().to(device=device, dtype=dtype) for conv in model.convs]

    def run():
        last = []
        for _ in range(sweeps):
            last = [F.conv2d(s, w, padding=1) for s, w in zip(ins, ws)]
            last += [F.conv_transpose2d(g, w, padding=1) for g, w in zip(outs, ws[1:])]
        return last
    return run


def graphed(fn, device):
    """``fn`` as one captured graph (CUDA) or as it is (elsewhere): the replay callable."""
    replay = capture.backend_for(device).capture(fn, device)
    return replay.replay


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--free", type=int, default=60)
    ap.add_argument("--nudge", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--channels", default="128,256,512,512")
    ap.add_argument("--paths", default="autograd,float32,float32_graph,bf16,fastest,floor,floor_eager")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    channels = [int(c) for c in args.channels.split(",")]
    model = ConvHopfield((3, 32, 32), channels, 10, gains=[0.4, 0.7, 0.6, 0.3, 0.4][: len(channels) + 1]).to(device)
    x = torch.rand(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    base = dict(beta=0.25, free_steps=args.free, nudge_steps=args.nudge, mode="async")
    record = {"benchmark": "dchn_speed", "model": f"ConvHopfield 3x32x32 {channels} max-pool", "rule": "ep-centered",
              "free_steps": args.free, "nudge_steps": args.nudge, "batch": args.batch}
    known = ("autograd", "float32", "float32_graph", "bf16", "fastest", "floor", "floor_eager")
    for path in args.paths.split(","):
        if path not in known:
            raise SystemExit(f"unknown path {path!r}; valid: {', '.join(known)}")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        if path.startswith("floor"):
            n_train, n_test = conv_floor(model, args.batch, args.free + 2 * args.nudge, device), conv_floor(
                model, args.batch, args.free, device)
            if path == "floor":
                n_train, n_test = graphed(n_train, device), graphed(n_test, device)
            train = timed_ms(n_train, args.repeats, device)
            infer = timed_ms(n_test, args.repeats, device)
        else:
            system = AutogradUpdates(model) if path == "autograd" else model
            low = path in ("bf16", "fastest")
            graph = path in ("float32_graph", "fastest")
            rule = eqprop.rules.EP(variant="centered", relax_dtype="bfloat16" if low else None, capture=graph, **base)
            reps = 1 if path == "autograd" else args.repeats
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                train = timed_ms(lambda: rule.estimate(system, x, y), reps, device)
                infer = timed_ms(lambda: rule.infer(system, x, y), reps, device)
            if graph:
                relaxed = rule.relaxer(model)
                record[f"{path}_captured_phases"] = capture.captured_phases(relaxed)
                record[f"{path}_capture_backend"] = capture.backend_for(device).name
                notes = [str(w.message) for w in caught if "capture" in str(w.message)]
                if notes:
                    record[f"{path}_capture_warnings"] = notes
                capture.clear(relaxed)
        record[f"{path}_ms_per_train_batch"] = round(train, 2)
        record[f"{path}_ms_per_test_batch"] = round(infer, 2)
        record[f"{path}_s_per_epoch"] = round((TRAIN_BATCHES * train + TEST_BATCHES * infer) / 1000, 1)
        if device.type == "cuda":
            record[f"{path}_peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        print(json.dumps({"progress": path, f"{path}_s_per_epoch": record[f"{path}_s_per_epoch"]}), flush=True)
    for a, b in (("fastest", "floor"), ("fastest", "float32"), ("autograd", "fastest")):
        if f"{a}_s_per_epoch" in record and f"{b}_s_per_epoch" in record and record[f"{b}_s_per_epoch"]:
            record[f"{a}_over_{b}"] = round(record[f"{a}_s_per_epoch"] / record[f"{b}_s_per_epoch"], 2)
    print(json.dumps({**record, **context(device)}), flush=True)


if __name__ == "__main__":
    main()
