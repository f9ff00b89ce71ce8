"""Weak-RESET HfOx RRAM: the compact device model of Majumdar et al. 2021 (REFERENCES §8).

Every device carries a cumulative count ``n`` of weak-RESET pulses and a resistance

    R = R0 exp(w),    w = w_mean(n) + w_RTN + alpha w_1/f

- ``w_mean`` is piecewise linear in ``n``: slope ``m1`` up to ``n*``, then ``m2``, intercept ``c1``
  (continuous at ``n*``): ``w_mean(n) = c1 + m1 n`` for ``n < n*``, else
  ``c1 + m1 n* + m2 (n - n*)``.
- ``w_RTN`` is random telegraph noise: a two-state Markov chain per device, advanced one step
  per pulse (``P(0 -> 1) = 0.0008``, ``P(1 -> 0) = 0.002``); in the high state it adds an
  amplitude ``A ~ U(0, a)`` (redrawn at each 0 -> 1 transition), with ``a ~ U(0, 0.5)`` drawn
  once per device.
- ``w_1/f`` is flicker (1/f) noise, scaled by ``alpha = 0.025``: white noise through a
  fractional (half-order) filter ``(1 - z^-1)^(-1/2)``, one-sided spectrum
  ``S(f) = sigma^2 / sin(pi f)`` with ``sigma = 1/sqrt(12)``, the std of the anchor code's
  ``U(0, 1)`` input (``w_1/f`` then has std 0.45). The filter is realised in parallel
  first-order form: ``flicker_gain()`` times the sum of ``flicker_poles`` independent
  unit-variance AR(1) sections with corner frequencies log-spaced over ``flicker_band`` (cycles
  per pulse), a superposition of Lorentzians whose spectrum is 1/f inside the band (the
  McWhorter picture of traps with spread-out time constants), its level matched to ``S(f)``.
  The anchor code applies Kasdin's FIR coefficients of the same filter, truncated at 15 taps;
  the parallel form holds the 1/f slope over two decades with a few numbers per device and
  advances ``k`` pulses in closed form.
- Device-to-device (D2D) variability: ``m1, n*, c1, m2, R0`` drawn once per device from
  truncated distributions (``D2D_DISTRIBUTIONS``). With ``d2d`` off every device takes the
  mean of each truncated distribution.

Time is counted in pulses: the noise of a device advances only when it is pulsed (the model is
one of cycle-to-cycle variation), so ``k`` pulses at once equal ``k`` single pulses in
distribution; RTN and flicker sections are advanced ``k`` steps in closed form
(``T^k`` of the two-state chain, ``rho^k`` of each AR(1) section), so an update costs the same
whatever the pulse count. Everything is vectorised (no per-device Python); an update gathers
the pulsed devices, draws random numbers for them only (independently per device), advances them
and scatters them back, so unpulsed devices cost nothing and stay exactly as they were. The
random numbers come from one ``torch.Generator`` on the devices' torch device.

A synapse is a pair of devices (``RRAMPairs``): weight ``sign(R_1 - R_2)``; a signed update of
``k`` pulses (rounded, clamped to ``+-max_pulses``) goes to device 1 when positive and to device 2
when negative (weak RESET only raises resistance, so either sign is reachable).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F

__all__ = [
    "D2D_DISTRIBUTIONS", "D2D_PARAMS", "PRESETS", "RRAMArray", "RRAMConfig", "RRAMPairs", "TruncatedDist",
    "apply_pulses", "flicker_noise", "init_devices", "log_resistance", "make_generator", "mean_model",
    "pair_weight", "preset", "resistance", "split_pulses", "update_pairs",
]

_SQRT2 = math.sqrt(2.0)


def _ndtr(x: float) -> float:
    return 0.5 * math.erfc(-x / _SQRT2)


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class TruncatedDist:
    """A distribution restricted to ``[low, high]`` (sampled by inverse CDF, in float64).

    ``kind``: ``"exponential"`` (``p1`` = scale, rate ``1/p1``, support from 0),
    ``"normal"`` (``p1`` = mean, ``p2`` = std), ``"lognormal"`` (scipy's convention:
    ``p1`` = shape ``s`` = std of ``log x``, ``p2`` = ``scale`` = ``exp(mean of log x)``).
    """

    kind: str
    p1: float
    p2: float
    low: float
    high: float

    def __post_init__(self):
        if self.kind not in ("exponential", "normal", "lognormal"):
            raise ValueError(f"unknown distribution {self.kind!r}; valid: exponential, normal, lognormal")
        if not self.low < self.high:
            raise ValueError(f"empty truncation interval [{self.low}, {self.high}]")

    def _normal_params(self) -> tuple[float, float, float, float]:
        """(mu, sigma, alpha, beta) of the underlying normal (of log x for the lognormal)."""
        if self.kind == "normal":
            mu, sig, lo, hi = self.p1, self.p2, self.low, self.high
        else:
            mu, sig, lo, hi = math.log(self.p2), self.p1, math.log(self.low), math.log(self.high)
        return mu, sig, (lo - mu) / sig, (hi - mu) / sig

    def mean(self) -> float:
        """Mean of the truncated distribution (closed form)."""
        if self.kind == "exponential":
            s, d = self.p1, self.high - self.low
            e = math.exp(-d / s)
            return self.low + s - d * e / (1.0 - e)  # memoryless: Exp shifted to low, cut at d
        mu, sig, a, b = self._normal_params()
        z = _ndtr(b) - _ndtr(a)
        if self.kind == "normal":
            return mu + sig * (_phi(a) - _phi(b)) / z
        return math.exp(mu + 0.5 * sig * sig) * (_ndtr(b - sig) - _ndtr(a - sig)) / z

    def sample(self, shape, generator: torch.Generator, device=None, dtype=torch.float32) -> torch.Tensor:
        """Independent draws of shape ``shape``, inside ``[low, high]``."""
        u = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
        if self.kind == "exponential":
            s, d = self.p1, self.high - self.low
            x = self.low - s * torch.log1p(-u * (-math.expm1(-d / s)))
        else:
            mu, sig, a, b = self._normal_params()
            fa, fb = _ndtr(a), _ndtr(b)
            x = mu + sig * torch.special.ndtri(fa + u * (fb - fa))
            if self.kind == "lognormal":
                x = torch.exp(x)
        return x.clamp_(self.low, self.high).to(dtype)


# Majumdar et al. 2021, as listed in REFERENCES §8 (fits to measured HfOx devices).
D2D_DISTRIBUTIONS: dict[str, TruncatedDist] = {
    "m1": TruncatedDist("exponential", 6.56e-4, 0.0, 3.74e-5, 0.0076),
    "n_star": TruncatedDist("lognormal", 0.803, 542.5, 41.0, 2000.0),
    "c1": TruncatedDist("normal", 0.0053, 0.0532, -0.15, 0.15),
    "m2": TruncatedDist("exponential", 2.89e-5, 0.0, 0.0, 1.3e-4),
    "R0": TruncatedDist("normal", 6988.0, 381.7, 6252.0, 7897.0),
}
D2D_PARAMS = tuple(D2D_DISTRIBUTIONS)


@dataclass
class RRAMConfig:
    """The weak-RESET device model; one switch per imperfection (the mean model is always on).

    Args:
        rtn: random telegraph noise (two-state Markov chain per device).
        flicker: 1/f noise ``alpha * w_1/f``.
        d2d: device-to-device draws of ``m1, n*, c1, m2, R0`` (else every device takes the means).
        max_pulses: clamp of the pulses one update applies to one device (anchor code: 14).
        p_01, p_10: RTN transition probabilities per pulse (low -> high, high -> low).
        rtn_amplitude_max: ``a`` of each device is drawn from ``U(0, rtn_amplitude_max)``.
        alpha: coupling of the 1/f noise ``alpha * w_1/f``.
        flicker_poles: number of first-order sections of the 1/f filter.
        flicker_band: ``(f_low, f_high)`` corner frequencies of the first and last section, in
            cycles per pulse; the spectrum is 1/f between them.
        flicker_input_std: standard deviation of the white noise driving the fractional filter
            (default ``1/sqrt(12)``, that of the anchor code's ``U(0, 1)`` input): ``w_1/f`` has
            the one-sided spectrum ``flicker_input_std^2 / sin(pi f)`` of that filter inside the
            band (``flicker_gain()``).
    """

    rtn: bool = True
    flicker: bool = True
    d2d: bool = True
    max_pulses: int = 14
    p_01: float = 0.0008
    p_10: float = 0.002
    rtn_amplitude_max: float = 0.5
    alpha: float = 0.025
    flicker_poles: int = 6
    flicker_band: tuple[float, float] = (1e-3, 0.5)
    flicker_input_std: float = 1.0 / math.sqrt(12.0)
    distributions: dict = field(default_factory=lambda: dict(D2D_DISTRIBUTIONS), repr=False)

    def __post_init__(self):
        if self.max_pulses < 1:
            raise ValueError(f"max_pulses must be >= 1, got {self.max_pulses}")
        if not (0 < self.p_01 < 1 and 0 < self.p_10 < 1):
            raise ValueError("RTN transition probabilities must lie in (0, 1)")
        lo, hi = self.flicker_band
        if not 0 < lo < hi <= 0.5:
            raise ValueError(f"flicker_band must satisfy 0 < f_low < f_high <= 0.5, got {self.flicker_band}")
        if self.flicker_poles < 1:
            raise ValueError(f"flicker_poles must be >= 1, got {self.flicker_poles}")
        self.flicker_band = (float(lo), float(hi))
        missing = set(D2D_PARAMS) - set(self.distributions)
        if missing:
            raise ValueError(f"distributions lacks {sorted(missing)}")

    def nominal(self) -> dict[str, float]:
        """The parameters of a device without D2D variability: each truncated distribution's mean."""
        return {k: self.distributions[k].mean() for k in D2D_PARAMS}

    def rtn_high_probability(self) -> float:
        """Stationary probability of the RTN high state, ``p_01 / (p_01 + p_10)``."""
        return self.p_01 / (self.p_01 + self.p_10)

    def flicker_poles_rho(self) -> torch.Tensor:
        """AR(1) coefficients ``rho_j = exp(-2 pi f_j)``, ``f_j`` log-spaced over the band (float64)."""
        lo, hi = self.flicker_band
        f = torch.logspace(math.log10(lo), math.log10(hi), self.flicker_poles, dtype=torch.float64)
        return torch.exp(-2.0 * math.pi * f)

    def flicker_gain(self) -> float:
        """Gain ``g`` of ``w_1/f = g * sum_j x_j`` (unit-variance sections ``x_j``).

        Chosen so that the sections' summed spectrum matches the fractional filter
        ``(1 - z^-1)^(-1/2)`` driven by white noise of std ``flicker_input_std``, one-sided PSD
        ``S(f) = flicker_input_std^2 / sin(pi f)``, in the log-mean over the inner band
        ``[2 f_low, f_high / 5]`` (closed form: each section's one-sided spectrum is
        ``2 (1 - rho^2) / |1 - rho e^{-2 pi i f}|^2``).
        """
        return _flicker_gain(self.flicker_poles, *self.flicker_band, self.flicker_input_std)

    def to_dict(self) -> dict:
        """Plain numbers only (for checkpoints and YAML); the distributions are fixed by the model."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "distributions"}
        d["flicker_band"] = list(d["flicker_band"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RRAMConfig:
        d = dict(d)
        if "flicker_band" in d:
            d["flicker_band"] = tuple(d["flicker_band"])
        return cls(**d)


@functools.lru_cache(maxsize=32)
def _flicker_gain(poles: int, lo: float, hi: float, input_std: float) -> float:
    f = torch.logspace(math.log10(2 * lo), math.log10(hi / 5), 256, dtype=torch.float64)
    rho = torch.exp(-2.0 * math.pi * torch.logspace(math.log10(lo), math.log10(hi), poles, dtype=torch.float64))[:, None]
    z = torch.polar(torch.ones_like(f), -2 * math.pi * f)
    s_sum = (2 * (1 - rho ** 2) / (1 - rho * z).abs() ** 2).sum(0)
    target = input_std ** 2 / torch.sin(math.pi * f)
    return float(torch.exp(0.5 * torch.log(target / s_sum).mean()))


PRESETS: dict[str, dict] = {
    "ideal": {"rtn": False, "flicker": False, "d2d": False},
    "rtn": {"rtn": True, "flicker": False, "d2d": False},
    "flicker": {"rtn": False, "flicker": True, "d2d": False},
    "d2d": {"rtn": False, "flicker": False, "d2d": True},
    "all": {"rtn": True, "flicker": True, "d2d": True},
}


def preset(name: str, **overrides) -> RRAMConfig:
    """A named configuration: ``ideal`` (mean model only), ``rtn``, ``flicker``, ``d2d`` (one
    imperfection each) or ``all``; ``overrides`` set any other field."""
    try:
        base = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown RRAM preset {name!r}; valid presets: {', '.join(PRESETS)}") from None
    return RRAMConfig(**{**base, **overrides})


def make_generator(seed: int | None = None, device=None) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` (CPU by default), seeded when ``seed`` is given."""
    g = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    if seed is not None:
        g.manual_seed(int(seed))
    return g


# -- the functional core: a device population is a dict of tensors ----------------------------

def mean_model(n: torch.Tensor, m1, n_star, c1, m2) -> torch.Tensor:
    """``w_mean(n)``: ``c1 + m1 n`` below ``n*``, ``c1 + m1 n* + m2 (n - n*)`` above."""
    return torch.where(n < n_star, c1 + m1 * n, c1 + m1 * n_star + m2 * (n - n_star))


def init_devices(shape, config: RRAMConfig, generator: torch.Generator, device=None,
                 dtype=torch.float32) -> dict[str, torch.Tensor]:
    """A fresh population of devices of shape ``shape`` (no pulse applied yet).

    Returns a dict of tensors only: ``n`` (int32 pulse counts), ``m1, n_star, c1, m2, R0``
    (per device with ``d2d``, else 0-dim), and, when enabled, ``rtn_high`` (bool),
    ``rtn_amp`` (current high-state amplitude), ``rtn_amp_max`` (``a`` of each device) and
    ``flicker`` (``(*shape, flicker_poles)`` AR(1) sections, stationary N(0, 1) at start).
    """
    shape = tuple(shape)
    device = torch.device(device) if device is not None else generator.device
    st: dict[str, torch.Tensor] = {"n": torch.zeros(shape, dtype=torch.int32, device=device)}
    if config.d2d:
        for k in D2D_PARAMS:
            st[k] = config.distributions[k].sample(shape, generator, device=device, dtype=dtype)
    else:
        for k, v in config.nominal().items():
            st[k] = torch.tensor(v, dtype=dtype, device=device)
    if config.rtn:
        u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
        st["rtn_high"] = u < config.rtn_high_probability()          # stationary start
        st["rtn_amp_max"] = config.rtn_amplitude_max * torch.rand(shape, generator=generator, device=device, dtype=dtype)
        st["rtn_amp"] = st["rtn_amp_max"] * torch.rand(shape, generator=generator, device=device, dtype=dtype)
    if config.flicker:
        st["flicker"] = torch.randn(shape + (config.flicker_poles,), generator=generator, device=device, dtype=dtype)
    return st


def flicker_noise(state: dict[str, torch.Tensor], config: RRAMConfig) -> torch.Tensor:
    """``w_1/f`` of every device: ``flicker_gain() * sum_j x_j`` over the filter's sections."""
    x = state["flicker"]
    ones = torch.full((x.shape[-1],), config.flicker_gain(), dtype=x.dtype, device=x.device)
    return x @ ones


def log_resistance(state: dict[str, torch.Tensor], config: RRAMConfig) -> torch.Tensor:
    """``w = w_mean(n) + w_RTN + alpha w_1/f`` of every device."""
    n = state["n"].to(state["c1"].dtype)
    w = mean_model(n, state["m1"], state["n_star"], state["c1"], state["m2"])
    if config.rtn:
        w = w + torch.where(state["rtn_high"], state["rtn_amp"], 0.0)
    if config.flicker:
        w = w + config.alpha * flicker_noise(state, config)
    return w


def resistance(state: dict[str, torch.Tensor], config: RRAMConfig) -> torch.Tensor:
    """``R = R0 exp(w)`` in ohm."""
    return state["R0"] * torch.exp(log_resistance(state, config))


@functools.lru_cache(maxsize=64)
def _flicker_table(poles: int, band: tuple[float, float], max_pulses: int, device: torch.device,
                   dtype: torch.dtype) -> torch.Tensor:
    """``[rho_j^k | sqrt(1 - rho_j^(2k))]`` for ``k = 0 .. max_pulses``: one ``(max_pulses + 1, 2P)``
    table (built once per configuration and torch device, not at every update); an update looks
    it up (an embedding lookup is several times cheaper on the CPU than computing ``exp`` and
    ``sqrt`` for every device and section)."""
    lo, hi = band
    f = torch.logspace(math.log10(lo), math.log10(hi), poles, dtype=torch.float64)
    log_rho = -2.0 * math.pi * f
    k = torch.arange(max_pulses + 1, dtype=torch.float64)
    decay = torch.exp(k[:, None] * log_rho[None, :])
    sd = torch.sqrt(1.0 - decay * decay)
    return torch.cat((decay, sd), 1).to(device=device, dtype=dtype)


def _flicker_tables(config: RRAMConfig, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``rho_j^k`` and ``sqrt(1 - rho_j^(2k))`` for ``k = 0 .. max_pulses``: two
    ``(max_pulses + 1, P)`` tables (views of the cached ``_flicker_table``)."""
    t = _flicker_table(config.flicker_poles, tuple(config.flicker_band), config.max_pulses,
                       torch.device(device), dtype)
    P = config.flicker_poles
    return t[:, :P], t[:, P:]


@functools.lru_cache(maxsize=64)
def _rtn_lambda(p_01: float, p_10: float, max_pulses: int, device: torch.device) -> torch.Tensor:
    k = torch.arange(max_pulses + 1, dtype=torch.float64)
    return torch.pow(1.0 - p_01 - p_10, k).to(device=device)


def _rtn_table(config: RRAMConfig, device, dtype) -> torch.Tensor:
    """``lambda^k`` for ``k = 0 .. max_pulses`` (``lambda = 1 - p_01 - p_10``; cached)."""
    return _rtn_lambda(config.p_01, config.p_10, config.max_pulses, torch.device(device)).to(dtype)


def _flat(t: torch.Tensor) -> torch.Tensor:
    """A flat *view* of a state tensor (in-place writes through it must reach the state)."""
    return t.view(-1)


def _advance_rtn(state, rows: torch.Tensor, k: torch.Tensor, config: RRAMConfig, generator) -> None:
    """``k`` steps of the two-state chain of each pulsed device (flat indices ``rows``), in closed form.

    With ``lambda = 1 - p - q`` and ``pi = p / (p + q)``, after ``k`` steps a low device is high
    with probability ``pi (1 - lambda^k)`` and a high one is low with ``(1 - pi)(1 - lambda^k)``.
    A device switches when its uniform draw ``u`` falls below that probability; as every such
    probability is below ``bound = max(pi, 1 - pi)(1 - lambda^max_pulses)`` (about 3% at 14 pulses),
    only the few devices with ``u < bound`` are looked at (gathered, decided exactly, scattered
    back). On entering the high state the amplitude ``A = a * u / P(switch)`` reuses the draw
    (``u / P`` is ``U(0, 1)`` given ``u < P``). Unpulsed devices draw nothing and do not change.
    """
    p, q = config.p_01, config.p_10
    pi = p / (p + q)
    lam = _rtn_lambda(p, q, config.max_pulses, rows.device)
    bound = max(pi, 1.0 - pi) * (1.0 - float(lam[-1]))
    amp = _flat(state["rtn_amp"])
    u = torch.rand(rows.shape, generator=generator, device=rows.device, dtype=amp.dtype)
    sel = torch.nonzero(u < bound).squeeze(1)
    if sel.numel() == 0:
        return
    high = _flat(state["rtn_high"])
    rc = rows.index_select(0, sel)
    kc = k.index_select(0, sel)
    hc = high.index_select(0, rc)
    uc = u.index_select(0, sel).to(torch.float64)
    one_minus = 1.0 - lam.index_select(0, kc)
    p_switch = torch.where(hc, (1.0 - pi) * one_minus, pi * one_minus)
    switch = uc < p_switch                                     # k >= 1 here, so p_switch > 0
    entered = switch & ~hc
    fresh = _flat(state["rtn_amp_max"]).index_select(0, rc) * (uc / p_switch.clamp(min=1e-300)).to(amp.dtype)
    amp.index_copy_(0, rc, torch.where(entered, fresh, amp.index_select(0, rc)))
    high.index_copy_(0, rc, hc ^ switch)


def _advance_flicker(state, rows: torch.Tensor, k: torch.Tensor, config: RRAMConfig, generator) -> torch.Tensor:
    """Each section of each pulsed device: ``x_j <- rho_j^k x_j + sqrt(1 - rho_j^(2k)) xi`` (the
    exact ``k``-step AR(1), unit variance), on the pulsed rows only (gathered, updated, scattered
    back): ``P`` Gaussian draws per pulsed device, none for an unpulsed one (``k = 0`` leaves it
    exactly as it was). Returns the pulsed rows' new sections ``(m, P)``."""
    x = state["flicker"]
    P = x.shape[-1]
    xf = x.view(-1, P)
    table = _flicker_table(config.flicker_poles, tuple(config.flicker_band), config.max_pulses, x.device, x.dtype)
    looked_up = F.embedding(k, table)                          # (m, 2P): rho^k | sqrt(1 - rho^2k)
    xs = xf.index_select(0, rows)
    noise = torch.randn(xs.shape, generator=generator, device=x.device, dtype=x.dtype)
    xs.mul_(looked_up[:, :P]).addcmul_(noise, looked_up[:, P:])
    xf.index_copy_(0, rows, xs)
    return xs


def _apply_counts(state: dict[str, torch.Tensor], k: torch.Tensor, config: RRAMConfig,
                  generator: torch.Generator) -> None:
    """Add the int64 counts ``k`` (devices' shape, already clamped) and advance the noise of the
    pulsed devices only."""
    n = state["n"]
    n.add_(k.to(n.dtype))
    if config.rtn or config.flicker:
        kf = k.reshape(-1)
        rows = torch.nonzero(kf != 0).squeeze(1)               # flat indices of the pulsed devices
        if rows.numel() == 0:
            return
        kr = kf.index_select(0, rows)
        if config.rtn:
            _advance_rtn(state, rows, kr, config, generator)
        if config.flicker:
            _advance_flicker(state, rows, kr, config, generator)


@torch.no_grad()
def apply_pulses(state: dict[str, torch.Tensor], pulses: torch.Tensor, config: RRAMConfig,
                 generator: torch.Generator, shared: bool = False) -> torch.Tensor:
    """Apply ``pulses`` weak-RESET pulses to each device, in place; returns the clamped counts.

    ``pulses``: a tensor broadcastable to the devices' shape; rounded and clamped to
    ``[0, max_pulses]``. A device with 0 pulses is left exactly as it was.

    Random numbers are drawn for the pulsed devices only, independently for each (the noise of
    a device advances only when it is pulsed). ``shared`` is accepted for backward compatibility
    and has no effect (it once let the two devices of a pair share one draw).
    """
    n = state["n"]
    k = torch.round(torch.as_tensor(pulses, device=n.device)).clamp_(0, config.max_pulses)
    k = k.to(torch.int64).expand(n.shape)
    _apply_counts(state, k, config, generator)
    return k


@torch.no_grad()
def _update_pairs_counts(state: dict[str, torch.Tensor], pulses: torch.Tensor, config: RRAMConfig,
                         generator: torch.Generator, log_r: torch.Tensor | None = None,
                         static: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A pair update on a ``(2, *shape)`` state, done on the pulsed synapses only.

    ``pulses``: signed counts per synapse, rounded and clamped to ``+-max_pulses``; positive ones
    go to device 1, negative ones to device 2. Only the ``m`` pulsed synapses are touched (their
    one pulsed device each: pulse count, RTN chain, flicker sections), so the cost follows ``m``
    rather than ``2 * shape``. ``log_r`` (optional, ``(2, *shape)``): a cache of every device's
    ``log R`` (``_pair_log_r``), refreshed at the pulsed devices; ``static``: its cached
    ``_log_r_static(state)``.

    Returns the applied signed counts per synapse (``pulses``' dtype) and the flat indices of the
    pulsed synapses.
    """
    M = config.max_pulses
    ks = torch.round(pulses).clamp_(-M, M)
    kflat = ks.reshape(-1)
    idx = torch.nonzero(kflat != 0).squeeze(1)                 # pulsed synapses (nonzero is ~2x faster on bool)
    if idx.numel() == 0:
        return ks, idx
    kv = kflat.index_select(0, idx).to(torch.int64)
    rows = torch.where(kv < 0, idx + kflat.numel(), idx)      # flat index of the pulsed device
    kr = kv.abs_()
    nflat = _flat(state["n"])
    nflat.index_add_(0, rows, kr.to(nflat.dtype))
    if config.rtn:
        _advance_rtn(state, rows, kr, config, generator)
    xs = _advance_flicker(state, rows, kr, config, generator) if config.flicker else None
    if log_r is not None:
        _flat(log_r).index_copy_(0, rows, _log_r(state, config, rows, xs, static))
    return ks, idx


def _flicker_weights(config: RRAMConfig, device, dtype) -> torch.Tensor:
    """``alpha * flicker_gain()`` for each section: ``alpha w_1/f = x @ this``."""
    return _flicker_vector(config.flicker_poles, tuple(config.flicker_band), config.flicker_input_std,
                           config.alpha, torch.device(device), dtype)


@functools.lru_cache(maxsize=64)
def _flicker_vector(poles, band, input_std, alpha, device, dtype) -> torch.Tensor:
    g = alpha * _flicker_gain(poles, *band, input_std)
    return torch.full((poles,), g, dtype=dtype, device=device)


def _log_r_static(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """``log R0 + c1``: the part of every device's ``log R`` that no pulse changes."""
    return torch.log(state["R0"]).add_(state["c1"]) if state["R0"].dim() else torch.log(state["R0"]) + state["c1"]


def _log_r(state: dict[str, torch.Tensor], config: RRAMConfig, rows: torch.Tensor | None = None,
           flicker_rows: torch.Tensor | None = None, static: torch.Tensor | None = None) -> torch.Tensor:
    """``log R = log R0 + w`` of every device (``rows=None``: shape of the state), or of the flat
    indices ``rows`` (``flicker_rows``: their flicker sections, when already at hand; ``static``:
    ``_log_r_static(state)``, when cached), written as
    ``(log R0 + c1) + (w_mean(n) - c1) + w_RTN + alpha w_1/f``."""
    def get(key, t=None):
        t = state[key] if t is None else t
        return t if rows is None or t.dim() == 0 else _flat(t).index_select(0, rows)

    n = get("n").to(state["c1"].dtype)
    m1, n_star, m2 = get("m1"), get("n_star"), get("m2")
    w = torch.where(n < n_star, m1 * n, (n - n_star).mul_(m2).add_(m1 * n_star))   # w_mean(n) - c1
    w = w.add_(get("static", static if static is not None else _log_r_static(state)))
    if config.rtn:
        w = w.add_(torch.where(get("rtn_high"), get("rtn_amp"), 0.0))
    if config.flicker:
        x = state["flicker"] if rows is None else (
            flicker_rows if flicker_rows is not None
            else state["flicker"].view(-1, state["flicker"].shape[-1]).index_select(0, rows))
        w = w.add_(x @ _flicker_weights(config, x.device, x.dtype))
    return w


def _pair_log_r(state: dict[str, torch.Tensor], config: RRAMConfig,
                static: torch.Tensor | None = None) -> torch.Tensor:
    """``log R`` of every device of a ``(2, *shape)`` state (the optimizer's read-back cache)."""
    return _log_r(state, config, static=static)


def _pair_sign(log_r: torch.Tensor) -> torch.Tensor:
    """``sign(R_1 - R_2) = sign(log R_1 - log R_2)`` of a ``(2, *shape)`` tensor of ``log R``."""
    return torch.sub(log_r[0], log_r[1]).sign_()


def _check_state(state: dict, expected: dict) -> None:
    if set(state) != set(expected):
        raise KeyError(f"device state keys {sorted(state)} do not match the configuration's {sorted(expected)}")
    for key, v in expected.items():
        if tuple(state[key].shape) != tuple(v.shape):
            raise ValueError(f"device state {key!r}: shape {tuple(state[key].shape)} != {tuple(v.shape)}")


# -- thin object wrappers -------------------------------------------------------------------

class RRAMArray:
    """A population of independent weak-RESET devices of shape ``shape``.

        devices = RRAMArray((20,), preset("all"), seed=0)
        for _ in range(1000):
            devices.pulse(1)
            r = devices.resistance()        # (20,) ohm

    ``state_dict()`` holds tensors and numbers only (``torch.load(weights_only=True)`` reads it).
    """

    def __init__(self, shape, config: RRAMConfig | None = None, seed: int | None = None,
                 generator: torch.Generator | None = None, device=None, dtype=torch.float32):
        self.config = config if config is not None else RRAMConfig()
        self.generator = generator if generator is not None else make_generator(seed, device)
        self.shape = tuple(shape)
        self.state = init_devices(self.shape, self.config, self.generator, device=device, dtype=dtype)

    def pulse(self, pulses) -> torch.Tensor:
        """Apply ``pulses`` (per device, or one number for all); returns the clamped counts."""
        return apply_pulses(self.state, pulses, self.config, self.generator)

    @property
    def pulse_count(self) -> torch.Tensor:
        return self.state["n"]

    def log_resistance(self) -> torch.Tensor:
        return log_resistance(self.state, self.config)

    def resistance(self) -> torch.Tensor:
        return resistance(self.state, self.config)

    def mean_log_resistance(self) -> torch.Tensor:
        """``w_mean(n)`` of each device (its own D2D parameters, no noise)."""
        s = self.state
        return mean_model(s["n"].to(s["c1"].dtype), s["m1"], s["n_star"], s["c1"], s["m2"])

    def state_dict(self) -> dict:
        return {"config": self.config.to_dict(), "devices": {k: v.clone() for k, v in self.state.items()},
                "generator": self.generator.get_state()}

    def load_state_dict(self, sd: dict) -> None:
        self.config = RRAMConfig.from_dict(sd["config"])
        ref = init_devices(self.shape, self.config, make_generator(0, self.generator.device),
                           device=self.generator.device)
        _check_state(sd["devices"], ref)
        self.state = {k: v.to(ref[k].device).clone() for k, v in sd["devices"].items()}
        self.generator.set_state(sd["generator"])


class RRAMPairs(RRAMArray):
    """Synapses of shape ``shape``, each a pair of devices (state shape ``(2, *shape)``).

    ``weight() = sign(R_1 - R_2)``; ``update(pulses)`` sends ``round(pulses)`` clamped to
    ``+-max_pulses`` to device 1 where positive (raising ``R_1``: the weight moves up) and to
    device 2 where negative.
    """

    def __init__(self, shape, config: RRAMConfig | None = None, seed: int | None = None,
                 generator: torch.Generator | None = None, device=None, dtype=torch.float32):
        self.synapse_shape = tuple(shape)
        super().__init__((2,) + self.synapse_shape, config, seed, generator, device, dtype)

    def weight(self) -> torch.Tensor:
        return pair_weight(self.state, self.config)

    def update(self, pulses: torch.Tensor) -> torch.Tensor:
        """Signed pulse counts per synapse; returns the applied signed counts (clamped)."""
        return update_pairs(self.state, pulses, self.config, self.generator)


def split_pulses(pulses: torch.Tensor, max_pulses: int) -> torch.Tensor:
    """Signed counts ``(*shape)`` -> per-device counts ``(2, *shape)``: positive to device 1,
    negative (as a positive count) to device 2; rounded and clamped to ``max_pulses``."""
    k = torch.round(pulses).clamp_(-max_pulses, max_pulses)
    return torch.stack((k.clamp(min=0), (-k).clamp(min=0)))


def update_pairs(state: dict[str, torch.Tensor], pulses: torch.Tensor, config: RRAMConfig,
                 generator: torch.Generator) -> torch.Tensor:
    """The functional form of ``RRAMPairs.update`` on a ``(2, *shape)`` device state."""
    ks, _ = _update_pairs_counts(state, pulses, config, generator)
    return ks.to(pulses.dtype)


def pair_weight(state: dict[str, torch.Tensor], config: RRAMConfig) -> torch.Tensor:
    """``sign(R_1 - R_2)`` of a ``(2, *shape)`` device state (compared as ``log R``: no ``exp``)."""
    return _pair_sign(_log_r(state, config))
