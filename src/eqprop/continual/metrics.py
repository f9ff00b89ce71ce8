"""Continual-learning metrics from the accuracy matrix ``R[i][j]`` = accuracy on eval set ``i``
after training on task ``j`` (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018), T tasks:

    mean accuracy      A = (1 / T) sum_i R[i][T-1]
    backward transfer  BWT = (1 / (T-1)) sum_{i < T-1} (R[i][T-1] - R[i][i])
    forgetting         F = (1 / (T-1)) sum_{i < T-1} ( max_{j < T-1} R[i][j] - R[i][T-1] )

BWT and F need one eval set per task (square R); for a stream scored on one shared test set they
are None and the accuracy after each task is the curve.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = ["continual_metrics", "plot_accuracy_curves", "plot_accuracy_matrix"]


def continual_metrics(R) -> dict:
    """``R``: (n_eval, n_trained) accuracies (fractions); columns so far trained."""
    R = torch.as_tensor(R, dtype=torch.float64)
    n_eval, T = R.shape
    out = {"mean_accuracy": float(R[:, -1].mean()), "final_accuracies": R[:, -1].tolist(),
           "backward_transfer": None, "forgetting": None}
    if n_eval > 1 and T <= n_eval:  # one eval set per task
        out["mean_accuracy_seen"] = float(R[:T, -1].mean())
        if T > 1:
            idx = range(T - 1)
            out["backward_transfer"] = float(sum(R[i, T - 1] - R[i, i] for i in idx) / (T - 1))
            out["forgetting"] = float(sum(R[i, :T - 1].max() - R[i, T - 1] for i in idx) / (T - 1))
    return out


def plot_accuracy_matrix(R, eval_names, task_names, path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    R = torch.as_tensor(R, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(max(4.5, 2.5 + 0.6 * R.shape[1]), max(3.0, 1.5 + 0.5 * R.shape[0])))
    im = ax.imshow(100 * R.numpy(), vmin=0, vmax=100, cmap="viridis", aspect="auto")
    if R.numel() <= 400:
        for i in range(R.shape[0]):
            for j in range(R.shape[1]):
                ax.text(j, i, f"{100 * R[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if R[i, j] < 0.6 else "black")
    ax.set_xticks(range(R.shape[1]), task_names if R.shape[1] <= 20 else None, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(R.shape[0]), eval_names, fontsize=7)
    ax.set_xlabel("after training on task")
    ax.set_ylabel("test accuracy on")
    fig.colorbar(im, ax=ax, label="accuracy (%)")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_accuracy_curves(curves: list[dict], eval_names, path, title: str = "") -> None:
    """``curves``: one record per epoch, ``{"task": j, "epoch": e, "acc": [per eval set]}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    xs = list(range(1, len(curves) + 1))
    for i, name in enumerate(eval_names):
        ax.plot(xs, [100 * c["acc"][i] for c in curves], label=name, marker="." if len(xs) < 60 else None)
    bounds = [k + 0.5 for k in range(1, len(curves)) if curves[k]["task"] != curves[k - 1]["task"]]
    for b in bounds:
        ax.axvline(b, color="grey", lw=0.5, ls="--")
    ax.set_xlabel("epoch (dashed: next task)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    if len(eval_names) <= 12:
        ax.legend(fontsize=7)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_json(obj, path) -> None:
    from ..training.logging import write_atomic

    write_atomic(Path(path), json.dumps(obj, indent=2))
