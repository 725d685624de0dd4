"""Parameters of the mixture stage (methods.md section 3), torch- and numpy-free so the ``asd`` CLI
and the pipeline config build their options from them: declared once, validated here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asd_core.config import PIPELINE_SAMPLE_RATE, option

STATIONARY, NON_STATIONARY = "stationary", "non-stationary"
KINDS = (STATIONARY, NON_STATIONARY)
EVAL_SUBSETS = KINDS + ("mismatched",)
DEFAULT_BINS = ((-10.0, -5.0), (-5.0, 0.0), (0.0, 5.0), (5.0, 10.0))
# Stored channel roles that record the plant's noise rather than the machine (methods.md section 7):
# the far microphone of DCASE 2026 two-channel clips.
NOISE_CHANNELS = ("far",)


class MixingError(ValueError):
    """A clip, noise or parameter that cannot be mixed at a defined SNR (silent input, bad range)."""


@dataclass(frozen=True)
class NoiseLibraryConfig:
    folder: Path | None = None  # class sub-folders of WAV files
    supplemental: bool = option(True, help="also use ingested DCASE 2025 supplemental noise clips")
    mismatched: tuple[str, ...] | None = None  # held-out classes; None: classes.csv, else the default rule
    eval_fraction: float = 0.25
    stationarity_db: float = 3.0  # frame-level spread (dB std) below which a noise counts as stationary
    sample_rate: int = PIPELINE_SAMPLE_RATE
    noise_from_channel: str | None = option(
        None, metavar="ROLE",
        help="also use this stored channel of the normal training clips as noise recordings (methods.md section 7): "
             "far, the far microphone of two-channel recordings (class <machine_type>-far; a clip is never mixed "
             "with its own far channel; silent or clipped channels are left out)")

    def __post_init__(self) -> None:
        if self.noise_from_channel is not None and self.noise_from_channel not in NOISE_CHANNELS:
            raise MixingError(f"noise_from_channel must be {' or '.join(NOISE_CHANNELS)} (a stored channel that records "
                              f"the plant's noise, not the machine), got {self.noise_from_channel!r}")


@dataclass(frozen=True)
class MixConfig:
    """Parameters of ``asd mix`` (methods.md section 3: SNR range and grid, noise subsets, lambda)."""

    seed: int = option(0, help="seed of every mixture choice (noise, offset, SNR)")
    snr_min: float = option(-10.0, help="training mixtures: SNR uniform in [snr-min, snr-max] dB")
    snr_max: float = option(10.0, help="upper end of the training SNR range (dB)")
    mixtures_per_clip: int = option(1, help="training mixtures per normal training clip")
    lam: float = option(0.5, help="lambda of the alignment target, stored per mixture (must equal the student's)")
    train_subsets: tuple[str, ...] = KINDS
    eval_bins: tuple[tuple[float, float], ...] = DEFAULT_BINS
    eval_subsets: tuple[str, ...] = EVAL_SUBSETS
    noise: NoiseLibraryConfig = NoiseLibraryConfig()

    def __post_init__(self) -> None:
        if not self.snr_min <= self.snr_max:
            raise MixingError(f"SNR range must have snr_min <= snr_max, got ({self.snr_min}, {self.snr_max})")
        if not 0.0 <= self.lam <= 1.0:
            raise MixingError(f"lambda must be in [0, 1], got {self.lam}")
        if self.mixtures_per_clip < 0:
            raise MixingError(f"mixtures per clip must be >= 0, got {self.mixtures_per_clip}")
        for s in self.train_subsets:
            if s not in KINDS:
                raise MixingError(f"training subset must be one of {', '.join(KINDS)}, got {s!r}")
        for s in self.eval_subsets:
            if s not in EVAL_SUBSETS:
                raise MixingError(f"evaluation subset must be one of {', '.join(EVAL_SUBSETS)}, got {s!r}")
        for lo, hi in self.eval_bins:
            if not lo < hi:
                raise MixingError(f"SNR bin must have low < high, got ({lo}, {hi})")

    @property
    def snr_range(self) -> tuple[float, float]:
        return (self.snr_min, self.snr_max)
