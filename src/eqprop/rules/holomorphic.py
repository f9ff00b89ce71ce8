"""Holomorphic equilibrium propagation (Laborieux & Zenke 2022; REFERENCES §2).

If the energy ``E`` and the cost ``C`` are holomorphic in the state, the nudged equilibrium
``b -> s*_b`` of ``F_b = E + b C`` is holomorphic in the (complex) nudge ``b``, and so is
``f(b) = dF_b/dtheta (s*_b)``. The gradient ``dL/dtheta = f'(0)`` is then a Cauchy integral,
which the trapezoid rule on ``N`` points ``b_k = r exp(2 pi i k / N)`` of a circle of radius
``r`` evaluates with an error that falls *geometrically* in ``N`` at fixed, finite ``r``:

    dL/dtheta ~= Re[ 1/(N r) sum_k exp(-2 pi i k / N) dF_{b_k}/dtheta (s*_{b_k}) ]

``N = 2`` is centered EP (``b = +-r``). The states are complex; the parameters stay real (they
are cast to the state's dtype inside the model). Each of the ``N`` nudged phases starts from the
free equilibrium; ``batched=True`` stacks them along the batch dimension and runs them as one
relaxation (``N`` times the batch, one call: faster on wide hardware).

The same estimator applies to vector-field models (generalized EP), through their
``contrast_energy``.
"""
from __future__ import annotations

import cmath
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..dynamics import Nudge, relax
from ..precision import cast_state, resolve
from .base import RelaxationRule, check_nudge, weighted_contrast

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128, torch.float16: torch.complex64,
            torch.bfloat16: torch.complex64}


def cauchy_points(N: int, radius: float) -> list[complex]:
    """``b_k = r exp(2 pi i k / N)``, k = 0..N-1, with the points on the axes exact (so that
    ``N = 2`` gives exactly ``+r, -r`` and ``N = 4`` exactly ``+-r, +-ir``)."""
    pts = []
    for k in range(N):
        if (4 * k) % N == 0:
            pts.append(radius * (1, 1j, -1, -1j)[(4 * k) // N])
        else:
            pts.append(radius * cmath.exp(2j * math.pi * k / N))
    return pts


def cauchy_weights(N: int, radius: float) -> list[complex]:
    """``w_k = exp(-2 pi i k / N) / (N r) = conj(b_k) / (N r^2)``; they sum to 0 and
    ``sum_k w_k b_k = 1`` (the weights of the derivative at 0)."""
    return [b.conjugate() / (N * radius * radius) for b in cauchy_points(N, radius)]


def require_holomorphic(model, rule: str = "holomorphic EP") -> None:
    if not getattr(model, "holomorphic", False):
        act = getattr(getattr(model, "activation", None), "name", None)
        raise ValueError(
            f"{rule} needs a model whose energy and updates are holomorphic in the state; "
            f"{type(model).__name__} with activation={act!r} is not (the hard sigmoid's clamp has no "
            f"complex extension). Build the model with activation='sigmoid'."
        )


@dataclass
class HolomorphicEP(RelaxationRule):
    """Holomorphic EP: ``N`` complex nudges on a circle of radius ``radius``, Cauchy estimator.

    N: number of points on the circle (>= 2; 2 is centered EP).
    radius: ``r = |b|``; when built by name (configs, ``make_rule``) it defaults to ``beta``.
    nudge_steps: sweeps of each nudged phase (from the free equilibrium).
    batched: run the ``N`` nudged phases as one relaxation of ``N * B`` samples.
    relax_dtype: every phase relaxes the copy in that dtype (complex states in the matching
        complex dtype); refused for 16-bit types when a nudge is complex (``N != 2``): torch has
        no bfloat16 complex type and too few complex32 operations.
    """

    name: ClassVar[str] = "hep"
    setting_aliases: ClassVar[dict] = {"radius": "beta"}  # by name, radius defaults to beta
    N: int = 4
    radius: float = 0.2
    nudge_steps: int = 10
    batched: bool = False

    def __post_init__(self):
        super().__post_init__()
        if int(self.N) != self.N or self.N < 2:
            raise ValueError(f"N must be an integer >= 2 (2 is centered EP), got {self.N}")
        check_nudge("radius", self.radius)
        low = resolve(self.relax_dtype) in (torch.bfloat16, torch.float16)
        if low and any(b.imag != 0 for b in cauchy_points(int(self.N), 1.0)):
            raise ValueError(
                f"hep: relax_dtype={self.relax_dtype!r} cannot be honoured with N={self.N} complex nudges "
                f"(torch has no 16-bit complex type for these operations); use relax_dtype='float32' or None, "
                f"or N=2 (real nudges +-radius)"
            )

    def check_model(self, model):
        super().check_model(model)
        require_holomorphic(model)
        check_nudge("radius", self.radius, self.state_dtype(model))

    def nudged_states(self, model, x, y, ctx, free) -> tuple[list, list, list]:
        """The ``N`` nudged equilibria: (states, nudges, weights), or one batched triple.

        With ``batched``, the single state has ``N * B`` rows (phase k in rows k*B..(k+1)*B-1)
        and nudges/weights are (N*B,) tensors.
        """
        N, r = int(self.N), self.radius
        pts, ws = cauchy_points(N, r), cauchy_weights(N, r)
        real = all(b.imag == 0 for b in pts)
        dtype = free.state[0].dtype
        sdtype = dtype if real else _COMPLEX.get(dtype, torch.complex128)
        if real:
            pts, ws = [b.real for b in pts], [w.real for w in ws]
        start = [s.to(sdtype) for s in free.state]
        B = x.shape[0]
        run = dict(steps=self.nudge_steps, mode=self.mode, tol=self.tol)
        if not self.batched:
            states = [relax(model, x, start, nudge=Nudge(b, y), ctx=ctx, **run).state for b in pts]
            return states, pts, [w / B for w in ws]
        xs, ys = _repeat(x, N), _repeat(y, N)
        dev = free.state[0].device
        beta = torch.tensor(pts, dtype=sdtype, device=dev).repeat_interleave(B)
        w = torch.tensor(ws, dtype=sdtype, device=dev).repeat_interleave(B) / B
        state = relax(model, xs, [_repeat(s, N) for s in start], nudge=Nudge(beta, ys), **run).state
        return [state], [beta], [w]

    def estimate(self, model, x, y):
        system, ctx, free = self.settle(model, x)
        states, betas, weights = self.nudged_states(system, x, y, ctx, free)
        free.state = cast_state(free.state, model)
        states = [cast_state(s, model) for s in states]
        if self.batched:
            N = int(self.N)
            xs, ys, anchor = _repeat(x, N), _repeat(y, N), [_repeat(s, N) for s in free.state]
        else:
            xs, ys, anchor = x, y, free.state
        grads = weighted_contrast(model, xs, ys, list(zip(states, betas, weights)), anchor=anchor)
        return grads, self.result(model, y, free, N=int(self.N), radius=self.radius)


def _repeat(t: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` copies of ``t`` stacked along the batch dimension: (n * B, ...)."""
    return t.repeat(n, *([1] * (t.dim() - 1)))
