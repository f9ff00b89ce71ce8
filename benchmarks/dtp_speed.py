"""Time per training batch of DTP (L-DRL, DRL, original DTP feedback) against BP on the same MLP.

    python benchmarks/dtp_speed.py                               # 784-256-256-10, batch 128, 20 feedback steps
    python benchmarks/dtp_speed.py --feedback-steps 5 --device cuda

Each configuration runs ``rule.step`` + ``optimizer.step`` on real MNIST batches; the rules are
timed in interleaved rounds so a shared machine's load falls on all alike. One JSON line per rule
(ms per batch, the feedback share of it, ratio to BP), ``bp`` being the autograd reference.
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

from common import context, sync

from eqprop.data import load_dataset
from eqprop.data.transforms import to_float
from eqprop.models import FeedbackMLP
from eqprop.rules import DTP, Backprop


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--batches", type=int, default=40, help="timed batches per rule")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--feedback-steps", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--data-root", default=None, help="data root (default: $EQPROP_DATA, ./data, the per-user folder)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    d = load_dataset("mnist", split="train", root=args.data_root)
    need = args.batch * args.batches
    x_all = to_float(d.images[:need]).reshape(need, -1).to(device)
    y_all = d.labels[:need].to(device)
    rules = {"bp": Backprop()}
    for fb in ("l-drl", "drl", "dtp"):
        rules[f"dtp-{fb}"] = DTP(feedback=fb, feedback_steps=[args.feedback_steps], diagnostics=False)
    setups = {}
    for name, rule in rules.items():
        torch.manual_seed(0)
        model = FeedbackMLP([784, *args.hidden, 10]).to(device)
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
        setups[name] = (rule, model, opt, {})
    times = {n: 0.0 for n in rules}
    fb_times = {n: 0.0 for n in rules}
    per_round = args.batches // args.rounds

    def one(name, b):
        rule, model, opt, state = setups[name]
        x, y = x_all[b * args.batch:(b + 1) * args.batch], y_all[b * args.batch:(b + 1) * args.batch]
        opt.zero_grad(set_to_none=True)
        if isinstance(rule, DTP):
            rule.step(model, x, y, feedback_state=state)
        else:
            rule.step(model, x, y)
        opt.step()

    for name in rules:  # warm-up
        one(name, 0)
    for r in range(args.rounds):
        for name, (rule, model, _, state) in setups.items():
            sync(device)
            t0 = time.perf_counter()
            for b in range(r * per_round, (r + 1) * per_round):
                one(name, b)
            sync(device)
            times[name] += time.perf_counter() - t0
            if isinstance(rule, DTP):  # the feedback training alone, on the same batches
                t0 = time.perf_counter()
                for b in range(r * per_round, (r + 1) * per_round):
                    x = x_all[b * args.batch:(b + 1) * args.batch]
                    rule.train_feedback(model, rule.activations(model, x), state)
                sync(device)
                fb_times[name] += time.perf_counter() - t0
    n = per_round * args.rounds
    bp_ms = 1000 * times["bp"] / n
    for name in rules:
        ms = 1000 * times[name] / n
        print(json.dumps({
            "benchmark": "dtp_speed", "rule": name, "sizes": [784, *args.hidden, 10], "batch": args.batch,
            "feedback_steps": 0 if name == "bp" else args.feedback_steps, "ms_per_batch": round(ms, 2),
            "feedback_ms_per_batch": round(1000 * fb_times[name] / n, 2), "ratio_to_bp": round(ms / bp_ms, 2),
            "epoch_s_60k": round(ms / 1000 * 60000 / args.batch, 1), "dtype": "float32", **context(device),
        }), flush=True)


if __name__ == "__main__":
    main()
