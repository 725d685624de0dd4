"""Results of pipeline stages as plain JSON files, ``<workspace>/cache/stages/<key>.json``.

The pipeline's cache must never execute what it reads: Prefect's result records name their own
serializer (pickle among them), so a planted record would run code on the next cache hit. These
files are written by us and read with ``json.loads`` only; anything else in them is ignored.

A record may also hold the state of the files the stage wrote (``file_states``: size, mtime and
inode of each); a reader that passes ``outputs`` accepts the result only while those files are
exactly as the stage left them (the stand-alone commands' no-op check, pipeline/uptodate.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from asd_core.config import Workspace
from asd_core.storage.atomic import atomic_path
from asd_core.storage.paths import stage_cache_dir

logger = logging.getLogger("asd.pipeline")


def stage_result_file(ws: Workspace, key: str) -> Path:
    if not key or "/" in key or key.startswith("."):
        raise ValueError(f"bad stage key {key!r}")
    return stage_cache_dir(ws) / f"{key}.json"


def _plain(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"stage result holds a {type(obj).__name__}, which is not JSON")


def as_plain(result):
    """``result`` as it reads back from its file (paths as strings, tuples as lists)."""
    return json.loads(json.dumps(result, default=_plain))


def file_states(root: Path, files: Iterable[Path]) -> dict[str, list[int]]:
    """(size, mtime in ns, inode) of each file, by its path relative to ``root``. Atomic writes
    replace a file by a new inode, so a rewrite shows even within one mtime tick."""
    out = {}
    for f in files:
        st = os.stat(f)
        out[Path(f).relative_to(root).as_posix()] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return out


def write_stage_result(ws: Workspace, key: str, result, outputs: dict[str, list[int]] | None = None) -> Path:
    """Store ``result`` under ``key``; ``outputs``: the ``file_states`` of what the stage wrote."""
    path = stage_result_file(ws, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"key": key, "result": result}
    if outputs is not None:
        record["outputs"] = outputs
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, default=_plain))  # key order kept: tables print as the stage made them
    return path


def read_stage_result(ws: Workspace, key: str, outputs: Callable[[object], dict] | None = None):
    """The stored result of ``key``, or None when there is none (or it is not ours: ignored, logged).

    ``outputs(result)``: the current ``file_states`` of the files that result names; the result is
    returned only when they equal the states recorded with it (a record without them: None)."""
    path = stage_result_file(ws, key)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        logger.warning("%s: not a stage result (%s); recomputing the stage", path, type(exc).__name__)
        return None
    if not isinstance(record, dict) or record.get("key") != key or "result" not in record:
        logger.warning("%s: not a stage result of key %s; recomputing the stage", path, key)
        return None
    if outputs is not None:
        try:
            if record.get("outputs") is None or outputs(record["result"]) != record["outputs"]:
                return None
        except (OSError, KeyError, TypeError, ValueError):  # a file gone, a result of another shape
            return None
    return record["result"]
