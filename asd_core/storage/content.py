"""Content keys: the identity of what a derived artifact was computed from.

Clip ids name a file (dataset + path) and stay stable when the recording behind the name is
replaced; derived artifacts (embeddings, mixture plans, trained models) are therefore keyed by
content, so a changed recording is recomputed and an unchanged one is reused.

- The stored waveform of a clip is determined by the file's bytes (``sha256``), the channel
  selection and the pipeline sample rate: its *audio key* hashes those three.
- Another stored channel of a clip (``asd embed --channel far``): its *channel key*, the audio
  key plus the channel role.
- A mixture or noisy test clip is determined by its clean clip's audio key and its provenance
  (noise id, which is itself a content hash, gains, offset, length): its *mixture key*.
"""

from __future__ import annotations

import pyarrow.parquet as pq

from asd_core.config import Workspace
from asd_core.hashing import json_id, text_id
from asd_core.storage.paths import all_files

AUDIO_KEY_COLUMNS = ("clip_id", "sha256", "channel_selection", "pipeline_sample_rate")
# Provenance fields that decide the rendered audio of a mixture (render.py), besides the clean clip.
MIXTURE_AUDIO_FIELDS = ("noise_id", "clean_gain", "noise_gain", "noise_offset", "num_samples")


def audio_key(row: dict) -> str:
    """Audio key of one ``clips`` row (methods: the waveform the pipeline stores for it)."""
    return text_id(f"{row['sha256']}\0{row['channel_selection']}\0{row['pipeline_sample_rate']}", 16)


def clip_audio_keys(ws: Workspace, machine_type: str | None = None, dataset: str | None = None) -> dict[str, str]:
    """clip_id -> audio key of the ingested clips (only one machine type / dataset when given)."""
    keys: dict[str, str] = {}
    for path in all_files(ws, "clips"):
        if dataset is not None and path.parent.parent.name != f"dataset={dataset}":
            continue
        if machine_type is not None and path.parent.name != f"machine_type={machine_type}":
            continue
        for row in pq.read_table(path, columns=list(AUDIO_KEY_COLUMNS)).to_pylist():
            keys[row["clip_id"]] = audio_key(row)
    return keys


def channel_key(clean_key: str, role: str) -> str:
    """Key of a clip's stored channel other than its primary waveform (the far microphone, the
    mean of its channels): the clip's audio key plus the channel role."""
    return text_id(f"{clean_key}\0channel={role}", 16)


def mixture_key(row: dict, clean_key: str) -> str:
    """Key of a rendered mixture / noisy clip: its clean audio plus the provenance render.py uses.

    Gains are hashed by ``repr`` so every bit of the float64 counts."""
    return json_id([clean_key] + [repr(row[f]) for f in MIXTURE_AUDIO_FIELDS], 16, sort_keys=False)


def set_key(pairs) -> str:
    """One key for a set of (id, content key) pairs, independent of their order (a training set)."""
    return text_id("".join(f"{item}\0{key}\n" for item, key in sorted(pairs)), 16)
