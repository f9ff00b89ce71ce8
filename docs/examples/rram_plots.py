"""Figures of the weak-RESET RRAM model (docs/rram.md), measured from the simulator.

    python docs/examples/rram_plots.py          # from any directory; writes into the current one

Writes rram_pulses.png (resistance vs pulse number, 20 devices with every imperfection, against
the mean model), rram_rtn.png (an RTN trace), rram_flicker_psd.png (the 1/f power spectrum with
its fitted slope), rram_d2d.png (D2D parameter histograms against the truncated densities) and
rram_stats.json (the measured RTN rates, 1/f slope and D2D moments).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from scipy import integrate, stats

from eqprop.devices import D2D_DISTRIBUTIONS, RRAMArray, mean_model, preset
from eqprop.devices.measure import flicker_spectrum

torch.set_num_threads(1)
stats_out: dict = {}

# 1. resistance vs pulse number --------------------------------------------------------------
cfg = preset("all")
devices = RRAMArray((20,), cfg, seed=0)
pulses = 3000
trace = np.empty((pulses + 1, 20))
trace[0] = devices.resistance().numpy()
for t in range(1, pulses + 1):
    devices.pulse(1)
    trace[t] = devices.resistance().numpy()
nom = cfg.nominal()
n = torch.arange(pulses + 1, dtype=torch.float64)
r_mean = nom["R0"] * torch.exp(mean_model(n, nom["m1"], nom["n_star"], nom["c1"], nom["m2"])).numpy()
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(trace / 1e3, lw=0.6, alpha=0.8)
ax.plot(r_mean / 1e3, "k--", lw=2, label="mean model R0 exp(w_mean(n)), nominal parameters")
ax.set_xlabel("weak-RESET pulse number n")
ax.set_ylabel("resistance (kOhm)")
ax.set_title("20 simulated devices, every imperfection on (preset 'all')")
ax.legend(loc="upper left", fontsize=8)
fig.tight_layout()
fig.savefig("rram_pulses.png", dpi=120)
plt.close(fig)

# 2. RTN trace and rates --------------------------------------------------------------------------
cfg = preset("rtn")
devices = RRAMArray((2000,), cfg, seed=1)
steps = 20000
levels = np.empty(steps)
prev = devices.state["rtn_high"].clone()
up = down = low_t = high_t = 0
dev = int(torch.argmax(devices.state["rtn_amp_max"]))  # the device with the largest a, for the trace
for t in range(steps):
    devices.pulse(1)
    now = devices.state["rtn_high"]
    up += int((~prev & now).sum())
    down += int((prev & ~now).sum())
    low_t += int((~prev).sum())
    high_t += int(prev.sum())
    prev = now.clone()
    levels[t] = float(torch.where(now[dev], devices.state["rtn_amp"][dev], 0.0))
stats_out["rtn"] = {"devices": 2000, "pulses": steps, "p01_measured": up / low_t, "p01_spec": cfg.p_01,
                    "p10_measured": down / high_t, "p10_spec": cfg.p_10}
fig, ax = plt.subplots(figsize=(6.5, 2.8))
ax.plot(levels, lw=0.8)
ax.set_xlabel("pulse number")
ax.set_ylabel("w_RTN")
ax.set_title(f"RTN of one device (a = {float(devices.state['rtn_amp_max'][dev]):.3f}); measured "
             f"P(0->1) = {up / low_t:.5f}, P(1->0) = {down / high_t:.5f} over 2000 devices", fontsize=8)
fig.tight_layout()
fig.savefig("rram_rtn.png", dpi=120)
plt.close(fig)

# 3. 1/f spectrum -------------------------------------------------------------------------------------
cfg = preset("flicker")
spec = flicker_spectrum(cfg, devices=64, pulses=16384, seed=5)
f, p, band, slope, icpt, x = spec.f, spec.psd, spec.band, spec.slope, spec.intercept, spec.trace
lo, hi = cfg.flicker_band
level = float(np.exp(np.mean(np.log(p[band] * np.sin(np.pi * f[band]) / cfg.flicker_input_std ** 2))))
stats_out["flicker"] = {"devices": 64, "pulses": 16384, "fit_band": [2 * lo, hi / 5], "slope": slope,
                        "level_vs_fractional_filter": level, "gain": cfg.flicker_gain(),
                        "variance": float(x.var()), "poles": cfg.flicker_poles, "filter_band": [lo, hi]}
fig, ax = plt.subplots(figsize=(5.5, 4))
ax.loglog(f[1:], p[1:], lw=1, label="Welch PSD of w_1/f (64 devices)")
ax.loglog(f[band], np.exp(icpt) * f[band] ** slope, "r--", lw=2, label=f"fit: slope {slope:.3f}")
ax.loglog(f[1:], cfg.flicker_input_std ** 2 / np.sin(np.pi * f[1:]), "k:", lw=1,
          label="fractional filter, U(0,1)-variance input: (1/12) / sin(pi f)")
ax.set_xlabel("frequency (cycles per pulse)")
ax.set_ylabel("power spectral density")
ax.set_title("1/f noise (before the coupling alpha = 0.025)")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig("rram_flicker_psd.png", dpi=120)
plt.close(fig)

# 4. D2D histograms -------------------------------------------------------------------------------------
g = torch.Generator().manual_seed(7)
fig, axes = plt.subplots(1, 5, figsize=(14, 3))
stats_out["d2d"] = {}
for ax, (name, dist) in zip(axes, D2D_DISTRIBUTIONS.items()):
    s = dist.sample((2_000_000,), g, dtype=torch.float64).numpy()
    grid = np.linspace(dist.low, dist.high, 400)
    if dist.kind == "exponential":
        ref = stats.truncexpon(b=(dist.high - dist.low) / dist.p1, loc=dist.low, scale=dist.p1)
        pdf = ref.pdf(grid)
        mean, std = ref.mean(), ref.std()
    elif dist.kind == "normal":
        ref = stats.truncnorm((dist.low - dist.p1) / dist.p2, (dist.high - dist.p1) / dist.p2, loc=dist.p1,
                              scale=dist.p2)
        pdf = ref.pdf(grid)
        mean, std = ref.mean(), ref.std()
    else:
        base = stats.lognorm(dist.p1, scale=dist.p2)
        z = base.cdf(dist.high) - base.cdf(dist.low)
        pdf = base.pdf(grid) / z
        mean = integrate.quad(lambda v, b=base: v * b.pdf(v), dist.low, dist.high, limit=200)[0] / z
        m2 = integrate.quad(lambda v, b=base: v * v * b.pdf(v), dist.low, dist.high, limit=200)[0] / z
        std = math.sqrt(m2 - mean ** 2)
    stats_out["d2d"][name] = {"sample_mean": float(s.mean()), "truncated_mean": float(mean),
                              "sample_std": float(s.std()), "truncated_std": float(std),
                              "min": float(s.min()), "max": float(s.max()), "bounds": [dist.low, dist.high]}
    ax.hist(s, bins=80, density=True, alpha=0.6)
    ax.plot(grid, pdf, "k", lw=1)
    ax.set_title(f"{name}: {dist.kind} in [{dist.low:g}, {dist.high:g}]", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
fig.suptitle("Device-to-device parameter draws (2,000,000 each) against the truncated densities", fontsize=9)
fig.tight_layout()
fig.savefig("rram_d2d.png", dpi=120)
plt.close(fig)

Path("rram_stats.json").write_text(json.dumps(stats_out, indent=2) + "\n")
print(json.dumps(stats_out, indent=2))
