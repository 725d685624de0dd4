"""Training clips from the workspace: normal training clips with their class labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from asd_core.config import PIPELINE_SAMPLE_RATE, Workspace
from asd_core.storage.audio import stream_waves
from asd_core.storage.paths import all_files
from asd_core.storage.scratch import scratch_matrix


@dataclass
class TrainingSet:
    clip_ids: list[str]
    waves: np.ndarray  # [N, samples] float32, padded/cropped to one length; disk-backed (storage/scratch.py)
    labels: list[str]  # class names: machine / section / attributes
    domains: list[str | None]


def class_name(row: dict) -> str:
    attrs = "_".join(f"{k}={v}" for k, v in sorted(dict(row["attributes"] or {}).items()))
    return f"{row['machine_type']}/{row['section']}/{attrs}"


def fix_length(wave: np.ndarray, n: int) -> np.ndarray:
    return np.pad(wave, (0, n - len(wave))) if len(wave) < n else wave[:n]


def load_training_set(ws: Workspace, clip_seconds: float | None = None, sample_rate: int = PIPELINE_SAMPLE_RATE) -> TrainingSet:
    """All normal training clips of the workspace, each padded or cropped to ``clip_seconds``
    (default: the median duration)."""
    meta = {}
    for path in all_files(ws, "clips"):
        for r in pq.read_table(path, columns=["clip_id", "machine_type", "section", "split", "domain", "label",
                                              "attributes", "duration_s"]).to_pylist():
            if r["split"] == "train" and r["label"] != "anomaly":
                meta[r["clip_id"]] = r
    if not meta:
        raise FileNotFoundError(f"no normal training clips in {ws.root}; run `asd ingest` first")
    n = int(round((clip_seconds or float(np.median([r["duration_s"] for r in meta.values()]))) * sample_rate))
    # Streamed into one preallocated matrix, on disk (storage/scratch.py): the clips' memory is the
    # page cache's, not the process's (a dict of clips, their stack and its float32 copy took
    # 8.1 GB for the 2.4 GB of the dcase demo set).
    ids = sorted(meta)  # independent of partition order
    row = {c: i for i, c in enumerate(ids)}
    waves, found = scratch_matrix(ws, len(ids), n, "teacher's training clips"), np.zeros(len(ids), bool)
    for cid, wave in stream_waves(ws, meta.keys()):
        w = fix_length(wave, n)
        waves[row[cid], : len(w)], found[row[cid]] = w, True
    if not found.all():  # listed in clips but without stored audio: left out, as before (rows moved up in place)
        keep = np.flatnonzero(found)
        for dst, src in enumerate(keep):
            if dst != src:
                waves[dst] = waves[src]
        waves, ids = waves[: len(keep)], [ids[i] for i in keep]
    return TrainingSet(ids, waves, [class_name(meta[c]) for c in ids], [meta[c]["domain"] for c in ids])
