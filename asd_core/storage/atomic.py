"""Write-then-rename, so a crash never leaves a half-written artifact and readers see old or new."""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; rename it into place only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; it replaces ``final`` (old contents removed) only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp, old = final.with_name(f".{final.name}.{tag}.tmp"), final.with_name(f".{final.name}.{tag}.old")
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_parquet_atomic(table: pa.Table, final: Path, schema: pa.Schema) -> Path:
    """Validate ``table`` against the declared ``schema`` and write it atomically."""
    table = table.select(schema.names).cast(schema)
    with atomic_path(final) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return final


def read_parquet_or_empty(path: Path, schema: pa.Schema) -> pa.Table:
    if Path(path).exists():
        return pq.read_table(path, schema=schema)
    return schema.empty_table()
