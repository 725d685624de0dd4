"""Regenerate mixtures from provenance (the audio is not stored: gains, noise id and offset are).

The result is bit-identical to what ``plan.py`` measured, since both read the same stored
clean waveform and noise recording and apply the same float64 arithmetic (snr.mix).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from asd_core.mixing.noise_library import NoiseLibrary
from asd_core.mixing.snr import Gains, mix, noise_segment
from asd_core.storage.audio import partition_waves


def render(row: dict, clean: np.ndarray, lib: NoiseLibrary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mixture, scaled clean part, scaled noise part) of one provenance row."""
    if len(clean) != row["num_samples"]:
        raise ValueError(f"clip {row['clip_id']} has {len(clean)} samples, its mixture was planned on "
                         f"{row['num_samples']}: the audio changed since `asd mix`; run it again")
    noise = noise_segment(lib.wave(row["noise_id"]), len(clean), row["noise_offset"])
    return mix(clean, noise, Gains(row["clean_gain"], row["noise_gain"]))


class MixtureBatches(torch.utils.data.IterableDataset):
    """(ids, mixtures) or, with ``parts``, (ids, (clean parts, noise parts)) batches of the
    provenance rows whose clean clip lives in one audio partition, skipping ids in ``done``."""

    def __init__(self, audio_path: Path, rows: list[dict], lib: NoiseLibrary, id_field: str, done: set[str],
                 batch_size: int, parts: bool = False):
        self.audio_path, self.lib, self.id_field, self.batch_size, self.parts = audio_path, lib, id_field, batch_size, parts
        self.by_clip: dict[str, list[dict]] = {}
        for r in rows:
            if r[id_field] not in done:
                self.by_clip.setdefault(r["clip_id"], []).append(r)

    def __iter__(self):
        ids, first, second = [], [], []
        for cid, clean in partition_waves(self.audio_path, self.by_clip):
            for r in self.by_clip[cid]:
                m, c, n = render(r, clean, self.lib)
                ids.append(r[self.id_field])
                if self.parts:
                    first.append(c)
                    second.append(n)
                else:
                    first.append(m)
                if len(ids) == self.batch_size:
                    yield ids, ((first, second) if self.parts else first)
                    ids, first, second = [], [], []
        if ids:
            yield ids, ((first, second) if self.parts else first)
