"""The DTP result tables and the angle plot, from finished runs (RESULTS.md, docs/dtp.md).

    python docs/examples/dtp_plots.py [runs]      # writes docs/dtp_angles.png, prints markdown

Reads each run folder's summary.json, metrics.jsonl and the diagnostics history saved in
checkpoint.pt (which also holds the value before training, epoch 0).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

RUNS = {  # label -> run folder names (seeds)
    "MNIST L-DRL": ["mnist_mlp_dtp", "mnist_mlp_dtp_s1", "mnist_mlp_dtp_s2"],
    "MNIST BP": ["mnist_mlp_bp", "mnist_mlp_bp_s1", "mnist_mlp_bp_s2"],
    "Fashion-MNIST L-DRL": ["fashion_mnist_mlp_dtp", "fashion_mnist_mlp_dtp_s1", "fashion_mnist_mlp_dtp_s2"],
    "Fashion-MNIST BP": ["fashion_mnist_mlp_bp", "fashion_mnist_mlp_bp_s1", "fashion_mnist_mlp_bp_s2"],
    "MNIST DRL": ["mnist_mlp_dtp_drl"],
    "MNIST DTP feedback": ["mnist_mlp_dtp_dtpfb", "mnist_mlp_dtp_dtpfb_lr005"],
    "MNIST L-DRL, lr 0.005": ["mnist_mlp_dtp_ldrl_lr005"],
    "MNIST DRL, lr 0.005": ["mnist_mlp_dtp_drl_lr005"],
    "CIFAR-10 conv L-DRL": ["cifar10_conv_dtp_s0", "cifar10_conv_dtp_s1", "cifar10_conv_dtp_s2"],
    "CIFAR-10 conv BP": ["cifar10_conv_bp_s0", "cifar10_conv_bp_s1", "cifar10_conv_bp_s2"],
}


def history(run: Path) -> list[dict]:
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True, map_location="cpu")
    return ckpt.get("callbacks", {}).get("DTPDiagnostics", {}).get("history", [])


def main(root="runs"):
    root = Path(root)
    rows = []
    for label, names in RUNS.items():
        for name in names:
            run = root / name
            if not (run / "summary.json").exists():
                continue
            s = json.loads((run / "summary.json").read_text())
            h = history(run)
            after = [r for r in h if r["epoch"] >= 1]
            ang = {k: max(r[k] for r in after) for k in (after[0] if after else {}) if k.startswith("dtp_angle_")}
            jac = {k: after[-1][k] for k in (after[0] if after else {}) if k.startswith("dtp_jac_dist_")}
            rows.append((label, name, s, ang, jac, h))
    print("| run | seed | epochs | train time | test acc | max angle to BP over epochs 1.. (layers 1, 2, 3) | final J_G distance (G_2, G_3) |")
    print("|---|---|---|---|---|---|---|")
    for label, name, s, ang, jac, _ in rows:
        a = ", ".join(f"{v:.1f}" for _, v in sorted(ang.items())) or "-"
        j = ", ".join(f"{v:.3f}" for _, v in sorted(jac.items())) or "-"
        print(f"| {label} (`runs/{name}`) | {s['seed']} | {s['epochs']} | {s['train_time_s']:.0f} s | "
              f"{100 * s['test_acc']:.2f}% | {a} | {j} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = [r for r in rows if r[1] in ("mnist_mlp_dtp", "fashion_mnist_mlp_dtp", "mnist_mlp_dtp_drl",
                                         "mnist_mlp_dtp_dtpfb_lr005", "cifar10_conv_dtp_s0")]
    if not picks:
        return
    fig, axes = plt.subplots(1, len(picks), figsize=(3.6 * len(picks), 3.4), sharey=True)
    axes = [axes] if len(picks) == 1 else axes
    for ax, (label, name, _, _, _, h) in zip(axes, picks):
        ep = [r["epoch"] for r in h]
        for k in sorted(k for k in h[0] if k.startswith("dtp_angle_")):
            ax.plot(ep, [r[k] for r in h], marker="o", label=f"layer {k.rsplit('_', 1)[1]}")
        ax.axhline(30, color="grey", ls="--", lw=0.8)
        ax.set(title=label + (" (lr 0.005)" if "lr005" in name else ""), xlabel="epoch (0 = before training)")
    axes[0].set_ylabel("angle DTP update vs BP gradient (deg)")
    axes[0].legend()
    fig.tight_layout()
    out = Path(__file__).resolve().parents[1] / "dtp_angles.png"
    fig.savefig(out, dpi=110)
    print(f"\nplot: {out}")
    trace(root)


def trace(root: Path):
    """The angle every 20 batches (``rule.diagnostics_every=20``) of runs/mnist_mlp_dtp_trace."""
    run = root / "mnist_mlp_dtp_trace"
    if not (run / "checkpoint.pt").exists():
        return
    from eqprop.rules.dtp import plot_diagnostics

    h = history(run)
    plot_diagnostics(h, Path(__file__).resolve().parents[1] / "dtp_angles_trace.png",
                     title="MNIST, DTP (L-DRL): measured every 20 batches")
    keys = sorted(k for k in h[0] if k.startswith("dtp_angle_"))
    for first in (20, 40, 60, 100):
        later = [r for r in h if (r["step"] >= first if "step" in r else r["epoch"] >= 1)]
        print(f"from batch {first} on ({len(later)} measurements): max angle "
              + ", ".join(f"{max(r[k] for r in later):.1f}" for k in keys))


if __name__ == "__main__":
    main(*sys.argv[1:])
