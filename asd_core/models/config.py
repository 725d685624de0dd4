"""Torch-free configuration of the models: importable by the CLI without loading torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from asd_core.config import PIPELINE_SAMPLE_RATE


@dataclass
class TeacherConfig:
    """Architecture and features; all of it goes into the model hash."""

    n_mels: int = 64
    n_fft: int = 1024
    hop_length: int = 256
    channels: tuple[int, ...] = (16, 32, 64, 128)
    embedding_dim: int = 128
    sample_rate: int = PIPELINE_SAMPLE_RATE
    # How the last block's map becomes the classifier's input: "mean" over frequency and time, or over time only
    # keeping the frequency bins ("time-mean", the default: anomalies often change one band),
    # plus the temporal max ("time-mean-max").
    pooling: str = "time-mean"
    # What ``forward`` returns, the embedding that is scored: "multi-level" (see the module
    # docstring; n_mels + the sum over blocks of channels x frequency bins wide, 2,112 by
    # default) or "projection" (the classifier's input, ``embedding_dim`` wide).
    embedding: str = "multi-level"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TeacherConfig":
        """A user's (possibly partial) config: missing keys take the current defaults."""
        d = {**cls().to_dict(), **d}
        d["channels"] = tuple(d["channels"])
        return cls(**d)

    @classmethod
    def from_card(cls, d: dict) -> "TeacherConfig":
        """The architecture stored with a trained model: cards written before ``pooling``
        existed pooled over everything, and those written before ``embedding`` existed are
        scored on the projection, whatever today's defaults are."""
        return cls.from_dict({"pooling": "mean", "embedding": "projection", **d})
