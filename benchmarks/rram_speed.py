"""Cost of simulating weak-RESET RRAM: a BNN's MNIST training batches, ideal devices vs all imperfections.

    python benchmarks/rram_speed.py                                  # the ablation's BNN (784-256-10, batch 200)
    python benchmarks/rram_speed.py --hidden 3000 --batch 1000       # the paper's MLP (784-3000-10, batch 1000)

Each configuration (device preset) trains a ``BinaryMLP`` by BP with every weight on RRAM pairs
(``RRAMOptimizer``, Adam in pulses) on real MNIST batches. The presets are timed in interleaved
rounds (a few batches of each in turn) so a shared machine's load falls on all of them alike.
One JSON line per preset (ms per batch: whole step and device update alone, extrapolated epoch
time, memory of the device state, peak memory on CUDA), then one line with the ratios to
``ideal``. The issue's acceptance: ``all`` costs at most 3x ``ideal`` per epoch.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import context, sync

from eqprop.data import load_dataset
from eqprop.data.transforms import to_float
from eqprop.devices import PRESETS, preset
from eqprop.models.bnn import BinaryMLP
from eqprop.optim import RRAMOptimizer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["ideal", "rtn", "flicker", "d2d", "all"])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--batches", type=int, default=60, help="timed batches per preset")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds the batches are split into")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--data-root", default=None, help="data root (default: $EQPROP_DATA, ./data, the per-user folder)")
    args = ap.parse_args(argv)
    for p in args.presets:
        if p not in PRESETS:
            raise SystemExit(f"unknown preset {p!r}; valid: {', '.join(PRESETS)}")
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    d = load_dataset("mnist", split="train", root=args.data_root)
    n_train = len(d.labels)
    need = args.batch * args.batches
    x_all = to_float(d.images[:need]).reshape(need, -1).to(device)
    y_all = d.labels[:need].to(device)

    runs = {}
    for p in args.presets:
        torch.manual_seed(0)
        model = BinaryMLP([784, args.hidden, 10]).to(device)
        dev = RRAMOptimizer(model.binary_parameters(), preset(p), lr=8.0, seed=0)
        fl = torch.optim.Adam(model.float_parameters(), lr=8e-3)
        runs[p] = {"model": model, "dev": dev, "fl": fl, "step_ms": [], "device_ms": [], "i": 0}

    def one_batch(r):
        i = r["i"] % args.batches
        r["i"] += 1
        xb, yb = x_all[i * args.batch:(i + 1) * args.batch], y_all[i * args.batch:(i + 1) * args.batch]
        sync(device)
        t0 = time.perf_counter()
        r["dev"].zero_grad(set_to_none=True)
        r["fl"].zero_grad(set_to_none=True)
        F.cross_entropy(r["model"](xb), yb).backward()
        sync(device)
        t1 = time.perf_counter()
        r["dev"].step()
        sync(device)
        t2 = time.perf_counter()
        r["fl"].step()
        sync(device)
        t3 = time.perf_counter()
        return 1000 * (t3 - t0), 1000 * (t2 - t1)

    for r in runs.values():  # warm-up
        for _ in range(2):
            one_batch(r)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    per_round = max(1, args.batches // args.rounds)
    for _ in range(args.rounds):
        for r in runs.values():
            for _ in range(per_round):
                s, dv = one_batch(r)
                r["step_ms"].append(s)
                r["device_ms"].append(dv)

    ctx = context(device)
    batches_per_epoch = math.ceil(n_train / args.batch)
    out = {}
    for p, r in runs.items():
        step = sum(r["step_ms"]) / len(r["step_ms"])
        devm = sum(r["device_ms"]) / len(r["device_ms"])
        state_bytes = sum(t.numel() * t.element_size() for q in r["model"].binary_parameters()
                          for t in r["dev"].device_state(q).values())
        rec = {"bench": "rram_speed", "preset": p, "model": f"BinaryMLP 784-{args.hidden}-10", "batch": args.batch,
               "timed_batches": len(r["step_ms"]), "ms_per_batch": round(step, 2),
               "device_update_ms_per_batch": round(devm, 2),
               "s_per_epoch_extrapolated": round(step * batches_per_epoch / 1000, 1),
               "device_state_mb": round(state_bytes / 2**20, 2), "dtype": "float32", **ctx}
        if device.type == "cuda":
            rec["peak_cuda_mb_all_presets"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        out[p] = rec
        print(json.dumps(rec), flush=True)
    if "ideal" in out:
        base = out["ideal"]["ms_per_batch"]
        ratios = {p: round(o["ms_per_batch"] / base, 2) for p, o in out.items()}
        print(json.dumps({"bench": "rram_speed", "ratio_to_ideal": ratios,
                          "acceptance_all_le_3x": ratios.get("all", float("nan")) <= 3.0}), flush=True)


if __name__ == "__main__":
    main()
