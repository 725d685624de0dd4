"""Mixing at an exact SNR without clipping (methods.md section 3).

SNR is defined on the parts as they sit in the mixture: 10 log10(sum (g_c c)^2 / sum (g_n n)^2).
Clipping is avoided by scaling both gains by the same factor, which leaves the SNR unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asd_core.mixing.config import MixingError  # noqa: F401 (declared with the stage's parameters)

PEAK_LIMIT = 0.99  # largest mixture sample magnitude allowed (full scale = 1.0)


@dataclass(frozen=True)
class Gains:
    clean: float
    noise: float


def power(x: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    return float(np.mean(x * x))


def noise_segment(noise: np.ndarray, n: int, offset: int) -> np.ndarray:
    """``n`` samples of ``noise`` starting at ``offset``, looping when the noise is shorter."""
    if len(noise) == 0:
        raise MixingError("empty noise recording")
    idx = (offset + np.arange(n)) % len(noise)
    return noise[idx]


def gains_for_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float, peak_limit: float = PEAK_LIMIT) -> Gains:
    """Gains so that ``g_c clean + g_n noise`` has SNR ``snr_db`` and peak <= ``peak_limit``."""
    p_c, p_n = power(clean), power(noise)
    if p_c <= 0:
        raise MixingError("clean clip is silent (zero power): its SNR is undefined")
    if p_n <= 0:
        raise MixingError("noise segment is silent (zero power): its SNR is undefined")
    g_c, g_n = 1.0, float(np.sqrt(p_c / (p_n * 10.0 ** (snr_db / 10.0))))
    peak = float(np.max(np.abs(g_c * np.asarray(clean, np.float64) + g_n * np.asarray(noise, np.float64))))
    if peak > peak_limit:
        g_c, g_n = g_c * peak_limit / peak, g_n * peak_limit / peak
    return Gains(g_c, g_n)


def mix(clean: np.ndarray, noise: np.ndarray, gains: Gains) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mixture, scaled clean part, scaled noise part), float32; the parts are what the teacher sees."""
    c = (gains.clean * np.asarray(clean, np.float64)).astype(np.float32)
    n = (gains.noise * np.asarray(noise, np.float64)).astype(np.float32)
    return c + n, c, n


def measured_snr(clean_part: np.ndarray, noise_part: np.ndarray) -> float:
    return 10.0 * float(np.log10(power(clean_part) / power(noise_part)))
