"""`asd sql` writes nothing: one read query decided by DuckDB's parser, on a connection confined to
the workspace; results leave only through --output, and never into the workspace (issue 18, part 2)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from asd_core.config import Workspace
from asd_core.storage.catalog import connect
from flows.cli import main


def _make_workspace(root: Path, run_id: str) -> Workspace:
    """A real workspace: the schema applied by the catalogue, one run row and one Parquet partition."""
    ws = Workspace(root).ensure()
    with connect(ws) as con:
        con.execute("INSERT INTO runs (run_id, created_at, encoder, encoder_version, normalization, params, transductive) "
                    "VALUES (?, now()::TIMESTAMP, 'stft-mean', 'v1', 'knn', '{}', false)", [run_id])
    part = ws.artifact_dir("clips") / "dataset=demo" / "part-0.parquet"
    part.parent.mkdir(parents=True)
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT 'c' || i AS clip_id, i AS n FROM range(3) t(i)) TO '{part}' (FORMAT parquet)")
    return ws


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _runs(ws: Workspace) -> list[str]:
    with connect(ws, read_only=True) as con:
        return [r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()]


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return _make_workspace(tmp_path / "ws", "r1")


@pytest.fixture
def partition(ws) -> Path:
    return next(ws.artifact_dir("clips").rglob("*.parquet"))


def _sql(ws: Workspace, query: str, *extra: str) -> int:
    return main(["sql", "--workspace", str(ws.root), *extra, query])


def _refused(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


def test_copy_over_the_database_is_refused(ws, capsys):
    before = _digest(ws.duckdb_path)
    assert _sql(ws, f"COPY (SELECT 1) TO '{ws.duckdb_path}' (FORMAT csv)") == 2
    _refused(capsys, "read queries only", "COPY")
    assert _digest(ws.duckdb_path) == before and _runs(ws) == ["r1"]


def test_copy_over_a_parquet_partition_is_refused(ws, partition, capsys):
    before = _digest(partition)
    assert _sql(ws, f"COPY (SELECT 'x' AS clip_id) TO '{partition}' (FORMAT parquet)") == 2
    _refused(capsys, "COPY")
    assert _digest(partition) == before
    assert sorted(pq.read_table(partition)["clip_id"].to_pylist()) == ["c0", "c1", "c2"]


@pytest.mark.parametrize("query", [
    "ATTACH '{db}' AS other (READ_WRITE); DROP TABLE other.runs",
    "ATTACH '{db}' AS other (READ_WRITE)",
])
def test_attaching_another_workspace_is_refused(ws, tmp_path, query, capsys):
    other = _make_workspace(tmp_path / "other", "r-other")
    before = _digest(other.duckdb_path)
    assert _sql(ws, query.format(db=other.duckdb_path)) == 2
    _refused(capsys)
    assert _digest(other.duckdb_path) == before and _runs(other) == ["r-other"]


@pytest.mark.parametrize("query, word", [
    ("INSTALL httpfs", "LOAD"),
    ("LOAD parquet", "LOAD"),
    ("SET enable_external_access = true", "SET"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("EXPLAIN ANALYZE COPY (SELECT 1) TO '{root}/x.csv'", "EXPLAIN"),
    ("DROP TABLE runs", "DROP"),
    ("SELECT 1; SELECT 2", "exactly one statement"),
    ("", "empty"),
])
def test_statements_other_than_one_read_query_are_refused(ws, query, word, capsys):
    assert _sql(ws, query.format(root=ws.root)) == 2
    _refused(capsys, word)
    assert not (ws.root / "x.csv").exists() and _runs(ws) == ["r1"]


def test_select_and_workspace_parquet_still_work(ws, partition, capsys):
    assert _sql(ws, "SELECT run_id, encoder FROM runs") == 0
    assert "r1" in capsys.readouterr().out
    assert _sql(ws, f"SELECT count(*) AS n FROM read_parquet('{ws.parquet}/clips/*/*.parquet')") == 0
    assert capsys.readouterr().out.split()[-1] == "3"
    assert _sql(ws, "WITH t AS (SELECT 41 AS a) SELECT a + 1 AS b FROM t") == 0
    assert capsys.readouterr().out.split()[-1] == "42"


def test_files_outside_the_workspace_only_with_allow_read(ws, tmp_path, capsys):
    data = tmp_path / "analysis"
    data.mkdir()
    (data / "extra.csv").write_text("clip_id,tag\nc1,odd\n")
    query = f"SELECT tag FROM read_csv('{data}/extra.csv')"
    assert _sql(ws, query) == 2
    _refused(capsys, "query failed", "extra.csv")
    assert _sql(ws, query, "--allow-read", str(data)) == 0
    assert capsys.readouterr().out.split()[-1] == "odd"
    assert _sql(ws, "SELECT * FROM read_text('/etc/hostname')", "--allow-read", str(data)) == 2
    _refused(capsys, "query failed")


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_output_writes_the_whole_result_outside_the_workspace(ws, tmp_path, suffix, capsys):
    out = tmp_path / "results" / f"runs{suffix}"
    assert _sql(ws, "SELECT run_id, n FROM runs, range(5) t(n)", "--output", str(out), "--limit", "2") == 0
    assert f"wrote 5 rows to {out}" in capsys.readouterr().out
    table = pq.read_table(out) if suffix == ".parquet" else pacsv.read_csv(out)
    assert table.num_rows == 5 and table.column_names == ["run_id", "n"]
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary left behind


def test_output_inside_the_workspace_is_refused(ws, tmp_path, capsys):
    before = _digest(ws.duckdb_path)
    link = tmp_path / "link"
    link.symlink_to(ws.parquet)  # a path outside that resolves inside
    for out in (ws.root / "result.parquet", ws.duckdb_path.with_suffix(".csv"), link / "clips.parquet",
                ws.root / "parquet" / ".." / "x.csv"):
        assert _sql(ws, "SELECT 1 AS a", "--output", str(out)) == 2
        _refused(capsys, "refusing to write inside the workspace")
    assert _sql(ws, "SELECT 1 AS a", "--output", str(tmp_path / "result.json")) == 2
    _refused(capsys, ".parquet or .csv")
    assert _digest(ws.duckdb_path) == before
    assert sorted(p.name for p in ws.root.rglob("*") if p.is_file() and p.suffix != ".lock") == ["asd.duckdb", "part-0.parquet"]


def test_the_connection_itself_reaches_nothing_outside(ws, tmp_path):
    """The second layer, should a statement ever pass the parser check: no file outside the workspace
    is read, written or attached, no extension is installed, and the settings stay locked."""
    from asd_core.storage.catalog import analyst_connection

    other = _make_workspace(tmp_path / "other", "r-other")
    (tmp_path / "outside.csv").write_text("a\n1\n")
    with analyst_connection(ws) as con:
        for sql in (f"COPY (SELECT 1) TO '{tmp_path}/x.csv'", f"ATTACH '{other.duckdb_path}' AS o (READ_WRITE)",
                    f"SELECT * FROM read_csv('{tmp_path}/outside.csv')", f"SELECT * FROM read_csv('{ws.root}/../outside.csv')",
                    "INSTALL httpfs", "SET enable_external_access = true", "SET lock_configuration = false",
                    "SET allowed_directories = ['/']"):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
        assert con.execute("SELECT run_id FROM runs").fetchall() == [("r1",)]
    assert not (tmp_path / "x.csv").exists() and _runs(other) == ["r-other"]


def test_sql_waits_while_a_publish_holds_the_database(ws, capsys):
    """The locked-down connection still retries while a writer process holds the file."""
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time\n"
        f"con = duckdb.connect({str(ws.duckdb_path)!r})\n"
        "print('locked', flush=True)\n"
        "time.sleep(1.5)\n"
        "con.close()\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert _sql(ws, "SELECT run_id FROM runs") == 0
    finally:
        holder.wait(30)
    assert "r1" in capsys.readouterr().out
