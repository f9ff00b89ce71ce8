"""Linear recurrences with a constant 2x2 block per channel, as a parallel scan or a plain loop.

The linear Hamiltonian recurrent unit (``eqprop.models.hamiltonian.LinearHRU``) advances each
channel's (position, momentum) pair by the same 2x2 matrix at every step::

    s_t = M s_{t-1} + b_t,        s_t = (y_t, w_t),  M = [[m11, m12], [m21, m22]]  (per channel)

``linear_recurrence_scan`` computes every ``s_t`` with a parallel scan of the associative
operator ``(M1, b1) o (M2, b2) = (M2 M1, M2 b1 + b2)``; ``M`` is the same at every step, so only
its powers are needed. Two forms: "blocked" (scan blocks of ``K`` steps side by side, carry the
block totals, fix up; ``O(T)`` work, ``K + T/K`` rounds: the fast one on CPUs) and "doubling"
(Hillis-Steele: after round ``r`` each position holds ``sum_{j < 2^r} M^j b_{t-j}``;
``ceil(log2 T)`` rounds of ``O(T)`` work).
``linear_recurrence_loop`` is the sequential reference the tests compare it with.

Shapes: ``m11 .. m22``: (N,) or broadcastable to (..., N); ``by, bw``: (B, T, N); ``y0, w0``:
(B, N) or None (zeros). Both return ``(y, w)`` of shape (B, T, N): the states after each step.
"""
from __future__ import annotations

import math

import torch


def linear_recurrence_loop(m, by, bw, y0=None, w0=None):
    """Sequential reference: ``s_t = M s_{t-1} + b_t`` one step at a time; ``m = (m11, m12, m21, m22)``."""
    m11, m12, m21, m22 = m
    y = torch.zeros_like(by[:, 0]) if y0 is None else y0
    w = torch.zeros_like(bw[:, 0]) if w0 is None else w0
    ys, ws = [], []
    # time-major contiguous steps; unbind makes one backward node, not T full-size ones
    for bty, btw in zip(by.transpose(0, 1).contiguous().unbind(0), bw.transpose(0, 1).contiguous().unbind(0)):
        y, w = m11 * y + m12 * w + bty, m21 * y + m22 * w + btw
        ys.append(y)
        ws.append(w)
    return torch.stack(ys, 1), torch.stack(ws, 1)


def linear_recurrence_scan(m, by, bw, y0=None, w0=None, block: int | None = None, method: str = "blocked"):
    """Parallel scan of ``s_t = M s_{t-1} + b_t``; equals :func:`linear_recurrence_loop`.

    method="blocked" (default; the work-efficient multi-core scan): split the T steps into
    blocks of ``block`` (default ``ceil(sqrt(T))``); (1) scan every block from a zero state, all
    blocks at once; (2) carry the block totals across blocks, ``S_c = local_c + M^K S_{c-1}``;
    (3) fix every position up with ``M^{j+1} S_{c-1}``. ``O(T)`` work, ``block + T/block``
    sequential rounds. method="doubling": the Hillis-Steele scan, ``ceil(log2 T)`` rounds of
    ``O(T)`` work each (fewer rounds, more work: it wins on wide parallel hardware).
    Differentiable either way.
    """
    m11, m12, m21, m22 = m
    if by.shape != bw.shape or by.dim() != 3:
        raise ValueError(f"by and bw must both be (batch, steps, channels), got {tuple(by.shape)} and {tuple(bw.shape)}")
    if method == "doubling":
        return _doubling_scan(m, by, bw, y0, w0)
    if method != "blocked":
        raise ValueError(f"unknown scan method {method!r}; valid: blocked, doubling")
    bsz, steps, n = by.shape
    k = block or max(1, math.ceil(math.sqrt(steps)))
    nb = -(-steps // k)
    pad = nb * k - steps
    if pad:
        by = torch.cat([by, by.new_zeros(bsz, pad, n)], 1)
        bw = torch.cat([bw, bw.new_zeros(bsz, pad, n)], 1)
    # (1) every block from a zero state, all blocks at once
    ly, lw = linear_recurrence_loop(m, by.reshape(bsz * nb, k, n), bw.reshape(bsz * nb, k, n))
    ly, lw = ly.reshape(bsz, nb, k, n), lw.reshape(bsz, nb, k, n)
    # powers M^1 .. M^k
    powers = [(m11, m12, m21, m22)]
    for _ in range(k - 1):
        a, b, c, d = powers[-1]
        powers.append((a * m11 + b * m21, a * m12 + b * m22, c * m11 + d * m21, c * m12 + d * m22))
    p11, p12, p21, p22 = (torch.stack([torch.broadcast_to(q[i], (n,)) for q in powers]) for i in range(4))  # (k, n)
    # (2) carry the state entering each block
    sy = by.new_zeros(bsz, n) if y0 is None else y0
    sw = bw.new_zeros(bsz, n) if w0 is None else w0
    enter_y, enter_w = [], []
    last_y, last_w = ly[:, :, -1].unbind(1), lw[:, :, -1].unbind(1)
    for c in range(nb):
        enter_y.append(sy)
        enter_w.append(sw)
        sy, sw = last_y[c] + p11[-1] * sy + p12[-1] * sw, last_w[c] + p21[-1] * sy + p22[-1] * sw
    ey, ew = torch.stack(enter_y, 1).unsqueeze(2), torch.stack(enter_w, 1).unsqueeze(2)  # (B, nb, 1, n)
    # (3) fix up every position with M^{j+1} times the entering state
    y = ly + p11 * ey + p12 * ew
    w = lw + p21 * ey + p22 * ew
    y, w = y.reshape(bsz, nb * k, n), w.reshape(bsz, nb * k, n)
    if pad:
        y, w = y[:, :steps], w[:, :steps]
    return y, w


def _doubling_scan(m, by, bw, y0=None, w0=None):
    m11, m12, m21, m22 = m
    if y0 is not None or w0 is not None:
        # fold the start state into the first step: s_1 = M s_0 + b_1
        y0 = torch.zeros_like(by[:, 0]) if y0 is None else y0
        w0 = torch.zeros_like(bw[:, 0]) if w0 is None else w0
        first_y = by[:, :1] + (m11 * y0 + m12 * w0).unsqueeze(1)
        first_w = bw[:, :1] + (m21 * y0 + m22 * w0).unsqueeze(1)
        by = torch.cat([first_y, by[:, 1:]], 1)
        bw = torch.cat([first_w, bw[:, 1:]], 1)
    y, w = by, bw
    p11, p12, p21, p22 = m11, m12, m21, m22  # M^d for the current offset d
    steps = by.shape[1]
    d = 1
    while d < steps:
        py, pw = y[:, :-d], w[:, :-d]
        y = torch.cat([y[:, :d], y[:, d:] + p11 * py + p12 * pw], 1)
        w = torch.cat([w[:, :d], w[:, d:] + p21 * py + p22 * pw], 1)
        p11, p12, p21, p22 = _square(p11, p12, p21, p22)
        d *= 2
    return y, w


def _square(a, b, c, d):
    """The square of the 2x2 matrix [[a, b], [c, d]] (elementwise over channels)."""
    return a * a + b * c, a * b + b * d, c * a + d * c, c * b + d * d

