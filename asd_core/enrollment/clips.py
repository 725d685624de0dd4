"""The normal clips of one enrollment: every WAV file under a folder, checked before anything is
embedded or written (count, readability, sample rate, duration against the section's clips, and
for a model of channels, e.g. near and far, that each file carries them)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asd_core.config import AudioConfig
from asd_core.datasets import audio_io
from asd_core.datasets.audio_io import AudioFileError, AudioInfo
from asd_core.tracking.channel_bundle import PRIMARY, channel_waves

AUDIO_SUFFIXES = (".wav",)
# a clip shorter than half or longer than twice the section's median is refused: another kind of
# recording than the references it would join (ingest quarantines the short side the same way)
DURATION_RATIO = 2.0
MAX_LISTED = 10


class EnrollmentError(ValueError):
    """An enrollment that cannot proceed; the message names the files or the section and the problem.
    Raised before anything is stored or registered."""


@dataclass(frozen=True)
class EnrollmentClip:
    path: Path  # absolute
    relative_path: str  # posix, under the enrollment folder
    info: AudioInfo
    sha256: str
    wave: np.ndarray  # the primary waveform: mono float32 at the model's sample rate
    # role -> waveform of each channel the model scores (``primary`` alone for a model of the primary waveform)
    waves: dict[str, np.ndarray] = field(default_factory=dict)
    # every channel ingest would store, (channel index, role, waveform), primary first: stored like ingested clips
    stored: tuple[tuple[int | None, str, np.ndarray], ...] = ()


def _listing(problems: list[str]) -> str:
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    return "\n  " + "\n  ".join(problems[:MAX_LISTED]) + more


DOMAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def check_domain(domain: str) -> str:
    """The name of a new operating condition, as stored in ``clips.domain`` (one line if unusable)."""
    if not DOMAIN_NAME.match(domain or ""):
        raise EnrollmentError(f"--domain {domain!r}: use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit")
    return domain


def find_wavs(folder: Path) -> list[Path]:
    """Every ``*.wav`` under ``folder`` (nested folders too, hidden ones skipped), sorted."""
    if not folder.is_dir():
        raise EnrollmentError(f"{folder}: not a folder of WAV files")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def decode_clip(path: Path, info: AudioInfo, cfg: AudioConfig, roles: list[str] | None = None
                ) -> tuple[dict[str, np.ndarray], tuple[tuple[int | None, str, np.ndarray], ...]]:
    """(the model's channels, the stored channels) of one file, float samples limited to full scale
    as ingest limits them; AudioFileError naming a channel the model needs and the file lacks."""
    stored = tuple((index, role, audio_io.limit_full_scale(wave, info)[0])
                   for index, role, wave in audio_io.decode_channels(path, info, cfg))
    if roles is None:
        return {PRIMARY: stored[0][2]}, stored
    return {r: audio_io.limit_full_scale(w, info)[0] for r, w in channel_waves(path, info, cfg, roles).items()}, stored


def read_enrollment_clips(folder: Path, sample_rate: int, min_clips: int, median_duration_s: float | None = None,
                          roles: list[str] | None = None, audio_cfg: AudioConfig | None = None) -> list[EnrollmentClip]:
    """Probe, check and decode every clip of ``folder``; :class:`EnrollmentError` listing every bad file.

    ``min_clips``: K + 1 (a reference needs K neighbours among the others); ``sample_rate``: the
    model's (other rates are refused, not resampled: enrollment clips define the new domain, they
    should be recorded like it); ``median_duration_s``: the section's, when known; ``roles``: the
    channels a channel model scores (``BundleChannels.roles``; a file lacking one is refused);
    ``audio_cfg``: how the model's training clips were decoded (``MonitorModel.audio_config``).
    """
    folder = Path(folder).expanduser().resolve()
    paths = find_wavs(folder)
    if len(paths) < min_clips:
        raise EnrollmentError(f"{folder}: {len(paths)} WAV file(s), but the section's detector needs at least {min_clips} "
                              f"normal clips (K + 1) to enroll a domain")
    problems: list[str] = []
    probed: list[tuple[Path, AudioInfo]] = []
    for path in paths:
        try:
            info = audio_io.probe(path)
        except (AudioFileError, OSError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        if info.sample_rate != sample_rate:
            problems.append(f"{path}: sample rate {info.sample_rate} Hz, but the model's is {sample_rate} Hz")
        elif median_duration_s and not (median_duration_s / DURATION_RATIO <= info.duration_s <= median_duration_s * DURATION_RATIO):
            problems.append(f"{path}: {info.duration_s:.2f} s long, far from the {median_duration_s:.2f} s median "
                            f"of the section's clips")
        probed.append((path, info))
    clips: list[EnrollmentClip] = []
    if not problems:
        cfg = audio_cfg or AudioConfig(sample_rate=sample_rate)
        for path, info in probed:
            try:
                waves, stored = decode_clip(path, info, cfg, roles)
                clips.append(EnrollmentClip(path, path.relative_to(folder).as_posix(), info, audio_io.sha256_of(path),
                                            stored[0][2], waves, stored))
            except (AudioFileError, OSError) as exc:
                problems.append(f"{path}: {exc}")
    if problems:
        raise EnrollmentError(f"{len(problems)} of the {len(paths)} clips in {folder} cannot be enrolled; "
                              f"nothing was stored or registered:{_listing(problems)}")
    shas = {}
    for c in clips:
        if c.sha256 in shas:
            problems.append(f"{c.path}: the same audio as {shas[c.sha256]}")
        shas.setdefault(c.sha256, c.path)
    if problems:  # a duplicate is its own nearest neighbour at distance 0: rho of both collapses
        raise EnrollmentError(f"{folder}: duplicate files; enroll each recording once:{_listing(problems)}")
    return clips
