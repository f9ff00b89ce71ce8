"""A device-aware optimizer: any rule's ``.grad`` becomes weak-RESET pulses on RRAM pairs.

Each parameter it is given is a tensor of synapses, each a pair of simulated devices
(``eqprop.devices.rram``). A step turns the gradient into a signed *update in pulses*,

    u = -lr * m_hat / (sqrt(v_hat) + eps)     (update="adam", the anchor code's choice), or
    u = -lr * grad                            (update="sgd"),

rounds it and clamps it to ``+-max_pulses``, sends positive counts to device 1 and negative
ones to device 2 (weak RESET only raises resistance), then writes the parameter back as

    p = scale * sign(R_1 - R_2).

``lr`` is therefore in pulses per unit step (the anchor code: Adam with lr 8, clamp 14). Where
the rule's gradient comes from does not matter: ``loss.backward()`` on a BNN, or an EP rule's
``rule.step(model, x, y)`` on a Hopfield network. Parameters that should stay in floating point
(biases, batch-norm) go to an ordinary torch optimizer beside this one.

The weights are read back from a cache of every device's ``log R`` that each step refreshes at the
pulsed devices only (``sign(log R_1 - log R_2)``); call ``sync()`` after editing the device state
by hand.

The devices' state (pulse counts, noise states, D2D draws) and the random generator live in the
optimizer's ``state_dict`` (tensors and numbers only: ``torch.load(weights_only=True)`` reads
it), so a checkpoint of model + optimizer resumes the same devices.
"""
from __future__ import annotations

import math

import torch

from ..devices.rram import (
    RRAMConfig,
    _log_r_static,
    _pair_log_r,
    _pair_sign,
    _update_pairs_counts,
    apply_pulses,
    init_devices,
    make_generator,
    pair_weight,
    preset,
    split_pulses,
)
from .closure import run_closure

__all__ = ["RRAMOptimizer"]

UPDATES = ("adam", "sgd")


class RRAMOptimizer(torch.optim.Optimizer):
    """Train parameters stored on weak-RESET RRAM pairs.

    Args:
        params: the parameters (or param groups) to store on devices: weight tensors.
        config: an ``RRAMConfig`` or a preset name (``"ideal"``, ``"rtn"``, ``"flicker"``,
            ``"d2d"``, ``"all"``); default ``"all"``.
        lr: pulses per unit of the update (Adam-normalised step, or gradient for ``sgd``).
        betas, eps: Adam's moment decays and denominator floor (``update="adam"``).
        update: ``"adam"`` or ``"sgd"``.
        scale: the weight magnitude: ``p = scale * sign(R_1 - R_2)``; a number, or ``None`` for
            each parameter's mean ``|p|`` at construction (per group option).
        init_pulses: programming pulses applied at construction to the device that matches
            ``sign(p)`` of each synapse's initial value (0: keep the fabricated state). With
            identical devices (no D2D) this breaks the tie ``R_1 = R_2``.
        seed: seed of the devices' generator (on the parameters' torch device).

    ``pulses_applied`` counts the pulses of the last step (a float, for logging).
    """

    def __init__(self, params, config: RRAMConfig | str | None = "all", lr: float = 8.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, update: str = "adam",
                 scale: float | None = 1.0, init_pulses: int = 1, seed: int | None = 0):
        if update not in UPDATES:
            raise ValueError(f"unknown update {update!r}; valid: {', '.join(UPDATES)}")
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if isinstance(config, str):
            config = preset(config)
        self.config = config if config is not None else RRAMConfig()
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "update": update, "scale": scale}
        super().__init__(params, defaults)
        devices = {p.device for g in self.param_groups for p in g["params"]}
        if len(devices) != 1:
            raise ValueError(f"all device-stored parameters must be on one torch device, got {devices}")
        self.generator = make_generator(seed, next(iter(devices)))
        # read-back cache per parameter: (log R of every device, log R0 + c1 of every device)
        self._log_r: dict[torch.Tensor, tuple[torch.Tensor, torch.Tensor]] = {}
        self.pulses_applied = 0.0
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    self._init_param(p, group, init_pulses)

    # -- device state ---------------------------------------------------------------------------
    def _init_param(self, p: torch.Tensor, group: dict, init_pulses: int) -> None:
        st = self.state[p]
        if group["scale"] is None:
            st["scale"] = float(p.detach().abs().mean())
        else:
            st["scale"] = float(group["scale"])
        dtype = p.dtype if p.is_floating_point() else torch.float32
        st["devices"] = init_devices((2,) + tuple(p.shape), self.config, self.generator, device=p.device, dtype=dtype)
        if init_pulses:
            k = split_pulses(torch.sign(p.detach()) * init_pulses, self.config.max_pulses)
            apply_pulses(st["devices"], k, self.config, self.generator)
        st["step"] = torch.zeros((), dtype=torch.float32)
        if group["update"] == "adam":
            st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        p.copy_(st["scale"] * pair_weight(st["devices"], self.config).to(p.dtype))

    def device_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        """The ``(2, *p.shape)`` device tensors behind parameter ``p``."""
        return self.state[p]["devices"]

    @torch.no_grad()
    def sync(self) -> None:
        """Write every parameter back from its devices (after a load, or if a user changed ``p`` or
        the device state by hand)."""
        self._log_r = {}
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state[p]
                p.copy_(st["scale"] * pair_weight(st["devices"], self.config).to(p.dtype))

    def _cached_log_r(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``log R`` of every device behind ``p``: computed in full once, then refreshed by each step
        at the pulsed devices only (the others did not change: noise advances only with pulses);
        with it the pulse-independent part ``log R0 + c1``."""
        c = self._log_r.get(p)
        if c is None:
            dev = self.state[p]["devices"]
            static = _log_r_static(dev)
            c = self._log_r[p] = (_pair_log_r(dev, self.config, static), static)
        return c

    # -- the step -----------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        total = 0.0
        cfg = self.config
        for group in self.param_groups:
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                st = self.state[p]
                st["step"] += 1
                if group["update"] == "adam":
                    b1, b2 = group["betas"]
                    t = float(st["step"])
                    m, v = st["exp_avg"], st["exp_avg_sq"]
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    u = v.sqrt().div_(math.sqrt(1 - b2 ** t)).add_(group["eps"])   # Adam's denominator
                    torch.div(m, u, out=u).mul_(-lr / (1 - b1 ** t))
                else:
                    u = g * (-lr)
                log_r, static = self._cached_log_r(p)
                applied, _ = _update_pairs_counts(st["devices"], u, cfg, self.generator, log_r, static)
                total += float(applied.abs().sum())
                p.copy_(_pair_sign(log_r).mul_(st["scale"]))
        self.pulses_applied = total
        return loss

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        sd = super().state_dict()
        sd["rram"] = {"config": self.config.to_dict(), "generator": self.generator.get_state()}
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore moments, devices and generator (the device tensors keep their own dtypes:
        torch's loader would cast the integer pulse counts and boolean RTN states to the
        parameter's float dtype, so they are set aside and restored here)."""
        sd = dict(state_dict)
        extra = sd.pop("rram", None)
        saved = {}
        new_state = {}
        for idx, s in sd["state"].items():
            s = dict(s)
            if "devices" in s:
                saved[idx] = s.pop("devices")
            new_state[idx] = s
        sd["state"] = new_state
        super().load_state_dict(sd)
        params = [p for g in self.param_groups for p in g["params"]]
        ids = [i for g in sd["param_groups"] for i in g["params"]]
        for idx, p in zip(ids, params):
            if idx in saved:
                self.state[p]["devices"] = {k: v.to(p.device).clone() for k, v in saved[idx].items()}
        if extra is not None:
            self.config = RRAMConfig.from_dict(extra["config"])
            self.generator.set_state(extra["generator"])
        self.sync()

    def pulse_counts(self) -> torch.Tensor:
        """Total cumulative pulses over all devices (a 0-dim int64 tensor)."""
        return sum(self.state[p]["devices"]["n"].sum(dtype=torch.int64)
                   for g in self.param_groups for p in g["params"])
