"""Tables and figures of the issue-12 runs from their metrics.json files (runs/continual/*/).

    python docs/examples/continual_report.py [RUNS_DIR]

Prints the permuted-MNIST table (mean accuracy after the last task, BWT, per seed) and the
MNIST -> Fashion-MNIST rows; writes docs/continual_pmnist_heatmaps.png (seed 0 of every method
and every m of the sweep) and docs/continual_mnist_fashion.png (per-epoch test accuracies).
"""
from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def label(r):
    return r["method"] + (f" m={r['m'][0]:g}" if r["method"] == "metaplastic" else "")


ORDER = {"plain": 0, "metaplastic": 1, "ewc": 2, "si": 3, "cascade": 4}


def _key(item):
    name, by_seed = item
    r = next(iter(by_seed.values()))
    return ORDER.get(r["method"], 9), (r["m"][0] if r["method"] == "metaplastic" else 0)


def main(root="runs/continual"):
    runs = [json.loads(p.read_text()) for p in sorted(Path(root).glob("*/metrics.json"))]
    runs = [r for r in runs if r.get("finished") and "stream" in r]  # eqprop continual runs only
    pm = [r for r in runs if r["stream"] == "permuted-mnist"]
    groups = defaultdict(dict)
    for r in pm:
        groups[label(r)][r["seed"]] = r
    print("| method | seeds | mean accuracy after task 6 (per seed) | mean ± std | BWT (mean) | forgetting (mean) | train time per run |")
    print("|---|---|---|---|---|---|---|")
    for name, by_seed in sorted(groups.items(), key=_key):
        accs = [100 * by_seed[s]["mean_accuracy"] for s in sorted(by_seed)]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        bwt = statistics.mean(100 * r["backward_transfer"] for r in by_seed.values())
        fg = statistics.mean(100 * r["forgetting"] for r in by_seed.values())
        t = [r["train_time_s"] for r in by_seed.values()]
        print(f"| {name} | {','.join(map(str, sorted(by_seed)))} | {', '.join(f'{a:.2f}' for a in accs)} | "
              f"**{statistics.mean(accs):.2f} ± {sd:.2f}** | {bwt:.2f} | {fg:.2f} | {min(t):.0f}-{max(t):.0f} s |")
    seed0 = [(n, g[0]) for n, g in sorted(groups.items(), key=_key) if 0 in g]
    if seed0:
        cols = min(4, len(seed0))
        rows = (len(seed0) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.0 * rows), squeeze=False)
        for ax, (n, r) in zip(axes.flat, seed0):
            R = [[100 * v for v in row] for row in r["accuracy_matrix"]]
            ax.imshow(R, vmin=0, vmax=100, cmap="viridis")
            for i, row in enumerate(R):
                for j, v in enumerate(row):
                    ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=6, color="white" if v < 60 else "black")
            ax.set_title(f"{n}: {100 * r['mean_accuracy']:.1f}%", fontsize=8)
            ax.set_xlabel("after task", fontsize=7)
            ax.set_ylabel("test on task", fontsize=7)
            ax.set_xticks(range(len(R[0])), range(1, len(R[0]) + 1), fontsize=6)
            ax.set_yticks(range(len(R)), range(1, len(R) + 1), fontsize=6)
        for ax in list(axes.flat)[len(seed0):]:
            ax.axis("off")
        fig.suptitle("permuted MNIST, 6 tasks, seed 0: accuracy (%) of task i after training task j", fontsize=9)
        fig.tight_layout()
        fig.savefig("docs/continual_pmnist_heatmaps.png", dpi=130)
    mf = sorted((r for r in runs if r["stream"] == "mnist-fashion"), key=lambda r: ORDER[r["method"]] + 0.01 * r["m"][0]
                if r["method"] == "metaplastic" else ORDER[r["method"]])
    if mf:
        print()
        print("| method | MNIST after MNIST | MNIST after Fashion-MNIST | Fashion-MNIST after Fashion-MNIST | train time |")
        print("|---|---|---|---|---|")
        fig, ax = plt.subplots(figsize=(7, 4))
        for r in mf:
            R = r["accuracy_matrix"]
            print(f"| {label(r)} | {100 * R[0][0]:.2f}% | **{100 * R[0][1]:.2f}%** | **{100 * R[1][1]:.2f}%** | {r['train_time_s']:.0f} s |")
            xs = range(1, len(r["curves"]) + 1)
            line, = ax.plot(xs, [100 * c["acc"][0] for c in r["curves"]], label=f"{label(r)}: MNIST")
            ax.plot(xs, [100 * c["acc"][1] for c in r["curves"]], ls="--", color=line.get_color(),
                    label=f"{label(r)}: Fashion-MNIST")
        n = len(mf[0]["curves"]) // 2
        ax.axvline(n + 0.5, color="grey", lw=0.5)
        ax.set_xlabel(f"epoch (MNIST 1-{n}, then Fashion-MNIST)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig("docs/continual_mnist_fashion.png", dpi=130)


if __name__ == "__main__":
    main(*sys.argv[1:])
