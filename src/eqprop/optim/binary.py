"""The flip optimizer of binary EP (Laydevant et al. 2021) and its per-epoch flip statistics.

For each binary weight ``W = alpha sign(H)`` (the hidden tensor ``H`` tagged by
``eqprop.models.binarize``) the optimizer keeps a low-pass filtered gradient

    m <- (1 - gamma_l) m + gamma_l g          (m = 0 before the first step, g = H.grad = dL/dW)

and flips the weights whose filtered gradient points against their sign by more than the layer's
threshold:

    flip where sign(H) * m > threshold_l:   H <- -H

(the paper writes it with the EP update ``-g``: ``-sign(W) m_EP > threshold``). ``m`` is not reset
by a flip. With ``max_flip_rate`` r_l set, at most ``floor(r_l N_l)`` of a layer's ``N_l`` weights flip in
one step: of those past the threshold, the ones with the largest ``sign(H) m`` (the best supported).
Every other parameter (biases, learned scales ``alpha``) takes a plain SGD step
``theta <- theta - lr * grad`` with its group's ``lr``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..callbacks import Callback
from .closure import run_closure

__all__ = ["FlipOptimizer", "FlipStats"]


def _per_layer(name: str, value, n: int) -> list[float]:
    vals = [float(value)] * n if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(vals) != n:
        raise ValueError(f"{name} has {len(vals)} values but there are {n} binary weight tensors; "
                         f"give one {name} for all or one per binary layer (input side first)")
    return vals


class FlipOptimizer(torch.optim.Optimizer):
    """Flips binary weights when their filtered gradient crosses a threshold; SGD for the rest.

    Args:
        params: parameters or parameter groups (e.g. ``eqprop.training.optimizers.param_groups``).
            A tensor is treated as a binary hidden weight when it carries ``binary_hidden = True``
            (``binarize`` sets it) or its group has ``binary: True``.
        gamma: the filter rate, one number or one per binary weight tensor (in the order met).
        threshold: the flip threshold, one number or one per binary weight tensor.
        lr: the SGD rate of the other parameters (biases, learned scales), per group.
        max_flip_rate: None (no cap, the paper's rule), or the largest fraction of a binary tensor's
            weights that may flip in one step, one number or one per binary tensor, in (0, 1]. When
            more weights pass the threshold, only the ``floor(rate * numel)`` with the largest
            ``sign(H) m`` flip. A cap bounds how far one batch can move a layer whose weights all
            see consistent gradients (a convolution: few weights, each summing many positions).

    ``flips`` (a dict name -> int) counts the flips of each binary tensor since it was last
    cleared; :class:`FlipStats` (``callbacks()``) logs it per epoch.
    """

    def __init__(self, params, gamma: float | Sequence[float] = 1e-4, threshold: float | Sequence[float] = 5e-7,
                 lr: float = 0.01, max_flip_rate: float | Sequence[float | None] | None = None):
        if not (math.isfinite(float(lr)) and float(lr) >= 0):
            raise ValueError(f"lr must be finite and >= 0, got {lr}")
        super().__init__(params, dict(lr=float(lr), binary=None))
        binary = [(gi, p) for gi, g in enumerate(self.param_groups) for p in g["params"]
                  if (g["binary"] if g["binary"] is not None else getattr(p, "binary_hidden", False))]
        if not binary:
            raise ValueError("FlipOptimizer found no binary weights: binarize the model first "
                             "(eqprop.models.binarize, or a binary-* model in a config)")
        gammas = _per_layer("gamma", gamma, len(binary))
        thresholds = _per_layer("threshold", threshold, len(binary))
        for v in gammas:
            if not 0 < v <= 1:
                raise ValueError(f"gamma (the filter rate) must lie in (0, 1], got {v}")
        for v in thresholds:
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"threshold must be finite and >= 0, got {v}")
        if max_flip_rate is None or isinstance(max_flip_rate, (int, float)):
            caps = [max_flip_rate] * len(binary)
        else:
            caps = list(max_flip_rate)
            if len(caps) != len(binary):
                raise ValueError(f"max_flip_rate has {len(caps)} values but there are {len(binary)} binary weight "
                                 f"tensors; give one rate for all or one per binary layer (input side first)")
        for v in caps:
            if v is not None and not (math.isfinite(float(v)) and 0 < float(v) <= 1):
                raise ValueError(f"max_flip_rate must lie in (0, 1] (a fraction of a layer's weights per step) "
                                 f"or be null for no cap, got {v}")
        self.binary_settings: dict[int, tuple[float, float, str, float | None]] = {}
        for k, ((gi, p), ga, th, cap) in enumerate(zip(binary, gammas, thresholds, caps)):
            group_name = self.param_groups[gi].get("name")  # a coupling (``layers.0``) from ``param_groups``
            name = f"binary{k}" if group_name is None else str(group_name).replace(".parametrizations.weight", "") + ".weight"
            self.binary_settings[id(p)] = (ga, th, name, None if cap is None else float(cap))
        self.flips: dict[str, int] = {s[2]: 0 for s in self.binary_settings.values()}

    def binary_tensors(self) -> list[tuple[str, torch.Tensor]]:
        return [(self.binary_settings[id(p)][2], p) for g in self.param_groups for p in g["params"]
                if id(p) in self.binary_settings]

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                setting = self.binary_settings.get(id(p))
                if setting is None:
                    p.add_(p.grad, alpha=-group["lr"])
                    continue
                gamma, threshold, name, cap = setting
                state = self.state[p]
                if "m" not in state:
                    state["m"] = torch.zeros_like(p)
                m = state["m"]
                m.mul_(1 - gamma).add_(p.grad, alpha=gamma)
                # sign(H) m > threshold, sign(H) read from the sign bit (as the binarisation does)
                score = torch.where(p.signbit(), -m, m)
                flip = score > threshold
                if cap is not None:
                    k = int(cap * p.numel())
                    if int(flip.sum()) > k:  # only the k best supported of those past the threshold
                        keep = torch.zeros(p.numel(), dtype=torch.bool, device=p.device)
                        if k > 0:
                            keep[score.flatten().topk(k).indices] = True
                        flip = keep.view_as(flip)
                p.mul_(flip.to(p.dtype).mul_(-2).add_(1))  # H <- -H where flipped (the sign bit flips, zeros too)
                self.flips[name] = self.flips.get(name, 0) + int(flip.sum())
        return loss

    def callbacks(self) -> list[Callback]:
        return [FlipStats()]


class FlipStats(Callback):
    """Adds ``flips/<layer>`` (flips this epoch) and ``flip_rate/<layer>`` (their fraction of the
    layer's weights) to each epoch's record, from a :class:`FlipOptimizer`."""

    def on_epoch_end(self, trainer, record):
        opt = trainer.optimizer
        if not isinstance(opt, FlipOptimizer):
            return
        sizes = {name: p.numel() for name, p in opt.binary_tensors()}
        for name, n in opt.flips.items():
            record[f"flips/{name}"] = int(n)
            record[f"flip_rate/{name}"] = n / max(1, sizes.get(name, 1))
        for name in opt.flips:
            opt.flips[name] = 0
