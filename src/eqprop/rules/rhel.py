"""Recurrent Hamiltonian Echo Learning (RHEL; Pourcel & Ernoult 2025, REFERENCES §6).

RHEL trains a Hamiltonian state-space model (``eqprop.models.HSSM``) on sequences with
forward-only passes and no record of the trajectory. See docs/rhel.md for the derivation; in
short, for one Hamiltonian recurrent unit stepped by the (unit-step, momentum ``w = dt z``)
leapfrog map ``Phi_t`` of ``H_t = 1/2 |w|^2 + V~(y, u_t)``:

1. **forward**: run ``Phi_1 .. Phi_T`` and keep only the final state ``s_T = (y_T, w_T)``;
2. **echoes**: flip the momentum, ``(y_T, -w_T)``, and run the *same* maps in reverse order
   (``Phi_T`` first, i.e. on the time-reversed input). Leapfrog is time-reversible, so this free
   echo retraces the forward trajectory exactly: after ``Phi_t`` it is at ``(y_{t-1}, -w_{t-1})``.
   Before applying ``Phi_t``, kick the momentum by ``+/- eps * dL/dy_t``. Both echoes run as one
   batch of ``2B`` samples.
3. **gradients**: with ``y'^{+/-}_t`` the midpoint positions of the echo step that applies
   ``Phi_t``, ::

        dL/dtheta = - sum_t [dV~/dtheta (y'^+_t, u_t) - dV~/dtheta (y'^-_t, u_t)] / (2 eps)
        dL/du_t   = -       [dV~/du     (y'^+_t, u_t) - dV~/du     (y'^-_t, u_t)] / (2 eps)

   This is exactly BPTT through the leapfrog map when ``V~`` is quadratic in ``y`` (linear HRU:
   the echoes are affine in the kicks) and ``O(eps^2)`` away from it otherwise: the echo's
   deviation ``(e^+ - e^-) / (2 eps)`` equals the BPTT adjoint with position and momentum swapped,
   because ``Phi`` is symplectic and ``R Phi R = Phi^{-1}`` (``R`` flips the momentum).

For a stack of blocks the input error ``dL/du_t`` is passed down through the per-time-step,
non-Hamiltonian parts (LayerNorm, GELU/GLU, residual, ``C``, ``D``, encoder, readout), which use
ordinary backprop *within one time step* only (as in the paper): there is no autograd graph
through time. The inputs of block ``l+1`` during the echo are rebuilt from block ``l``'s free
echo (no kick), run first; so each block runs a forward pass, a free echo and the ``+/-`` echo
pair. Time is processed in chunks of ``chunk`` steps (the linear units scan each chunk in
parallel): memory is ``O(chunk)``, flat in the sequence length.

``eps`` is measured in units of one sample's error at one step: the kicks are
``eps * B * T' * dL/dy_t`` (``T' = T`` for mean pooling and sequence outputs, 1 for ``last``),
which keeps the echoes' deviation well above float32 rounding whatever the batch and length.

RHEL asks the model for its readout's pooling and loss (``pool_weights``, ``pool_features``,
``pool_grad``, ``step_losses``, ``loss``, ``error_steps``: the same methods ``HSSM.forward`` and
``predict_loss`` use), so the two can never disagree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .base import Rule, StepResult, trainable
from .sequence import is_sequence_model, sequence_infer


@dataclass
class RHEL(Rule):
    """Recurrent Hamiltonian Echo Learning for ``HSSM`` models.

    eps: size of the error kicks (relative to one sample's error at one step); the estimate is
    exact for linear HRUs whatever ``eps`` (up to rounding) and has an ``O(eps^2)`` bias for
    nonlinear ones. chunk: time steps processed at once (memory ``O(chunk)``); ``None``: all.
    parallel: scan the linear units (False: sequential loop; the same numbers).
    """

    name: ClassVar[str] = "rhel"
    eps: float = 0.01
    chunk: int | None = 1024
    parallel: bool = True

    def __post_init__(self):
        if not self.eps > 0:
            raise ValueError(f"RHEL needs eps > 0, got {self.eps}")
        if self.chunk is not None and self.chunk < 1:
            raise ValueError(f"chunk must be >= 1 (or None for the whole sequence), got {self.chunk}")

    def check_model(self, model) -> None:
        """RHEL needs a Hamiltonian state-space model (blocks of HRUs)."""
        if not (is_sequence_model(model) and hasattr(model, "blocks") and all(hasattr(b, "hru") for b in model.blocks)):
            raise ValueError(
                f"RHEL trains Hamiltonian state-space models (eqprop.models.HSSM, model=hssm); got {type(model).__name__}"
            )

    def infer(self, model, x, y, steps=None) -> StepResult:
        """One forward pass (``steps`` is unused: nothing relaxes)."""
        return sequence_infer(model, x, y)

    def estimate(self, model, x, y):
        blocks = list(model.blocks)
        L = len(blocks)
        named = trainable(model)
        grads = {n: torch.zeros_like(p) for n, p in named}
        name_of = {id(p): n for n, p in named}

        def accumulate(params, gs):
            for p, g in zip(params, gs):
                if g is not None and id(p) in name_of:
                    grads[name_of[id(p)]] += g

        with torch.no_grad():
            x, mask, lengths = model.prepare(x)
        B, T = x.shape[:2]
        K = T if self.chunk is None else min(self.chunk, T)
        chunks = [(c0, min(c0 + K, T)) for c0 in range(0, T, K)]
        par = self.parallel
        weights = model.pool_weights(mask, lengths)  # (B, T) pooling weights; None: sequence outputs
        seq_out = weights is None
        scale = float(B * model.error_steps(T))
        eps = self.eps

        # ---- pass 1: forward, keeping only the final states (and the pooled features) ----
        with torch.no_grad():
            coefs = [b.hru.coefficients() for b in blocks]
            state = [(None, None)] * L
            feat = None
            for c0, c1 in chunks:
                h = model.encoder(x[:, c0:c1])
                for i, blk in enumerate(blocks):
                    u = blk.pre(h)
                    ys, ws, _ = blk.hru.trajectory(blk.hru.drive(u, coefs[i]), *state[i], coef=coefs[i], parallel=par)
                    state[i] = (ys[:, -1], ws[:, -1])
                    h = blk.post(h, ys, u, coefs[i])
                if not seq_out:
                    part = model.pool_features(h, weights[:, c0:c1])
                    feat = part if feat is None else feat + part

        # ---- the readout's error at every step: dL/dh_t for the top block's output h_t ----
        head = list(model.readout.parameters())
        loss_total = torch.zeros((), dtype=x.dtype, device=x.device)
        outputs = []
        if not seq_out:
            with torch.enable_grad():
                f = feat.detach().requires_grad_(True)
                out = model.readout(f)
                loss_total = model.loss(out, y)
                g_feat, *g_head = torch.autograd.grad(loss_total, [f, *head], allow_unused=True)
            accumulate(head, g_head)
            outputs = [out.detach()]

        # ---- passes 2+3: the echoes, chunk by chunk from the end --------------------------
        free = [(yT, wT) for yT, wT in state]                       # forward orientation
        echo = [(torch.cat([yT, yT]), torch.cat([-wT, -wT])) for yT, wT in state]  # (+, -) batch
        for c0, c1 in reversed(chunks):
            xs, ys_free, us = [], [], []
            with torch.no_grad():
                # rebuild the forward trajectory of the chunk by the free echo, bottom-up
                h = model.encoder(x[:, c0:c1])
                for i, blk in enumerate(blocks):
                    u = blk.pre(h)
                    v = blk.hru.drive(u, coefs[i])
                    yT, wT = free[i]
                    yr, wr, _ = blk.hru.trajectory(v.flip(1), yT, -wT, coef=coefs[i], parallel=par)
                    y_chunk = torch.cat([yr[:, : c1 - c0 - 1].flip(1), yT.unsqueeze(1)], 1)  # y_t, t in [c0, c1)
                    free[i] = (yr[:, -1], -wr[:, -1])
                    xs.append(h)
                    ys_free.append(y_chunk)
                    us.append(v)
                    h = blk.post(h, y_chunk, u, coefs[i])
            # the error on the top block's output, per step of the chunk
            if seq_out:
                with torch.enable_grad():
                    ht = h.detach().requires_grad_(True)
                    out = model.readout(ht)
                    loss_c = model.step_losses(out, y[:, c0:c1], mask[:, c0:c1], lengths).sum()
                    g, *g_head = torch.autograd.grad(loss_c, [ht, *head], allow_unused=True)
                accumulate(head, g_head)
                loss_total = loss_total + loss_c.detach()
                outputs.append(out.detach())
            else:
                g = model.pool_grad(g_feat, weights[:, c0:c1])
            # top-down: each block's echo pair, then its input error to the block below
            for i in reversed(range(L)):
                blk = blocks[i]
                params = list(blk.parameters())
                with torch.enable_grad():
                    coef = blk.hru.coefficients()
                    xl = xs[i].detach().requires_grad_(True)
                    yl = ys_free[i].detach().requires_grad_(True)
                    u = blk.pre(xl)
                    xn = blk.post(xl, yl, u, coef)
                    # backprop within each step through the output path: the kick dL/dy_t, the
                    # output-path parameter gradients and the residual/norm part of dL/dx_t
                    gy, *g_out = torch.autograd.grad(xn, [yl, *params, xl], g, allow_unused=True)
                    with torch.no_grad():
                        kick = (eps * scale) * gy.flip(1)
                        vr = us[i].flip(1)
                        ye, we, mid = blk.hru.trajectory(
                            torch.cat([vr, vr]), *echo[i], kicks=torch.cat([kick, -kick]), coef=coefs[i], parallel=par
                        )
                        echo[i] = (ye[:, -1], we[:, -1])
                        mid = mid.flip(1)
                    # the Hamiltonian part: the contrast of dV~/d(theta, u) between the echoes
                    u = blk.pre(xl)
                    v = blk.hru.drive(u, coef)
                    contrast = blk.hru.potential(mid[:B], v, coef) - blk.hru.potential(mid[B:], v, coef)
                    g_ham = torch.autograd.grad(-contrast.sum() / (2 * eps * scale), [*params, xl], allow_unused=True)
                total = [a if b is None else (b if a is None else a + b) for a, b in zip(g_out, g_ham)]
                *gp, g = total
                accumulate(params, gp)
            enc = list(model.encoder.parameters())
            with torch.enable_grad():
                h0 = model.encoder(x[:, c0:c1])
                accumulate(enc, torch.autograd.grad(h0, enc, g, allow_unused=True))

        if seq_out:
            outputs = [torch.cat(outputs[::-1], 1)]
        stats = {"eps": eps, "chunk": K, "chunks": len(chunks)}
        return grads, StepResult(loss=loss_total.detach(), output=outputs[0], state=[], stats=stats)

