"""The DuckDB catalogue ``<workspace>/asd.duckdb``: short publish transactions over Parquet.

DuckDB lets one process hold the file read-write or many hold it read-only, never both
(stack-notes.md). Stages therefore write Parquet first and publish in one short write
transaction, retrying with back-off while an analyst's read-only connection holds the file.

Analysts' ad-hoc queries (``asd sql``) go through ``analyst_query``: one read query, decided by
DuckDB's own parser, on a connection that cannot write, attach or load anything (sql/README.md).
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from asd_core.config import Workspace
from asd_core.storage.paths import all_files, hive_value

logger = logging.getLogger("asd.catalog")
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
# Files applied in this order on every read-write open (all statements are idempotent).
SQL_FILES = ("schema.sql", "metrics.sql")


class CatalogLockedError(RuntimeError):
    """The database stayed locked by another process for longer than the retry budget."""


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text


def _open(ws: Workspace, read_only: bool, timeout_s: float, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, retried with back-off (50 ms doubling to 2 s) while another process holds the lock."""
    delay, deadline = 0.05, time.monotonic() + timeout_s
    while True:
        try:
            return duckdb.connect(str(ws.duckdb_path), read_only=read_only, config=config or {})
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                if _is_lock_error(exc):
                    raise CatalogLockedError(
                        f"{ws.duckdb_path} is locked by another process for more than {timeout_s:.0f} s: {exc}"
                    ) from None
                raise
            logger.info("asd.duckdb is locked by another process; retrying in %.2f s", delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


@contextmanager
def connect(ws: Workspace, read_only: bool = False, timeout_s: float = 60.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open ``asd.duckdb``; a read-write open applies ``sql/`` and retries while locked."""
    if read_only and not ws.duckdb_path.exists():
        raise FileNotFoundError(f"{ws.duckdb_path}: no database yet; run `asd ingest` first")
    ws.root.mkdir(parents=True, exist_ok=True)
    con = _open(ws, read_only, timeout_s)
    try:
        if not read_only:
            for name in SQL_FILES:
                con.execute((SQL_DIR / name).read_text())
        yield con
    finally:
        con.close()


@contextmanager
def transaction(ws: Workspace) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection inside one transaction: committed if the block succeeds, else rolled back."""
    with connect(ws) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")


def _files_sql(paths: list[Path]) -> str:
    return "[" + ", ".join(_sql_str(p) for p in paths) + "]"


def publish_ingest(ws: Workspace) -> None:
    """Refresh ``clips`` and ``quarantine`` from Parquet and (re)create the ``audio`` view (one row per
    stored channel: the primary ``audio`` partitions and the ``audio_channels`` ones)."""
    clips, quarantine, audio = (all_files(ws, a) for a in ("clips", "quarantine", "audio"))
    audio = audio + all_files(ws, "audio_channels")  # every stored channel: primary rows and the others
    with transaction(ws) as con:
        con.execute("DELETE FROM clips")
        if clips:
            con.execute(f"INSERT INTO clips BY NAME SELECT * FROM read_parquet({_files_sql(clips)}, union_by_name = true)")
        con.execute("DELETE FROM quarantine")
        if quarantine:
            con.execute(f"INSERT INTO quarantine BY NAME SELECT * FROM read_parquet({_files_sql(quarantine)}, union_by_name = true)")
        if audio:
            # Absolute paths: a view over a relative glob would resolve against the reader's cwd.
            # channel / role: NULL in partitions written before two-channel support (the primary channel)
            con.execute(
                "CREATE OR REPLACE VIEW audio AS SELECT clip_id, sample_rate, waveform, channel, role "
                f"FROM read_parquet({_files_sql(audio)}, union_by_name = true)"
            )
        else:
            con.execute("DROP VIEW IF EXISTS audio")


PUBLISH_VERBS = ("INSERT", "INSERT OR REPLACE")


def publish_batches(con: duckdb.DuckDBPyConnection, table: str, files: list[Path], id_column: str,
                    verb: str = "INSERT") -> int:
    """Insert into ``table`` every Parquet batch whose id (the value of its partition folder,
    ``<key>=<id>/``) ``table.<id_column>`` lacks yet; returns the rows added.

    Batches are immutable and published whole, so an id seen in DuckDB means the whole file is
    there: a run killed between writing its Parquet and publishing is completed by the next
    publish, without duplicates. Runs on the caller's connection (inside its transaction), so
    several tables can publish together; ``verb`` ``INSERT OR REPLACE`` replaces rows whose
    primary key is already held.
    """
    if verb not in PUBLISH_VERBS:
        raise ValueError(f"verb must be one of {PUBLISH_VERBS}, not {verb!r}")
    have = {r[0] for r in con.execute(f"SELECT DISTINCT {id_column} FROM {table}").fetchall()}
    missing = [str(f) for f in files if hive_value(f.parent) not in have]
    if not missing:
        return 0
    before = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    con.execute(f"{verb} INTO {table} BY NAME SELECT * FROM read_parquet(?, union_by_name = true, hive_partitioning = false)",
                [missing])
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - before


def publish_run(ws: Workspace, run: dict, scores_path: Path, thresholds_path: Path) -> None:
    """Replace one run's rows (runs, scores, thresholds) in a single short transaction."""
    with transaction(ws) as con:
        con.execute("DELETE FROM scores WHERE run_id = ?", [run["run_id"]])
        con.execute("DELETE FROM thresholds WHERE run_id = ?", [run["run_id"]])
        con.execute("DELETE FROM runs WHERE run_id = ?", [run["run_id"]])
        con.execute(
            "INSERT INTO runs VALUES (?, now()::TIMESTAMP, ?, ?, ?, ?, ?)",
            [run["run_id"], run["encoder"], run["encoder_version"], run["normalization"],
             json.dumps(run["params"], sort_keys=True), run["transductive"]],
        )
        con.execute(f"INSERT INTO scores BY NAME SELECT * FROM read_parquet({_files_sql([scores_path])})")
        con.execute(f"INSERT INTO thresholds BY NAME SELECT * FROM read_parquet({_files_sql([thresholds_path])})")


def publish_mix(ws: Workspace, noise_path: Path, mixtures_path: Path, noisy_path: Path) -> None:
    """Replace the ``noise``, ``mixtures`` and ``noisy_clips`` tables in one transaction."""
    with transaction(ws) as con:
        for table, path, columns in (("noise", noise_path, "* EXCLUDE (waveform)"), ("mixtures", mixtures_path, "*"),
                                     ("noisy_clips", noisy_path, "*")):
            con.execute(f"DELETE FROM {table}")
            con.execute(f"INSERT INTO {table} BY NAME SELECT {columns} FROM read_parquet({_files_sql([path])})")


class UnknownRunError(ValueError):
    pass


def resolve_run(con, run_id: str | None) -> str:
    """The given run id if it exists, else the newest run; a clear error otherwise."""
    known = [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY created_at DESC").fetchall()]
    if not known:
        raise UnknownRunError("no scoring runs in this workspace yet; run `asd score` first")
    if run_id is None:
        return known[0]
    if run_id not in known:
        raise UnknownRunError(f"run {run_id!r} does not exist; known runs: {', '.join(known)}")
    return run_id


class QueryRefusedError(ValueError):
    """An analyst's query that is not exactly one read (SELECT-type) statement."""


# SELECT covers WITH ... SELECT, FROM-first queries, VALUES, DESCRIBE, SHOW and SUMMARIZE.
# EXPLAIN is not here: EXPLAIN ANALYZE runs the statement it explains (a COPY would write).
READ_STATEMENTS = (duckdb.StatementType.SELECT,)


def check_read_query(sql: str) -> None:
    """Accept exactly one SELECT-type statement as DuckDB's parser sees it; refuse anything else."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefusedError(f"query does not parse: {_first_line(exc)}") from None
    if not statements:
        raise QueryRefusedError("the query is empty")
    if len(statements) != 1:
        raise QueryRefusedError(f"asd sql runs exactly one statement; this text holds {len(statements)}")
    kind = statements[0].type
    if kind not in READ_STATEMENTS:
        raise QueryRefusedError(f"asd sql runs read queries only (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, "
                                f"SUMMARIZE); refused: {kind.name} statement")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _dir_prefix(path: Path) -> str:
    """A directory as a DuckDB ``allowed_directories`` prefix (the slash keeps ``ws2`` out of ``ws``)."""
    return str(Path(path).expanduser().resolve()).rstrip("/") + "/"


@contextmanager
def analyst_connection(ws: Workspace, read_dirs: tuple[Path, ...] = (),
                       timeout_s: float = 60.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection whose file access is confined to the workspace and ``read_dirs``.

    No extension is installed or auto-loaded, no file outside those folders can be read,
    written or attached, and the settings are locked so a query cannot undo any of it.
    Like ``connect``, it waits while a publish holds the file.
    """
    if not ws.duckdb_path.exists():
        raise FileNotFoundError(f"{ws.duckdb_path}: no database yet; run `asd ingest` first")
    # A config of its own also keeps this database instance apart from any other connection in the process.
    con = _open(ws, True, timeout_s, {"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        # Order matters: allowed_directories cannot change once external access is off, nothing once locked.
        con.execute("SET allowed_directories = ?", [[_dir_prefix(ws.root), *(_dir_prefix(d) for d in read_dirs)]])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        yield con
    finally:
        con.close()


@contextmanager
def analyst_query(ws: Workspace, sql: str, read_dirs: tuple[Path, ...] = ()) -> Iterator[duckdb.DuckDBPyRelation]:
    """One checked read query on an ``analyst_connection``, as a relation run when fetched; its errors are ValueError."""
    check_read_query(sql)
    with analyst_connection(ws, read_dirs) as con:
        try:
            yield con.sql(sql)
        except duckdb.Error as exc:
            raise ValueError(f"query failed: {exc}") from None


RESULT_FORMATS = {".parquet": "parquet", ".csv": "csv"}


def result_format(out: Path) -> str:
    """DuckDB's COPY format of an output file, from its suffix (.parquet or .csv)."""
    fmt = RESULT_FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise ValueError(f"{out}: the output must end in .parquet or .csv")
    return fmt


def write_result(table, out: Path) -> Path:
    """Write an Arrow table to ``out`` (Parquet or CSV by suffix) atomically: temporary sibling, then rename.

    A private in-memory DuckDB writes it, so the analyst's locked connection never needs write access.
    """
    from asd_core.storage.atomic import atomic_path

    fmt = result_format(out)
    with atomic_path(Path(out)) as tmp, duckdb.connect(":memory:") as writer:
        writer.register("result", table)
        writer.execute(f"COPY result TO {_sql_str(tmp)} (FORMAT {fmt})")
    return Path(out)


def check_outside_workspace(ws: Workspace, out: Path) -> Path:
    """``out`` resolved (symlinks followed); refused when it lies inside the workspace, whose files only stages write."""
    resolved = Path(out).expanduser().resolve()
    if resolved == ws.root or resolved.is_relative_to(ws.root):
        raise ValueError(f"{out}: refusing to write inside the workspace {ws.root}; choose a path outside it")
    return resolved


def _sql_str(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def query_rows(con, sql: str, params=None, limit: int | None = None) -> list[dict]:
    """Result rows as dicts (at most ``limit``); a statement without a result gives []."""
    cur = con.execute(sql, params or [])
    if cur.description is None:
        return []
    cols = [d[0] for d in cur.description]
    rows = cur.fetchall() if limit is None else cur.fetchmany(limit)
    return [dict(zip(cols, row)) for row in rows]
