"""Embeddings of a teacher trained by ``asd train-teacher`` (the default neural encoder)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from asd_core.encoders.base import Encoder


class TeacherEncoder(Encoder):
    name = "teacher"
    distance = "cosine"

    def __init__(self, model: str, device: str | None = None, clip_seconds: float | None = None):
        from asd_core.training.teacher import load_teacher

        if model is None:
            raise ValueError("the teacher encoder needs --model DIR (a folder written by `asd train-teacher`)")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.net, self.card = load_teacher(model, self.device)
        self.clip_seconds = clip_seconds or self.card["train"].get("clip_seconds")

    @property
    def dim(self) -> int:
        return self.net.cfg.embedding_dim

    def params(self) -> dict:
        return {"model_hash": self.card["model_hash"], "clip_seconds": self.clip_seconds}

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """Clips of equal length run as one batch; each keeps its own length (the net pools globally)."""
        out = np.empty((len(batch), self.dim), np.float32)
        by_length: dict[int, list[int]] = {}
        for i, wave in enumerate(batch):
            by_length.setdefault(len(wave), []).append(i)
        with torch.inference_mode():
            for idx in by_length.values():
                x = torch.from_numpy(np.stack([np.asarray(batch[i], np.float32) for i in idx])).to(self.device)
                out[idx] = self.net(x).float().cpu().numpy()
        return out
