"""Cache keys of pipeline stages: the content of a stage's inputs plus the version of its code
(code_graph.py: the source of every module the stage's entry point imports).

Inside the workspace everything is keyed by content (the ingested clips by their audio
sha256, mixtures by their provenance rows, models by their content hash), so touching a
file changes nothing and changing one clip changes every key downstream of it. Raw input
folders outside the workspace (dataset roots, noise folders) are keyed by (path, size,
mtime): re-reading terabytes to decide whether to ingest would cost what ingest costs, and
ingest itself compares content hashes, so a touched-but-equal file costs one re-read and
changes no key after it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow.parquet as pq

from asd_core.config import Workspace
from asd_core.hashing import json_id
from asd_core.storage.paths import all_files

CLIP_KEY_COLUMNS = ("clip_id", "sha256", "dataset", "machine_type", "section", "split", "domain", "label",
                    "channel_selection", "pipeline_sample_rate")


def digest(obj) -> str:
    """Stable short hash of a JSON-able object."""
    return json_id(obj, 16, default=str)


def tree_fingerprint(folder: str | Path) -> str:
    """(relative path, size, mtime) of every file under ``folder`` (raw inputs outside the workspace)."""
    root = Path(folder).expanduser().resolve()
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    if root.is_file():
        st = root.stat()
        return digest([root.name, st.st_size, st.st_mtime_ns])
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            st = os.stat(os.path.join(dirpath, name))
            entries.append((os.path.relpath(os.path.join(dirpath, name), root), st.st_size, st.st_mtime_ns))
    return digest([str(root), entries])


def clips_fingerprint(ws: Workspace) -> str:
    """What the ingested clips are: ids, audio content hashes and labels (not paths or mtimes)."""
    rows = []
    for path in all_files(ws, "clips"):
        t = pq.read_table(path, columns=list(CLIP_KEY_COLUMNS))
        rows += [tuple(r.values()) for r in t.to_pylist()]
    if not rows:
        raise FileNotFoundError(f"no ingested clips in {ws.root}")
    return digest(sorted(rows, key=lambda r: r[0]))


def artifact_fingerprint(ws: Workspace, artifact: str, exclude: tuple[str, ...] = ()) -> str:
    """Content of every Parquet file of a workspace artifact (rows sorted by file, then as stored).

    ``exclude`` leaves out columns another column already hashes (the noise waveform: noise_id),
    so keying a stage never serialises audio sample by sample."""
    files = all_files(ws, artifact)
    h = hashlib.sha256()
    for path in files:
        columns = [n for n in pq.read_schema(path).names if n not in exclude]
        h.update(str(path.relative_to(ws.root)).encode())
        h.update(json.dumps(pq.read_table(path, columns=columns).to_pylist(), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16] if files else "none"


def mixtures_fingerprint(ws: Workspace) -> str:
    """What ``asd mix`` planned: the noise library (its noise ids hash the waveforms), the training
    mixtures and the noisy test clips."""
    return digest([artifact_fingerprint(ws, "noise", exclude=("waveform",)),
                   artifact_fingerprint(ws, "mixtures"), artifact_fingerprint(ws, "noisy_clips")])


def stage_key(stage: str, code: str, **inputs) -> str:
    """The cache key of one stage run."""
    return f"{stage}-{digest({'code': code, **inputs})}"
