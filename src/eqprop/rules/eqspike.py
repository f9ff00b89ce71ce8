"""EqSpike: equilibrium propagation with spiking neurons and a spike-driven weight update
(Martin et al. 2021, "EqSpike: spike-driven equilibrium propagation for neuromorphic
implementations"; the rule is the STDP-like form of EP of Scellier & Bengio 2017).

On ``SpikingHopfieldMLP``: a free phase of ``free_steps`` time steps (neurons exchange spikes),
then a nudged phase of ``nudge_steps`` steps with the output pulled by ``beta``. During the nudged
phase only, every presynaptic spike updates its synapses by the postsynaptic state's change over
that step, in both directions of the (symmetric) coupling:

    dW_ij += z_j(t) (ds_i(t) - dt W_ij (1 - rho_j) [s_i free]) + (i <-> j)
    db_i  += ds_i(t)

``ds_i(t) = s_i(t) - s_i(t-1)``; ``dt W_ij`` is the kick the spike itself gives to ``s_i``, and
``dt W_ij (1 - rho_j)`` its part that does not average out (its covariance with the spike); it is
removed where it reached ``s_i`` (``[s_i free]``: ``0 < s_i(t) < 1``, the state not held at a bound).
All of it is known at the synapse (its weight, its spike, the pre rate, the post state). Without it
the update carries a Hebbian term ``~ W_ij rho_j (1 - rho_j) x (phase length)`` that does not shrink
with ``dt`` (docs/eqspike.md). Integrated over the nudged phase, ``sum_t z_j ds_i`` tends to
``rho(s_j) (s_i^beta - s_i^0)`` and the update to the EP one,
``(1/beta) (s_i^beta s_j^beta - s_i^0 s_j^0)``; ``.grad = -dW / (beta B)``.

``coding="rates"`` runs the same network, weights and time steps with analog rates instead of spikes
and the closed-form EP contrast of the settled states: rate-based EP, for comparison.

Every step's ``stats`` hold the synaptic events per sample (spikes x fan-out) of each phase, and
the rule's ``callbacks()`` average them into the trainer's epoch record.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..callbacks import Callback
from ..models.base import one_hot_targets
from ..models.spiking import CODINGS
from .base import Rule, StepResult, check_nudge, energy_contrast

VARIANTS = ("positive", "random")


@dataclass
class EqSpike(Rule):
    """Spike-driven EP on a ``SpikingHopfieldMLP``.

    beta: nudge strength (> 0); variant "positive" (default) or "random" (sign drawn per batch).
    free_steps, nudge_steps: time steps of the free and nudged phases.
    eval_steps: time steps of the free phase at inference (None: ``free_steps``).
    coding: "spikes" (EqSpike) or "rates" (rate-based EP on the same network and time steps).
    """

    name: ClassVar[str] = "eqspike"
    beta: float = 0.5
    free_steps: int = 100
    nudge_steps: int = 50
    eval_steps: int | None = None
    variant: str = "positive"
    coding: str = "spikes"

    def __post_init__(self):
        check_nudge("beta", self.beta)
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown eqspike variant {self.variant!r}; valid: {', '.join(VARIANTS)}")
        if self.coding not in CODINGS:
            raise ValueError(f"unknown coding {self.coding!r}; valid: {', '.join(CODINGS)} "
                             f"('rates' runs rate-based EP on the same network)")
        for k in ("free_steps", "nudge_steps"):
            if int(getattr(self, k)) < 1:
                raise ValueError(f"{k} must be >= 1 (time steps), got {getattr(self, k)}")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise ValueError(f"eval_steps must be >= 1 (or None for free_steps), got {self.eval_steps}")

    def check_model(self, model):
        if not hasattr(model, "run_phase"):
            raise ValueError(f"rule 'eqspike' runs spiking networks; {type(model).__name__} is not one: "
                             f"use model name 'spiking-hopfield-mlp' (eqprop.models.spiking.SpikingHopfieldMLP)")

    def callbacks(self):
        return [SynapticEvents()]

    def signed_beta(self) -> float:
        if self.variant == "random" and bool(torch.rand(()) < 0.5):
            return -self.beta
        return self.beta

    def _input(self, model, x):
        x = model.prepare_input(x)
        if x.min() < 0 or x.max() > 1:
            raise ValueError("eqspike rate-codes the input: pixel values must lie in [0, 1] (spikes per step); "
                             "use data normalization 'unit' (no mean/std standardisation)")
        return x

    def _result(self, model, y, trace, **stats):
        s = trace.state.s
        with torch.no_grad():
            loss, out = model.cost(s, y).mean(), model.output(s)
        return StepResult(loss=loss.detach(), output=out.detach(), state=[t.detach() for t in s], stats=stats)

    def events(self, model, trace) -> float:
        """Synaptic events per sample of a phase: sum over neurons of spikes x fan-out."""
        if self.coding != "spikes":
            return 0.0
        b = trace.state.s[0].shape[0]
        return float(sum(c.sum() * f for c, f in zip(trace.spikes, model.fan_out()))) / b

    @torch.no_grad()
    def infer(self, model, x, y, steps: int | None = None) -> StepResult:
        x = self._input(model, x)
        st = model.init_spike_state(x)
        trace = model.run_phase(x, st, steps or self.eval_steps or self.free_steps, self.coding)
        return self._result(model, y, trace, events_free=self.events(model, trace))

    @torch.no_grad()
    def estimate(self, model, x, y):
        x = self._input(model, x)
        beta = self.signed_beta()
        free = model.run_phase(x, model.init_spike_state(x), self.free_steps, self.coding)
        y1h = one_hot_targets(y, model.num_outputs, free.state.s[-1])
        nudged = model.run_phase(x, free.state, self.nudge_steps, self.coding, beta, y1h, record=self.coding == "spikes")
        if self.coding == "spikes":
            grads = spike_driven_grads(model, x, free.state.s, nudged.record, beta)
        else:
            grads = energy_contrast(model, x, y, nudged.state.s, beta, free.state.s, 0.0, 1.0 / (beta * x.shape[0]))
        result = self._result(model, y, free, beta=beta, events_free=self.events(model, free),
                              events_nudge=self.events(model, nudged))
        return grads, result


def spike_driven_update(model, x, s_start, record, own_kick: bool = True):
    """The spike-driven update summed over a phase and the batch: ``{name: dtheta}``.

    ``s_start``: the free states where the phase began; ``record``: per step ``(z, s)`` (spikes
    with the input first, states after the step). Returns ``dW_k`` (``d_{k+1} x d_k``) and ``db_k``.
    """
    prev = list(s_start)
    zs, ds, rs = [], [], []
    for z, s in record:
        zs.append(z)
        rs.append([x, *prev])                          # the rates the spikes were emitted at
        ds.append([a - b for a, b in zip(s, prev)])
        prev = s
    n = model.num_free_layers
    dt = model.dt
    out = {}
    cat = torch.cat

    # the kick a spike of j gives to s_i reaches s_i only where s_i is not held at a bound (0 or 1)
    free = [[((s > 0) & (s < 1)).to(s.dtype) for s in st] for _, st in record]

    def kicks(pre, post):  # sum_t [post free] z_pre (1 - rho_pre): the spikes' own kicks less their mean
        return cat([f[post] for f in free]).T @ cat([z[pre] * (1 - r[pre]) for z, r in zip(zs, rs)])

    for k in range(n):
        z_lo = cat([z[k] for z in zs])                 # (T B, d_k) spikes of the lower layer
        d_hi = cat([d[k] for d in ds])                 # (T B, d_{k+1}) state changes of the upper layer
        w = model.layers[k].weight
        dw = d_hi.T @ z_lo
        if own_kick:
            dw = dw - dt * w * kicks(k, k)
        if k >= 1:                                     # the lower layer is free: its change x upper spikes
            dw = dw + cat([z[k + 1] for z in zs]).T @ cat([d[k - 1] for d in ds])
            if own_kick:
                dw = dw - dt * w * kicks(k + 1, k - 1).T
        out[f"layers.{k}.weight"] = dw
        out[f"layers.{k}.bias"] = d_hi.sum(0)
    return out


def spike_driven_grads(model, x, s_start, record, beta):
    """``.grad`` of the spike-driven update: ``-dtheta / (beta B)`` for every trainable parameter."""
    upd = spike_driven_update(model, x, s_start, record)
    scale = -1.0 / (beta * x.shape[0])
    return {n: (upd[n] * scale if n in upd else torch.zeros_like(p)) for n, p in model.named_parameters() if p.requires_grad}


class SynapticEvents(Callback):
    """Averages the rule's per-batch synaptic event counts into the epoch record
    (``events_free``, ``events_nudge``: events per training sample in each phase)."""

    def __init__(self):
        self.sums, self.n = {}, 0

    def on_batch_end(self, trainer, batch, result):
        for k in ("events_free", "events_nudge"):
            if k in result.stats:
                self.sums[k] = self.sums.get(k, 0.0) + float(result.stats[k])
        self.n += 1

    def on_epoch_end(self, trainer, record):
        for k, v in self.sums.items():
            record[k] = v / max(self.n, 1)
        self.sums, self.n = {}, 0
