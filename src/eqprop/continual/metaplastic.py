"""Metaplastic Adam (Laborieux et al. 2021): hidden weights that resist a change of sign.

A binarized network's weight ``sign(W_h)`` is read from a *hidden* weight ``W_h``; ``|W_h|`` is
how sure the synapse is of its sign. Adam proposes ``u = -lr * m_hat / (sqrt(v_hat) + eps)``; an
update that *decreases* ``|W_h|`` (points toward a sign flip, ``sign(W_h) * u < 0``) is multiplied by

    f_meta(W_h) = 1 - tanh^2(m |W_h|),

so a weight that has grown large becomes hard to flip; updates that increase ``|W_h|`` pass whole.
``m`` is set per parameter group (per layer); ``m = 0`` is plain Adam, i.e. plain BNN training.
As in the paper's code the decision uses the sign of Adam's first moment (that of ``u``), weight
decay is L2 added to the gradient, and one-dimensional parameters (batch-norm scales and shifts)
are never attenuated. ``metaplastic_groups(model, m)`` builds the groups for a binarized net.

A group with ``binary_scale = a`` keeps the hidden weights in the optimizer instead (``state["hidden"]``,
initialised from the parameter) and writes ``p = a * sign(W_h)`` after every step, so that any
model whose rule writes ``.grad`` (an EP rule on a Hopfield net) becomes a binary-weight model
trained with the straight-through (identity) estimator. Build it once, on freshly initialised
weights (a new optimizer would take the binary values as hidden weights); ``reset_moments()``
starts Adam afresh for a new task and keeps the hidden weights.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..optim.closure import run_closure

__all__ = ["MetaplasticAdam", "f_meta", "metaplastic_groups"]


def f_meta(w: torch.Tensor, m: float) -> torch.Tensor:
    """``1 - tanh^2(m |w|)``, elementwise."""
    return 1 - torch.tanh(m * w.abs()) ** 2


class MetaplasticAdam(torch.optim.Optimizer):
    """Adam on hidden weights with the metaplastic attenuation of updates toward a sign flip.

    params: parameters or groups; a group's ``m`` (>= 0) sets its metaplasticity (default ``m``).
    """

    def __init__(self, params, lr: float = 0.005, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, m: float = 0.0, binary_scale: float | None = None):
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if not eps >= 0 or not weight_decay >= 0:
            raise ValueError(f"eps and weight_decay must be >= 0, got {eps}, {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, m=m,
                                      binary_scale=binary_scale))
        for g in self.param_groups:
            if not (math.isfinite(g["m"]) and g["m"] >= 0):
                raise ValueError(f"metaplasticity m must be finite and >= 0 (0: plain BNN training), got {g['m']}")
            if g["binary_scale"] is not None:
                if not g["binary_scale"] > 0:
                    raise ValueError(f"binary_scale must be > 0 (or None: the parameter is the hidden weight), "
                                     f"got {g['binary_scale']}")
                with torch.no_grad():
                    for p in g["params"]:
                        self.state[p]["hidden"] = p.detach().clone()
                        p.copy_(g["binary_scale"] * torch.sign(p))

    def reset_moments(self) -> None:
        """Forget Adam's moments and step counts (a new task); hidden weights stay."""
        for st in self.state.values():
            for k in ("step", "exp_avg", "exp_avg_sq"):
                st.pop(k, None)

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                w = st.get("hidden", p)  # the hidden weight
                grad = p.grad
                if group["weight_decay"]:
                    grad = grad.add(w, alpha=group["weight_decay"])
                if "step" not in st:
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                st["step"] += 1
                st["exp_avg"].mul_(b1).add_(grad, alpha=1 - b1)
                st["exp_avg_sq"].mul_(b2).addcmul_(grad, grad, value=1 - b2)
                step_size = group["lr"] * math.sqrt(1 - b2 ** st["step"]) / (1 - b1 ** st["step"])
                update = -step_size * st["exp_avg"] / (st["exp_avg_sq"].sqrt() + group["eps"])
                if group["m"] > 0 and p.dim() > 1:
                    toward_flip = torch.sign(w) * update < 0  # the update decreases |W_h|
                    update = torch.where(toward_flip, update * f_meta(w, group["m"]), update)
                w.add_(update)
                if "hidden" in st:
                    p.copy_(group["binary_scale"] * torch.sign(w))
        return loss


def metaplastic_groups(model: torch.nn.Module, m: float | Sequence[float]) -> list[dict]:
    """Parameter groups for a binarized net (``binary_parameters()``/``float_parameters()``): the
    binary layers' hidden weights with ``m`` (one value, or one per binary layer), the float
    parameters (batch norm) with ``m = 0``."""
    binary = list(model.binary_parameters())
    ms = [float(m)] * len(binary) if isinstance(m, (int, float)) else [float(v) for v in m]
    if len(ms) != len(binary):
        raise ValueError(f"m lists {len(ms)} values but the model has {len(binary)} binary layers; "
                         f"give one value or one per layer")
    groups = [{"params": [p], "m": v} for p, v in zip(binary, ms)]
    groups.append({"params": list(model.float_parameters()), "m": 0.0})
    return groups
