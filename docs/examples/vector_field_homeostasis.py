"""Training an asymmetric network with and without Jacobian homeostasis (MNIST subset).

    python docs/examples/vector_field_homeostasis.py [OUT_DIR] [section.key=value ...]
    (default: the current directory; configs/mnist_vf_homeostasis.yaml with a 10k-sample subset,
    ~10 min on 2 cores)

Runs the config twice, homeostasis = 0 and the config's value, and after every epoch (a callback)
measures ||J - J^T||_F and the cosine between generalized EP's gradient and the exact one (RBP)
on 32 fixed test samples in float64. Writes vector_field_homeostasis.png / .json.
"""
import json
import sys
import time
from pathlib import Path


from eqprop import Callback
from eqprop.config import load_config
from eqprop.diagnostics import compare_gradients
from eqprop.training import Trainer

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "mnist_vf_homeostasis.yaml"
args = sys.argv[1:]
out = Path(args.pop(0) if args and "=" not in args[0] else ".")
overrides = ["data.train_subset=10000", "data.test_subset=2000", "run.epochs=4", "run.progress=false",
             "run.resume=false"] + args
base = load_config(CONFIG, overrides)
runs = {}


class Measure(Callback):
    """After every epoch: asymmetry, angle and cosine of generalized EP with RBP on 32 test samples."""

    def __init__(self, lam, hist):
        self.lam, self.hist = lam, hist

    def on_fit_start(self, trainer):
        self.measure(trainer, 0, None)

    def on_epoch_end(self, trainer, record):
        self.measure(trainer, record["epoch"], record["test_acc"])

    def measure(self, trainer, epoch, acc):
        xb, yb = trainer.test[0][:32], trainer.test[1][:32]
        res = compare_gradients(trainer.model, xb, yb, rules=["ep-centered"], beta=0.01, free_steps=3000,
                                nudge_steps=3000, tol=1e-12, adjoint_steps=5000)
        h = {"epoch": epoch, "jacobian_asymmetry": trainer.model.jacobian_asymmetry(),
             "angles": trainer.model.asymmetry_angles(), "cosine": res.row("ep-centered")["cosine"], "test_acc": acc}
        self.hist.append(h)
        print(f"homeostasis={self.lam:g} epoch {epoch}: ||J-J^T|| {h['jacobian_asymmetry']:.3f}  "
              f"angle {h['angles'][0]:.1f} deg  cosine(EP, RBP) {h['cosine']:.4f}  test acc {acc}", flush=True)


for lam in (0.0, base.model["homeostasis"]):
    cfg = load_config(CONFIG, overrides + [f"model.homeostasis={lam}", f"run.out=runs/vf_homeostasis_{lam:g}"])
    hist = []
    t0 = time.time()
    Trainer.from_config(cfg, callbacks=[Measure(lam, hist)]).fit()
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
fig.suptitle(f"VectorFieldMLP {base.model['hidden']}, asymmetry {base.model['asymmetry']:g} deg, "
             f"MNIST {base.data['train_subset']} samples")
fig.tight_layout()
fig.savefig(out / "vector_field_homeostasis.png", dpi=110)
(out / "vector_field_homeostasis.json").write_text(json.dumps({str(k): v for k, v in runs.items()}, indent=1))
print(f"wrote {out / 'vector_field_homeostasis.png'}")
