"""``asd_core/schemas.py`` and ``sql/schema.sql`` declare the same columns, in the same order, with
the same types and nullability, for every Parquet artifact that is published into a DuckDB table."""

from __future__ import annotations

import pyarrow as pa
import pytest

from asd_core import schemas
from asd_core.config import Workspace
from asd_core.storage.catalog import connect

# Parquet schema -> DuckDB table, and the Parquet columns the table leaves out (kept in Parquet only).
PUBLISHED = {
    "clips": (schemas.CLIPS, ()),
    "quarantine": (schemas.QUARANTINE, ()),
    "scores": (schemas.SCORES, ()),
    "thresholds": (schemas.THRESHOLDS, ()),
    "noise": (schemas.NOISE, ("waveform",)),
    "mixtures": (schemas.MIXTURES, ()),
    "noisy_clips": (schemas.NOISY_CLIPS, ()),
    "detections": (schemas.DETECTIONS, ()),
    "monitor_quarantine": (schemas.MONITOR_QUARANTINE, ()),
    "enrollments": (schemas.ENROLLMENTS, ()),
}

_SCALARS = {
    pa.string(): "VARCHAR",
    pa.large_string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.int16(): "SMALLINT",
    pa.int8(): "TINYINT",
    pa.uint64(): "UBIGINT",
    pa.uint32(): "UINTEGER",
    pa.uint16(): "USMALLINT",
    pa.uint8(): "UTINYINT",
    pa.float64(): "DOUBLE",
    pa.float32(): "FLOAT",
    pa.bool_(): "BOOLEAN",
    pa.binary(): "BLOB",
    pa.date32(): "DATE",
}


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB type name ``DESCRIBE`` prints for a column loaded from Parquet of arrow type ``t``."""
    if t in _SCALARS:
        return _SCALARS[t]
    if pa.types.is_map(t):
        return f"MAP({duckdb_type(t.key_type)}, {duckdb_type(t.item_type)})"
    if pa.types.is_fixed_size_list(t):
        return f"{duckdb_type(t.value_type)}[{t.list_size}]"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"{duckdb_type(t.value_type)}[]"
    if pa.types.is_struct(t):
        return "STRUCT(" + ", ".join(f"{f.name} {duckdb_type(f.type)}" for f in t) + ")"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP" if t.tz is None else "TIMESTAMP WITH TIME ZONE"
    raise NotImplementedError(f"no DuckDB type mapped for arrow type {t}; add it to duckdb_type")


def test_type_mapping_agrees_with_duckdb_own_arrow_import():
    """The mapping above is DuckDB's: an empty arrow table of every schema reads back with those types."""
    import duckdb

    con = duckdb.connect()
    for table, (schema, _) in PUBLISHED.items():
        empty = schema.empty_table()  # noqa: F841 (read by DuckDB's replacement scan)
        got = [(r[0], r[1]) for r in con.execute("DESCRIBE SELECT * FROM empty").fetchall()]
        assert got == [(f.name, duckdb_type(f.type)) for f in schema], table


@pytest.fixture(scope="module")
def described(tmp_path_factory) -> dict[str, list[tuple[str, str, bool]]]:
    """``DESCRIBE`` of every published table in a fresh database created from ``sql/``."""
    ws = Workspace(tmp_path_factory.mktemp("ws-schema"))
    with connect(ws) as con:
        return {table: [(r[0], r[1], r[2] == "YES") for r in con.execute(f"DESCRIBE {table}").fetchall()]
                for table in PUBLISHED}


@pytest.mark.parametrize("table", sorted(PUBLISHED))
def test_parquet_schema_and_duckdb_table_declare_the_same_columns(described, table):
    schema, parquet_only = PUBLISHED[table]
    assert set(parquet_only) <= set(schema.names), f"{table}: {parquet_only} not in the Parquet schema"
    want = [(f.name, duckdb_type(f.type), f.nullable) for f in schema if f.name not in parquet_only]
    got = described[table]
    assert [c[0] for c in got] == [c[0] for c in want], f"{table}: columns differ (sql/schema.sql vs asd_core/schemas.py)"
    assert [c[:2] for c in got] == [c[:2] for c in want], f"{table}: column types differ"
    assert got == want, f"{table}: nullability differs (NOT NULL in SQL <-> nullable=False in pyarrow)"
