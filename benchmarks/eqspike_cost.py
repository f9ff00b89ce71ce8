"""Cost of EqSpike per training batch and per sample: spikes vs analog rates on the same network.

    python benchmarks/eqspike_cost.py                 # 784-500-10, batch 64, 60/30 steps (configs/mnist_eqspike*.yaml)
    python benchmarks/eqspike_cost.py --data mnist    # real MNIST digits instead of random sparse inputs

Configurations (same weights, same time steps, timed in interleaved rounds in one process):
``rates`` (rate-based EP, the baseline: analog rates, closed-form contrast), ``spikes`` (EqSpike:
IF neurons, spike-driven update). Each JSON line gives ms per batch (rule step + SGD step), the
ratio to ``rates``, and per sample: the synaptic events of each phase (spikes x fan-out; 0 for
rates) and the rate network's matrix-product FLOPs of a training step (``rate_flops``).
Without ``--data`` the inputs are random with MNIST's sparsity (20% of pixels on, uniform values).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import context  # noqa: E402

from eqprop.models.spiking import SpikingHopfieldMLP  # noqa: E402
from eqprop.rules import EqSpike  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--free-steps", type=int, default=60)
    ap.add_argument("--nudge-steps", type=int, default=30)
    ap.add_argument("--dt", type=float, default=0.1)
    ap.add_argument("--batches", type=int, default=12, help="timed batches per configuration")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", default=None, help="a dataset name (e.g. mnist) for real inputs")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    g = torch.Generator().manual_seed(1)
    if args.data:
        from eqprop.data import load_dataset

        d = load_dataset(args.data, "train")
        x = d.images[:args.batch].flatten(1).float() / 255.0
        y = d.labels[:args.batch]
    else:
        x = torch.rand(args.batch, 784, generator=g) * (torch.rand(args.batch, 784, generator=g) < 0.2)
        y = torch.randint(0, 10, (args.batch,), generator=g)
    torch.manual_seed(0)
    model = SpikingHopfieldMLP([784, args.hidden, 10], dt=args.dt)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    kinds = ["rates", "spikes"]
    rules = {k: EqSpike(beta=0.5, variant="positive", free_steps=args.free_steps, nudge_steps=args.nudge_steps, coding=k)
             for k in kinds}
    total, stats = {k: 0.0 for k in kinds}, {k: [] for k in kinds}
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: every batch sees the same weights
    for k in kinds:  # warm-up
        rules[k].step(model, x, y)
        opt.zero_grad()
    per_round = max(1, args.batches // args.rounds)
    for _ in range(args.rounds):
        for k in kinds:
            t0 = time.perf_counter()
            for _ in range(per_round):
                r = rules[k].step(model, x, y)
                opt.step()
                opt.zero_grad()
                stats[k].append(r.stats)
            total[k] += time.perf_counter() - t0
    assert all(torch.equal(v, init[n]) for n, v in model.state_dict().items())
    n = per_round * args.rounds
    base = 1000 * total["rates"] / n
    flops = model.rate_flops(args.free_steps, args.nudge_steps)
    for k in kinds:
        ms = 1000 * total[k] / n
        ev = {p: round(sum(s[p] for s in stats[k]) / len(stats[k])) for p in ("events_free", "events_nudge")}
        print(json.dumps({"benchmark": "eqspike_cost", "config": k, "hidden": args.hidden, "batch": args.batch,
                          "free_steps": args.free_steps, "nudge_steps": args.nudge_steps, "dt": args.dt,
                          "inputs": args.data or "random 20% on", "ms_per_batch": round(ms, 2),
                          "ratio_to_rates": round(ms / base, 3), "events_per_sample": ev,
                          "rate_flops_per_sample_train": flops,
                          "rate_flops_per_sample_infer": model.rate_flops(args.free_steps, train=False),
                          "dtype": "float32", **context(torch.device("cpu"))}))


if __name__ == "__main__":
    main()
