"""A spiking layered Hopfield network for EqSpike (Martin et al. 2021; REFERENCES §EqSpike).

The EP state and energy are those of ``HopfieldMLP`` (hard sigmoid, output in the energy):
``E = 1/2 sum |s_i|^2 - sum_k s_{k+1} . (W_k s_k + b_k)`` with ``s_i`` in the box ``[0, 1]``.
What changes is how neurons *communicate*: every neuron (the input pixels included) is an
integrate-and-fire (IF) unit that emits spikes ``z_i(t) in {0, 1}`` at rate ``rho(s_i) = s_i``
spikes per time step, and a neuron's state integrates the spikes it receives, with a leak:

    membrane   v_i <- (1 - leak) v_i + rho(s_i)                   (input pixels: rho = x)
    spike      z_i  = [v_i >= 1];  reset  v_i <- v_i - z_i   ("subtract")  or  v_i (1 - z_i)  ("zero")
    state      s_i <- clip(s_i + dt (-s_i + sum_j W_ij z_j + b_i + f_i), 0, 1)

(``f`` is the nudge ``-beta (s_out - y)`` on the output layer.) With ``stochastic=True`` a neuron
spikes with probability ``rho(s_i)`` instead (Bernoulli, no membrane). Replacing the spikes by the
rates (``z = rho(s)``, ``coding="rates"``) gives the time-discretised rate dynamics of EP, whose
fixed point is ``HopfieldMLP``'s: ``s_i = clip(W s + b, 0, 1)``.

Why not Norse or snnTorch: the neuron is the three lines above and it must expose the EP state
``s`` (not only its spikes) to the learning rule and the readout; a library neuron would be wrapped
around a state it does not have. docs/eqspike.md has the equations and the choices.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .hopfield import HopfieldMLP

RESETS = ("subtract", "zero")
CODINGS = ("spikes", "rates")


def if_step(v: torch.Tensor, current: torch.Tensor, leak: float = 0.0, reset: str = "subtract"):
    """One step of an integrate-and-fire neuron with threshold 1: ``(v_new, spikes)``.

    ``v <- (1 - leak) v + current``; a spike where ``v >= 1``; reset by subtracting the threshold
    (``"subtract"``: the rate equals the current exactly on average) or to zero (``"zero"``).
    """
    v = v * (1.0 - leak) + current if leak else v + current
    z = (v >= 1.0).to(v.dtype)
    v = v - z if reset == "subtract" else v * (1.0 - z)
    return v, z


def if_rate(current: float, leak: float = 0.0, reset: str = "subtract") -> float:
    """The analytic long-run firing rate (spikes per step) of ``if_step`` for a constant current.

    subtract, no leak: ``min(I, 1)``; zero reset: one spike every ``n*`` steps, ``n*`` the first
    ``n`` with ``I sum_{k<n} (1 - leak)^k >= 1`` (``ceil(1/I)`` without leak; none if
    ``I <= leak``). Subtract with a leak has no closed form here and is refused.
    """
    import math

    if current <= 0:
        return 0.0
    if reset == "subtract":
        if leak:
            raise ValueError("if_rate: no closed form for reset='subtract' with a leak")
        return min(current, 1.0)
    if not leak:
        return 1.0 / math.ceil(1.0 / current - 1e-12)
    if current <= leak:
        return 0.0
    n = math.ceil(math.log(1.0 - leak / current) / math.log(1.0 - leak) - 1e-12)
    return 1.0 / max(n, 1)


@dataclass
class SpikeState:
    """The full state of the spiking network for one batch.

    s: EP states of the free layers, ``s[i]``: (B, d_{i+1}) in [0, 1].
    v: membranes of the input layer and the free layers, ``v[0]``: (B, d_0), ``v[i + 1]``: like ``s[i]``.
    z: the spikes of the last step, like ``v``.
    """

    s: list
    v: list
    z: list


@dataclass
class PhaseTrace:
    """What one phase of ``SpikingHopfieldMLP.run_phase`` returns.

    state: the SpikeState at the end. spikes: per layer (input first) the (B, d) spike counts.
    record: per step, if asked, ``(z, s)`` (lists of (B, d) tensors, input first for ``z``).
    """

    state: SpikeState
    spikes: list
    record: list | None = None


class SpikingHopfieldMLP(HopfieldMLP):
    """``HopfieldMLP`` (hard sigmoid, ``output="mse"``) whose neurons communicate by spikes.

    Args (besides ``HopfieldMLP``'s ``sizes`` and ``gains``):
        dt: integration step of the states (their time constant is ``1/dt`` steps).
        leak: membrane leak per step of the IF neurons (0: a perfect integrator).
        reset: ``"subtract"`` (default; rate = rho exactly) or ``"zero"``.
        stochastic: Bernoulli spikes with probability ``rho`` instead of IF neurons.

    The rate-based relaxation (``relax`` with sweeps) of ``HopfieldMLP`` still works on this model,
    so every EP rule runs on the same network and weights.
    """

    def __init__(self, sizes, activation: str = "hard_sigmoid", output: str = "mse", gains=None,
                 dt: float = 0.1, leak: float = 0.0, reset: str = "subtract", stochastic: bool = False):
        if activation != "hard_sigmoid":
            raise ValueError(f"SpikingHopfieldMLP fires at rate rho(s) = clip(s, 0, 1): activation must be "
                             f"'hard_sigmoid', got {activation!r}")
        if output != "mse":
            raise ValueError(f"SpikingHopfieldMLP keeps the (spiking) output layer in the energy: output must be "
                             f"'mse', got {output!r}")
        super().__init__(sizes, activation=activation, output=output, gains=gains)
        if not 0 < dt <= 1:
            raise ValueError(f"dt must be in (0, 1] (the state's integration step), got {dt}")
        if not 0 <= leak < 1:
            raise ValueError(f"leak must be in [0, 1) (membrane leak per step), got {leak}")
        if reset not in RESETS:
            raise ValueError(f"unknown reset {reset!r}; valid: {', '.join(RESETS)}")
        self.dt, self.leak, self.reset, self.stochastic = float(dt), float(leak), reset, bool(stochastic)

    # -- the spiking dynamics ----------------------------------------------------------------------
    def init_spike_state(self, x: torch.Tensor, generator: torch.Generator | None = None) -> SpikeState:
        """States at 0, membranes at random phases in [0, 1) (so neurons of equal rate do not fire in
        lockstep), no spikes yet."""
        b, dt, dev = x.shape[0], self.param_dtype, self.param_device
        sizes = [self.sizes[0], *self.free_sizes]
        s = [torch.zeros(b, d, dtype=dt, device=dev) for d in self.free_sizes]
        v = [torch.rand(b, d, dtype=dt, device=dev, generator=generator) for d in sizes]
        return SpikeState(s=s, v=v, z=[torch.zeros_like(t) for t in v])

    def emit(self, v: torch.Tensor, rate: torch.Tensor, generator=None):
        """Spikes of one layer for one step at ``rate`` (spikes per step): ``(v_new, z)``."""
        if self.stochastic:
            return v, (torch.rand(rate.shape, dtype=rate.dtype, device=rate.device, generator=generator) < rate).to(rate.dtype)
        return if_step(v, rate, self.leak, self.reset)

    def step(self, x: torch.Tensor, st: SpikeState, coding: str = "spikes", beta: float = 0.0,
             y1h: torch.Tensor | None = None, generator=None, input_drive=None) -> SpikeState:
        """One time step: every neuron emits (from its current rate), then every state integrates
        what it received. ``x``: (B, d_0) in [0, 1]; ``y1h``: one-hot targets for ``beta != 0``."""
        rates = [x, *st.s]
        if coding == "spikes":
            vz = [self.emit(v, r, generator) for v, r in zip(st.v, rates)]
            v, z = [a for a, _ in vz], [b for _, b in vz]
        else:
            v, z = st.v, rates
        n = self.num_free_layers
        s = []
        for i in range(n):
            # W_i z_i + b_i from the layer below; constant input rates: W_0 x + b_0 once per phase
            u = input_drive if i == 0 and input_drive is not None else self.layers[i](z[i])
            if i + 1 < n:
                u = u + z[i + 2] @ self.layers[i + 1].weight
            if beta and i == n - 1:
                u = u - beta * (st.s[i] - y1h)
            s.append((st.s[i] + self.dt * (u - st.s[i])).clamp_(0.0, 1.0))
        return SpikeState(s=s, v=v, z=z)

    def fan_out(self) -> list[int]:
        """Synapses each neuron's spike reaches, per layer (input first): the layers above and below
        it (the clamped input receives none)."""
        sizes, n = self.sizes, len(self.sizes)
        return [(sizes[k + 1] if k + 1 < n else 0) + (sizes[k - 1] if k >= 2 else 0) for k in range(n)]

    def rate_flops(self, free_steps: int, nudge_steps: int = 0, train: bool = True) -> int:
        """Matrix-product FLOPs per sample (2 per multiply-add) of the *rate-based* network
        (``coding="rates"``) for one training step (``train``: free + nudged phase + EP contrast) or
        one inference (free phase only): the input drive ``W_0 x`` once per phase, every other
        coupling twice per time step (up and down), the contrast one product per coupling over the
        two stacked phases (the input coupling over their difference). Elementwise operations are not counted."""
        s = self.sizes
        inner = sum(4 * s[k] * s[k + 1] for k in range(1, len(s) - 1))
        drive = 2 * s[0] * s[1]
        if not train:
            return drive + free_steps * inner
        contrast = drive + sum(4 * s[k] * s[k + 1] for k in range(1, len(s) - 1))  # input: same in both phases
        return 2 * drive + (free_steps + nudge_steps) * inner + contrast

    @torch.no_grad()
    def run_phase(self, x: torch.Tensor, st: SpikeState, steps: int, coding: str = "spikes", beta: float = 0.0,
                  y1h=None, record: bool = False, generator=None) -> PhaseTrace:
        """``steps`` time steps from ``st``; returns the end state, the spike counts per neuron and,
        with ``record``, every step's spikes and states."""
        if coding not in CODINGS:
            raise ValueError(f"unknown coding {coding!r}; valid: {', '.join(CODINGS)}")
        counts = [torch.zeros_like(v) for v in st.v]
        rec = [] if record else None
        drive = self.layers[0](x) if coding == "rates" else None
        for _ in range(steps):
            st = self.step(x, st, coding, beta, y1h, generator, drive)
            if coding == "spikes":
                for c, z in zip(counts, st.z):
                    c.add_(z)
            if record:
                rec.append((st.z, st.s))
        return PhaseTrace(state=st, spikes=counts, record=rec)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", dt={self.dt}, leak={self.leak}, reset={self.reset!r}"
                + (", stochastic=True" if self.stochastic else ""))
