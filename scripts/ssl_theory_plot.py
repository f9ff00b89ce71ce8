"""docs/ssl_theory.png and docs/ssl_theory.json: per-mode eigenvalues of the linear model,
simulation vs analytic solution (eqprop.ssl.theory). Run from the repository root."""
import json
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from eqprop.ssl.theory import analytic, logistic_rates, simulate

SIGMA, ETA, STEPS = 0.3, 0.02, 1500
W0 = torch.randn(10, 15, generator=torch.Generator().manual_seed(0), dtype=torch.float64) / 8
fig, ax = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
stats = {}
for a, loss, title in zip(ax, ["standard", "iso"], ["standard loss (BYOL/SimSiam, Euclidean)", "IsoLoss"]):
    lam = simulate(W0, STEPS, ETA, SIGMA, 1.0, loss, n_samples=2048, generator=torch.Generator().manual_seed(1))
    pred = analytic(lam[0], STEPS, ETA, SIGMA, 1.0, loss)
    rates = logistic_rates(lam, SIGMA, 1.0) / (2 * ETA)
    stats[loss] = {"max_rel_dev": float(((lam - pred).abs() / pred).max()),
                   "rates_over_2eta": [round(float(r), 3) for r in rates]}
    for j in range(10):
        a.semilogy(lam[:, j], color=f"C{j}", lw=1.2)
        a.semilogy(pred[:, j], color="k", lw=0.8, ls="--")
    a.set_title(title, fontsize=10)
    a.set_xlabel("step")
ax[0].set_ylabel(r"eigenvalue $\lambda_m$ of $WW^T$")
ax[0].plot([], [], color="C0", label="simulation (sampled Gaussian inputs)")
ax[0].plot([], [], color="k", ls="--", label="analytic per-mode solution")
ax[0].legend(fontsize=8, frameon=False, loc="lower right")
fig.tight_layout()
fig.savefig("docs/ssl_theory.png", dpi=120)
json.dump(stats, open("docs/ssl_theory.json", "w"), indent=1)
print(json.dumps(stats))
