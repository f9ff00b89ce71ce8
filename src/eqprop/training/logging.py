"""Machine-readable run records: JSON lines of metrics, and a plot of the learning curves."""
from __future__ import annotations

import json
from pathlib import Path


def append_jsonl(path: str | Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(history: list[dict], path: str | Path, title: str = "") -> None:
    """Loss and accuracy per epoch (train and test) side by side, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for split in ("train", "test"):
        ax1.plot(epochs, [h[f"{split}_loss"] for h in history], marker="o", label=split)
        ax2.plot(epochs, [100 * h[f"{split}_acc"] for h in history], marker="o", label=split)
    ax1.set(xlabel="epoch", ylabel="loss (cost at the free state)")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
