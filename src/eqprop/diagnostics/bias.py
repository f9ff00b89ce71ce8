"""Bias decomposition of an EP-family estimator: finite-nudge bias vs asymmetry bias.

For a nudge ``beta`` the estimate ``g_beta`` differs from the exact gradient ``g*`` (RBP:
implicit differentiation of the fixed point) for two reasons (Laborieux & Zenke 2024):

    g_beta - g*  =  (g_beta - g_0)   +   (g_0 - g*)
                    finite nudge         asymmetry

where ``g_0 = lim_{beta -> 0} g_beta`` is the estimator with an infinitesimal nudge. ``g_0`` is
computed exactly, with no nudge at all: the linear response ``D = ds*_beta/dbeta`` at 0 solves
``D = J_f D + df/dbeta`` (``f`` = one sweep of the relaxation, ``J_f`` its state Jacobian), by
forward-mode differentiation (``linear_response``), and then

    g_0 = d/dtheta [ dPsi/ds (s*) . D + C(s*) ]

with ``Psi = model.contrast_energy`` (the energy for symmetric models, the pseudo-energy for
vector fields). For a symmetric (energy) model the asymmetry part is zero up to the solver's
tolerance; the finite-nudge part is what holomorphic EP removes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..dynamics import Nudge, iterate, relax, sweep
from ..rules import make_rule
from ..rules.base import as_grad_dict, trainable
from .common import cast_copy


def linear_response(model, x, y, state, mode: str = "async", steps: int = 2000, tol: float | None = 1e-13, ctx=None):
    """``ds*_beta/dbeta`` at ``beta = 0`` around the free fixed point ``state``; list like ``state``."""
    ctx = model.context(x) if ctx is None else ctx
    s = tuple(t.detach() for t in state)

    def f(beta, *s):
        return tuple(sweep(model, list(s), ctx, mode, nudge=Nudge(beta, y)))

    beta0 = torch.zeros((), dtype=s[0].dtype, device=s[0].device)
    d = [torch.zeros_like(t) for t in s]
    with torch.no_grad():
        d, _, _ = iterate(lambda d: list(torch.func.jvp(f, (beta0, *s), (torch.ones_like(beta0), *d))[1]), d,
                          steps, tol)
    return list(d)


def infinitesimal_estimate(model, x, y, state, response) -> dict[str, torch.Tensor]:
    """``g_0``: the EP-family estimator's limit for an infinitesimal nudge (see module doc)."""
    params = [p for _, p in trainable(model)]
    anchor = [t.detach() for t in state]
    with torch.enable_grad():
        s = [t.detach().requires_grad_(True) for t in state]
        psi = model.contrast_energy(x, s, y, 0.0, anchor).sum()
        gs = torch.autograd.grad(psi, s, create_graph=True)
        total = sum((g * d).sum() for g, d in zip(gs, response)) + model.cost(anchor, y).sum()
        grads = torch.autograd.grad(total / x.shape[0], params, allow_unused=True)
    return as_grad_dict(model, grads)


def _flat(g: dict) -> torch.Tensor:
    return torch.cat([v.flatten() for v in g.values()])


def _cos(a, b) -> float:
    return float(a @ b / (a.norm() * b.norm()))


@dataclass
class BiasDecomposition:
    """Relative biases (``/ ||g*||``) of ``rule`` against ``reference``, all parameters together.

    total = ||g_beta - g*||, nudge = ||g_beta - g_0||, asymmetry = ||g_0 - g*||;
    ``rows`` has the same per parameter.
    """

    rule: str
    reference: str
    total: float
    nudge: float
    asymmetry: float
    cosine: float            # cos(g_beta, g*)
    cosine_infinitesimal: float  # cos(g_0, g*)
    rows: list[dict] = field(default_factory=list)
    grads: dict = field(default_factory=dict, repr=False)  # "rule", "infinitesimal", "reference"

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("rule", "reference", "total", "nudge", "asymmetry", "cosine",
                                              "cosine_infinitesimal", "rows")}

    def table(self) -> str:
        lines = [f"bias of {self.rule} against {self.reference} (relative to |g*|)",
                 f"{'parameter':<20} {'total':>10} {'nudge':>10} {'asymmetry':>10}"]
        for r in self.rows + [{"param": "all", "total": self.total, "nudge": self.nudge, "asymmetry": self.asymmetry}]:
            lines.append(f"{r['param']:<20} {r['total']:>10.3e} {r['nudge']:>10.3e} {r['asymmetry']:>10.3e}")
        return "\n".join(lines)


def bias_decomposition(model, x, y, rule="ep-centered", reference: str = "rbp",
                       dtype: torch.dtype | None = torch.float64, **settings) -> BiasDecomposition:
    """Split ``rule``'s bias into its finite-nudge and asymmetry parts, on one batch.

    ``settings`` go to both rules (``beta``, ``free_steps``, ``nudge_steps``, ``tol``,
    ``adjoint_steps``, ``mode``, ...); give converged budgets. A copy of the model is cast to
    ``dtype`` (None keeps it).
    """
    m, x = cast_copy(model, x, dtype)
    rule_obj = make_rule(rule, **settings)
    ref = make_rule(reference, **settings).estimate(m, x, y)[0]
    g = rule_obj.estimate(m, x, y)[0]
    mode = settings.get("mode", "async")
    free = relax(m, x, steps=settings.get("free_steps", 1000), mode=mode, tol=settings.get("tol", 1e-13))
    resp = linear_response(m, x, y, free.state, mode=mode, steps=settings.get("adjoint_steps", 2000),
                           tol=settings.get("tol", 1e-13))
    g0 = infinitesimal_estimate(m, x, y, free.state, resp)
    names = list(ref)
    rows = []
    for n in names:
        rn = float(ref[n].norm()) or float("nan")
        rows.append({"param": n, "total": float((g[n] - ref[n]).norm()) / rn,
                     "nudge": float((g[n] - g0[n]).norm()) / rn, "asymmetry": float((g0[n] - ref[n]).norm()) / rn})
    fg, f0, fr = _flat(g), _flat(g0), _flat(ref)
    rn = float(fr.norm())
    label = rule if isinstance(rule, str) else type(rule).__name__
    return BiasDecomposition(
        rule=label, reference=reference, total=float((fg - fr).norm()) / rn, nudge=float((fg - f0).norm()) / rn,
        asymmetry=float((f0 - fr).norm()) / rn, cosine=_cos(fg, fr), cosine_infinitesimal=_cos(f0, fr), rows=rows,
        grads={"rule": g, "infinitesimal": g0, "reference": ref},
    )
