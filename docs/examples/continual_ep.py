"""C-EP's GDU check: per-step updates with moving weights against per-step BPTT gradients.

    python docs/examples/continual_ep.py [OUT_DIR]     (default: the current directory; ~20 s)

Writes continual_ep_gdu.png (per-step updates and cosines at a small in-phase rate),
continual_ep_gdu_lr.png (worst per-step cosine against the in-phase rate) and
continual_ep_gdu.json.
"""
import json
import sys
from pathlib import Path

import torch

from eqprop.diagnostics.continual import cep_gdu_check
from eqprop.models import HopfieldMLP

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
torch.manual_seed(0)
model = HopfieldMLP([12, 10, 8, 4], gains=[1.2] * 3).double()  # hard sigmoid, sync: prototypical
g = torch.Generator().manual_seed(1)
x = torch.rand(6, 12, generator=g, dtype=torch.float64)
y = torch.randint(0, 4, (6,), generator=g)

small = cep_gdu_check(model, x, y, beta=1e-3, lr=1e-7, steps=12)
print(small.table())
small.plot(out / "continual_ep_gdu.png")

rates = [0.0, 1e-8, 1e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4]
sweep = {}
for beta in (1e-3, 1e-2):
    sweep[beta] = [min(cep_gdu_check(model, x, y, beta=beta, lr=lr, steps=12).cosine) for lr in rates]
    print(f"beta={beta:g}: " + "  ".join(f"lr={lr:g}: {c:.5f}" for lr, c in zip(rates, sweep[beta])))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(6, 3.8))
for beta, cos in sweep.items():
    ax.semilogx([max(r, 1e-9) for r in rates], cos, marker="o", label=f"beta = {beta:g}")
ax.axhline(0.99, color="gray", ls=":", lw=1)
ax.set(xlabel="in-phase rate lr (0 plotted at 1e-9)", ylabel="min over steps of cosine(C-EP, BPTT)",
       title="C-EP GDU check: small rates track BPTT")
ax.grid(alpha=0.3, which="both")
ax.legend()
fig.tight_layout()
fig.savefig(out / "continual_ep_gdu_lr.png", dpi=110)
(out / "continual_ep_gdu.json").write_text(json.dumps({"small_rate": {"beta": 1e-3, "lr": 1e-7, **small.to_dict()},
                                                       "rates": rates, "min_cosine": {str(b): c for b, c in sweep.items()}}, indent=1))
print(f"wrote {out / 'continual_ep_gdu.png'} and {out / 'continual_ep_gdu_lr.png'}")
