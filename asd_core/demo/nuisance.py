"""Per-clip nuisance of the ``hard`` demo data: variation that carries no information about the machine.

Real recordings of one machine in one condition still differ in how loud the site is, in the
spectral tilt of its background and in intermittent sounds of other sources (a hum of another
machine, impacts, a burst of air). None of it tells the machine's state, so a spectral distance
is dominated by it while an encoder trained to tell operating conditions apart can learn to
look past it: the property that makes training matter (issue 17 part 1). Normal and anomalous
clips draw it from the same distribution, from a generator of their own, so a clip's machine sound
is what the ``standard`` renderer makes of its attributes and anomaly.
"""

from __future__ import annotations

import numpy as np

from asd_core.demo.signals import band_noise, colored_noise, place_events, resonant_burst, rms


# Kin of noise.py's hum / impacts / bursts classes but deliberately other ranges (any fundamental,
# band-limited bursts): the mixture stage's held-out noise classes stay distinct from site nuisance.
def _hum(rng, n, sr):
    t = np.arange(n) / sr
    f0 = rng.uniform(45.0, 400.0)
    return sum(np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6.3)) / h for h in range(1, 6))


def _impacts(rng, n, sr):
    times = np.sort(rng.uniform(0, n / sr, int(rng.integers(2, 8))))
    kernel = resonant_burst(sr, rng.uniform(200, 2500, 3), 0.04, 0.3, rng)
    return place_events(n, times, kernel, sr, rng.uniform(0.3, 1.0, times.size))


def _bursts(rng, n, sr):
    env = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        start, length = int(rng.integers(0, n)), int(rng.uniform(0.2, 1.0) * sr)
        env[start : start + length] = 1.0
    lo = rng.uniform(100, 2000)
    return env * band_noise(rng, n, sr, lo, lo * rng.uniform(2, 5))


INTERFERENCES = (_hum, _impacts, _bursts)


def nuisance(rng: np.random.Generator, background: np.ndarray, sr: int) -> np.ndarray:
    """The clip's background with a random level (-3..+6 dB), a random extra tilt and, in two
    clips of three, one intermittent interference at a random level; added to a unit-RMS machine."""
    n = background.size
    x = background * 10 ** (rng.uniform(-3.0, 6.0) / 20)
    x = x + rms(background) * 10 ** (rng.uniform(-12.0, 0.0) / 20) * colored_noise(rng, n, rng.uniform(0.0, 2.0))
    if rng.random() < 2 / 3:
        other = INTERFERENCES[int(rng.integers(len(INTERFERENCES)))](rng, n, sr)
        x = x + 10 ** (rng.uniform(-18.0, -6.0) / 20) * other / rms(other)
    return x
