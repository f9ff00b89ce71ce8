"""What every learning rule shares: its result type, ``.grad`` writing and the energy contrast.

A rule is configuration only (a dataclass whose fields are exactly the settings it uses) with one
method that matters, ``estimate(model, x, y) -> (grads, StepResult)``: ``grads`` maps each
trainable parameter's name (as in ``model.named_parameters()``) to the rule's estimate of
``dL/dtheta`` where ``L = mean_batch C(s*_0, y)``. ``step`` adds those estimates to ``p.grad``
like ``backward`` would; ``infer`` evaluates without a gradient.

Two bases:

- ``Rule``: the contract alone (``estimate``, ``step``, ``infer``, ``check_model``), no settings;
  e.g. RHEL, which runs sequence models forward and never relaxes.
- ``RelaxationRule(Rule)``: rules that settle the model with ``relax``; they carry the free-phase
  settings ``free_steps, mode, tol, relax_dtype, eval_steps`` and the shared pieces
  (``settle``, ``free_phase``, ``relaxer``, ``result``).

``check_model`` runs before every ``estimate`` and ``infer`` of every rule, a user's subclass
included: ``Rule.__init_subclass__`` wraps the two methods.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..dynamics import MODES, Relaxed, relax
from ..precision import cast_state, relaxation_copy, resolve


@dataclass
class StepResult:
    """What a rule returns for one batch.

    loss: mean cost at the free state (scalar, detached).
    output: the model's prediction at the free state, (B, num_outputs), detached.
    state: the free state (list of detached tensors), e.g. for warm starts.
    stats: numbers about the step (sweeps used, residuals, the beta used, ...).
    """

    loss: torch.Tensor
    output: torch.Tensor
    state: list
    stats: dict = field(default_factory=dict)


def trainable(model) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def as_grad_dict(model, grads) -> dict[str, torch.Tensor]:
    """Pair gradients (in ``trainable`` order, ``None`` for unused) with names; None -> zeros."""
    return {
        n: (torch.zeros_like(p) if g is None else g.detach())
        for (n, p), g in zip(trainable(model), grads)
    }


def weighted_contrast(model, x, y, terms, anchor=None) -> dict[str, torch.Tensor]:
    """``d/dtheta Re sum_k w_k Psi_{beta_k}(s_k)`` summed over the batch, the states held fixed.

    ``terms``: ``(state, beta_k, w_k)`` triples; ``w_k`` and ``beta_k`` are numbers (real or
    complex) or (B,) tensors (phases batched along the batch dimension). ``Psi`` is
    ``model.contrast_energy``: ``F_beta = E + beta C`` for energy models, the vector field's
    pseudo-energy around ``anchor`` (the free state) for vector-field models. Every EP-family
    estimator is one such weighted sum with weights that add up to zero: centered EP is
    ``[(s*_b, b, 1/(2bB)), (s*_-b, -b, -1/(2bB))]``, holomorphic EP puts ``N`` complex states
    on a circle with the weights of the Cauchy formula.

    Computed in closed form by ``model.contrast_grads`` where the model provides it (layered
    energies: one product per coupling over the stacked phases, see ``HopfieldMLP`` and
    ``ConvHopfield``) and it does not decline (returns ``None``); otherwise by autograd of the
    contrast energy (``autograd_contrast``, the reference the closed forms are tested against).
    """
    fast = getattr(model, "contrast_grads", None)
    if fast is not None:
        with torch.no_grad():
            grads = fast(x, y, terms, anchor)
        if grads is not None:
            return FreshGrads.of(grads)
    return autograd_contrast(model, x, y, terms, anchor)


class FreshGrads(dict):
    """A ``grads`` dict whose tensors were made for this call alone (distinct, not views, held
    nowhere else): ``Rule.step`` hands them to an empty ``.grad`` without a copy."""

    @classmethod
    def of(cls, grads: dict) -> dict:
        """``grads`` marked fresh when its tensors are distinct non-views; unchanged otherwise."""
        ts = list(grads.values())
        if all(isinstance(t, torch.Tensor) and not t._is_view() for t in ts) and len({id(t) for t in ts}) == len(ts):
            return cls(grads)
        return grads


def autograd_contrast(model, x, y, terms, anchor=None) -> dict[str, torch.Tensor]:
    """``weighted_contrast`` by autograd of ``model.contrast_energy`` at each state: the generic
    path for every model, and the reference the models' closed forms are tested against."""
    params = [p for _, p in trainable(model)]
    anchor = None if anchor is None else [t.detach() for t in anchor]
    with torch.enable_grad():
        total = 0.0
        for state, beta, w in terms:
            psi = model.contrast_energy(x, [t.detach() for t in state], y, beta, anchor)
            total = total + (w * psi).sum()
        if total.is_complex():
            total = total.real
        grads = torch.autograd.grad(total, params, allow_unused=True)
    return as_grad_dict(model, grads)


def energy_contrast(model, x, y, a, beta_a, b, beta_b, scale: float, anchor=None) -> dict[str, torch.Tensor]:
    """``scale * d/dtheta [F_{beta_a}(s_a) - F_{beta_b}(s_b)]`` summed over the batch, states fixed.

    ``F_beta = E + beta * C`` (``model.contrast_energy``; ``anchor`` is the free state, used by
    vector-field models). E.g. centered EP is ``a = s*_{+beta}, b = s*_{-beta}, scale = 1 / (2 beta B)``.
    """
    return weighted_contrast(model, x, y, [(a, beta_a, scale), (b, beta_b, -scale)], anchor)


def _checked(method):
    """``method`` preceded by ``self.check_model(model)`` (once per call, not per ``super()`` level)."""
    if getattr(method, "_checks_model", False):
        return method

    @functools.wraps(method)
    def wrapper(self, model, *args, **kwargs):
        if not getattr(self, "_checking", False):
            self.check_model(model)
        outer, self._checking = getattr(self, "_checking", False), True
        try:
            return method(self, model, *args, **kwargs)
        finally:
            self._checking = outer

    wrapper._checks_model = True
    return wrapper


def check_nudge(name: str, value: float, dtype: torch.dtype = torch.float64) -> None:
    """Refuse a nudge size (``beta``, ``radius``) that is not a finite number > 0, or that is below
    10x the resolution (machine epsilon) of ``dtype``, the dtype the states are relaxed in: the
    nudged state would then equal the free one to rounding, and the estimate be rounding noise.
    Rules call it in ``__post_init__`` (float64, the finest dtype, so absurd values fail before any
    data is loaded) and again in ``check_model`` with the dtype actually used."""
    try:
        value = float(value)  # numpy and 0-d torch numbers too
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number > 0, got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be > 0 and finite (the variant sets the sign), got {value}")
    floor = 10 * torch.finfo(dtype).eps
    if value < floor:
        raise ValueError(
            f"{name}={value:g} is below 10x the {str(dtype).replace('torch.', '')} resolution "
            f"({torch.finfo(dtype).eps:.3g}): the nudged state would equal the free one and the gradient "
            f"would be rounding noise; use {name} >= {floor:.3g} (typically 0.01 to 0.5), or relax in float64"
        )


def require_relaxable(rule_name: str, model) -> None:
    """``ValueError`` unless ``model`` is one relaxable system (``layer_update``/``context``)."""
    if getattr(model, "is_sequence_model", False):
        raise ValueError(
            f"rule {rule_name!r} relaxes an energy-based model; {type(model).__name__} is a sequence "
            f"model: train it with 'bptt' or 'rhel'"
        )
    missing = [a for a in ("layer_update", "context", "init_state", "update_groups") if not hasattr(model, a)]
    if missing:
        chain = hasattr(model, "blocks")
        fix = ("a chain of blocks (eqprop.models.FFEBM) is trained with 'ffebm' (EP in the blocks) or "
               "'ffebm-implicit' (its exact gradient)") if chain else (
               "subclass eqprop.models.EnergyModel and provide them (docs/own_model.md)")
        raise ValueError(
            f"rule {rule_name!r} relaxes a single system; {type(model).__name__} is not one "
            f"(it lacks {', '.join(missing)}): {fix}"
        )


@dataclass
class Rule:
    """The contract every rule follows; no settings of its own.

    Subclasses are dataclasses whose fields are their settings, and implement ``estimate``
    (and ``infer`` when the default, a relaxation, does not apply). ``check_model`` runs first in
    ``estimate`` and ``infer`` (wrapped automatically for subclasses), so a rule refuses a model it
    cannot train with a ``ValueError`` naming the fix instead of failing inside.
    """

    name: ClassVar[str] = "rule"
    supports_warm_start: ClassVar[bool] = False  # estimate(..., state=) starts the free phase there

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        for attr in ("estimate", "infer"):
            if attr in cls.__dict__:
                setattr(cls, attr, _checked(cls.__dict__[attr]))

    def estimate(self, model, x, y) -> tuple[dict[str, torch.Tensor], StepResult]:
        """``(grads, StepResult)``: ``grads[name]`` estimates ``dL/dtheta`` for every trainable
        parameter (zeros for those the rule does not train)."""
        raise NotImplementedError

    def infer(self, model, x, y, steps: int | None = None) -> StepResult:
        """Inference only (evaluation): loss and prediction without a gradient."""
        raise NotImplementedError

    def check_model(self, model) -> None:
        """Raise ``ValueError`` (naming the fix) when the rule cannot run on ``model``.

        Default: accept every model (``RelaxationRule`` requires a relaxable system).
        """

    def step(self, model, x, y, **kw) -> StepResult:
        """Estimate the gradient and add it to each parameter's ``.grad``.

        ``kw``: passed to ``estimate``, e.g. ``state=`` (a warm start) for rules with
        ``supports_warm_start``.
        """
        grads, result = self.estimate(model, x, y, **kw)
        fresh = isinstance(grads, FreshGrads)
        for n, p in trainable(model):
            g = grads[n]
            if p.grad is None:
                p.grad = g if fresh and g.dtype == p.dtype else g.clone()
            else:
                p.grad.add_(g)
        return result


@dataclass
class RelaxationRule(Rule):
    """A rule that settles the model with ``relax``: the free-phase settings and shared pieces.

    free_steps: sweep budget of the free phase (training).
    mode: "async" (layers in groups, newest values) or "sync".
    tol: stop a relaxation once a sweep changes no state entry by more than ``tol``.
    relax_dtype: relax a low-precision copy (e.g. "bfloat16"; see ``eqprop.precision``), the
        gradient being taken on the master weights; None relaxes the model itself.
    eval_steps: free sweeps at inference (``infer`` without ``steps``); None: ``free_steps``.
    capture: run each relaxation phase (free, nudged, clamped) as a captured graph
        (``eqprop.capture``: a replayed CUDA graph on CUDA devices); needs ``tol=None``. Off by
        default; on other devices the same plumbing runs without a graph (no speed-up).
    """

    free_steps: int = 30
    mode: str = "async"
    tol: float | None = None
    relax_dtype: str | None = None
    eval_steps: int | None = None
    capture: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown relaxation mode {self.mode!r}; valid modes: {', '.join(MODES)}")
        if self.free_steps < 1:
            raise ValueError(f"free_steps must be >= 1, got {self.free_steps}")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise ValueError(f"eval_steps must be >= 1 (or None for free_steps), got {self.eval_steps}")
        # the nudged / clamped phases' budget, for every relaxation rule that has one
        if getattr(self, "nudge_steps", None) is not None and self.nudge_steps < 1:
            raise ValueError(f"nudge_steps must be >= 1 (sweeps of each nudged phase), got {self.nudge_steps}")
        if self.tol is not None and not self.tol >= 0:
            raise ValueError(f"tol must be >= 0 (or None: always run the full sweep budget), got {self.tol}")
        resolve(self.relax_dtype)  # unknown names raise here, not at the first batch
        if self.capture and self.tol is not None:
            raise ValueError(f"capture records a fixed sweep budget; tol={self.tol} stops early: set tol to "
                             f"null (None) or capture to false")

    def check_model(self, model) -> None:
        """The model must be one relaxable system (``layer_update``, ``context``, ...)."""
        require_relaxable(self.name, model)

    def state_dtype(self, model) -> torch.dtype:
        """The dtype the states are relaxed in: ``relax_dtype`` if set, else the parameters'."""
        low = resolve(self.relax_dtype)
        if low is not None:
            return low
        p = next(iter(model.parameters()), None)
        return p.dtype if p is not None and p.is_floating_point() else torch.get_default_dtype()

    @torch.no_grad()
    def infer(self, model, x, y, steps: int | None = None) -> StepResult:
        """The free phase and its loss/prediction, no gradient.

        ``steps``: the sweep budget; default ``eval_steps``, else ``free_steps``.
        """
        steps = steps or self.eval_steps or self.free_steps
        free = relax(self.relaxer(model), x, steps=steps, mode=self.mode, tol=self.tol, capture=self.capture)
        return self.result(model, y, free)

    # -- shared pieces -----------------------------------------------------------------------
    def relaxer(self, model):
        """The system the relaxations run on: ``model``, or its ``relax_dtype`` copy."""
        return relaxation_copy(model, self.relax_dtype)

    def settle(self, model, x, state=None):
        """``(system, ctx, free)``: the system to relax (``relaxer``), its context and the free phase."""
        system = self.relaxer(model)
        ctx = system.context(x)
        return system, ctx, self.free_phase(system, x, ctx, state)

    def free_phase(self, model, x, ctx, state=None) -> Relaxed:
        """The free relaxation, from ``state`` (a warm start, any dtype) or the model's initial state."""
        if state is not None:
            dtype = next(model.parameters()).dtype
            state = [s.to(dtype) for s in state]
        return relax(model, x, state, steps=self.free_steps, mode=self.mode, tol=self.tol, ctx=ctx,
                     capture=self.capture)

    def result(self, model, y, free: Relaxed, **stats) -> StepResult:
        state = cast_state(free.state, model)
        with torch.no_grad():
            loss = model.cost(state, y).mean()
            out = model.output(state)
        stats = {"free_steps": free.steps, "free_residual": free.residual, **stats}
        return StepResult(loss=loss.detach(), output=out.detach(), state=[s.detach() for s in state], stats=stats)
