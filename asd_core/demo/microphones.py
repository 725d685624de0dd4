"""Two microphones per clip, as in DCASE 2026: a near one at the machine and a far one elsewhere.

The far microphone hears the same machine signal 10-20 dB weaker and 2-15 ms later (a whole
number of samples; the shift is circular, as the machine's own noise components already are), and
the site's environmental noise 3-6 dB stronger: it stands nearer to the noise sources than to the
machine. Its noise is not a copy of the near channel's: a share of it (the coherence, 0.6-0.85 in
amplitude) is the near channel's noise as heard along another path (0.25-1.5 ms earlier and
spectrally tilted), the rest an independent draw of the same site's noise. So the two channels'
noise is correlated but not identical, and a target-domain clip has target-domain noise on both.
Anomalies live in the machine signal, so they reach both microphones (weaker at the far one).

Every quantity is drawn from the clip's own generator, separate from the near channel's draws, so
the near channel of a two-channel tree is sample for sample the clip of the one-channel tree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asd_core.demo.machines import domain_background

FAR_GAIN_DB = (10.0, 20.0)  # machine attenuation at the far microphone
FAR_DELAY_MS = (2.0, 15.0)  # machine's extra travel time to the far microphone
FAR_NOISE_GAIN_DB = (3.0, 6.0)  # environmental noise level at the far microphone, relative to the near one
NOISE_COHERENCE = (0.6, 0.85)  # amplitude share of the far noise coming from the near channel's noise sources
NOISE_PATH_MS = (0.25, 1.5)  # the far microphone hears those sources this much earlier
NOISE_TILT = (-0.4, 0.4)  # spectral tilt of that other path (power ~ f^tilt around 1 kHz)


@dataclass(frozen=True)
class FarMicrophone:
    """Where the far microphone stands, for one clip (what ``microphones.csv`` reports)."""

    gain_db: float  # machine level at the far microphone below the near one's (positive: weaker)
    delay_samples: int  # machine's delay at the far microphone
    delay_ms: float  # the same in milliseconds
    noise_gain_db: float  # environmental noise level above the near one's (positive: stronger)
    noise_coherence: float  # amplitude share of the far noise that is the near channel's noise on another path
    noise_path_ms: float  # that path's lead over the near microphone
    noise_tilt: float  # that path's spectral tilt


@dataclass(frozen=True)
class MicPair:
    """The parts of one two-channel clip before level scaling: channel 0 = machine + near_noise,
    channel 1 = far_machine + far_noise."""

    machine: np.ndarray
    near_noise: np.ndarray
    far_machine: np.ndarray
    far_noise: np.ndarray
    far: FarMicrophone

    @property
    def near(self) -> np.ndarray:
        return self.machine + self.near_noise

    @property
    def far_mix(self) -> np.ndarray:
        return self.far_machine + self.far_noise


def draw_far_microphone(rng: np.random.Generator, sr: int) -> FarMicrophone:
    """One clip's far-microphone placement, uniform within the ranges above."""
    gain_db = float(rng.uniform(*FAR_GAIN_DB))
    delay = int(round(rng.uniform(*FAR_DELAY_MS) * sr / 1000.0))
    return FarMicrophone(gain_db=gain_db, delay_samples=delay, delay_ms=1000.0 * delay / sr,
                         noise_gain_db=float(rng.uniform(*FAR_NOISE_GAIN_DB)),
                         noise_coherence=float(rng.uniform(*NOISE_COHERENCE)),
                         noise_path_ms=float(rng.uniform(*NOISE_PATH_MS)),
                         noise_tilt=float(rng.uniform(*NOISE_TILT)))


def other_path(x: np.ndarray, lead_s: float, tilt: float, sr: int) -> np.ndarray:
    """``x`` heard along another path: ``lead_s`` seconds earlier (circular, fractional) and with
    its power spectrum tilted by (f / 1 kHz)^tilt (below 50 Hz held at the 50 Hz gain)."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(x.size, 1.0 / sr)
    spec *= np.exp(2j * np.pi * f * lead_s) * (np.maximum(f, 50.0) / 1000.0) ** (tilt / 2.0)
    return np.fft.irfft(spec, x.size)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


def two_microphones(rng: np.random.Generator, machine: np.ndarray, near_noise: np.ndarray, domain: str,
                    sr: int) -> MicPair:
    """Both microphones' parts of one clip from its near-microphone machine signal and noise.

    ``rng`` must be the clip's own generator for the far microphone (not the one that drew the near
    channel), so that channel 0 stays what the one-channel tree holds.
    """
    far = draw_far_microphone(rng, sr)
    far_machine = 10.0 ** (-far.gain_db / 20.0) * np.roll(machine, far.delay_samples)
    shared = _unit(other_path(near_noise, far.noise_path_ms / 1000.0, far.noise_tilt, sr))
    own = _unit(domain_background(rng, machine.size, domain))  # the same site's noise, drawn afresh
    c = far.noise_coherence
    far_noise = c * shared + np.sqrt(1.0 - c * c) * own
    level = 10.0 ** (far.noise_gain_db / 20.0) * np.sqrt(np.mean(near_noise * near_noise))
    far_noise = level * _unit(far_noise)
    return MicPair(machine, near_noise, far_machine, far_noise, far)
