"""``check_model``: is a (user's) energy-based model fit for the rules?

On a float64 copy and a small random batch it checks, in order:

1. ``update``: the fast ``layer_update`` equals the autograd update of the energy
   (``EnergyModel.autograd_layer_update``: ``sigma(G'(s_i) - dE/ds_i + force)``) in every layer,
   at random states and with a random force on the output layer;
2. ``bptt`` / ``rbp``: the two exact-gradient rules can differentiate the model (finite,
   non-zero gradients) and agree with each other;
3. ``finite differences``: RBP's gradient equals central finite differences of
   ``eqprop.equilibrium_loss`` along random directions of the parameters;
4. with ``rule``: ``rule.check_model(model)`` accepts it, and the rule's estimate compared with
   RBP (cosine and relative error).

It returns a ``ModelCheck`` (``.ok``, ``.table()``, ``.raise_if_failed()``) and warns when a
check fails (``strict=True`` raises instead). See docs/own_model.md.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch

from ..functional import equilibrium_loss
from ..rules.base import trainable
from ..rules.reference import BPTT, RBP
from .common import cast_copy


@dataclass
class ModelCheck:
    """Rows ``{check, ok, value, detail}``; ``ok`` is True, False or None (not applicable)."""

    model: str
    rows: list[dict] = field(default_factory=list)

    def add(self, check: str, ok, value: float = math.nan, detail: str = "") -> None:
        self.rows.append({"check": check, "ok": ok, "value": value, "detail": detail})

    @property
    def ok(self) -> bool:
        return all(r["ok"] is not False for r in self.rows)

    def failures(self) -> list[dict]:
        return [r for r in self.rows if r["ok"] is False]

    def table(self) -> str:
        w = max(len("check"), *(len(r["check"]) for r in self.rows))
        head = f"{'check':<{w}}  {'result':<6}  {'value':>10}  detail"
        lines = [f"check_model({self.model}), float64", head, "-" * len(head)]
        for r in self.rows:
            res = {True: "ok", False: "FAIL", None: "n/a"}[r["ok"]]
            lines.append(f"{r['check']:<{w}}  {res:<6}  {r['value']:>10.3e}  {r['detail']}")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise ValueError("the model failed check_model:\n" + self.table())

    def __str__(self) -> str:
        return self.table()


def _flat(grads: dict) -> torch.Tensor:
    return torch.cat([g.flatten() for g in grads.values()])


def _compare(g: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    gn, rn = float(g.norm()), float(ref.norm())
    cos = float(g @ ref) / (gn * rn) if gn > 0 and rn > 0 else math.nan
    rel = float((g - ref).norm()) / rn if rn > 0 else math.nan
    return cos, rel


def random_batch(model, batch: int, generator: torch.Generator, input_shape=None):
    """A batch ``x`` (uniform in [0, 1]) of ``input_shape`` (default: from ``model.sizes[0]`` or
    ``model.in_shape``) and class labels ``y`` for ``model.num_outputs`` classes."""
    if input_shape is None:
        if hasattr(model, "in_shape"):
            input_shape = tuple(model.in_shape)
        elif hasattr(model, "sizes"):
            input_shape = (model.sizes[0],)
        else:
            raise ValueError(f"check_model cannot tell the input shape of {type(model).__name__}: pass x= "
                             f"(a batch) or input_shape=")
    x = torch.rand(batch, *input_shape, generator=generator, dtype=torch.float64)
    n_out = getattr(model, "num_outputs", None)
    if n_out is None:
        n_out = model.output(model.init_state(model.context(x).x)).shape[-1]
    y = torch.randint(0, int(n_out), (batch,), generator=generator)
    return x, y


def _check_update(m, x, report: ModelCheck, generator, update_tol: float) -> None:
    if not hasattr(m, "autograd_layer_update") or not hasattr(m, "activation"):
        report.add("update = autograd", None, detail="no activation / autograd_layer_update: not checked")
        return
    ctx = m.context(x)
    shapes = [t.shape for t in m.init_state(ctx.x)]
    with torch.no_grad():
        act = getattr(m, "activation_of", lambda i: m.activation)
        state = [act(i)(2 * torch.randn(s, generator=generator, dtype=torch.float64)) for i, s in enumerate(shapes)]
        worst, where = 0.0, ""
        for i in range(m.num_free_layers):
            force = None  # a nudge-like extra drive on the output layer
            if i == m.output_index:
                force = torch.randn(state[i].shape, generator=generator, dtype=torch.float64)
            fast = m.layer_update(i, state, ctx, force)
            slow = m.autograd_layer_update(i, state, ctx, force)
            err = float((fast - slow).abs().max()) / max(float(slow.abs().max()), 1e-300)
            if err > worst or not where:
                worst, where = err, f"layer {i}"
    ok = worst <= update_tol
    report.add("update = autograd", ok, worst,
               f"max rel. difference ({where}); <= {update_tol:g}" if ok else
               f"layer_update differs from the energy's autograd update at {where}: check the hand-derived update "
               f"or the energy")


def check_model(model, rule=None, x: torch.Tensor | None = None, y: torch.Tensor | None = None, *,
                input_shape=None, batch: int = 4, steps: int = 2000, tol: float = 1e-13, mode: str = "async",
                directions: int = 3, h: float = 1e-5, seed: int = 0, update_tol: float = 1e-10,
                fd_tol: float = 1e-5, min_cosine: float = 0.99, strict: bool = False) -> ModelCheck:
    """Check a model against the contract and the exact gradient; see the module docstring.

    Args:
        model: an ``EnergyModel`` (or any model following docs/own_model.md). Not changed: the
            checks run on a float64 copy.
        rule: optionally a rule object to check on the model (its own settings are used).
        x, y: a batch to check on (default: ``batch`` random inputs of ``input_shape`` and labels).
        steps, tol, mode: the relaxation budget of the references (converged: small ``tol``).
        directions, h: random directions and step of the central finite differences.
        update_tol: largest relative difference allowed between the fast and autograd updates.
        fd_tol: largest relative error allowed between RBP and finite differences.
        min_cosine: smallest cosine allowed between ``rule``'s estimate and RBP.
        strict: raise ``ValueError`` (with the table) on a failure instead of warning.
    """
    gen = torch.Generator().manual_seed(seed)
    m, _ = cast_copy(model, torch.zeros(()), torch.float64)
    if x is None:
        x, y0 = random_batch(m, batch, gen, input_shape)
        y = y0 if y is None else y
    elif y is None:
        raise ValueError("give y with x")
    x = x.to(torch.float64) if x.is_floating_point() else x
    report = ModelCheck(model=type(model).__name__)

    def attempt(name, fn):
        try:
            return fn()
        except Exception as e:  # a failing check is reported, not raised (unless strict)
            report.add(name, False, detail=f"{type(e).__name__}: {e}")
            return None

    attempt("update = autograd", lambda: _check_update(m, x, report, gen, update_tol))
    rbp = attempt("rbp", lambda: RBP(free_steps=steps, tol=tol, mode=mode, resettle=0).estimate(m, x, y)[0])
    bptt = attempt("bptt", lambda: BPTT(free_steps=min(steps, 200), mode=mode).estimate(m, x, y)[0])
    for name, g in (("rbp", rbp), ("bptt", bptt)):
        if g is None:
            continue
        flat = _flat(g)
        finite, norm = bool(torch.isfinite(flat).all()), float(flat.norm())
        ok = finite and norm > 0
        report.add(name, ok, norm, "|grad|: finite and non-zero" if ok else
                   ("non-finite gradient" if not finite else "all-zero gradient: the update is not differentiable"))
    if rbp is not None and bptt is not None:
        cos, rel = _compare(_flat(bptt), _flat(rbp))
        report.add("bptt vs rbp", None, rel, f"rel. error (cosine {cos:.6f}); BPTT through 200 sweeps, for information")
    if rbp is not None:
        attempt("finite differences", lambda: _check_fd(m, x, y, rbp, report, gen, steps, tol, mode, directions, h,
                                                       fd_tol))
    if rule is not None:
        label = getattr(rule, "name", type(rule).__name__)
        ok = attempt(f"{label}: check_model", lambda: rule.check_model(m) is None)
        if ok:
            report.add(f"{label}: check_model", True, detail="accepted")
            g = attempt(f"{label} vs rbp", lambda: rule.estimate(m, x, y)[0])
            if g is not None and rbp is not None:
                cos, rel = _compare(_flat(g), _flat(rbp))
                report.add(f"{label} vs rbp", cos >= min_cosine, rel,
                           f"rel. error; cosine {cos:.6f} (>= {min_cosine:g} required)")
    if not report.ok:
        if strict:
            report.raise_if_failed()
        warnings.warn("check_model found problems:\n" + report.table(), stacklevel=2)
    return report


def _check_fd(m, x, y, rbp, report, gen, steps, tol, mode, directions, h, fd_tol):
    params = [p for _, p in trainable(m)]
    worst = 0.0
    for _ in range(directions):
        v = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
        scale = math.sqrt(sum(float((t * t).sum()) for t in v))
        v = [t / scale for t in v]
        exact = sum(float((g * t).sum()) for g, t in zip(rbp.values(), v))
        losses = []
        with torch.no_grad():
            for sign in (1, -1):
                for p, t in zip(params, v):
                    p.add_(sign * h * t)
                losses.append(float(equilibrium_loss(m, x, y, steps=steps, tol=tol, mode=mode)))
                for p, t in zip(params, v):
                    p.sub_(sign * h * t)
        fd = (losses[0] - losses[1]) / (2 * h)
        worst = max(worst, abs(fd - exact) / max(abs(exact), abs(fd), 1e-300))
    ok = worst <= fd_tol
    report.add("finite differences", ok, worst,
               f"max rel. error of RBP vs central differences along {directions} directions (h={h:g})" if ok else
               "RBP disagrees with finite differences of equilibrium_loss: the update is not the energy's "
               "minimiser, or the relaxation does not converge (raise steps)")
