"""Noise library for the mixture stage: stationary and non-stationary factory noises."""

from __future__ import annotations

import numpy as np

from asd_core.demo.signals import band_noise, colored_noise, place_events, resonant_burst

STATIONARY = "stationary"
NON_STATIONARY = "non-stationary"


def _pink(rng, n, sr):
    return colored_noise(rng, n, 1.0)


def _brown(rng, n, sr):
    return colored_noise(rng, n, 2.0)


def _hum(rng, n, sr):
    t = np.arange(n) / sr
    mains = rng.choice([50.0, 60.0])
    x = sum(np.sin(2 * np.pi * h * mains * t + rng.uniform(0, 6.3)) / h for h in range(1, 8))
    return x + 0.1 * colored_noise(rng, n, 1.0)


def _hvac(rng, n, sr):
    return band_noise(rng, n, sr, 60, rng.uniform(600, 1200))


def _bursts(rng, n, sr):
    env = np.zeros(n)
    for _ in range(int(rng.integers(2, 6))):
        start, length = int(rng.integers(0, n)), int(rng.uniform(0.1, 0.6) * sr)
        env[start : start + length] = 1.0
    return env * colored_noise(rng, n, 0.3)


def _impacts(rng, n, sr):
    times = np.sort(rng.uniform(0, n / sr, int(rng.integers(3, 10))))
    kernel = resonant_burst(sr, rng.uniform(300, 3000, 3), 0.03, 0.25, rng)
    return place_events(n, times, kernel, sr, rng.uniform(0.3, 1.0, times.size))


def _babble(rng, n, sr):
    t = np.arange(n) / sr
    x = np.zeros(n)
    for _ in range(4):  # a few talkers: syllable-rate modulated formant bands
        f1 = rng.uniform(300, 900)
        mod = (1 + np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6.3))) / 2
        x += band_noise(rng, n, sr, f1, f1 * 2.5) * mod ** 2
    return x


NOISE_CLASSES = {
    "pink": (STATIONARY, _pink),
    "brown": (STATIONARY, _brown),
    "hum": (STATIONARY, _hum),
    "hvac": (STATIONARY, _hvac),
    "bursts": (NON_STATIONARY, _bursts),
    "impacts": (NON_STATIONARY, _impacts),
    "babble": (NON_STATIONARY, _babble),
}


def render_noise(rng: np.random.Generator, name: str, n: int, sr: int) -> np.ndarray:
    """One noise clip of class ``name``, scaled to RMS 0.1."""
    x = NOISE_CLASSES[name][1](rng, n, sr)
    return 0.1 * x / (np.sqrt(np.mean(x * x)) + 1e-12)
