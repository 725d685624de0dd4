"""Training-free spectral encoders, so the scoring slice runs on any data without weights."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from asd_core.encoders.base import Encoder

CODE_VERSION = 1  # bump when the computation changes


class StftMean(Encoder):
    """Temporal mean of the STFT magnitude (n_fft 1024, hop 512): n_fft/2 + 1 dims."""

    name = "stft-mean"
    distance = "euclidean"

    def __init__(self, n_fft: int = 1024, hop_length: int = 512):
        self.n_fft, self.hop_length = n_fft, hop_length
        self._window = torch.hann_window(n_fft)

    @property
    def dim(self) -> int:
        return self.n_fft // 2 + 1

    def params(self) -> dict:
        return {"n_fft": self.n_fft, "hop_length": self.hop_length, "code": CODE_VERSION}

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(batch), self.dim), np.float32)
        with torch.inference_mode():
            for i, wave in enumerate(batch):
                x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
                spec = torch.stft(x, self.n_fft, self.hop_length, window=self._window, center=True, return_complex=True)
                out[i] = spec.abs().mean(dim=1).numpy()
        return out


class LogMelStats(Encoder):
    """Mean and standard deviation over frames of log-mel energies: 2 * n_mels dims."""

    name = "logmel-stats"
    distance = "euclidean"

    def __init__(self, n_fft: int = 1024, hop_length: int = 512, n_mels: int = 128):
        import torchaudio

        self.n_fft, self.hop_length, self.n_mels = n_fft, hop_length, n_mels
        self._mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, power=2.0)

    @property
    def dim(self) -> int:
        return 2 * self.n_mels

    def params(self) -> dict:
        return {"n_fft": self.n_fft, "hop_length": self.hop_length, "n_mels": self.n_mels, "code": CODE_VERSION}

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(batch), self.dim), np.float32)
        with torch.inference_mode():
            for i, wave in enumerate(batch):
                mel = self._mel(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)))
                logmel = torch.log10(mel + 1e-10)
                std = logmel.std(dim=1) if logmel.shape[1] > 1 else torch.zeros(self.n_mels)
                out[i] = torch.cat([logmel.mean(dim=1), std]).numpy()
        return out
