"""Write-then-rename, so a crash never leaves a half-written artifact and readers see old or new.

Temporary siblings are hidden and name their writer: ``.<name>.<pid>-<host>-<random>.tmp``
(``.old`` for a folder being replaced), so the start-up of a later command can remove those
of a writer that is gone (storage/cleanup.py) and never those of one still running.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from asd_core.hashing import text_id


TEMP_NAME = re.compile(r"^\.(?P<final>.+)\.(?P<pid>\d+)-(?P<host>[0-9a-f]{6})-[0-9a-f]{8}\.(?P<kind>tmp|old)$")
UNOWNED_TEMP_NAME = re.compile(r"^\.(?P<final>.+)\.[0-9a-f]{8}\.(?P<kind>tmp|old)$")  # written before writers were named


class TempOwner(NamedTuple):
    final: str  # the name the temporary stands for
    pid: int | None  # None: an unnamed writer (older temporaries)
    host: str | None
    kind: str  # tmp | old


def host_tag() -> str:
    """Six hex digits naming this machine (workspaces may sit on a disk shared by Dask workers)."""
    return text_id(socket.gethostname(), 6, "sha1")


def temp_sibling(final: Path, kind: str = "tmp") -> Path:
    """A hidden sibling name for a temporary ``final`` (file or folder) that names this process."""
    final = Path(final)
    return final.with_name(f".{final.name}.{os.getpid()}-{host_tag()}-{uuid.uuid4().hex[:8]}.{kind}")


def temp_owner(name: str) -> TempOwner | None:
    """Who wrote the temporary called ``name``; None if it is not a temporary of these helpers."""
    if m := TEMP_NAME.match(name):
        return TempOwner(m["final"], int(m["pid"]), m["host"], m["kind"])
    if m := UNOWNED_TEMP_NAME.match(name):
        return TempOwner(m["final"], None, None, m["kind"])
    return None


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; rename it into place only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(final)
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
    tmp, old = temp_sibling(final), temp_sibling(final, "old")
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
