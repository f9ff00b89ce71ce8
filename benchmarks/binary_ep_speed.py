"""Cost of binary EP per training batch: full precision vs binary weights vs binary weights + neurons.

    python benchmarks/binary_ep_speed.py                        # 784-500-10, batch 64 (the issue-11 runs)
    python benchmarks/binary_ep_speed.py --hidden 4096          # the paper's width

Each configuration runs one EP step (random nudge sign, the sweeps of configs/*_mlp_binary_*.yaml)
plus its optimizer step on random inputs in [0, 1]: ``fp`` (HopfieldMLP + SGD, the baseline),
``binary_w`` (``binarize``: every weight access recomputes ``alpha sign(H)`` through
``torch.nn.utils.parametrize``; flip optimizer) and ``binary_wa`` (StepHopfieldMLP with 10 output
neurons per class, binary weights, flip optimizer). Configurations are timed in interleaved rounds
so a shared machine's load falls on all alike. One JSON line per configuration (ms per batch,
ratio to ``fp``), in the same process.
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

import eqprop  # noqa: E402
from eqprop.models import HopfieldMLP, StepHopfieldMLP, binarize  # noqa: E402
from eqprop.optim import FlipOptimizer  # noqa: E402
from eqprop.training.optimizers import param_groups  # noqa: E402


def build(kind, hidden):
    torch.manual_seed(0)
    if kind == "fp":
        m = HopfieldMLP([784, hidden, 10])
        return m, eqprop.rules.EP(variant="random", beta=0.3, free_steps=30, nudge_steps=10), \
            torch.optim.SGD(m.parameters(), lr=0.05)
    if kind == "binary_w":
        m = binarize(HopfieldMLP([784, hidden, 10]))
        return m, eqprop.rules.EP(variant="random", beta=0.3, free_steps=30, nudge_steps=10), \
            FlipOptimizer(param_groups(m, 0.05), gamma=[1e-4, 1e-5], threshold=5e-7)
    m = binarize(StepHopfieldMLP([784, hidden, 10], expand_output=10))
    return m, eqprop.rules.EP(variant="random", beta=2.0, free_steps=20, nudge_steps=10, mode="sync"), \
        FlipOptimizer(param_groups(m, 1e-7), gamma=2e-6, threshold=[2e-7, 2.5e-7])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=30, help="timed batches per configuration")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    kinds = ["fp", "binary_w", "binary_wa"]
    setups = {k: build(k, args.hidden) for k in kinds}
    g = torch.Generator().manual_seed(1)
    x = torch.rand(args.batch, 784, generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)
    total = {k: 0.0 for k in kinds}
    per_round = max(1, args.batches // args.rounds)
    for k in kinds:  # warm-up
        m, rule, opt = setups[k]
        rule.step(m, x, y)
        opt.step()
        opt.zero_grad()
    for _ in range(args.rounds):
        for k in kinds:
            m, rule, opt = setups[k]
            t0 = time.perf_counter()
            for _ in range(per_round):
                rule.step(m, x, y)
                opt.step()
                opt.zero_grad()
            total[k] += time.perf_counter() - t0
    n = per_round * args.rounds
    base = 1000 * total["fp"] / n
    for k in kinds:
        ms = 1000 * total[k] / n
        print(json.dumps({"benchmark": "binary_ep_speed", "config": k, "hidden": args.hidden, "batch": args.batch,
                          "ms_per_batch": round(ms, 2), "ratio_to_fp": round(ms / base, 3),
                          "dtype": "float32", **context(torch.device("cpu"))}))


if __name__ == "__main__":
    main()
