"""Read WAV files with soundfile: header probe, truncation check, channel choice, resampling.

Errors are :class:`AudioFileError` with a one-line reason that names the problem; callers
add the file name and route the file to quarantine.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from asd_core.config import AudioConfig
# The stored dtype conversion lives with the stored audio; importable here for older callers.
from asd_core.hashing import file_sha256
from asd_core.storage.audio import from_storage, to_storage  # noqa: F401

# OS errors worth retrying (network filesystems, interrupted reads); others are the file's fault.
TRANSIENT_ERRNOS = {errno.EIO, errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.EBUSY}


class AudioFileError(ValueError):
    """A file that cannot be used as a clip; ``str(exc)`` is the reason."""


class TransientIOError(OSError):
    """An I/O error that may succeed on retry (the orchestrator retries the task)."""


# A float WAV peaking above this many times full scale is quarantined as corrupt or unnormalised;
# between 1x and this it is clipped to [-1, 1] with a warning (limit_full_scale).
FAR_ABOVE_FULL_SCALE = 2.0
FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    num_samples: int
    file_size: int
    subtype: str = ""  # soundfile's sample format: PCM_16, PCM_24, FLOAT, DOUBLE, ...

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate


def os_error_reason(exc: OSError, path: Path) -> str:
    """The quarantine reason for an OS error on ``path``: says which link is broken or loops."""
    if exc.errno == errno.ELOOP:
        return "symlink loop: the link never resolves to a file (too many levels of symbolic links)"
    if exc.errno == errno.ENOENT:
        try:
            return f"broken symlink: its target {os.readlink(path)} does not exist"
        except OSError:  # not a link (or gone meanwhile)
            return "file vanished during ingest"
    if exc.errno == errno.EACCES:
        return "permission denied"
    return f"unreadable file ({exc.strerror or exc})"


def _reraise_os_error(exc: OSError, path: Path) -> None:
    if exc.errno in TRANSIENT_ERRNOS:
        raise TransientIOError(exc.errno, f"{path}: transient I/O error ({exc.strerror})") from exc
    raise AudioFileError(os_error_reason(exc, path)) from None


def stat_file(path: Path) -> os.stat_result:
    """``stat`` of a regular file (symlinks followed); any failure is an :class:`AudioFileError`."""
    try:
        st = path.stat()
    except OSError as exc:
        _reraise_os_error(exc, path)
    if not stat_mod.S_ISREG(st.st_mode):
        raise AudioFileError("not a regular file (a device, pipe or socket)")
    return st


def _riff_data_chunk(path: Path, file_size: int) -> None:
    """Walk the RIFF chunks and check the data chunk fits in the file (truncation check).

    soundfile silently reads what is there, so a cut-off download would pass unnoticed.
    """
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise AudioFileError("not a WAV file (no RIFF/WAVE header)")
        if head[:4] == b"RF64":
            return  # 64-bit sizes live in the ds64 chunk; soundfile validates those files
        pos = 12
        while pos + 8 <= file_size:
            fh.seek(pos)
            chunk_id, size = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"data":
                if size in (0, 0xFFFFFFFF):
                    return  # streaming writers leave the size open
                if pos + 8 + size > file_size:
                    raise AudioFileError(
                        f"truncated WAV: data chunk declares {size} bytes, file holds {file_size - pos - 8}"
                    )
                return
            pos += 8 + size + (size & 1)
        raise AudioFileError("WAV file has no data chunk")


def probe(path: Path) -> AudioInfo:
    """Read only the header; raise :class:`AudioFileError` for empty, non-WAV or truncated files."""
    file_size = stat_file(path).st_size
    if file_size == 0:
        raise AudioFileError("empty file (0 bytes)")
    try:
        _riff_data_chunk(path, file_size)
        info = sf.info(str(path))
    except OSError as exc:
        _reraise_os_error(exc, path)
    except struct.error:  # a chunk header cut short: the file shrank after its stat
        raise AudioFileError("file changed while it was read (RIFF chunk header cut short)") from None
    except sf.LibsndfileError as exc:  # soundfile's own error type for bad content
        raise AudioFileError(f"not a readable WAV file ({exc.error_string})") from None
    except RuntimeError as exc:
        raise AudioFileError(f"not a readable WAV file ({exc})") from None
    if info.format not in ("WAV", "WAVEX", "RF64"):
        raise AudioFileError(f"not a WAV file (format {info.format})")
    if info.frames <= 0:
        raise AudioFileError("WAV file holds no audio samples")
    return AudioInfo(info.samplerate, info.channels, int(info.frames), file_size, info.subtype)


def sha256_of(path: Path) -> str:
    """The file's sha256 (``clips.sha256``); OS failures as precise per-file errors."""
    try:
        return file_sha256(path)
    except OSError as exc:
        _reraise_os_error(exc, path)


def channel_plan(info: AudioInfo, cfg: AudioConfig) -> list[tuple[str, str]]:
    """The channels of this file that are stored, as (selection, role), the primary one first.

    selection: ``mono``, a channel index or ``mean`` (``clips.channel_selection`` records the
    primary's); role: ``mono``, ``mean``, ``near`` / ``far`` (two-channel files, ``channel_roles``)
    or ``ch<N>``. See :class:`AudioConfig` for what ``channel`` / ``channels`` keep."""
    n, ch = info.channels, cfg.channel
    if n == 1:
        if ch in ("near", "far"):
            raise AudioFileError(f"mono file: it has no {ch} channel")
        return [("mono", "mono")]
    if ch == "mean":
        return [("mean", "mean")]
    roles = cfg.channel_roles
    if isinstance(ch, int):
        if ch >= n:
            raise AudioFileError(f"channel {ch} requested but the file has {n} channels")
        return [(str(ch), roles[ch] if n == 2 else f"ch{ch}")]
    if ch in ("near", "far"):
        if n != 2:
            raise AudioFileError(f"{n}-channel file: the {ch} role exists in two-channel files only; choose a channel index")
        return [(str(roles.index(ch)), ch)]
    if n == 2:  # auto: near first (the primary every stage reads), then far
        return [(str(roles.index(r)), r) for r in ("near", "far")]
    if cfg.channels == "all":
        return [(str(i), f"ch{i}") for i in range(n)]
    return [("0", "ch0")]


def channel_selection(info: AudioInfo, cfg: AudioConfig) -> str:
    """Which channel(s) of this file make the clip's primary waveform, as recorded in ``clips``."""
    return channel_plan(info, cfg)[0][0]


def stored_roles(info: AudioInfo, cfg: AudioConfig) -> list[str] | None:
    """``clips.channel_roles``: the roles stored, primary first; None when only one channel is stored."""
    plan = channel_plan(info, cfg)
    return [role for _, role in plan] if len(plan) > 1 else None


# A stored channel is flagged (clips.channel_flags) when it carries no usable signal: its peak
# below -80 dBFS, or more than 0.1% of its samples at full scale.
SILENT_PEAK = 1e-4
CLIPPED_LEVEL, CLIPPED_SHARE = 0.999, 1e-3


def channel_flag(wave: np.ndarray) -> str | None:
    """``silent`` / ``clipped`` / None for one decoded channel."""
    if wave.size == 0 or float(np.max(np.abs(wave))) < SILENT_PEAK:
        return "silent"
    if float(np.mean(np.abs(wave) >= CLIPPED_LEVEL)) > CLIPPED_SHARE:
        return "clipped"
    return None


def decode_channels(path: Path, info: AudioInfo, cfg: AudioConfig, primary_only: bool = False
                    ) -> list[tuple[int | None, str, np.ndarray]]:
    """(channel index, role, float32 waveform at ``cfg.sample_rate``) of every stored channel, primary
    first (index None for ``mean``); values in [-1, 1] for PCM input."""
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except OSError as exc:
        _reraise_os_error(exc, path)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFileError(f"cannot decode audio ({exc})") from None
    if data.shape[0] == 0:
        raise AudioFileError("WAV file holds no audio samples")
    plan = channel_plan(info, cfg)
    out = []
    for selection, role in plan[:1] if primary_only else plan:
        if selection == "mean":
            wave, index = data.mean(axis=1, dtype=np.float32), None
        else:
            index = 0 if selection == "mono" else int(selection)
            wave = np.ascontiguousarray(data[:, index])
        if not np.isfinite(wave).all():
            raise AudioFileError("audio contains NaN or infinite samples")
        if sr != cfg.sample_rate:
            wave = resample(wave, sr, cfg.sample_rate)
        out.append((index, role, wave))
    return out


def decode(path: Path, info: AudioInfo, cfg: AudioConfig) -> np.ndarray:
    """The primary waveform: mono float32 at ``cfg.sample_rate`` (values in [-1, 1] for PCM input)."""
    return decode_channels(path, info, cfg, primary_only=True)[0][2]


def resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Band-limited resampling with torchaudio (sinc interpolation)."""
    import torch
    import torchaudio.functional as AF

    with torch.inference_mode():
        out = AF.resample(torch.from_numpy(np.ascontiguousarray(wave)), orig_sr, new_sr)
    return out.numpy().astype(np.float32, copy=False)


def limit_full_scale(wave: np.ndarray, info: AudioInfo) -> tuple[np.ndarray, str | None]:
    """Float sources beyond full scale: quarantine far above it, clip (with a warning) just above.

    PCM samples cannot exceed full scale, so only FLOAT/DOUBLE files are checked. Above
    ``FAR_ABOVE_FULL_SCALE`` the file is not a normalised recording (raises
    :class:`AudioFileError`); above 1 the clipped wave comes back with the warning to report.
    """
    if info.subtype not in FLOAT_SUBTYPES or wave.size == 0:
        return wave, None
    peak = float(np.max(np.abs(wave)))
    if peak > FAR_ABOVE_FULL_SCALE:
        raise AudioFileError(
            f"float samples reach {peak:.1f}x full scale (more than {FAR_ABOVE_FULL_SCALE:g}x): "
            "not a normalised recording, not clipped into the dataset"
        )
    if peak <= 1.0:
        return wave, None
    clipped = np.clip(wave, -1.0, 1.0)
    if peak < 1.001:  # float rounding of full-scale audio: clipped, nothing worth saying
        return clipped, None
    return clipped, f"float samples up to {peak:.2f}x full scale were clipped to [-1, 1]"
