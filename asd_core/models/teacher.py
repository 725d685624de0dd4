"""The compact teacher encoder: a small CNN on log-mel frames with an AdaCos classification head.

The classifier is trained on a vector projected from the last block (``class_embedding``);
the embedding used for anomaly scoring is, by default, multi-level: the time-mean of the
normalised log-mel input and of every block's map, each L2-normalised, concatenated
(``embedding="multi-level"``). The last block is shaped by the auxiliary task and drops what
that task does not need; earlier levels keep more general spectral detail, so the multi-level
vector carries both (as PaDiM and PatchCore take mid-level features for anomaly detection
rather than the classifier's output). The input level (the spectral envelope) is the one that
training barely moves (only the input normalisation's scale and offset); on the demo data it
lifted the weakest seeds most.
"""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from torch import nn

from asd_core.models.config import TeacherConfig


class LogMel(nn.Module):
    def __init__(self, cfg: TeacherConfig):
        super().__init__()
        import torchaudio

        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=cfg.sample_rate, n_fft=cfg.n_fft,
                                                        hop_length=cfg.hop_length, n_mels=cfg.n_mels)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:  # [B, T] -> [B, 1, mels, frames]
        return torch.log(self.mel(wave) + 1e-6).unsqueeze(1)


POOLINGS = ("mean", "time-mean", "time-mean-max")
EMBEDDINGS = ("multi-level", "projection")


class TeacherNet(nn.Module):
    """Waveform -> embedding (``forward``, ``dim`` wide) and the classifier's input
    (``class_embedding``). BatchNorm on the input normalises the log-mel scale."""

    def __init__(self, cfg: TeacherConfig):
        super().__init__()
        self.cfg = cfg
        self.features = LogMel(cfg)
        self.input_norm = nn.BatchNorm2d(1)
        blocks, c_in = [], 1
        for c in cfg.channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        if cfg.pooling not in POOLINGS:
            raise ValueError(f"unknown teacher pooling {cfg.pooling!r}; choose one of {', '.join(POOLINGS)}")
        if cfg.embedding not in EMBEDDINGS:
            raise ValueError(f"unknown teacher embedding {cfg.embedding!r}; choose one of {', '.join(EMBEDDINGS)}")
        freq = cfg.n_mels >> len(cfg.channels)
        width = {"mean": c_in, "time-mean": c_in * freq, "time-mean-max": 2 * c_in * freq}[cfg.pooling]
        self.project = nn.Linear(width, cfg.embedding_dim)
        levels = cfg.n_mels + sum(c * (cfg.n_mels >> (i + 1)) for i, c in enumerate(cfg.channels))
        self.dim = levels if cfg.embedding == "multi-level" else cfg.embedding_dim

    def _level_means(self, wave: torch.Tensor) -> list[torch.Tensor]:
        """Time-means [B, C * F'] of the normalised log-mel, then of every block's output map
        (pooled as they come, so no map outlives its block)."""
        x = self.input_norm(self.features(wave))
        means = [x.mean(dim=3).flatten(1)]
        for layer in self.blocks:
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                means.append(x.mean(dim=3).flatten(1))
        return means

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if self.cfg.embedding == "projection":
            return self.class_embedding(wave)
        # Each level has unit norm, so no block dominates a distance; the whole is then scaled to
        # unit RMS per element (the scale of standardised features), which keeps MSE losses on it
        # (the student's alignment) comparable to its other losses. Rankings do not change.
        levels = [F.normalize(m, dim=1) for m in self._level_means(wave)]
        return torch.cat(levels, dim=1) * math.sqrt(self.dim / len(levels))

    def class_embedding(self, wave: torch.Tensor) -> torch.Tensor:
        """The vector the classification head sees: the last map pooled (``pooling``), projected."""
        x = self.blocks(self.input_norm(self.features(wave)))  # [B, C, F', T']
        if self.cfg.pooling == "mean":
            x = x.mean(dim=(2, 3))
        elif self.cfg.pooling == "time-mean":
            x = x.mean(dim=3).flatten(1)
        else:  # the max keeps short events (clicks, impacts) that a temporal mean dilutes
            x = torch.cat([x.mean(dim=3), x.amax(dim=3)], dim=1).flatten(1)
        return self.project(x)


class AdaCos(nn.Module):
    """Cosine logits with the adaptive scale of AdaCos (Zhang et al., 2019), soft targets allowed (mixup)."""

    def __init__(self, dim: int, n_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, dim) * math.sqrt(2.0 / dim))
        self.register_buffer("scale", torch.tensor(math.sqrt(2.0) * math.log(max(n_classes - 1, 2))))

    def forward(self, emb: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        cos = F.linear(F.normalize(emb), F.normalize(self.weight)).clamp(-1 + 1e-7, 1 - 1e-7)
        if self.training and target is not None:
            with torch.no_grad():  # the scale follows the batch: median angle of the targets
                theta = torch.acos(cos)
                b_avg = (torch.exp(self.scale * cos) * (1 - target)).sum(1).mean()
                theta_med = torch.quantile((theta * target).sum(1), 0.5)
                self.scale.copy_(torch.log(b_avg.clamp(min=1e-6)) / torch.cos(torch.clamp(theta_med, max=math.pi / 4)))
        return self.scale * cos
