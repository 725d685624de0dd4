"""Results of pipeline stages as plain JSON files, ``<workspace>/cache/stages/<key>.json``.

The pipeline's cache must never execute what it reads: Prefect's result records name their own
serializer (pickle among them), so a planted record would run code on the next cache hit. These
files are written by us and read with ``json.loads`` only; anything else in them is ignored.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

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


def write_stage_result(ws: Workspace, key: str, result) -> Path:
    path = stage_result_file(ws, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"key": key, "result": result}, default=_plain, sort_keys=True))
    return path


def read_stage_result(ws: Workspace, key: str):
    """The stored result of ``key``, or None when there is none (or it is not ours: ignored, logged)."""
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
    return record["result"]
