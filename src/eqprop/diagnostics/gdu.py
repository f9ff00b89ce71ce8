"""The GDU check (Ernoult et al. 2019): EP's per-step updates against BPTT's per-step gradients.

With synchronous updates, the hard-sigmoid Hopfield net is a "prototypical" RNN
``s_{t+1} = sigma(dPhi/ds(x, s_t, theta))`` with ``Phi = -E + |s|^2/2``. Start at the free fixed
point ``s*`` and run ``K`` nudged sweeps ``s^b_1 .. s^b_K``. The *cumulative* EP update after k
nudged steps, ``(dF_b/dtheta(s^b_k) - dE/dtheta(s*)) / b``, equals (as ``b -> 0``) the gradient of
BPTT truncated to the last ``k`` steps of a free trajectory that sits at ``s*``; their increments
are the per-step EP updates and the per-step BPTT contributions (the gradient that flows through
time step ``T - k``). Exact for the hard sigmoid; for smooth activations the sync update is not
of prototypical form, and the match is approximate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..dynamics import Nudge, relax, sweep
from ..rules.base import energy_contrast, trainable
from .common import cast_copy


@dataclass
class GDUResult:
    ep: torch.Tensor        # (K, P): per-step EP updates, step k = 1..K, all parameters flattened
    bptt: torch.Tensor      # (K, P): per-step BPTT contributions of time step T - k + 1
    cosine: list[float]     # per step
    rel_error: list[float]  # per step
    beta: float
    label: str = "EP"       # the estimator compared with BPTT (e.g. "C-EP")

    def to_dict(self) -> dict:
        return {"beta": self.beta, "label": self.label, "cosine": self.cosine, "rel_error": self.rel_error,
                "min_cosine": min(self.cosine), "max_rel_error": max(self.rel_error)}

    def table(self) -> str:
        lines = [f"GDU check, beta={self.beta:g}: per-step {self.label} update vs per-step BPTT gradient",
                 f"{'step':>4}  {'cosine':>10}  {'rel. error':>11}"]
        lines += [f"{k + 1:>4}  {c:>10.6f}  {e:>11.3e}" for k, (c, e) in enumerate(zip(self.cosine, self.rel_error))]
        return "\n".join(lines)

    def plot(self, path, n_params: int = 6) -> None:
        """Per-step EP (solid) and BPTT (dashed) updates of a few parameters, and the cosine."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        k = range(1, self.ep.shape[0] + 1)
        pick = self.bptt.abs().sum(0).argsort(descending=True)[:n_params]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
        for j, p in enumerate(pick.tolist()):
            c = f"C{j}"
            a1.plot(k, self.ep[:, p], c, label=self.label if j == 0 else None)
            a1.plot(k, self.bptt[:, p], c, ls="--", marker=".", label="BPTT" if j == 0 else None)
        a1.set(xlabel=f"step k ({self.label}: k-th nudged step; BPTT: k steps from the end)", ylabel="update",
               title="per-step updates (largest parameters)")
        a1.legend()
        a2.plot(k, self.cosine, marker="o")
        a2.set(xlabel="step k", ylabel=f"cosine({self.label}, BPTT)", title=f"beta = {self.beta:g}")
        a2.ticklabel_format(axis="y", useOffset=False)
        for ax in (a1, a2):
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


def gdu_check(model, x, y, beta: float = 1e-4, steps: int = 20, free_steps: int = 1000,
              tol: float | None = 1e-13, dtype: torch.dtype | None = torch.float64) -> GDUResult:
    """Run the GDU check on one batch; see the module docstring. Uses synchronous sweeps."""
    if not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"--beta (the GDU nudge) must be > 0 and finite, got {beta}")
    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    m, x = cast_copy(model, x, dtype)
    ctx = m.context(x)
    free = relax(m, x, steps=free_steps, mode="sync", tol=tol, ctx=ctx).state
    traj = [free]
    with torch.no_grad():
        for _ in range(steps):
            traj.append(sweep(m, traj[-1], ctx, "sync", nudge=Nudge(beta, y)))
    scale = 1.0 / (beta * x.shape[0])

    def flat(d):
        return torch.cat([g.flatten() for g in d.values()])

    ep_cum = [flat(energy_contrast(m, x, y, s, beta, free, 0.0, scale)) for s in traj]
    ep = torch.stack([ep_cum[k + 1] - ep_cum[k] for k in range(steps)]).detach()
    bp = bptt_per_step(m, x, y, free, steps)
    cos = torch.nn.functional.cosine_similarity(ep, bp, dim=1)
    rel = (ep - bp).norm(dim=1) / bp.norm(dim=1).clamp_min(1e-300)
    return GDUResult(ep=ep.float(), bptt=bp.float(), cosine=cos.tolist(), rel_error=rel.tolist(), beta=beta)


def bptt_per_step(m, x, y, free, steps: int) -> torch.Tensor:
    """(K, P): BPTT's gradient contribution of time step ``T - k + 1``, k = 1..K, for a free
    trajectory that sits at the fixed point ``free`` (synchronous sweeps), all parameters flat."""
    params = [p for _, p in trainable(m)]
    cum = []
    for k in range(steps + 1):
        with torch.enable_grad():
            c = m.context(x)
            s = relax(m, x, [t.detach() for t in free], steps=k, mode="sync", ctx=c, track_graph=True).state
            loss = m.cost(s, y).mean()
            g = torch.autograd.grad(loss, params, allow_unused=True) if loss.requires_grad else [None] * len(params)
        cum.append(torch.cat([(torch.zeros_like(p) if gi is None else gi).flatten() for gi, p in zip(g, params)]))
    return torch.stack([cum[k + 1] - cum[k] for k in range(steps)]).detach()
