"""Hamiltonian recurrent units (HRUs) and Hamiltonian state-space models (HSSMs).

An HRU is a physical, non-dissipative system: a position ``y`` and a momentum per channel,
driven by an input ``u_t`` through a time-dependent Hamiltonian (REFERENCES §6, Pourcel &
Ernoult 2025)::

    linear:     H_t = 1/2 |z|^2 + sum_i [ 1/2 A_i y_i^2 - (B u_t)_i y_i ],           A_i >= 0
    nonlinear:  H_t = 1/2 |z|^2 + sum_i [ 1/2 alpha_i y_i^2
                                          + c_i log cosh(w_i y_i + (B u_t)_i + b_i) / w_i ]

integrated by leapfrog with a trainable step ``dt_i`` per channel (half drift, kick, half
drift). We carry the momentum in step units, ``w = dt * z``; leapfrog with step ``dt`` on ``H``
is then leapfrog with unit step on ``1/2 |w|^2 + V~`` where ``V~_i = dt_i^2 V_i`` (``V`` is the
potential part of ``H``)::

    y' = y + w/2;   w <- w - dV~/dy (y', u_t);   y <- y' + w/2

so ``dt`` is one more parameter of the potential (this is what lets RHEL learn it). The output
is ``o_t = C y_t + D * u_t`` (real part of ``C y`` for complex ``B, C``).

Parametrisation: ``A = 4 sigmoid(a)`` and ``dt = sigmoid(d)``, so ``dt^2 A < 4``: the leapfrog
map of the linear unit is then always stable (its eigenvalues stay on the unit circle).
Complex ``B, C`` (``complex=True``): since ``A`` and ``dt`` are real, a complex state is two real
states (real and imaginary part) with the same ``A, dt``; we store ``B = B_re + i B_im``,
``C = C_re + i C_im`` as real tensors and run 2N real channels, ``Re(C y) = C_re y_re - C_im y_im``.

Every unit exposes ``potential(y, v, coef)`` (``V~`` per channel, a plain differentiable
function), ``force(y, v, coef)`` (its hand-derived ``dV~/dy``; a test checks it against
autograd) and ``trajectory(v, y0, w0, kicks)`` which runs the leapfrog map over a sequence of
drives ``v_t = B u_t``: a parallel associative scan for the linear unit (``parallel=False``
gives the sequential loop the tests compare it with), a loop for the nonlinear one.

An :class:`HSSM` stacks them: ``encoder -> [LayerNorm, HRU, GELU, GLU, residual] x blocks ->
readout``, read out from the mean over time (``pool="mean"``), the last step (``"last"``) or
every step (``"none"``, sequence regression).

Inputs: ``x`` (batch, steps, channels), float. Sequences of unequal length are padded *after
their end* with NaN (``eqprop.data.timeseries.pad_sequences``); the model reads the lengths from
the padding, pools over the valid steps only and reads ``"last"`` at each sequence's own last step.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .scan import linear_recurrence_loop, linear_recurrence_scan

A_MAX = 4.0  # A = A_MAX * sigmoid(a): with dt < 1, dt^2 A < 4 keeps leapfrog stable


def _inv_sigmoid(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


def logcosh(z: torch.Tensor) -> torch.Tensor:
    """``log cosh z`` without overflow."""
    a = z.abs()
    return a + torch.log1p(torch.exp(-2 * a)) - math.log(2.0)


class HRU(nn.Module):
    """Base of the Hamiltonian recurrent units: drive, output, leapfrog steps.

    d_input: channels of ``u``; d_state: oscillators N (2N real channels if ``complex``);
    d_output: channels of ``o = C y + D u``.
    """

    parallel_capable = False

    def __init__(self, d_input: int, d_state: int, d_output: int, complex: bool = False,
                 dt_min: float = 0.01, dt_max: float = 0.5):
        super().__init__()
        if not 0 < dt_min <= dt_max < 1:
            raise ValueError(f"need 0 < dt_min <= dt_max < 1, got dt_min={dt_min}, dt_max={dt_max}")
        self.d_input, self.d_state, self.d_output, self.complex = d_input, d_state, d_output, complex
        scale_b, scale_c = 1 / math.sqrt(d_input), 1 / math.sqrt(d_state * (2 if complex else 1))
        self.B = nn.Parameter(torch.randn(d_state, d_input) * scale_b)
        self.C = nn.Parameter(torch.randn(d_output, d_state) * scale_c)
        if complex:
            self.B_im = nn.Parameter(torch.randn(d_state, d_input) * scale_b)
            self.C_im = nn.Parameter(torch.randn(d_output, d_state) * scale_c)
        self.D = nn.Parameter(torch.randn(d_output) if d_output == d_input else torch.zeros(d_output))
        log_dt = torch.empty(d_state).uniform_(math.log(dt_min), math.log(dt_max))
        self.dt_raw = nn.Parameter(_inv_sigmoid(log_dt.exp()))

    # -- parameters as the dynamics use them -----------------------------------------------
    def _real(self, t: torch.Tensor) -> torch.Tensor:
        """Repeat a per-oscillator tensor over the real and imaginary channels."""
        return torch.cat([t, t], -1) if self.complex else t

    def coefficients(self) -> dict[str, torch.Tensor]:
        """Derived tensors (differentiable functions of the parameters) the dynamics use.

        ``s = dt^2`` (2N,), ``B`` (2N, d_input), ``C`` (d_output, 2N), ``D`` (d_output,) plus
        the unit's own (``A``; or ``alpha, c, w, b``); ``2N`` is ``N`` for a real unit.
        """
        dt = torch.sigmoid(self.dt_raw)
        coef = {"s": self._real(dt * dt), "D": self.D}
        if self.complex:
            coef["B"] = torch.cat([self.B, self.B_im], 0)
            coef["C"] = torch.cat([self.C, -self.C_im], 1)
        else:
            coef["B"], coef["C"] = self.B, self.C
        return coef

    @property
    def dt(self) -> torch.Tensor:
        return torch.sigmoid(self.dt_raw).detach()

    def drive(self, u: torch.Tensor, coef) -> torch.Tensor:
        """``v = B u``: (..., d_input) -> (..., 2N)."""
        return u @ coef["B"].T

    def output(self, y: torch.Tensor, u: torch.Tensor, coef) -> torch.Tensor:
        """``o = Re(C y) + D * u``: y (..., 2N), u (..., d_input) -> (..., d_output)."""
        o = y @ coef["C"].T
        if self.d_output == self.d_input:
            o = o + coef["D"] * u
        return o

    # -- the Hamiltonian ----------------------------------------------------------------------
    def potential(self, y, v, coef) -> torch.Tensor:
        """``V~ = dt^2 V`` per channel, shape of ``y``; the plain differentiable function."""
        raise NotImplementedError

    def force(self, y, v, coef) -> torch.Tensor:
        """``dV~/dy`` per channel (hand-derived)."""
        raise NotImplementedError

    def energy(self, y, w, v, coef) -> torch.Tensor:
        """``1/2 |w|^2 + sum V~``: the (step-scaled) Hamiltonian per sample, shape (B,)."""
        return 0.5 * (w * w).sum(-1) + self.potential(y, v, coef).sum(-1)

    def leapfrog(self, y, w, v, coef, kick=None):
        """One unit step (half drift, kick, half drift) from ``(y, w)`` with drive ``v``.

        ``kick`` is added to the momentum first. Returns ``(y_new, w_new, y_mid)``.
        """
        if kick is not None:
            w = w + kick
        y_mid = y + 0.5 * w
        w = w - self.force(y_mid, v, coef)
        return y_mid + 0.5 * w, w, y_mid

    def trajectory(self, v, y0=None, w0=None, kicks=None, coef=None, parallel: bool = True):
        """Run the unit over drives ``v`` (B, T, 2N) from ``(y0, w0)`` (B, 2N; zeros if None).

        ``kicks`` (B, T, 2N) are added to the momentum before each step. Returns the states
        after every step ``y, w`` (B, T, 2N) and the midpoint positions ``y_mid`` (B, T, 2N).
        """
        coef = self.coefficients() if coef is None else coef
        y = torch.zeros_like(v[:, 0]) if y0 is None else y0
        w = torch.zeros_like(v[:, 0]) if w0 is None else w0
        ys, ws, mids = [], [], []
        vs = v.unbind(1)  # one UnbindBackward for the whole sequence (indexing v[:, t] would be O(T^2))
        ks = [None] * len(vs) if kicks is None else kicks.unbind(1)
        for t in range(len(vs)):
            y, w, mid = self.leapfrog(y, w, vs[t], coef, ks[t])
            ys.append(y)
            ws.append(w)
            mids.append(mid)
        return torch.stack(ys, 1), torch.stack(ws, 1), torch.stack(mids, 1)


class LinearHRU(HRU):
    """Linear HRU: ``V_i = 1/2 A_i y_i^2 - (B u)_i y_i`` with ``A = 4 sigmoid(a) >= 0``.

    Its leapfrog map is linear, ``s_t = M s_{t-1} + b_t`` with, per channel (``k = dt^2 A``,
    ``s = dt^2``)::

        M = [[1 - k/2, 1 - k/4], [-k, 1 - k/2]],   b_t = (s v_t / 2, s v_t),   det M = 1

    so ``trajectory`` runs as a parallel associative scan (``eqprop.models.scan``).
    """

    parallel_capable = True

    def __init__(self, d_input, d_state, d_output, complex=False, dt_min=0.01, dt_max=0.5,
                 a_min: float = 0.05, a_max: float = 1.0):
        super().__init__(d_input, d_state, d_output, complex, dt_min, dt_max)
        a = torch.empty(d_state).uniform_(a_min, a_max) / A_MAX
        self.a_raw = nn.Parameter(_inv_sigmoid(a))

    def coefficients(self):
        coef = super().coefficients()
        coef["A"] = self._real(A_MAX * torch.sigmoid(self.a_raw))
        return coef

    def potential(self, y, v, coef):
        return coef["s"] * (0.5 * coef["A"] * y * y - v * y)

    def force(self, y, v, coef):
        return coef["s"] * (coef["A"] * y - v)

    def transition(self, coef):
        """The per-channel 2x2 matrix ``M`` as ``(m11, m12, m21, m22)``, each (2N,)."""
        k = coef["s"] * coef["A"]
        return 1 - k / 2, 1 - k / 4, -k, 1 - k / 2

    def trajectory(self, v, y0=None, w0=None, kicks=None, coef=None, parallel: bool = True):
        coef = self.coefficients() if coef is None else coef
        m = self.transition(coef)
        sv = coef["s"] * v
        by, bw = 0.5 * sv, sv
        if kicks is not None:  # a momentum kick before the step enters as M (0, kick)
            by = by + m[1] * kicks
            bw = bw + m[3] * kicks
        run = linear_recurrence_scan if parallel else linear_recurrence_loop
        y, w = run(m, by, bw, y0, w0)
        # midpoints y_{t-1} + (w_{t-1} + kick_t) / 2 of every step
        yp = torch.cat([(torch.zeros_like(v[:, 0]) if y0 is None else y0).unsqueeze(1), y[:, :-1]], 1)
        wp = torch.cat([(torch.zeros_like(v[:, 0]) if w0 is None else w0).unsqueeze(1), w[:, :-1]], 1)
        if kicks is not None:
            wp = wp + kicks
        return y, w, yp + 0.5 * wp


class NonlinearHRU(HRU):
    """Nonlinear HRU with the log-cosh potential of REFERENCES §6::

        V_i = 1/2 alpha_i y_i^2 + c_i log cosh(w_i y_i + (B u)_i + b_i) / w_i

    ``alpha = softplus(.) >= 0``, ``w = softplus(.) > 0``; ``c``, ``b`` free. Sequential only.
    """

    def __init__(self, d_input, d_state, d_output, complex=False, dt_min=0.01, dt_max=0.5):
        super().__init__(d_input, d_state, d_output, complex, dt_min, dt_max)
        self.alpha_raw = nn.Parameter(torch.empty(d_state).uniform_(-1.0, 0.5))
        self.c = nn.Parameter(torch.empty(d_state).uniform_(0.2, 1.0))
        self.w_raw = nn.Parameter(torch.full((d_state,), math.log(math.e - 1)))  # w = 1
        self.b = nn.Parameter(torch.zeros(d_state))

    def coefficients(self):
        coef = super().coefficients()
        coef.update(alpha=self._real(F.softplus(self.alpha_raw)), c=self._real(self.c),
                    w=self._real(F.softplus(self.w_raw)), b=self._real(self.b))
        return coef

    def potential(self, y, v, coef):
        z = coef["w"] * y + v + coef["b"]
        return coef["s"] * (0.5 * coef["alpha"] * y * y + coef["c"] * logcosh(z) / coef["w"])

    def force(self, y, v, coef):
        z = coef["w"] * y + v + coef["b"]
        return coef["s"] * (coef["alpha"] * y + coef["c"] * torch.tanh(z))


HRUS = {"linear": LinearHRU, "nonlinear": NonlinearHRU}


class HSSMBlock(nn.Module):
    """``x -> x + GLU(GELU(o))`` with ``o = HRU(LayerNorm(x))``; the HRU has N oscillators."""

    def __init__(self, d_model: int, d_state: int, hru: str = "linear", complex: bool = False, glu: bool = True,
                 dt_min: float = 0.01, dt_max: float = 0.5):
        super().__init__()
        if hru not in HRUS:
            raise ValueError(f"unknown HRU {hru!r}; valid: {', '.join(HRUS)}")
        self.norm = nn.LayerNorm(d_model)
        self.hru = HRUS[hru](d_model, d_state, d_model, complex=complex, dt_min=dt_min, dt_max=dt_max)
        self.glu = nn.Linear(d_model, 2 * d_model) if glu else None

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        """The HRU's input ``u = LayerNorm(x)`` (pointwise in time)."""
        return self.norm(x)

    def post(self, x: torch.Tensor, y: torch.Tensor, u: torch.Tensor, coef) -> torch.Tensor:
        """The block's output from its input ``x``, the HRU positions ``y`` and input ``u``."""
        h = F.gelu(self.hru.output(y, u, coef))
        if self.glu is not None:
            h = F.glu(self.glu(h), dim=-1)
        return x + h

    def forward(self, x: torch.Tensor, parallel: bool = True) -> torch.Tensor:
        coef = self.hru.coefficients()
        u = self.pre(x)
        y, _, _ = self.hru.trajectory(self.hru.drive(u, coef), coef=coef, parallel=parallel)
        return self.post(x, y, u, coef)


POOLS = ("mean", "last", "none")


class HSSM(nn.Module):
    """Hamiltonian state-space model: encoder, ``blocks`` x [norm, HRU, GELU/GLU, residual], readout.

    d_input: channels of x (B, T, d_input); d_output: classes (or regression outputs);
    pool: "mean" (over valid steps), "last" (each sequence's last step) -> (B, d_output);
    "none" -> (B, T, d_output) (sequence regression). ``hru``: "linear" or "nonlinear".
    Integer targets give cross-entropy, float targets ``1/2 |out - y|^2`` (per step for "none").
    """

    is_sequence_model = True

    def __init__(self, d_input: int, d_output: int, d_model: int = 32, d_state: int | None = None,
                 blocks: int = 2, hru: str = "linear", complex: bool = False, pool: str = "mean",
                 glu: bool = True, dt_min: float = 0.01, dt_max: float = 0.5):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; valid: {', '.join(POOLS)}")
        if blocks < 1:
            raise ValueError(f"an HSSM needs at least one block, got blocks={blocks}")
        self.d_input, self.d_output, self.pool = d_input, d_output, pool
        self.encoder = nn.Linear(d_input, d_model)
        self.blocks = nn.ModuleList(
            HSSMBlock(d_model, d_state or d_model, hru, complex, glu, dt_min, dt_max) for _ in range(blocks)
        )
        self.readout = nn.Linear(d_model, d_output)

    def extra_repr(self) -> str:
        hru = self.blocks[0].hru
        return (f"d_input={self.d_input}, d_output={self.d_output}, d_model={self.encoder.out_features}, "
                f"blocks={len(self.blocks)} x {type(hru).__name__}, pool={self.pool!r}")

    # -- input checks and padding --------------------------------------------------------
    def prepare(self, x) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Check ``x`` and split off the padding: ``(x with NaN -> 0, mask (B, T), lengths (B,))``."""
        if isinstance(x, (list, tuple)):
            lengths = sorted({len(s) for s in x})
            raise ValueError(
                f"ragged batch: a list of {len(x)} sequences of lengths {lengths}; pad them into one "
                f"(batch, steps, channels) tensor with eqprop.data.timeseries.pad_sequences (NaN after each end)"
            )
        if not torch.is_tensor(x) or x.dim() != 3:
            raise ValueError(f"HSSM input must be (batch, steps, channels), got shape {tuple(getattr(x, 'shape', ()))}")
        if x.shape[-1] != self.d_input:
            raise ValueError(f"HSSM expects {self.d_input} input channels, got {x.shape[-1]} (input shape {tuple(x.shape)})")
        if x.shape[1] == 0:
            raise ValueError("HSSM input has no time steps")
        nan = torch.isnan(x)
        if not bool(nan.any()):
            b, t = x.shape[:2]
            return x, torch.ones(b, t, dtype=torch.bool, device=x.device), torch.full((b,), t, device=x.device)
        pad = nan.all(-1)
        mask = ~pad
        lengths = mask.sum(1)
        steps = torch.arange(x.shape[1], device=x.device)
        if bool((nan.any(-1) & mask).any()) or bool((mask != (steps < lengths[:, None])).any()):
            raise ValueError("missing values (NaN) inside a sequence: only trailing all-NaN steps are padding; "
                             "impute missing values first")
        if bool((lengths == 0).any()):
            raise ValueError("a sequence in the batch has length 0 (all NaN)")
        return torch.nan_to_num(x, nan=0.0), mask, lengths

    # -- readout and loss ------------------------------------------------------------------
    # Written once here and used by ``forward``/``predict_loss`` and by RHEL, which processes
    # time in chunks: pooling is a weighted sum over time, so chunks add up.
    def pool_weights(self, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor | None:
        """(B, T) weights ``w`` with ``pooled = sum_t w_t h_t``: ``mask / length`` for "mean",
        one-hot at each sequence's last step for "last"; None for "none" (sequence outputs)."""
        if self.pool == "none":
            return None
        if self.pool == "mean":
            return mask.to(self.readout.weight.dtype) / lengths.unsqueeze(-1).to(self.readout.weight.dtype)
        return F.one_hot(lengths - 1, mask.shape[1]).to(self.readout.weight.dtype)

    def pool_features(self, h: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(B, T, d_model) block outputs (or a chunk of them with its slice of ``pool_weights``)
        -> (B, d_model), their weighted sum over time."""
        return (h * weights.unsqueeze(-1).to(h.dtype)).sum(1)

    def pool_grad(self, g_pooled: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``dL/dh_t`` (B, T, d_model) from ``dL/dpooled`` (B, d_model): the adjoint of ``pool_features``."""
        return g_pooled.unsqueeze(1) * weights.unsqueeze(-1).to(g_pooled.dtype)

    def pool_states(self, h: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, d_model) -> (B, d_model) by ``pool`` (mean over valid steps, or the last one)."""
        return self.pool_features(h, self.pool_weights(mask, lengths))

    def error_steps(self, steps: int) -> int:
        """Over how many of ``steps`` time steps one sample's loss is spread: 1 for "last", else
        ``steps`` (RHEL measures ``eps`` in units of one sample's error at one step)."""
        return 1 if self.pool == "last" else steps

    def step_losses(self, output: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
                    lengths: torch.Tensor) -> torch.Tensor:
        """For ``pool="none"``: (B, T') each step's share of ``loss``, ``1/2 |out_t - y_t|^2 /
        (length * B)`` on valid steps, 0 on padding. ``output``, ``y``, ``mask`` may be a chunk of
        steps (``lengths`` always the whole sequences'); the shares of all steps add up to ``loss``."""
        if y.shape != output.shape:
            raise ValueError(f"regression targets have shape {tuple(y.shape)} but the outputs {tuple(output.shape)}")
        y = torch.where(mask.unsqueeze(-1), y.to(output.dtype), torch.zeros_like(output))  # NaN on padding
        err = 0.5 * (output - y).square().sum(-1)
        return err * mask.to(err.dtype) / (lengths.unsqueeze(-1).to(err.dtype) * output.shape[0])

    def loss(self, output: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean loss over the batch: cross-entropy for class targets, ``1/2 |out - y|^2`` otherwise.

        For ``pool="none"`` the squared error is averaged over each sequence's valid steps.
        """
        if not y.is_floating_point():
            if self.pool == "none":
                raise ValueError("pool='none' (sequence outputs) needs float regression targets (B, T, d_output)")
            return F.cross_entropy(output, y)
        if y.shape != output.shape:
            raise ValueError(f"regression targets have shape {tuple(y.shape)} but the outputs {tuple(output.shape)}")
        if self.pool == "none":
            if mask is None:
                mask = torch.ones(output.shape[:2], dtype=torch.bool, device=output.device)
            return self.step_losses(output, y, mask, mask.sum(1)).sum()
        return (0.5 * (output - y.to(output.dtype)).square().sum(-1)).mean()

    # -- forward -----------------------------------------------------------------------------
    def features(self, x: torch.Tensor, parallel: bool = True) -> torch.Tensor:
        """Encoder and blocks: (B, T, d_input) (NaN-free) -> (B, T, d_model)."""
        h = self.encoder(x)
        for block in self.blocks:
            h = block(h, parallel=parallel)
        return h

    def forward(self, x, parallel: bool = True) -> torch.Tensor:
        """Scores (B, d_output), or (B, T, d_output) for ``pool="none"``.

        ``parallel=False`` runs the linear units with the sequential loop instead of the scan.
        """
        x, mask, lengths = self.prepare(x)
        h = self.features(x, parallel)
        if self.pool == "none":
            return self.readout(h)
        return self.readout(self.pool_states(h, mask, lengths))

    def predict_loss(self, x, y, parallel: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(output, loss)`` with autograd through everything (the BPTT reference)."""
        xc, mask, lengths = self.prepare(x)
        h = self.features(xc, parallel)
        out = self.readout(h) if self.pool == "none" else self.readout(self.pool_states(h, mask, lengths))
        return out, self.loss(out, y, mask)
