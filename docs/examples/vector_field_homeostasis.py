"""Training an asymmetric network with and without Jacobian homeostasis (MNIST subset).

    python docs/examples/vector_field_homeostasis.py [OUT_DIR] [key=value ...]
    (default docs/; configs/mnist_vf_homeostasis.yaml with a 10k-sample subset, ~10 min on 2 cores)

Runs the config twice, homeostasis = 0 and the config's value, and after every epoch measures
||J - J^T||_F and the cosine between generalized EP's gradient and the exact one (RBP) on 32
fixed test samples in float64. Writes vector_field_homeostasis.png / .json.
"""
import json
import sys
import time
from pathlib import Path

import torch

from eqprop.config import load_config
from eqprop.diagnostics import compare_gradients
from eqprop.training import Trainer

args = sys.argv[1:]
out = Path(args.pop(0) if args and "=" not in args[0] else "docs")
overrides = ["train_subset=10000", "test_subset=2000", "epochs=4", "progress=false", "resume=false"] + args
base = load_config("configs/mnist_vf_homeostasis.yaml", overrides)
runs = {}
for lam in (0.0, base.homeostasis):
    cfg = load_config("configs/mnist_vf_homeostasis.yaml", overrides + [f"homeostasis={lam}", f"out=runs/vf_homeostasis_{lam:g}"])
    trainer = Trainer(cfg)
    xb, yb = trainer.test.x[:32], trainer.test.y[:32]
    hist = []

    def measure(epoch, acc):
        res = compare_gradients(trainer.model, xb, yb, rules=["ep-centered"], beta=0.01, free_steps=3000,
                                nudge_steps=3000, tol=1e-12, adjoint_steps=5000)
        hist.append({"epoch": epoch, "jacobian_asymmetry": trainer.model.jacobian_asymmetry(),
                     "angles": trainer.model.asymmetry_angles(), "cosine": res.row("ep-centered")["cosine"],
                     "test_acc": acc})
        print(f"homeostasis={lam:g} epoch {epoch}: ||J-J^T|| {hist[-1]['jacobian_asymmetry']:.3f}  "
              f"angle {hist[-1]['angles'][0]:.1f} deg  cosine(EP, RBP) {hist[-1]['cosine']:.4f}  test acc {acc}", flush=True)

    measure(0, None)
    t0 = time.time()
    for epoch in range(1, cfg.epochs + 1):
        trainer.train_epoch()
        trainer.epoch += 1
        measure(epoch, trainer.evaluate()["acc"])
    runs[lam] = {"history": hist, "train_time_s": time.time() - t0}

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
for lam, r in runs.items():
    h = r["history"]
    ep = [e["epoch"] for e in h]
    lab = f"homeostasis {lam:g}"
    axes[0].plot(ep, [e["jacobian_asymmetry"] for e in h], marker="o", label=lab)
    axes[1].plot(ep, [e["cosine"] for e in h], marker="o", label=lab)
    axes[2].plot(ep[1:], [100 * e["test_acc"] for e in h[1:]], marker="o", label=lab)
axes[0].set(xlabel="epoch", ylabel="||J - J^T||_F")
axes[1].set(xlabel="epoch", ylabel="cosine(generalized EP, RBP)")
axes[2].set(xlabel="epoch", ylabel="test accuracy (%)")
for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig.suptitle(f"VectorFieldMLP {base.hidden}, asymmetry {base.asymmetry:g} deg, MNIST {base.train_subset} samples")
fig.tight_layout()
fig.savefig(out / "vector_field_homeostasis.png", dpi=110)
(out / "vector_field_homeostasis.json").write_text(json.dumps({str(k): v for k, v in runs.items()}, indent=1))
print(f"wrote {out / 'vector_field_homeostasis.png'}")
