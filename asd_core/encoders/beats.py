"""BEATs clip embeddings from an official (or compatible) checkpoint given by path."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from asd_core.encoders.base import Encoder
from asd_core.models.beats import SAMPLE_RATE, pool_tokens
from asd_core.models.beats_checkpoint import file_hash, load_beats

POOLINGS = ("mean", "time-mean")  # mean over all tokens | temporal mean keeping the frequency patches
CLIP_MODES = ("full", "pad", "crop", "chunk")


class BeatsEncoder(Encoder):
    """Pooled token features of one BEATs layer (methods.md section 4).

    ``pooling="mean"`` averages all tokens (width dims); ``"time-mean"`` averages over time and
    keeps the 8 frequency patches (8 x width dims, 6144 for base). ``clip_seconds`` with
    ``clip_mode`` pads or crops each clip to a fixed length, or (``chunk``) embeds consecutive
    chunks of that length and averages them; ``full`` uses each clip as it is.
    """

    name = "beats"
    distance = "cosine"
    sample_rate = SAMPLE_RATE

    def __init__(self, checkpoint: str, layer: int | None = None, pooling: str = "mean",
                 clip_seconds: float | None = None, clip_mode: str = "full", device: str | None = None):
        if checkpoint is None:
            raise ValueError("the beats encoder needs --checkpoint PATH (e.g. BEATs_iter3_plus_AS2M.pt)")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        if clip_mode not in CLIP_MODES:
            raise ValueError(f"unknown clip mode {clip_mode!r}; choose one of {', '.join(CLIP_MODES)}")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model, meta = load_beats(checkpoint, self.device)
        self.checkpoint_hash = file_hash(checkpoint)
        n_layers = self.model.cfg.encoder_layers
        if layer is not None and not 1 <= layer <= n_layers:
            raise ValueError(f"layer must be in 1..{n_layers} for this checkpoint, got {layer}")
        self.layer, self.pooling, self.clip_seconds, self.clip_mode = layer, pooling, clip_seconds, clip_mode

    @property
    def dim(self) -> int:
        width = self.model.cfg.encoder_embed_dim
        return width * self.model.freq_patches if self.pooling == "time-mean" else width

    def params(self) -> dict:
        return {"checkpoint": self.checkpoint_hash, "layer": self.layer, "pooling": self.pooling,
                "clip_seconds": self.clip_seconds, "clip_mode": self.clip_mode}

    def _segments(self, wave: np.ndarray) -> list[np.ndarray]:
        if self.clip_mode == "full" or not self.clip_seconds:
            return [wave]
        n = int(self.clip_seconds * self.sample_rate)
        if self.clip_mode == "chunk" and len(wave) > n:
            return [wave[i : i + n] for i in range(0, len(wave) - n + 1, n)]
        return [np.pad(wave, (0, max(0, n - len(wave))))[:n]]

    def _pool(self, tokens: torch.Tensor) -> torch.Tensor:
        return pool_tokens(tokens, self.pooling, self.model.freq_patches)

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """Segments of equal length run as one forward pass; each clip averages its segments."""
        segments, owner = [], []
        for i, wave in enumerate(batch):
            for seg in self._segments(np.asarray(wave, np.float32)):
                segments.append(seg)
                owner.append(i)
        pooled = torch.empty((len(segments), self.dim))
        by_length: dict[int, list[int]] = {}
        for j, seg in enumerate(segments):
            by_length.setdefault(len(seg), []).append(j)
        with torch.inference_mode():
            for idx in by_length.values():
                x = torch.from_numpy(np.stack([segments[j] for j in idx])).to(self.device)
                pooled[idx] = self._pool(self.model(x, layer=self.layer)).float().cpu()
        owner_t = torch.tensor(owner)
        out = torch.zeros((len(batch), self.dim)).index_add_(0, owner_t, pooled)
        out /= torch.bincount(owner_t, minlength=len(batch)).clamp(min=1)[:, None]
        return out.numpy().astype(np.float32)
