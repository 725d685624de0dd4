"""Synthetic machine sound models with domain-shifting attributes and several anomaly kinds.

Each model renders one clip from (section parameters, attributes, anomaly or None). The
attributes differ between the source and the target domain, so target normals sound
different from the source references, as in DCASE; a third, held-out set of attribute values
(with its own background) is a new operating condition no training set contains. Anomalies have a severity in (0, 1]:
low severities are subtle, so detection is neither trivial nor hopeless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from asd_core.demo.signals import band_noise, clicks, colored_noise, place_events, resonant_burst, rms


# The ``hard`` data keeps only anomalies a spectral mean cannot see and its site nuisance does not
# mask. Measured on hard medium data, seed 0 (README, "Does training matter"): valve's leak, a
# broadband hiss, is found by every encoder (AUC 0.99 for logmel-stats, the untrained and the
# trained teacher alike), and slider's missing_events, quiet stop clunks, vanish under the
# nuisance's impacts (AUC 0.46-0.48 for all three); neither tells a trained encoder from a random one.
HARD_DROPPED: dict[str, tuple[str, ...]] = {"valve": ("leak",), "slider": ("missing_events",)}


@dataclass(frozen=True)
class Anomaly:
    kind: str
    severity: float


@dataclass(frozen=True)
class MachineModel:
    name: str
    # attribute sets per domain: list of {key: value} dicts
    source_attributes: tuple[dict, ...]
    target_attributes: tuple[dict, ...]
    anomaly_kinds: tuple[str, ...]
    render: Callable[[np.random.Generator, int, int, dict, dict, Anomaly | None], np.ndarray]
    # a third operating condition no training set holds (``make-demo-data --held-out-domain``)
    held_out_attributes: tuple[dict, ...] = ()

    def kinds(self, hard: bool) -> tuple[str, ...]:
        """The anomaly kinds drawn, in turn, for the standard or the ``hard`` data."""
        return tuple(k for k in self.anomaly_kinds if not (hard and k in HARD_DROPPED.get(self.name, ())))


def section_params(rng: np.random.Generator) -> dict:
    """Per-section constants (a section is another unit of the same machine type)."""
    return {
        "resonances": sorted(rng.uniform(700, 2600, 3)),
        "blades": int(rng.integers(4, 8)),
        "harmonic_tilt": float(rng.uniform(0.9, 1.5)),
        "teeth": int(rng.integers(17, 29)),
        "band": (float(rng.uniform(150, 400)), float(rng.uniform(3000, 5000))),
    }


def _distort(x: np.ndarray, severity: float) -> np.ndarray:
    """Harmonic distortion: soft clipping adds odd harmonics."""
    y = np.tanh((0.5 + 4.0 * severity) * x / (2 * rms(x)))
    return y * (rms(x) / rms(y))


def _render_fan(rng, n, sr, sec, attrs, anomaly):
    t = np.arange(n) / sr
    speed = float(attrs["spd"])
    f = speed * (1 + 0.004 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6.3)) + rng.normal(0, 0.003))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(np.sin(h * phase + rng.uniform(0, 6.3)) / h ** sec["harmonic_tilt"] for h in range(1, 9))
    b = sec["blades"]
    x = x + 0.6 * sum(np.sin(k * b * phase + rng.uniform(0, 6.3)) / k for k in range(1, 4))
    x = x / rms(x) + 0.8 * band_noise(rng, n, sr, 100, 6000)
    if anomaly:
        s = anomaly.severity
        if anomaly.kind == "imbalance":
            x = x * (1 + 0.6 * s * np.sin(phase)) + 0.8 * s * np.sin(phase)
        elif anomaly.kind == "bearing_clicks":
            x = x + 1.2 * s * clicks(rng, n, sr, 3.57 * speed, rng.uniform(3000, 5000))
        elif anomaly.kind == "harmonic_distortion":
            x = _distort(x, s)
    return x


def _render_valve(rng, n, sr, sec, attrs, anomaly):
    period = {"00": 0.50, "01": 0.36, "02": 0.62, "03": 0.28, "04": 0.44}[attrs["pat"]]
    times = np.arange(rng.uniform(0, period), n / sr, period)
    double = attrs["pat"] in ("01", "03")
    if double:
        times = np.sort(np.concatenate([times, times + 0.07]))
    times = times + rng.normal(0, 0.004, times.size)
    res = list(sec["resonances"])
    gains = rng.uniform(0.8, 1.0, times.size)
    s = anomaly.severity if anomaly else 0.0
    if anomaly and anomaly.kind == "missing_events":
        keep = rng.random(times.size) > 0.15 + 0.5 * s
        keep[0] = True
        times, gains = times[keep], gains[keep]
    if anomaly and anomaly.kind == "resonance_shift":
        res = [f * (1 + 0.12 * s) for f in res]
    kernel = resonant_burst(sr, [f * rng.uniform(0.99, 1.01) for f in res], 0.012, 0.08, rng)
    x = place_events(n, times, kernel, sr, gains)
    x = x / rms(x) + 0.35 * colored_noise(rng, n, 1.0) + 0.25 * np.sin(2 * np.pi * 100 * np.arange(n) / sr)
    if anomaly and anomaly.kind == "leak":
        x = x + 0.9 * s * band_noise(rng, n, sr, 4000, 7500)
    return x


def _render_slider(rng, n, sr, sec, attrs, anomaly):
    t = np.arange(n) / sr
    vel = float(attrs["vel"])
    stroke = 1.0 / (vel / 500.0)  # seconds per stroke
    pos = (t + rng.uniform(0, stroke)) % (2 * stroke) / stroke  # 0..2
    moving = np.sin(np.pi * (pos % 1.0)) ** 0.5
    lo, hi = sec["band"]
    centroid_mod = 1 + 0.2 * (pos > 1)
    x = band_noise(rng, n, sr, lo, hi) * moving * centroid_mod
    stops = (np.flatnonzero(np.diff((pos % 1.0) < 0.5).astype(int) == -1) + 1) / sr
    clunk = resonant_burst(sr, [sec["resonances"][0] * 0.4, sec["resonances"][1] * 0.5], 0.02, 0.1, rng)
    s = anomaly.severity if anomaly else 0.0
    if anomaly and anomaly.kind == "missing_events":
        stops = stops[rng.random(stops.size) > 0.3 + 0.6 * s]
    x = x + 1.5 * place_events(n, stops, clunk, sr) / max(rms(clunk), 1e-6) * 0.05
    if anomaly:
        if anomaly.kind == "bearing_clicks":
            x = x + 1.0 * s * clicks(rng, n, sr, rng.uniform(25, 60), rng.uniform(2500, 4500)) * moving
        elif anomaly.kind == "imbalance":
            x = x * (1 + 0.7 * s * np.sin(2 * np.pi * 12.0 * t))
        elif anomaly.kind == "harmonic_distortion":
            x = x + 0.5 * s * np.sin(2 * np.pi * rng.uniform(1500, 2500) * t) * moving
    return x + 0.15 * colored_noise(rng, n, 1.0)


def _render_gearbox(rng, n, sr, sec, attrs, anomaly):
    t = np.arange(n) / sr
    shaft = 8.0 * float(attrs["volt"]) * (1 + 0.002 * float(attrs["wt"]) / 100) * (1 + rng.normal(0, 0.002))
    mesh = sec["teeth"] * shaft
    phase = 2 * np.pi * shaft * t + rng.uniform(0, 6.3)
    x = sum(np.sin(2 * np.pi * h * mesh * t + rng.uniform(0, 6.3)) / h for h in range(1, 5))
    load = 0.15 + 0.2 * float(attrs["wt"]) / 150
    x = x * (1 + load * np.sin(phase))
    x = x / rms(x) + 0.6 * colored_noise(rng, n, 0.5)
    if anomaly:
        s = anomaly.severity
        if anomaly.kind == "bearing_clicks":  # broken tooth: an impact once per shaft turn
            x = x + 1.5 * s * clicks(rng, n, sr, shaft, rng.uniform(2000, 4000), jitter=0.01)
        elif anomaly.kind == "imbalance":
            x = x * (1 + 0.8 * s * np.sin(phase + 1.0))
        elif anomaly.kind == "harmonic_distortion":
            x = _distort(x, s)
    return x


MACHINES: dict[str, MachineModel] = {
    "fan": MachineModel(
        "fan",
        ({"spd": "28"}, {"spd": "31"}, {"spd": "34"}),
        ({"spd": "41"}, {"spd": "45"}),
        ("imbalance", "bearing_clicks", "harmonic_distortion"),
        _render_fan,
        ({"spd": "52"},),
    ),
    "valve": MachineModel(
        "valve",
        ({"pat": "00"}, {"pat": "01"}),
        ({"pat": "02"}, {"pat": "03"}),
        ("missing_events", "resonance_shift", "leak"),
        _render_valve,
        ({"pat": "04"},),
    ),
    "slider": MachineModel(
        "slider",
        ({"vel": "500"}, {"vel": "600"}),
        ({"vel": "850"}, {"vel": "900"}),
        ("bearing_clicks", "imbalance", "harmonic_distortion", "missing_events"),
        _render_slider,
        ({"vel": "1100"},),
    ),
    "gearbox": MachineModel(
        "gearbox",
        ({"volt": "1.5", "wt": "50"}, {"volt": "1.5", "wt": "100"}, {"volt": "2.0", "wt": "50"}),
        ({"volt": "2.5", "wt": "150"}, {"volt": "3.0", "wt": "130"}),
        ("bearing_clicks", "imbalance", "harmonic_distortion"),
        _render_gearbox,
        ({"volt": "3.5", "wt": "80"},),
    ),
}


def domain_background(rng: np.random.Generator, n: int, domain: str) -> np.ndarray:
    """Site noise: the target domain is recorded elsewhere (other spectral tilt and level); the
    held-out domain at a third site (whiter, between the two in level)."""
    if domain == "source":
        return 0.25 * colored_noise(rng, n, 1.0)
    if domain == "held_out":
        return 0.3 * colored_noise(rng, n, 0.5)
    return 0.4 * colored_noise(rng, n, 1.6)
