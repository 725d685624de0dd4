"""Signal building blocks shared by the machine and noise models (numpy, float64)."""

from __future__ import annotations

import numpy as np


def colored_noise(rng: np.random.Generator, n: int, alpha: float) -> np.ndarray:
    """Unit-RMS noise with power spectrum ~ 1/f^alpha (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    spec *= f ** (-alpha / 2.0)
    x = np.fft.irfft(spec, n)
    return x / (np.std(x) + 1e-12)


def band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    """Unit-RMS noise band-limited to [lo, hi] Hz."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec[(f < lo) | (f > hi)] = 0.0
    x = np.fft.irfft(spec, n)
    return x / (np.std(x) + 1e-12)


def resonant_burst(sr: int, freqs, decay_s: float, length_s: float, rng: np.random.Generator) -> np.ndarray:
    """A struck resonance: a sum of exponentially decaying sinusoids (an impact or valve hit)."""
    t = np.arange(int(length_s * sr)) / sr
    out = np.zeros_like(t)
    for k, f in enumerate(freqs):
        out += np.exp(-t / (decay_s / (1 + 0.5 * k))) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) / (1 + k)
    return out


def place_events(n: int, times_s, kernel: np.ndarray, sr: int, gains=None) -> np.ndarray:
    """Add ``kernel`` at each event time (seconds) into a signal of ``n`` samples."""
    out = np.zeros(n)
    for i, t in enumerate(times_s):
        start = int(t * sr)
        if start >= n or start < 0:
            continue
        stop = min(n, start + kernel.size)
        out[start:stop] += kernel[: stop - start] * (1.0 if gains is None else gains[i])
    return out


def clicks(rng: np.random.Generator, n: int, sr: int, rate_hz: float, resonance_hz: float, jitter: float = 0.1) -> np.ndarray:
    """Bearing-fault-like impulse train: periodic clicks (with jitter) exciting a high resonance."""
    period = 1.0 / rate_hz
    times = np.arange(rng.uniform(0, period), n / sr, period)
    times = times + rng.normal(0, jitter * period, times.size)
    kernel = resonant_burst(sr, [resonance_hz, resonance_hz * 1.37], 0.0015, 0.01, rng)
    return place_events(n, times, kernel, sr, gains=rng.uniform(0.6, 1.0, times.size))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)) + 1e-12)
