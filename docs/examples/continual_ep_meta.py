"""Beyond the papers (issue 12): metaplasticity under equilibrium propagation.

A Hopfield network 784-H-10 whose couplings are binary, ``W = a * sign(W_h)``, trained on MNIST then
Fashion-MNIST by centered EP (or by BPTT, the exact gradient of the same network) with
``MetaplasticAdam`` holding the hidden weights ``W_h`` (``binary_scale``; ``a`` = 2x the layer's
mean |W| at initialisation). The readout is a softmax outside the energy (``output="ce"``); biases
stay real (plain Adam). Adam lr 1e-3 (at 5e-3 with an MSE output a pilot network died), fresh
moments per task. Hidden weights move ~lr per step, so they stay small over a few epochs and the
useful ``m`` is large (50). Prints one line per epoch; writes metrics.json and curves.png to --out.

    python docs/examples/continual_ep_meta.py --m 50 --out runs/continual/ep-meta-m50
    python docs/examples/continual_ep_meta.py --m 0 --rule bptt --out runs/continual/bptt-m0
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from eqprop.continual import MetaplasticAdam, continual_metrics
from eqprop.continual.metrics import plot_accuracy_curves
from eqprop.continual.streams import mnist_fashion
from eqprop.models import HopfieldMLP
from eqprop.rules import make_rule


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=float, default=50.0)
    ap.add_argument("--rule", default="ep-centered", help="ep-centered, or bptt (the exact gradient)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--output", default="ce", help="ce (softmax readout outside the energy) or mse")
    ap.add_argument("--epochs", type=int, default=3, help="per task")
    ap.add_argument("--train-subset", type=int, default=30000)
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=2.0, help="binary magnitude / mean |W_init|")
    ap.add_argument("--float-weights", action="store_true", help="real weights (no sign), for comparison")
    ap.add_argument("--out", default="runs/continual/ep-meta")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stream = mnist_fashion(train_subset=a.train_subset)
    torch.manual_seed(a.seed)
    model = HopfieldMLP([784, a.hidden, 10], output=a.output)
    weights = [p for p in model.parameters() if p.dim() > 1]
    scale = lambda w: None if a.float_weights else a.scale * float(w.detach().abs().mean())  # noqa: E731
    groups = [{"params": [w], "m": a.m, "binary_scale": scale(w)} for w in weights]
    groups.append({"params": [p for p in model.parameters() if p.dim() <= 1], "m": 0.0})
    rule = make_rule(a.rule, beta=0.5, free_steps=20, nudge_steps=8, mode="async")
    curves, columns, t_train = [], [], 0.0
    opt = MetaplasticAdam(groups, lr=a.lr)
    for j, task in enumerate(stream.tasks):
        opt.reset_moments()  # fresh Adam moments per task, the hidden weights stay
        x_all, y_all = task.x.reshape(len(task.x), -1), task.y
        t0 = time.perf_counter()
        for e in range(a.epochs):
            order = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(1_000_003 * a.seed + 1009 * j + e))
            for idx in order.split(64):
                opt.zero_grad(set_to_none=True)
                rule.step(model, x_all[idx], y_all[idx])
                opt.step()
            accs = []
            for ev in stream.evals:
                x = ev.x.reshape(len(ev.x), -1)
                correct = sum(int((rule.infer(model, x[i:i + 1000], ev.y[i:i + 1000]).output.argmax(1)
                                   == ev.y[i:i + 1000]).sum()) for i in range(0, len(x), 1000))
                accs.append(correct / len(x))
            curves.append({"task": j, "epoch": e + 1, "acc": accs})
            print(f"task {j + 1} ({task.name}) epoch {e + 1}: " +
                  ", ".join(f"{ev.name} {100 * v:.2f}%" for ev, v in zip(stream.evals, accs)), flush=True)
        t_train += time.perf_counter() - t0
        columns.append(curves[-1]["acc"])
    R = torch.tensor(columns, dtype=torch.float64).T
    res = {"rule": a.rule, "m": a.m, "hidden": a.hidden, "epochs_per_task": a.epochs, "train_subset": a.train_subset,
           "accuracy_matrix": R.tolist(), **continual_metrics(R), "train_time_s": t_train, "curves": curves}
    (out / "metrics.json").write_text(json.dumps(res, indent=2))
    plot_accuracy_curves(curves, [e.name for e in stream.evals], out / "curves.png", f"{a.rule} binary Hopfield m={a.m}")
    print(f"done: MNIST {100 * R[0, 1]:.2f}%, Fashion-MNIST {100 * R[1, 1]:.2f}% after both tasks; train {t_train:.0f} s")


if __name__ == "__main__":
    main()
