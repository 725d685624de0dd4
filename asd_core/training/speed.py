"""Training-time views of a clip for the teacher: speed-perturbation classes and random crops.

Each training clip is played at one of a few speed factors (resampling shifts pitch and
tempo together) and the classifier must name (attribute class, factor). Attribute classes
alone are easy to separate from coarse cues, and a net that only solves them forgets the
fine spectral and temporal detail an anomaly changes; telling 4 % speed changes apart keeps
that detail in the embedding (Giri et al., "Self-supervised classification for detecting
anomalous sounds", DCASE 2020). Random crops show each clip at a new window every step
(cheaper epochs; on the demo data the scores matched whole-clip training). Embeddings are
always computed on whole, unperturbed clips.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def change_speed(wave: torch.Tensor, factor: float) -> torch.Tensor:
    """[B, T] -> [B, T] played ``factor`` times faster (linear interpolation), cropped or zero-padded to T."""
    if factor == 1.0:
        return wave
    n = wave.shape[-1]
    out = F.interpolate(wave.unsqueeze(1), size=max(1, round(n / factor)), mode="linear", align_corners=False).squeeze(1)
    return out[..., :n] if out.shape[-1] >= n else F.pad(out, (0, n - out.shape[-1]))


def speed_class(label: torch.Tensor, which: torch.Tensor, n_factors: int) -> torch.Tensor:
    """Index of the (attribute class, speed factor) pair in the head's ``n_classes * n_factors`` outputs."""
    return label * n_factors + which


def apply_speeds(wave: torch.Tensor, which: torch.Tensor, factors: tuple[float, ...]) -> torch.Tensor:
    """Row i of ``wave`` at speed ``factors[which[i]]``; rows sharing a factor are resampled together."""
    out = wave.clone()
    for k, f in enumerate(factors):
        rows = (which == k).nonzero().flatten()
        if f != 1.0 and rows.numel():
            out[rows] = change_speed(wave[rows], f)
    return out


def random_crops(wave: torch.Tensor, length: int, gen) -> torch.Tensor:
    """[B, T] -> [B, length]: one window per row at an offset drawn from ``gen`` (numpy Generator);
    rows shorter than ``length`` are returned whole."""
    n = wave.shape[-1]
    if length >= n:
        return wave
    starts = torch.from_numpy(gen.integers(0, n - length + 1, wave.shape[0]))
    return torch.gather(wave, 1, starts[:, None] + torch.arange(length)[None, :])
