"""The encoder interface every embedding model implements (spectral now, neural later)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from asd_core.config import PIPELINE_SAMPLE_RATE
from asd_core.hashing import json_id


class Encoder(ABC):
    """A bundle of preprocessing + model: sample rate, parameters and weights travel together.

    ``version`` hashes everything that changes the output (name, parameters, weights), so
    embeddings and indexes keyed by it are recomputed exactly when they must be.
    """

    name: str
    sample_rate: int = PIPELINE_SAMPLE_RATE  # of the waveforms ``embed`` expects
    distance: str = "euclidean"  # preferred metric for scoring (methods.md section 1)

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @abstractmethod
    def params(self) -> dict:
        """Everything that defines the output, JSON-serialisable."""

    @property
    def version(self) -> str:
        return json_id({"name": self.name, "sr": self.sample_rate, **self.params()}, 12)

    @abstractmethod
    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """Mono float32 waveforms (any lengths) -> float32 array [len(batch), dim]."""
