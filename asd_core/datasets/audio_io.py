"""Read WAV files with soundfile: header probe, truncation check, channel choice, resampling.

Errors are :class:`AudioFileError` with a one-line reason that names the problem; callers
add the file name and route the file to quarantine.
"""

from __future__ import annotations

import errno
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from asd_core.config import AudioConfig

# OS errors worth retrying (network filesystems, interrupted reads); others are the file's fault.
TRANSIENT_ERRNOS = {errno.EIO, errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.EBUSY}


class AudioFileError(ValueError):
    """A file that cannot be used as a clip; ``str(exc)`` is the reason."""


class TransientIOError(OSError):
    """An I/O error that may succeed on retry (the orchestrator retries the task)."""


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    num_samples: int
    file_size: int

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate


def _reraise_os_error(exc: OSError, path: Path) -> None:
    if exc.errno in TRANSIENT_ERRNOS:
        raise TransientIOError(exc.errno, f"{path}: transient I/O error ({exc.strerror})") from exc
    raise AudioFileError(f"unreadable file ({exc.strerror or exc})") from None


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
    try:
        file_size = path.stat().st_size
        if file_size == 0:
            raise AudioFileError("empty file (0 bytes)")
        _riff_data_chunk(path, file_size)
        info = sf.info(str(path))
    except OSError as exc:
        _reraise_os_error(exc, path)
    except sf.LibsndfileError as exc:  # soundfile's own error type for bad content
        raise AudioFileError(f"not a readable WAV file ({exc.error_string})") from None
    except RuntimeError as exc:
        raise AudioFileError(f"not a readable WAV file ({exc})") from None
    if info.format not in ("WAV", "WAVEX", "RF64"):
        raise AudioFileError(f"not a WAV file (format {info.format})")
    if info.frames <= 0:
        raise AudioFileError("WAV file holds no audio samples")
    return AudioInfo(info.samplerate, info.channels, int(info.frames), file_size)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    except OSError as exc:
        _reraise_os_error(exc, path)
    return digest.hexdigest()


def channel_selection(info: AudioInfo, cfg: AudioConfig) -> str:
    """Which channel(s) of this file feed the pipeline, as recorded in ``clips``."""
    if info.channels == 1:
        return "mono"
    if cfg.channel == "mean":
        return "mean"
    if cfg.channel >= info.channels:
        raise AudioFileError(f"channel {cfg.channel} requested but the file has {info.channels} channels")
    return str(cfg.channel)


def decode(path: Path, info: AudioInfo, cfg: AudioConfig) -> np.ndarray:
    """Mono float32 waveform at ``cfg.sample_rate`` (values in [-1, 1] for PCM input)."""
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except OSError as exc:
        _reraise_os_error(exc, path)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFileError(f"cannot decode audio ({exc})") from None
    if data.shape[0] == 0:
        raise AudioFileError("WAV file holds no audio samples")
    selection = channel_selection(info, cfg)
    if selection == "mean":
        mono = data.mean(axis=1, dtype=np.float32)
    else:
        mono = np.ascontiguousarray(data[:, 0 if selection == "mono" else int(selection)])
    if not np.isfinite(mono).all():
        raise AudioFileError("audio contains NaN or infinite samples")
    if sr != cfg.sample_rate:
        mono = resample(mono, sr, cfg.sample_rate)
    return mono


def resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Band-limited resampling with torchaudio (sinc interpolation)."""
    import torch
    import torchaudio.functional as AF

    with torch.inference_mode():
        out = AF.resample(torch.from_numpy(np.ascontiguousarray(wave)), orig_sr, new_sr)
    return out.numpy().astype(np.float32, copy=False)


def to_storage(wave: np.ndarray, storage_dtype: str) -> np.ndarray:
    """float32 [-1, 1] -> the stored dtype (int16 PCM counts are exact for PCM16 sources)."""
    if storage_dtype == "float32":
        return wave.astype(np.float32, copy=False)
    return np.clip(np.rint(wave * 32768.0), -32768, 32767).astype(np.int16)


def from_storage(values: np.ndarray) -> np.ndarray:
    """Stored waveform -> float32 in [-1, 1]."""
    if values.dtype == np.int16:
        return values.astype(np.float32) / 32768.0
    return values.astype(np.float32, copy=False)
