"""Measuring a simulated device population against its specification (used by the tests and the
figures in docs/rram.md): the 1/f noise spectrum and its log-log slope."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import signal

from .rram import RRAMArray, RRAMConfig, flicker_noise


@dataclass
class FlickerSpectrum:
    """Welch power spectral density of ``w_1/f`` averaged over devices.

    f, psd: (nperseg // 2 + 1,) frequencies (cycles per pulse) and density; trace: (pulses, devices);
    band: the fitted frequencies (2x the filter's lowest corner to a fifth of its highest);
    slope, intercept: the least-squares line of log psd against log f over ``band``.
    """

    f: np.ndarray
    psd: np.ndarray
    trace: np.ndarray
    band: np.ndarray
    slope: float
    intercept: float


def flicker_spectrum(config: RRAMConfig, devices: int = 64, pulses: int = 16384, seed: int = 5,
                     nperseg: int = 4096) -> FlickerSpectrum:
    """Pulse ``devices`` devices once per step for ``pulses`` steps and measure their 1/f spectrum."""
    array = RRAMArray((devices,), config, seed=seed)
    trace = []
    for _ in range(pulses):
        array.pulse(1)
        trace.append(flicker_noise(array.state, config))
    x = torch.stack(trace).double().numpy()
    f, p = signal.welch(x, axis=0, nperseg=nperseg)
    p = p.mean(axis=1)
    lo, hi = config.flicker_band
    band = (f >= 2 * lo) & (f <= hi / 5)
    slope, intercept = np.polyfit(np.log(f[band]), np.log(p[band]), 1)
    return FlickerSpectrum(f, p, x, band, float(slope), float(intercept))
