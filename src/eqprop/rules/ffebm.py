"""Training ff-EBMs: backprop through the feedforward blocks, EP inside the energy blocks
(Nest & Ernoult 2024; REFERENCES §4).

Forward: each feedforward block is applied, each energy block settles (``free_steps``) on its
input ``u`` and passes on its output layer's equilibrium ``s*_out(u)``. Backward, from the
loss's gradient ``delta = dL/dx_K`` at the chain's output:

- feedforward block: autograd (vector-Jacobian product) gives its parameter gradients and the
  ``delta`` for the block below;
- energy block (``ffebm``): EP with the incoming error as the nudge, ``F_b = E_k + b delta.s_out``
  (``HopfieldBlock``'s linear-probe cost), from the free state, for ``+beta`` and ``-beta``
  (``variant="centered"``, default; or one-sided). With ``s_+-`` the nudged equilibria,

      dL/dtheta_k ~= (dE_k/dtheta(s_+) - dE_k/dtheta(s_-)) / (2 beta)
      dL/du       ~= (dE_k/du(s_+)     - dE_k/du(s_-))     / (2 beta)   -> the next delta.

- energy block (``ffebm-implicit``, the reference): implicit differentiation of the block's
  fixed point, ``lambda = delta_out + J^T lambda`` and ``(df/dtheta, df/du)^T lambda`` with ``f``
  one sweep: the exact gradient of the whole chain.

The errors are per sample (``delta_b = dC(x_K^b, y_b)/dx_K^b``, propagated), so ``beta`` means
what it means for EP on a single network; the batch mean is taken on the parameter gradients.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..dynamics import Nudge, relax, sweep
from ..models.ffebm import FFEBM, is_energy_block
from .base import RelaxationRule, StepResult, check_nudge
from .reference import adjoint


@dataclass
class _Record:
    block: torch.nn.Module
    u: torch.Tensor            # the block's input (a leaf; requires grad for feedforward blocks)
    out: torch.Tensor          # its output (with the graph to u for feedforward blocks)
    free: list | None = None   # the energy block's free equilibrium


@dataclass
class FFEBMEP(RelaxationRule):
    """ff-EBM training: autograd through feedforward blocks, EP (``variant``) in energy blocks.

    ``relax_dtype`` is not supported (refused at construction): the blocks relax in the
    parameters' dtype.
    """

    name: ClassVar[str] = "ffebm"
    beta: float = 0.2
    nudge_steps: int = 10
    variant: str = "centered"

    def __post_init__(self):
        super().__post_init__()
        if self.variant not in ("positive", "negative", "centered"):
            raise ValueError(f"unknown ffebm variant {self.variant!r}; valid: positive, negative, centered")
        check_nudge("beta", self.beta)
        if self.relax_dtype is not None:
            raise ValueError(f"{self.name}: relax_dtype={self.relax_dtype!r} is not supported for ff-EBM chains "
                             f"(their blocks relax in the parameters' dtype); leave relax_dtype unset")
        if self.capture:
            raise ValueError(f"{self.name}: capture is not supported for ff-EBM chains (their blocks relax "
                             f"inside the chain's forward and backward passes); leave capture unset")

    def check_model(self, model):
        if not isinstance(model, FFEBM):
            raise ValueError(f"rule {self.name!r} trains chains of blocks (eqprop.models.FFEBM), "
                             f"not {type(model).__name__}; use ep-centered or rbp for a single system")
        check_nudge("beta", self.beta, self.state_dtype(model))

    # -- forward --------------------------------------------------------------------------------
    def forward(self, model: FFEBM, x, steps: int | None = None) -> tuple[torch.Tensor, list[_Record]]:
        """Run the chain on ``x``; the output (detached) and one record per block."""
        h, recs = x, []
        for k, blk in enumerate(model.blocks):
            if is_energy_block(blk):
                u = h.detach()
                free = relax(blk, u, steps=steps or self.free_steps, mode=self.mode, tol=self.tol).state
                recs.append(_Record(blk, u, blk.output(free).detach(), [s.detach() for s in free]))
            else:
                u = h.detach().requires_grad_(k > 0 and h.is_floating_point())
                with torch.enable_grad():
                    out = blk(u)
                recs.append(_Record(blk, u, out))
            h = recs[-1].out
        return h.detach(), recs

    # -- backward inside an energy block ---------------------------------------------------------
    def block_vjp(self, blk, u, free, delta, need_input: bool):
        """``delta^T d s*_out / d(theta_k, u)`` by EP; returns (param grads list, input grad)."""
        signs = {"positive": (1, 0), "negative": (0, -1), "centered": (1, -1)}[self.variant]
        ctx = blk.context(u)
        states = {0: free}
        for s in signs:
            if s:
                states[s] = relax(blk, u, free, steps=self.nudge_steps, mode=self.mode, tol=self.tol, ctx=ctx,
                                  nudge=Nudge(s * self.beta, delta)).state
        hi, lo = signs
        scale = 1.0 / ((hi - lo) * self.beta)
        params = [p for p in blk.parameters() if p.requires_grad]
        with torch.enable_grad():
            uu = u.detach().requires_grad_(need_input)
            f = (blk.total_energy(uu, states[hi], delta, hi * self.beta).sum()
                 - blk.total_energy(uu, states[lo], delta, lo * self.beta).sum()) * scale
            gs = torch.autograd.grad(f, params + ([uu] if need_input else []), allow_unused=True)
        return list(gs[:len(params)]), (gs[-1] if need_input else None)

    # -- the rule ----------------------------------------------------------------------------------
    def estimate(self, model, x, y):
        out, recs = self.forward(model, x)
        with torch.enable_grad():
            o = out.requires_grad_(True)
            loss = model.cost(o, y).mean()
            # per-sample errors dC_b/dx_K (the batch mean's gradient times B): the nudge
            # beta * delta then has the size it has in EP on one network; grads are divided by B.
            delta = torch.autograd.grad(loss, o)[0] * x.shape[0]
        names = {id(p): n for n, p in model.named_parameters()}
        grads = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
        for k in range(len(recs) - 1, -1, -1):
            r = recs[k]
            need_input = k > 0
            params = [p for p in r.block.parameters() if p.requires_grad]
            if r.free is not None:
                gs, delta_u = self.block_vjp(r.block, r.u, r.free, delta.detach(), need_input)
            else:
                wrt = params + ([r.u] if need_input and r.u.requires_grad else [])
                gs = list(torch.autograd.grad(r.out, wrt, grad_outputs=delta, allow_unused=True)) if wrt else []
                delta_u = gs.pop() if need_input and r.u.requires_grad else None
            for p, g in zip(params, gs):
                if g is not None:
                    grads[names[id(p)]] += g.detach() / x.shape[0]
            if need_input:
                if delta_u is None:
                    break  # nothing below receives a gradient
                delta = delta_u.detach().reshape(r.u.shape)
        return grads, StepResult(loss=loss.detach(), output=out, state=[], stats={"beta": self.beta})

    @torch.no_grad()
    def infer(self, model, x, y, steps: int | None = None) -> StepResult:
        """The chain's forward pass; energy blocks settle for ``steps`` (default ``eval_steps``,
        else ``free_steps``) sweeps."""
        was = model.training
        model.eval()
        try:
            out, _ = self.forward(model, x, steps or self.eval_steps)
        finally:
            model.train(was)
        return StepResult(loss=model.cost(out, y).mean(), output=out, state=[], stats={})


@dataclass
class FFEBMImplicit(FFEBMEP):
    """The exact gradient of an ff-EBM: implicit differentiation inside each energy block.

    adjoint_steps / adjoint_tol: budget of the adjoint fixed point (defaults: free_steps / tol).
    """

    name: ClassVar[str] = "ffebm-implicit"
    adjoint_steps: int | None = None
    adjoint_tol: float | None = None

    def block_vjp(self, blk, u, free, delta, need_input):
        params = [p for p in blk.parameters() if p.requires_grad]
        steps = self.free_steps if self.adjoint_steps is None else self.adjoint_steps
        tol = self.tol if self.adjoint_tol is None else self.adjoint_tol
        with torch.enable_grad():
            uu = u.detach().requires_grad_(need_input)
            ctx = blk.context(uu)
            s = [t.detach().requires_grad_(True) for t in free]
            fs = sweep(blk, s, ctx, self.mode)
            rhs = [torch.zeros_like(t) for t in s]
            rhs[blk.output_index] = blk.cost_grad(s, delta).detach()
            lam, _, _ = adjoint(fs, s, rhs, steps, tol)
            wrt = params + ([uu] if need_input else [])
            gs = torch.autograd.grad(fs, wrt, grad_outputs=lam, allow_unused=True)
        return list(gs[:len(params)]), (gs[-1] if need_input else None)
