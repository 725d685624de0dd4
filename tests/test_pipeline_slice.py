"""End to end on a generated demo tree: ingest -> embed -> score -> metrics in SQL (real Prefect, DuckDB, FAISS)."""

import csv

import duckdb
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from asd_core.config import Workspace
from asd_core.storage.paths import embedding_files
from asd_core.encoders import get_encoder


@pytest.fixture(scope="module")
def slice_ws(tmp_path_factory, demo_small, prefect_harness):
    from flows.embed import embed_flow
    from flows.ingest import ingest_flow

    ws = tmp_path_factory.mktemp("ws-slice")
    ingest_flow(roots=[str(demo_small)], workspace=str(ws), dataset_name="demo")
    report = embed_flow(workspace=str(ws), encoder="logmel-stats")
    assert report["embedded"] == 270
    return Workspace(ws)


def _sql(ws, q, params=None):
    con = duckdb.connect(str(ws.duckdb_path), read_only=True)
    try:
        return con.execute(q, params or []).fetchall()
    finally:
        con.close()


def test_embeddings_schema_and_idempotence(slice_ws):
    from flows.embed import embed_flow

    enc = get_encoder("logmel-stats")
    files = embedding_files(slice_ws, enc.name, enc.version)
    table = pq.read_table(files[0])
    assert table.schema.field("vector").type.list_size == enc.dim == 256
    assert set(table.column("encoder_version").to_pylist()) == {enc.version}
    mtimes = [p.stat().st_mtime_ns for p in files]
    again = embed_flow(workspace=str(slice_ws.root), encoder="logmel-stats")
    assert (again["embedded"], again["reused"]) == (0, 270)
    assert [p.stat().st_mtime_ns for p in files] == mtimes


def test_score_runs_metrics_and_replacement(slice_ws):
    from flows.score import score_flow

    runs = {n: score_flow(workspace=str(slice_ws.root), encoder="logmel-stats", normalization=n) for n in ("none", "knn", "gwrp")}
    assert len({r["run_id"] for r in runs.values()}) == 3
    # SQL metrics equal scikit-learn on the stored scores
    for name, run in runs.items():
        rows = _sql(slice_ws, "SELECT machine_type, domain, label, score FROM scored_clips WHERE run_id = ?", [run["run_id"]])
        assert len(rows) == 120
        for mt, auc_src in _sql(slice_ws, "SELECT machine_type, auc_source FROM section_metrics WHERE run_id = ?", [run["run_id"]]):
            sel = [(r[2] == "anomaly", r[3]) for r in rows if r[0] == mt and (r[2] == "anomaly" or r[1] == "source")]
            assert auc_src == pytest.approx(roc_auc_score([s[0] for s in sel], [s[1] for s in sel]), abs=1e-9)
    official = dict(_sql(slice_ws, "SELECT normalization, official_score FROM run_metrics"))
    assert official["none"] > 0.6 and official["knn"] > 0.6, official  # well above chance (0.5)
    # re-running a configuration replaces its rows (and re-uses its indexes)
    again = score_flow(workspace=str(slice_ws.root), encoder="logmel-stats", normalization="knn")
    assert again["run_id"] == runs["knn"]["run_id"] and again["indexes_reused"] == 3
    assert _sql(slice_ws, "SELECT count(*) FROM scores WHERE run_id = ?", [again["run_id"]])[0][0] == 120
    assert _sql(slice_ws, "SELECT count(*) FROM runs")[0][0] == 3
    # decision = score above the section's single threshold
    bad = _sql(slice_ws, """SELECT count(*) FROM scores s JOIN clips c USING (clip_id)
                            JOIN thresholds t ON t.run_id = s.run_id AND t.machine_type = c.machine_type AND t.section = c.section
                            WHERE s.decision != (s.score > t.threshold)::INT""")[0][0]
    assert bad == 0


def test_failed_run_changes_nothing_published(slice_ws, tmp_path):
    from flows.score import score_flow

    before = _sql(slice_ws, "SELECT run_id, clip_id, score FROM scores ORDER BY ALL")
    with pytest.raises(Exception, match="needs at least 61"):
        score_flow(workspace=str(slice_ws.root), encoder="logmel-stats", normalization="knn", k=60, strict=True)
    assert _sql(slice_ws, "SELECT run_id, clip_id, score FROM scores ORDER BY ALL") == before


def test_evaluate_export_and_unknown_run(slice_ws, tmp_path, capsys):
    from flows.cli import main

    run_id = _sql(slice_ws, "SELECT run_id FROM runs WHERE normalization = 'knn'")[0][0]
    assert main(["evaluate", "--workspace", str(slice_ws.root), "--run", run_id]) == 0
    out = capsys.readouterr().out
    assert "official_score" in out and "fan" in out
    assert main(["evaluate", "--workspace", str(slice_ws.root), "--run", "nope"]) == 2
    assert "run 'nope' does not exist" in capsys.readouterr().err
    assert main(["export-dcase", "--workspace", str(slice_ws.root), "--run", run_id, str(tmp_path / "sub")]) == 0
    with open(tmp_path / "sub/demo/anomaly_score_fan_section_00_test.csv") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == 40 and rows[0][0].startswith("section_00_") and rows[0][0].endswith(".wav")
    stored = dict(_sql(slice_ws, """SELECT regexp_extract(c.relative_path, '[^/]+$'), s.score FROM scores s
                                    JOIN clips c USING (clip_id) WHERE run_id = ? AND machine_type = 'fan'""", [run_id]))
    assert all(float(v) == pytest.approx(stored[k], rel=1e-12) for k, v in rows)
    with open(tmp_path / "sub/demo/decision_result_fan_section_00_test.csv") as fh:
        assert {r[1] for r in csv.reader(fh)} <= {"0", "1"}


def test_beats_checkpoint_through_embed_and_score(slice_ws, tmp_path):
    """A BEATs checkpoint given by path runs through the same embed and score flows."""
    import torch

    from asd_core.models.beats import BEATs, BEATsConfig
    from asd_core.models.beats_checkpoint import save_beats
    from flows.embed import embed_flow
    from flows.score import score_flow

    torch.manual_seed(0)
    cfg = BEATsConfig(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=4,
                      embed_dim=16, conv_pos=8, conv_pos_groups=4, num_buckets=32, max_distance=64)
    save_beats(BEATs(cfg), tmp_path / "tiny.pt")
    report = embed_flow(workspace=str(slice_ws.root), encoder="beats",
                        encoder_options={"checkpoint": str(tmp_path / "tiny.pt"), "pooling": "time-mean"})
    assert (report["embedded"], report["dim"]) == (270, 256)
    run = score_flow(workspace=str(slice_ws.root), encoder="beats", normalization="knn")
    assert run["params"]["metric"] == "cosine" and run["scored"] == 120
    assert _sql(slice_ws, "SELECT count(*) FROM section_metrics WHERE run_id = ?", [run["run_id"]])[0][0] == 3
