"""``catalog.publish_batches``, shared by the monitor's and the enrollment's tables: only the batches
DuckDB lacks are inserted (once, whatever the number of publishes), INSERT OR REPLACE replaces rows
of a key already held, and any other verb is refused."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa
import pytest

from asd_core.config import Workspace
from asd_core.monitor.tables import batch_file
from asd_core.schemas import DETECTIONS
from asd_core.storage.atomic import write_parquet_atomic
from asd_core.storage.catalog import connect, publish_batches, transaction
from asd_core.storage.paths import all_files

T = datetime(2026, 11, 20, 8, 30, 0)


def _detection(sha: str, batch: str, score: float) -> dict:
    return {"path": f"/x/{sha}.wav", "sha256": sha, "machine_type": "fan", "section": "00", "recorded_at": T,
            "model_name": "m", "model_version": "1", "score": score, "threshold": 1.0, "decision": int(score > 1.0),
            "scored_at": T, "recorded_at_source": "mtime", "dataset": "demo", "sample_rate": 16000,
            "threshold_quantile": 0.9, "batch_id": batch}


def _write(ws: Workspace, batch: str, rows: list[dict]) -> None:
    write_parquet_atomic(pa.Table.from_pylist(rows, schema=DETECTIONS), batch_file(ws, "detections", batch), DETECTIONS)


def _publish(ws: Workspace, verb: str = "INSERT") -> int:
    with transaction(ws) as con:
        return publish_batches(con, "detections", all_files(ws, "detections"), "batch_id", verb)


def _rows(ws: Workspace) -> list[tuple]:
    with connect(ws, read_only=True) as con:
        return con.execute("SELECT sha256, score, batch_id FROM detections ORDER BY sha256").fetchall()


def test_only_the_batches_duckdb_lacks_are_inserted(tmp_path):
    ws = Workspace(tmp_path / "ws")
    _write(ws, "b1", [_detection("a", "b1", 0.5), _detection("b", "b1", 2.0)])
    assert _publish(ws) == 2
    assert _publish(ws) == 0  # nothing new: no duplicates
    _write(ws, "b2", [_detection("c", "b2", 1.5)])
    assert _publish(ws) == 1
    assert _rows(ws) == [("a", 0.5, "b1"), ("b", 2.0, "b1"), ("c", 1.5, "b2")]


def test_insert_or_replace_replaces_a_held_key_and_insert_refuses_it(tmp_path):
    ws = Workspace(tmp_path / "ws")
    _write(ws, "b1", [_detection("a", "b1", 0.5)])
    assert _publish(ws) == 1
    _write(ws, "b2", [_detection("a", "b2", 3.0), _detection("d", "b2", 0.1)])
    with pytest.raises(duckdb.ConstraintException):
        _publish(ws)
    assert _rows(ws) == [("a", 0.5, "b1")]  # the transaction rolled back
    assert _publish(ws, "INSERT OR REPLACE") == 1  # one row replaced, one added
    assert _rows(ws) == [("a", 3.0, "b2"), ("d", 0.1, "b2")]


def test_other_verbs_are_refused(tmp_path):
    with connect(Workspace(tmp_path / "ws")) as con:
        with pytest.raises(ValueError, match="verb must be one of"):
            publish_batches(con, "detections", [], "batch_id", "DELETE FROM detections; INSERT")
