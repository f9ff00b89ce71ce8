"""Optimizers by config name, per-coupling learning rates and the learning-rate schedule.

Any ``torch.optim.Optimizer`` class works (``optim: {name: "torch.optim:RMSprop", alpha: 0.9}``);
its keyword arguments are the section's settings, with torch's own defaults.
"""
from __future__ import annotations

import math

import torch

from ..registry import OPTIMIZERS, ConfigError

OPTIMIZERS.register("sgd", torch.optim.SGD)
OPTIMIZERS.register("adam", torch.optim.Adam)
OPTIMIZERS.register("adamw", torch.optim.AdamW)
SCHEDULES = ("cosine", "none")


def coupling_of(name: str) -> str:
    """The coupling a parameter belongs to: ``layers.0.weight`` and ``layers.0.bias`` -> ``layers.0``;
    a parametrized weight (``layers.0.parametrizations.weight.original``, e.g. a binarized one) too."""
    return name.split(".parametrizations.", 1)[0] if ".parametrizations." in name else name.rsplit(".", 1)[0]


def layer_groups(model) -> list[tuple[str, list[torch.nn.Parameter]]]:
    """Parameters grouped by coupling (``coupling_of``), in the model's order."""
    groups: dict[str, list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault(coupling_of(name), []).append(p)
    return list(groups.items())


def param_groups(model, lr) -> list[dict]:
    """One parameter group per coupling with its rate: ``lr`` is one rate or one per coupling."""
    groups = layer_groups(model)
    lrs = [float(lr)] if isinstance(lr, (int, float)) else [float(v) for v in lr]
    if len(lrs) == 1:
        lrs = lrs * len(groups)
    if len(lrs) != len(groups):
        raise ConfigError(
            f"lr has {len(lrs)} values but the model has {len(groups)} couplings "
            f"({', '.join(k for k, _ in groups)}); give one lr for all or one per coupling"
        )
    for v in lrs:
        if not (math.isfinite(v) and v >= 0):
            raise ConfigError(f"optim.lr must be finite and >= 0, got {v}")
    return [{"params": ps, "lr": r, "name": key} for (key, ps), r in zip(groups, lrs)]


def build_optimizer(model, optim_cfg: dict) -> torch.optim.Optimizer:
    """The optimizer a resolved ``optim`` section names, over ``model``'s couplings."""
    from dataclasses import fields

    from ..config import OptimConfig

    entry = OPTIMIZERS.get(optim_cfg["name"])
    own = {f.name for f in fields(OptimConfig)}  # the section's own settings, not the optimizer's
    settings = {k: v for k, v in optim_cfg.items() if k not in own}
    try:
        return entry.build(settings, params=param_groups(model, optim_cfg["lr"]))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer {optim_cfg['name']!r}: {e}") from None


def build_schedule(optimizer, schedule: str, total_steps: int):
    """Per-batch cosine decay to zero over ``total_steps``, or a constant rate."""
    total = max(1, total_steps)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)))
    if schedule == "none":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0)
    raise ConfigError(f"unknown schedule {schedule!r}; valid schedules: {', '.join(SCHEDULES)}")
