"""The weak-RESET RRAM simulator against its own specification (Majumdar et al. 2021).

Every reference value here is computed independently of the simulator (numpy / scipy.stats),
and every tolerance is the issue's: 5% for RTN rates and D2D moments, 0.15 for the 1/f slope,
1% for the mean resistance curve.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from eqprop.devices import D2D_DISTRIBUTIONS, RRAMArray, RRAMConfig, preset
from eqprop.devices.measure import flicker_spectrum

# -- RTN ----------------------------------------------------------------------------------------

def test_rtn_transition_rates_over_long_simulation():
    """2,000 devices x 5,000 single pulses: measured P(0->1), P(1->0) within 5% of 0.0008, 0.002."""
    devices = RRAMArray((2000,), preset("rtn"), seed=1)
    prev = devices.state["rtn_high"].clone()
    up = down = time_low = time_high = 0
    for _ in range(5000):
        devices.pulse(1)
        now = devices.state["rtn_high"]
        up += int((~prev & now).sum())
        down += int((prev & ~now).sum())
        time_low += int((~prev).sum())
        time_high += int(prev.sum())
        prev = now.clone()
    p01, p10 = up / time_low, down / time_high
    assert abs(p01 / 0.0008 - 1) < 0.05, p01
    assert abs(p10 / 0.002 - 1) < 0.05, p10


def test_rtn_k_pulses_follow_the_k_step_chain():
    """k pulses at once move the chain by T^k (numpy matrix power), from each starting state."""
    cfg = preset("rtn")
    k = 14
    T = np.array([[1 - cfg.p_01, cfg.p_01], [cfg.p_10, 1 - cfg.p_10]])
    Tk = np.linalg.matrix_power(T, k)
    n = 400_000
    for start in (0, 1):
        devices = RRAMArray((n,), cfg, seed=2 + start)
        devices.state["rtn_high"] = torch.full((n,), bool(start))
        devices.pulse(k)
        p_high = float(devices.state["rtn_high"].float().mean())
        expected = Tk[start, 1]
        se = math.sqrt(expected * (1 - expected) / n)
        assert abs(p_high - expected) < 5 * se, (start, p_high, expected)


def test_rtn_amplitudes_inside_their_bounds_and_mean_level():
    """a ~ U(0, 0.5) per device, A <= a; the long-run mean of w_RTN is pi_high * E[A] = pi * 0.125."""
    cfg = preset("rtn")
    devices = RRAMArray((20_000,), cfg, seed=4)
    a = devices.state["rtn_amp_max"]
    assert float(a.min()) >= 0 and float(a.max()) <= 0.5
    assert abs(float(a.mean()) / 0.25 - 1) < 0.02
    levels = []
    for _ in range(300):
        devices.pulse(14)
        s = devices.state
        assert bool((s["rtn_amp"] <= s["rtn_amp_max"]).all())
        levels.append(float(torch.where(s["rtn_high"], s["rtn_amp"], 0.0).mean()))
    expected = cfg.rtn_high_probability() * 0.5 / 4  # E[A] = E[a] / 2 = 0.125
    assert abs(np.mean(levels) / expected - 1) < 0.05, np.mean(levels)


# -- 1/f noise ------------------------------------------------------------------------------------

def test_flicker_spectrum_slope_is_minus_one():
    """Welch spectrum of w_1/f over 16,384 pulses of 64 devices: log-log slope within 0.15 of -1
    (fitted between 2x the filter's lowest corner and a fifth of its highest)."""
    cfg = preset("flicker")
    spec = flicker_spectrum(cfg, devices=64, pulses=16384, seed=5)
    f, p, band, slope = spec.f, spec.psd, spec.band, spec.slope
    assert abs(slope + 1) < 0.15, slope
    # its level is the fractional filter's driven by U(0, 1)-variance noise: S(f) = (1/12) / sin(pi f)
    level = np.exp(np.mean(np.log(p[band] * np.sin(np.pi * f[band]) * 12.0)))
    assert abs(level - 1) < 0.1, level


def test_flicker_k_pulses_equal_k_single_pulses_in_distribution():
    """From a fixed state, k pulses at once give section j mean rho_j^k x0 and variance 1 - rho_j^2k."""
    cfg = preset("flicker")
    n, k = 200_000, 9
    rho = cfg.flicker_poles_rho().numpy()
    devices = RRAMArray((n,), cfg, seed=6)
    devices.state["flicker"][:] = 1.0
    devices.pulse(k)
    x = devices.state["flicker"].double().numpy()
    np.testing.assert_allclose(x.mean(0), rho ** k, atol=5 / math.sqrt(n))
    np.testing.assert_allclose(x.var(0), 1 - rho ** (2 * k), atol=0.01)


# -- device-to-device draws ------------------------------------------------------------------------

def _scipy_truncated(name):
    """The truncated distribution as scipy.stats objects / integrals, written out independently."""
    if name == "m1":
        return stats.truncexpon(b=(0.0076 - 3.74e-5) / 6.56e-4, loc=3.74e-5, scale=6.56e-4)
    if name == "m2":
        return stats.truncexpon(b=1.3e-4 / 2.89e-5, loc=0.0, scale=2.89e-5)
    if name == "c1":
        m, s = 0.0053, 0.0532
        return stats.truncnorm((-0.15 - m) / s, (0.15 - m) / s, loc=m, scale=s)
    if name == "R0":
        m, s = 6988.0, 381.7
        return stats.truncnorm((6252 - m) / s, (7897 - m) / s, loc=m, scale=s)
    raise KeyError(name)


def _lognormal_moments():
    d = stats.lognorm(0.803, scale=542.5)
    z = d.cdf(2000) - d.cdf(41)
    m1 = integrate.quad(lambda x: x * d.pdf(x), 41, 2000, limit=200)[0] / z
    m2 = integrate.quad(lambda x: x * x * d.pdf(x), 41, 2000, limit=200)[0] / z
    return m1, math.sqrt(m2 - m1 * m1)


BOUNDS = {"m1": (3.74e-5, 0.0076), "n_star": (41, 2000), "c1": (-0.15, 0.15), "m2": (0.0, 1.3e-4),
          "R0": (6252, 7897)}


@pytest.mark.parametrize("name", list(BOUNDS))
def test_d2d_draws_inside_bounds_with_truncated_moments(name):
    """2,000,000 draws: every one inside the stated bounds; sample mean and std within 5% of
    the truncated distribution's (scipy); the closed-form mean used for D2D-free devices too."""
    dist = D2D_DISTRIBUTIONS[name]
    x = dist.sample((2_000_000,), torch.Generator().manual_seed(7), dtype=torch.float64).numpy()
    lo, hi = BOUNDS[name]
    assert x.min() >= lo and x.max() <= hi
    if name == "n_star":
        mean, std = _lognormal_moments()
    else:
        ref = _scipy_truncated(name)
        mean, std = ref.mean(), ref.std()
    assert abs(x.mean() / mean - 1) < 0.05, (x.mean(), mean)
    assert abs(x.std() / std - 1) < 0.05, (x.std(), std)
    assert abs(dist.mean() / mean - 1) < 1e-6


def test_d2d_draws_per_device_and_nominal_without_d2d():
    on = RRAMArray((2, 1000), preset("d2d"), seed=8)
    off = RRAMArray((2, 1000), preset("ideal"), seed=8)
    for name in BOUNDS:
        assert on.state[name].shape == (2, 1000) and float(on.state[name].std()) > 0
        assert off.state[name].dim() == 0
        assert float(off.state[name]) == pytest.approx(D2D_DISTRIBUTIONS[name].mean(), rel=1e-6)


# -- the mean model ----------------------------------------------------------------------------------

def _w_mean_numpy(n, m1, n_star, c1, m2):
    return np.where(n < n_star, c1 + m1 * n, c1 + m1 * n_star + m2 * (n - n_star))


@pytest.mark.parametrize("name", ["ideal", "flicker"])
def test_mean_resistance_of_1000_devices_follows_w_mean(name):
    """1,000 devices with the nominal parameters, pulsed 3 at a time to 2,400 pulses: the mean
    resistance curve equals R0 exp(w_mean(n)) within 1% at every point (ideal: no noise; flicker:
    zero-mean 1/f noise)."""
    cfg = preset(name)
    devices = RRAMArray((1000,), cfg, seed=9)
    nom = cfg.nominal()
    ns, means = [], []
    for _ in range(800):
        devices.pulse(3)
        ns.append(int(devices.pulse_count[0]))
        means.append(float(devices.resistance().double().mean()))
    ns = np.array(ns)
    ref = nom["R0"] * np.exp(_w_mean_numpy(ns, nom["m1"], nom["n_star"], nom["c1"], nom["m2"]))
    err = np.abs(np.array(means) / ref - 1)
    assert err.max() < 0.01, err.max()
    assert ns[-1] == 2400


def test_pulses_are_integers_clamped_and_zero_leaves_a_device_unchanged():
    cfg = preset("all")
    devices = RRAMArray((5,), cfg, seed=10)
    before = {k: v.clone() for k, v in devices.state.items()}
    applied = devices.pulse(torch.tensor([0.0, 0.4, 2.6, 14.0, 100.0]))
    assert applied.tolist() == [0, 0, 3, 14, 14]
    assert devices.pulse_count.tolist() == [0, 0, 3, 14, 14]
    for k, v in devices.state.items():
        if v.dim() and k != "n":
            same = (v == before[k]) if v.shape == (5,) else (v == before[k]).all(-1)
            assert bool(same[:2].all()), k
    with pytest.raises(ValueError):
        RRAMConfig(max_pulses=0)
    with pytest.raises(ValueError):
        preset("nope")


def test_device_array_state_round_trips_through_weights_only_checkpoint():
    import io

    a = RRAMArray((3, 50), preset("all"), seed=11)
    a.pulse(torch.randint(0, 15, (3, 50)))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = RRAMArray((3, 50), preset("ideal"), seed=0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert b.config == a.config
    k = torch.randint(0, 15, (3, 50))
    a.pulse(k)
    b.pulse(k)
    assert torch.equal(a.resistance(), b.resistance())
    for key in a.state:
        assert torch.equal(a.state[key], b.state[key]) and a.state[key].dtype == b.state[key].dtype


def test_pair_update_advances_only_the_pulsed_device_with_the_k_step_statistics():
    """The pair path (pulsed synapses gathered, updated, scattered back) follows the same k-step
    AR(1) law as RRAMArray.pulse on the pulsed device and leaves the other device untouched."""
    from eqprop.devices import RRAMPairs

    cfg = preset("flicker")
    n, k = 200_000, 9
    rho = cfg.flicker_poles_rho().numpy()
    pairs = RRAMPairs((n,), cfg, seed=12)
    pairs.state["flicker"][:] = 1.0
    signs = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)
    pairs.update(signs * k)
    x = pairs.state["flicker"].double()
    pulsed = torch.cat((x[0, 0::2], x[1, 1::2])).numpy()
    untouched = torch.cat((x[1, 0::2], x[0, 1::2]))
    assert bool((untouched == 1.0).all())
    np.testing.assert_allclose(pulsed.mean(0), rho ** k, atol=5 / math.sqrt(n))
    np.testing.assert_allclose(pulsed.var(0), 1 - rho ** (2 * k), atol=0.01)
    assert pairs.state["n"][0, 0::2].eq(k).all() and pairs.state["n"][1, 0::2].eq(0).all()
