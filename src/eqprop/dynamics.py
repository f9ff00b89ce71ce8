"""Settling an energy-based model: ``relax`` and the nudges it can apply.

``relax`` repeats *sweeps*. A sweep updates every free layer once with the model's exact
layer-wise minimisation (``model.layer_update``), either all layers from the previous state
(``mode="sync"``) or group by group (``mode="async"``: layers that share no coupling together,
each group seeing the newest values of the others). The output layer can be

- nudged: ``Nudge(beta, y)`` adds the force ``-beta * dC/ds_out`` to its drive, so the settled
  state is a stationary point of ``E + beta * C``. ``beta`` is real of either sign, complex
  (holomorphic EP: start from a complex state), or a (B,) tensor of per-sample nudges, which
  runs several nudged phases as one batched relaxation;
- clamped: ``Clamp(value)`` holds it at ``value`` (contrastive and coupled learning).

``iterate(step, state, steps, tol)`` is the one relax-until-tol loop of the library: ``relax``
runs its sweeps with it, and so do the adjoint solves of RBP and ff-EBM and the linear response
of the bias decomposition.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

MODES = ("async", "sync")


@dataclass(frozen=True)
class Nudge:
    """Pull the output towards ``y`` with strength ``beta``: minimise ``E + beta * C(s, y)``.

    beta: a real or complex number, or a (B,) tensor (one nudge per sample).

    The targets are prepared once per nudge (``model.prepare_targets``, e.g. class indices ->
    one-hot with the label range checked), not in every sweep.
    """

    beta: float | complex | torch.Tensor
    y: torch.Tensor
    _targets: dict = field(default_factory=dict, compare=False, repr=False)

    def force(self, model, state) -> torch.Tensor | None:
        """``-beta * dC/ds_out``, added to the output layer's drive (None for a zero nudge)."""
        b = self.beta
        if isinstance(b, torch.Tensor):  # always applied (also at 0: forward-mode derivatives in beta)
            g = model.cost_grad(state, self.targets(model, state))
            return -b.reshape(-1, *([1] * (g.dim() - 1))) * g
        if b == 0:
            return None
        return -b * model.cost_grad(state, self.targets(model, state))

    def targets(self, model, state):
        """``y`` as ``model.cost_grad`` takes it, prepared on the first call for this model and dtype."""
        key = (id(model), state[model.output_index].dtype)
        t = self._targets.get(key)
        if t is None:
            t = nudge_targets(model, self.y, state)
            self._targets[key] = t
        return t


def nudge_targets(model, y, state):
    """``model.prepare_targets(y, like=<its output at state>)`` where the model has it (class
    indices -> one-hot, range checked once), ``y`` unchanged otherwise."""
    prep = getattr(model, "prepare_targets", None)
    if prep is None:
        return y
    with torch.no_grad():
        return prep(y, model.output([s.detach() for s in state]))


@dataclass(frozen=True)
class Clamp:
    """Hold the output layer at ``value``: (B, d_out)."""

    value: torch.Tensor


class UnsettledError(RuntimeError):
    """A rule found that the state it must differentiate at is not a stable fixed point and could
    not reach one within its settings; the Trainer reports it as a divergence of the run."""


@dataclass
class Relaxed:
    """Result of ``relax``: the settled ``state``, the sweeps run and the last sweep's change."""

    state: list
    steps: int
    residual: float  # max |s_new - s_old| over the last sweep (nan if not measured)


def sweep(model, state, ctx, mode: str = "async", nudge: Nudge | None = None, clamp: Clamp | None = None):
    """One sweep of layer updates; returns the new state (a new list, inputs untouched).

    Differentiable: under ``torch.enable_grad()`` the result carries the graph (used by BPTT/RBP).
    """
    out = model.output_index
    state = list(state)
    if clamp is not None:
        state[out] = clamp.value
    for group in model.update_groups(mode):
        new = list(state)
        for i in group:
            if clamp is not None and i == out:
                continue
            force = nudge.force(model, state) if nudge is not None and i == out else None
            new[i] = model.layer_update(i, state, ctx, force)
        state = new
    return state


def relax(
    model,
    x: torch.Tensor,
    state=None,
    *,
    steps: int = 20,
    mode: str = "async",
    nudge: Nudge | None = None,
    clamp: Clamp | None = None,
    tol: float | None = None,
    ctx=None,
    track_graph: bool = False,
    fused: bool = True,
    capture: bool = False,
) -> Relaxed:
    """Settle ``model`` on input ``x`` (B, ...) from ``state`` (default: ``model.init_state``).

    Args:
        steps: the sweep budget.
        mode: "async" (default) or "sync".
        nudge / clamp: an optional output perturbation (see the module docstring).
        tol: stop early once a sweep changes no state entry by more than ``tol``.
        ctx: a precomputed ``model.context(x)`` to reuse between phases.
        track_graph: keep the autograd graph through the sweeps (for BPTT); otherwise the
            relaxation runs under ``torch.no_grad()``.
        fused: use the model's ``fused_relax`` (all sweeps in one function on preallocated
            buffers, e.g. ``HopfieldMLP``) where it applies: no graph, no ``tol``, and the model
            accepts (it returns ``None`` otherwise). Same states as the general path to rounding;
            ``False`` runs the general ``sweep``, the reference.
        capture: run the phase as a captured graph (``eqprop.capture``): a CUDA graph replayed
            on CUDA devices, the same static-buffer plumbing without a graph elsewhere. Needs a
            fixed budget (``tol=None``) and no graph; falls back to the uncaptured phase, with
            a warning naming the cause, where the capture fails.
    """
    if mode not in MODES:
        raise ValueError(f"unknown relaxation mode {mode!r}; valid modes: {', '.join(MODES)}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if nudge is not None and clamp is not None:
        raise ValueError("give either a nudge or a clamp, not both")
    if capture and tol is not None:
        raise ValueError(f"a captured relaxation runs a fixed sweep budget; got tol={tol}: give tol=None "
                         f"or capture=False")
    with torch.set_grad_enabled(track_graph and torch.is_grad_enabled()):
        if ctx is None:
            ctx = model.context(x)
        if state is None:
            state = model.init_state(ctx.x)
        if capture and not torch.is_grad_enabled():
            from .capture import captured_relax

            settled = captured_relax(model, ctx, state, steps, mode, nudge, clamp, fused)
            if settled is not None:
                return Relaxed(state=settled, steps=steps, residual=math.nan)
        fast = getattr(model, "fused_relax", None)
        if fused and fast is not None and tol is None and not torch.is_grad_enabled():
            settled = fast(ctx, state, steps, mode, nudge, clamp)
            if settled is not None:
                return Relaxed(state=settled, steps=steps, residual=math.nan)
        state, done, residual = iterate(lambda s: sweep(model, s, ctx, mode, nudge, clamp), state, steps, tol)
    return Relaxed(state=state, steps=done, residual=residual)


def change(new, old) -> float:
    """``max |new - old|`` over every entry of two lists of tensors (complex: the modulus)."""
    return max(float((a - b).abs().max()) for a, b in zip(new, old))


def iterate(step, state, steps: int, tol: float | None = None, measure: bool | None = None,
            history: list | None = None):
    """The one convergence loop: ``state <- step(state)`` at most ``steps`` times.

    ``state`` is a list of tensors and ``step`` maps it to a new list. With ``tol``, stops after
    the first iteration that changes no entry by more than ``tol``. Returns
    ``(state, iterations run, residual)``, the residual being the last iteration's
    ``max |new - old|`` (NaN when not measured: ``measure`` defaults to ``tol is not None``);
    ``history``, a list, receives every measured residual.
    Used by ``relax``, the adjoint solves of RBP / ff-EBM and the linear response of the bias
    decomposition.
    """
    measure = tol is not None if measure is None else measure
    residual, done = math.nan, 0
    for done in range(1, steps + 1):
        new = step(state)
        if measure:
            residual = change(new, state)
            if history is not None:
                history.append(residual)
        state = new
        if tol is not None and residual <= tol:
            break
    return state, done, residual
