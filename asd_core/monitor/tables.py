"""Monitor results on disk: one immutable Parquet file per monitor run (``batch``) for detections and
for quarantine rows, written atomically, then published into DuckDB in one short transaction.

Parquet is the source of truth: what was already scored (or quarantined) is read from it, and a
publish inserts every batch the DuckDB tables do not hold yet, so a run that died between writing
its Parquet and publishing is completed by the next one, without duplicates.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa

from asd_core.config import Workspace
from asd_core.schemas import DETECTIONS, MONITOR_QUARANTINE
from asd_core.storage.atomic import write_parquet_atomic
from asd_core.storage.catalog import publish_batches, transaction
from asd_core.storage.lock import exclusive_lock
from asd_core.storage.paths import all_files

ARTIFACTS = {"detections": DETECTIONS, "monitor_quarantine": MONITOR_QUARANTINE}


class MonitorBusyError(RuntimeError):
    """Another ``asd monitor`` run holds the workspace's monitor lock."""


def batch_file(ws: Workspace, artifact: str, batch_id: str) -> Path:
    """``parquet/<artifact>/batch=<id>/<artifact>.parquet``."""
    return ws.artifact_dir(artifact) / f"batch={batch_id}" / f"{artifact}.parquet"


def write_batch(ws: Workspace, artifact: str, batch_id: str, rows: list[dict]) -> Path | None:
    """Write one batch's rows (validated against the declared schema); nothing when there are none."""
    if not rows:
        return None
    schema = ARTIFACTS[artifact]
    table = pa.Table.from_pylist(rows, schema=schema)
    return write_parquet_atomic(table, batch_file(ws, artifact, batch_id), schema)


def _read(files: list[Path], columns: str, where: str = "", params: list | None = None) -> list[tuple]:
    if not files:
        return []
    con = duckdb.connect()
    try:
        paths = [str(f) for f in files]
        return con.execute(f"SELECT DISTINCT {columns} FROM read_parquet(?, union_by_name = true, hive_partitioning = false) {where}",
                           [paths, *(params or [])]).fetchall()
    finally:
        con.close()


def scored_keys(ws: Workspace, model_name: str, model_version: str | None) -> set[tuple[str, str, str]]:
    """(sha256, machine_type, section) scored by ``model_name`` (any version when ``model_version`` is None)."""
    where, params = "WHERE model_name = ?", [model_name]
    if model_version is not None:
        where, params = where + " AND model_version = ?", params + [model_version]
    return set(_read(all_files(ws, "detections"), "sha256, machine_type, section", where, params))


def quarantined_keys(ws: Workspace, model_name: str, model_version: str) -> set[tuple]:
    """(path, sha256, machine_type, section, reason) quarantined (not just noted) for this model version."""
    rows = _read(all_files(ws, "monitor_quarantine"), "path, sha256, machine_type, section, reason",
                 "WHERE model_name = ? AND model_version = ? AND NOT scored", [model_name, model_version])
    return set(rows)


def publish(ws: Workspace) -> dict[str, int]:
    """Insert every Parquet batch the DuckDB tables lack, in one transaction; returns rows added per table.
    ``detections`` replaces a row whose key (content, machine type, section, model name and version) it already holds."""
    with transaction(ws) as con:
        return {artifact: publish_batches(con, artifact, all_files(ws, artifact), "batch_id",
                                          "INSERT OR REPLACE" if artifact == "detections" else "INSERT")
                for artifact in ARTIFACTS}


@contextmanager
def monitor_lock(ws: Workspace) -> Iterator[Path]:
    """One monitor run per workspace at a time (``.monitor.lock``, a ``flock`` that dies with its process);
    pipeline runs are not blocked: monitoring goes on while the nightly pipeline trains."""
    ws.root.mkdir(parents=True, exist_ok=True)
    busy = lambda holder: MonitorBusyError(  # noqa: E731
        f"{ws.root / '.monitor.lock'}: another asd monitor run holds this workspace ({holder}); wait for it to finish")
    with exclusive_lock(ws.root / ".monitor.lock", "asd monitor", busy) as path:
        yield path
