"""Training clips from the workspace: normal training clips with their class labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from asd_core.config import PIPELINE_SAMPLE_RATE, Workspace
from asd_core.storage.audio import read_waves
from asd_core.storage.paths import all_files


@dataclass
class TrainingSet:
    clip_ids: list[str]
    waves: np.ndarray  # [N, samples] float32, padded/cropped to one length
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
    found = read_waves(ws, set(meta), lambda w: fix_length(w, n))
    ids = sorted(found)  # independent of partition order
    return TrainingSet(ids, np.stack([found[c] for c in ids]).astype(np.float32),
                       [class_name(meta[c]) for c in ids], [meta[c]["domain"] for c in ids])
