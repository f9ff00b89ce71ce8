"""What every energy-based model offers to ``relax`` and to the learning rules.

A model is an ``nn.Module`` whose free state is a list of tensors ``state[i]`` (one per free
layer, batch first). It knows:

- ``energy(x, state) -> (B,)``: the energy as a plain differentiable function;
- ``cost(state, y) -> (B,)``: the cost read out at the output layer ``output_index``;
- ``context(x)``: whatever stays fixed during a relaxation (e.g. the input's drive);
- ``layer_update(i, state, ctx, force)``: the hand-derived exact minimisation of the energy in
  layer ``i`` given its neighbours, with an extra ``force`` added to its drive (the nudge);
- ``cost_grad(state, y)``: ``dC/d state[output_index]``, hand-derived;
- ``update_groups(mode)``: which layers ``relax`` may update at once ("sync": all; "async": layers
  that share no coupling, e.g. even then odd).

The rules never look inside: they only relax the model and differentiate ``energy``/``cost``
with respect to its parameters at fixed states. docs/own_model.md spells the contract out (shapes,
a template) and ``eqprop.diagnostics.check_model`` checks a model against it.
"""
from __future__ import annotations

import torch
from torch import nn


class EnergyModel(nn.Module):
    """Base class of models with a layered energy; see the module docstring for the contract."""


    # -- to be provided by subclasses -------------------------------------------------------
    def init_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def context(self, x: torch.Tensor):
        raise NotImplementedError

    def layer_update(self, i: int, state, ctx, force=None) -> torch.Tensor:
        raise NotImplementedError

    def update_groups(self, mode: str) -> list[list[int]]:
        raise NotImplementedError

    def energy(self, x: torch.Tensor, state) -> torch.Tensor:
        raise NotImplementedError

    def cost(self, state, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def cost_grad(self, state, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def output(self, state) -> torch.Tensor:
        """Prediction read from a state: (B, num_outputs) scores or values."""
        raise NotImplementedError

    # -- shared helpers ---------------------------------------------------------------------
    def autograd_layer_update(self, i: int, state, ctx, force=None) -> torch.Tensor:
        """The autograd form of ``layer_update``: ``sigma(G'(s_i) - dE/ds_i + force)``.

        Needs ``self.activation`` (with ``inverse = G'``) and ``ctx.x``. Tests compare it with the
        hand-derived update; benchmarks time both. A model may also use it *as* its update
        (``layer_update = EnergyModel.autograd_layer_update``): when grad mode is on (BPTT, RBP)
        the result is differentiable in the state and the parameters (``torch.func.grad``), so
        every rule works on it, only slower.
        """
        if torch.is_grad_enabled():  # BPTT/RBP: differentiable in every state and in theta
            def energy_in_layer(s_i):
                s = list(state)
                s[i] = s_i
                return self.energy(ctx.x, s).sum()

            # torch.func.grad: the partial derivative in s_i with the other layers held as they
            # are (autograd.grad would also follow the other layers' histories back to s_i)
            g = torch.func.grad(energy_in_layer)(state[i])
        else:
            with torch.enable_grad():
                s = [t.detach().requires_grad_(j == i) for j, t in enumerate(state)]
                g = torch.autograd.grad(self.energy(ctx.x, s).sum(), s[i])[0]
        act = self.activation_of(i)
        u = act.inverse(state[i]) - g
        return act(u if force is None else u + force)

    def activation_of(self, i: int):
        """The activation of free layer ``i``: ``self.output_activation`` for an output layer in the
        energy where the model sets one, else ``self.activation``."""
        out = getattr(self, "output_activation", None)
        if out is not None and i == self.num_free_layers - 1 and self.output_in_energy:
            return out
        return self.activation

    def layer_potentials(self, state) -> torch.Tensor:
        """``sum_i sum G_i(s_i)`` per sample (B,), each layer with its own activation's potential."""
        return sum(self.activation_of(i).potential(s).flatten(1).sum(-1) for i, s in enumerate(state))

    @property
    def num_free_layers(self) -> int:
        raise NotImplementedError

    @property
    def output_index(self) -> int:
        """The free layer the cost reads: the last one."""
        return self.num_free_layers - 1

    @property
    def output_in_energy(self) -> bool:
        """False when the readout sits outside the energy (cross-entropy readout, ``self.readout``)."""
        return getattr(self, "readout", None) is None

    def total_energy(self, x, state, y=None, beta=0.0) -> torch.Tensor:
        """``F = E + beta * C`` per sample, shape (B,).

        ``beta``: a real or complex number, or a (B,) tensor of per-sample nudges (batched phases).
        """
        e = self.energy(x, state)
        if isinstance(beta, torch.Tensor) or beta != 0.0:
            e = e + beta * self.cost(state, y)
        return e

    def contrast_energy(self, x, state, y=None, beta=0.0, anchor=None) -> torch.Tensor:
        """The function of the parameters whose differences between states the EP-family rules
        take, per sample (B,). For an energy model it is ``F_beta(s) = E(s) + beta C(s)`` and
        ``anchor`` (the free state) is unused; models without an energy (vector fields) override
        it with a pseudo-energy that is linear in ``state`` around ``anchor``.
        """
        return self.total_energy(x, state, y, beta)

    def contrast_grads(self, x, y, terms, anchor=None) -> dict[str, torch.Tensor] | None:
        """``d/dtheta Re sum_k w_k F_{beta_k}(s_k)`` (batch summed, states fixed) in closed form,
        keyed by the names of the trainable parameters; ``terms`` are ``(state, beta_k, w_k)``
        triples as in ``eqprop.rules.base.weighted_contrast``. ``None`` (the default) declines:
        the rules then differentiate ``contrast_energy`` by autograd, which is always correct;
        layered models override this with one product per coupling (tested against autograd)."""
        return None

    @property
    def holomorphic(self) -> bool:
        """Whether energy, cost and updates extend holomorphically to complex states."""
        acts = [getattr(self, "activation", None), getattr(self, "output_activation", None)]
        return all(bool(getattr(a, "holomorphic", False)) for a in acts if a is not None) and acts[0] is not None

    @property
    def param_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def param_device(self) -> torch.device:
        return next(self.parameters()).device


def like(w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``w`` cast to ``s``'s dtype when ``s`` is complex (real parameters acting on complex
    states, holomorphic EP); ``w`` itself otherwise. Differentiable."""
    return w.to(s.dtype) if s.is_complex() and not w.is_complex() else w


def parity_groups(n: int, mode: str) -> list[list[int]]:
    """Layer groups for layered nets where layer i couples only to i-1 and i+1.

    "sync": one group with every layer (all updated from the previous state).
    "async": layers 0, 2, 4, ... then 1, 3, 5, ... (free-layer indices), each group using the
    newest values of the other; converges in far fewer sweeps and never raises the energy.
    """
    if mode == "sync":
        return [list(range(n))]
    if mode == "async":
        return [g for g in (list(range(0, n, 2)), list(range(1, n, 2))) if g]
    raise ValueError(f"unknown relaxation mode {mode!r}; valid modes: async, sync")


def stacked_terms(terms, num_rows: int):
    """Per-term row weights for closed-form contrasts: ``[(state, beta, w)]`` with each ``w`` and
    ``beta`` as a number or a (B, 1) column (from (B,) tensors), or ``None`` when a term's shapes
    do not fit (the caller then declines and autograd takes over)."""
    out = []
    for state, beta, w in terms:
        cols = []
        for v in (beta, w):
            if isinstance(v, torch.Tensor) and v.dim() > 0:
                if v.shape != (num_rows,):
                    return None
                v = v.reshape(-1, 1)
            cols.append(v)
        out.append(([t.detach() for t in state], cols[0], cols[1]))
    return out


def rows(w, s: torch.Tensor) -> torch.Tensor:
    """``w * s`` with ``w`` a number or a (B, 1) column broadcast over every non-batch dim of ``s``."""
    if isinstance(w, torch.Tensor) and w.dim() > 0 and s.dim() > 2:
        w = w.reshape(-1, *([1] * (s.dim() - 1)))
    return w * s


def coupling_rows(terms, k: int, x: torch.Tensor):
    """``(a, lo)`` of coupling ``k`` over the stacked phases: ``a`` the weighted upper states
    (summed over terms for the input coupling, ``k = 0``, whose lower side ``x`` is the same in
    every phase), ``lo`` the lower states stacked like ``a``; the weight gradient is ``-a^T lo``."""
    if k == 0:
        return sum(rows(w, st[0]) for st, _, w in terms), x
    return torch.cat([rows(w, st[k]) for st, _, w in terms]), torch.cat([st[k - 1] for st, _, _ in terms])


def is_zero(v) -> bool:
    return not isinstance(v, torch.Tensor) and v == 0


def t_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Re(a^T b)``: the batch-summed outer product of two stacks of rows (complex allowed)."""
    dt = torch.promote_types(a.dtype, b.dtype)
    r = a.to(dt).T @ b.to(dt)
    return r.real if r.is_complex() else r


def real(t: torch.Tensor) -> torch.Tensor:
    return t.real if t.is_complex() else t


def plain_energy(model, base, methods=()) -> bool:
    """Whether ``model`` (an instance of ``base`` or a subclass) keeps ``base``'s energy, cost and
    contrast energy, so that ``base``'s closed-form contrast holds for it; a subclass that
    redefines any of them gets the autograd contrast."""
    t = type(model)
    names = ("energy", "cost", "output", "prepare_input", *methods)
    return (all(getattr(t, m) is getattr(base, m) for m in names)
            and t.contrast_energy is EnergyModel.contrast_energy and t.total_energy is EnergyModel.total_energy)


def named_contrast(model, grads: dict) -> dict | None:
    """``grads`` (name -> tensor) restricted to the trainable parameters, cast to their dtype;
    ``None`` when a trainable parameter has no closed form (the caller falls back to autograd)."""
    out = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            if n not in grads:
                return None
            out[n] = grads[n].to(p.dtype)
    return out


def one_hot_targets(y: torch.Tensor, num_outputs: int, like: torch.Tensor) -> torch.Tensor:
    """Class indices (B,) -> one-hot (B, num_outputs) in ``like``'s dtype; float targets pass through."""
    if y.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8):
        if y.dim() != 1:
            raise ValueError(f"class targets must have shape (batch,), got {tuple(y.shape)}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_outputs):
            raise ValueError(
                f"class targets must lie in [0, {num_outputs - 1}] for a model with {num_outputs} "
                f"outputs; got labels in [{int(y.min())}, {int(y.max())}]"
            )
        return torch.nn.functional.one_hot(y.long(), num_outputs).to(like.dtype)
    if y.shape[-1] != num_outputs:
        raise ValueError(
            f"targets have {y.shape[-1]} values per sample but the model has {num_outputs} outputs"
        )
    return y.to(like.dtype)
