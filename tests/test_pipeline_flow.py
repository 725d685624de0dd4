"""The parent flow end to end: stages cached by content + code, only what changed recomputed,
registration, reports; failure mid-stage and re-run; concurrent runs refused; readers during publish."""

import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from asd_core.config import Workspace
from asd_core.storage.lock import WorkspaceBusyError, workspace_lock
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _config(ws: Path, data: Path, **sections) -> dict:
    cfg = {
        "workspace": str(ws),
        "data": {"roots": [str(data)], "dataset_name": "demo"},
        "mix": {"noise": str(data / "noise"), "seed": 0},
        "teacher": {"epochs": 2, "patience": 2, "batch_size": 32, "model": {"channels": [8, 16], "embedding_dim": 32}},
        "student": {"epochs": 1, "patience": 1},
        "embed": {"encoders": ["stft-mean", "teacher", "student"], "noisy_encoders": ["student"]},
        "score": {"normalizations": ["none", "knn"]},
        "runner": {"threads": 2},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values}
    return cfg


def _status(report) -> dict:
    return {s["stage"]: s["status"] for s in report["stages"]}


def _rows(ws: Workspace, sql: str):
    con = duckdb.connect(str(ws.duckdb_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_pipeline_caches_stages_and_recomputes_only_what_changed(tmp_path, demo_small, prefect_harness):
    from mlflow import MlflowClient

    from flows.pipeline import pipeline_flow

    ws = Workspace(tmp_path / "ws")
    first = pipeline_flow(config=_config(ws.root, demo_small))
    assert set(_status(first).values()) == {"computed"}
    assert list(_status(first))[:4] == ["ingest", "mix", "teacher", "student"]
    assert len(first["results"]) == 3 * 2 and all(0 <= r["official_score"] <= 1 for r in first["results"])
    assert {r["snr_bin"] for r in first["noisy"]} >= {"clean", "-10..-5", "5..10"}

    # the results table is what the scores say: recompute one run's source AUC of one section with scikit-learn
    run_id = first["run_ids"]["stft-mean/knn"]
    scored = _rows(ws, f"""SELECT machine_type, section, domain, label, score FROM scored_clips
                          WHERE run_id = '{run_id}' AND noise_subset = 'clean' AND machine_type = 'fan'""")
    src = [(lab == "anomaly", s) for _, _, dom, lab, s in scored if lab == "anomaly" or dom == "source"]
    want = roc_auc_score([y for y, _ in src], [s for _, s in src])
    got = _rows(ws, f"SELECT auc_source FROM section_metrics WHERE run_id = '{run_id}' AND machine_type = 'fan' AND noise_subset = 'clean'")
    assert got[0][0] == pytest.approx(want, abs=1e-12)

    # registration: one challenger version of the student/knn run
    c = MlflowClient(tracking_uri=f"sqlite:///{ws.mlflow_dir / 'mlflow.db'}")
    versions = c.search_model_versions("name = 'asd-encoder'")
    assert len(versions) == 1 and versions[0].tags["run_id"] == first["run_ids"]["student/knn"]
    assert first["registered"]["version"] == "1"
    # a report per scoring run, with its figures
    assert len(first["reports"]) == 6 and all(Path(p).exists() for p in first["reports"].values())

    counts = _rows(ws, "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM scores), (SELECT count(*) FROM clips)")
    again = pipeline_flow(config=_config(ws.root, demo_small))
    assert set(_status(again).values()) == {"cached"}, _status(again)
    # same rows; DuckDB's parallel sums may differ in the last bit between two queries
    assert [{k: v for k, v in r.items() if not isinstance(v, float)} for r in again["results"]] == \
        [{k: v for k, v in r.items() if not isinstance(v, float)} for r in first["results"]]
    assert [r["official_score"] for r in again["results"]] == pytest.approx([r["official_score"] for r in first["results"]], abs=1e-12)
    assert _rows(ws, "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM scores), (SELECT count(*) FROM clips)") == counts
    assert len(c.search_model_versions("name = 'asd-encoder'")) == 1  # registration was not repeated

    # a new normalization: only its score + report stages run
    more = pipeline_flow(config=_config(ws.root, demo_small, score={"normalizations": ["none", "knn", "gwrp"]}))
    computed = {k for k, v in _status(more).items() if v == "computed"}
    assert computed == {f"{kind}-{enc}-gwrp" for kind in ("score", "report") for enc in ("stft-mean", "teacher", "student")}

    # other mixtures: mix, student, the noisy encoder's embeddings and everything after them; teacher and
    # the spectral encoder stay cached
    remix = pipeline_flow(config=_config(ws.root, demo_small, mix={"noise": str(demo_small / "noise"), "seed": 1}))
    st = _status(remix)
    assert {k for k, v in st.items() if v == "cached"} == {"ingest", "teacher", "embed-stft-mean", "embed-teacher",
                                                            "score-stft-mean-none", "score-stft-mean-knn",
                                                            "report-stft-mean-none", "report-stft-mean-knn",
                                                            "score-teacher-none", "score-teacher-knn",
                                                            "report-teacher-none", "report-teacher-knn"}
    assert st["mix"] == st["student"] == st["embed-student"] == st["register"] == "computed"

    # outputs deleted behind the cache's back are rebuilt, not trusted
    report = Path(remix["reports"]["stft-mean/knn"])
    report.unlink()
    rebuilt = pipeline_flow(config=_config(ws.root, demo_small, mix={"noise": str(demo_small / "noise"), "seed": 1}))
    assert _status(rebuilt)["report-stft-mean-knn"] == "computed" and report.exists()


def _spectral(ws: Path, data: Path, **score) -> dict:
    return _config(ws, data, mix={"enabled": False}, teacher={"enabled": False}, student={"enabled": False},
                   embed={"encoders": ["stft-mean"], "noisy_encoders": []},
                   score={"normalizations": ["none", "knn"], **score}, register={"enabled": False})


def test_failure_mid_stage_then_rerun(tmp_path, demo_small, prefect_harness, monkeypatch):
    import flows.score
    from flows.pipeline import pipeline_flow

    ws = Workspace(tmp_path / "ws")
    pipeline_flow(config=_spectral(ws.root, demo_small))
    tables = "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM scores), (SELECT count(*) FROM thresholds), (SELECT count(*) FROM clips)"
    before = _rows(ws, tables)
    files = {p: p.read_bytes() for p in ws.parquet.rglob("*.parquet")}

    real, calls = flows.score.score_channel_section, []

    def failing(*args, **kwargs):  # the 3rd section scored raises, as a crash mid-stage would
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("injected failure on the 3rd section")
        return real(*args, **kwargs)

    monkeypatch.setattr(flows.score, "score_channel_section", failing)
    with pytest.raises(RuntimeError, match="injected failure"):
        pipeline_flow(config=_spectral(ws.root, demo_small, k=2))
    assert len(calls) >= 3
    assert _rows(ws, tables) == before  # nothing half-published
    assert {p: p.read_bytes() for p in ws.parquet.rglob("*.parquet")} == files  # earlier outputs intact
    assert not [p for p in ws.root.rglob("*.tmp")]
    with workspace_lock(ws):  # the failed run released the workspace
        pass

    monkeypatch.setattr(flows.score, "score_channel_section", real)
    done = pipeline_flow(config=_spectral(ws.root, demo_small, k=2))
    assert _status(done)["ingest"] == _status(done)["embed-stft-mean"] == "cached"
    assert _status(done)["score-stft-mean-knn"] == "computed"
    for table, key in (("scores", "run_id, clip_id"), ("clips", "clip_id"), ("runs", "run_id"),
                       ("thresholds", "run_id, dataset, machine_type, section")):
        assert _rows(ws, f"SELECT {key}, count(*) FROM {table} GROUP BY ALL HAVING count(*) > 1") == [], table
    assert _rows(ws, "SELECT count(*) FROM runs")[0][0] == before[0][0] + 1  # k only changes knn, not none


def test_second_pipeline_run_on_a_busy_workspace_refuses(tmp_path, demo_small, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    ws = Workspace(tmp_path / "ws")
    with workspace_lock(ws, owner="test holder"):
        with pytest.raises(WorkspaceBusyError, match="in use by another pipeline run"):
            with workspace_lock(ws):
                pass
        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
        proc = subprocess.run([sys.executable, "-m", "flows.cli", "pipeline", "--workspace", str(ws.root),
                               "--data-root", str(demo_small), "--set", "mix.enabled=false", "--set", "teacher.enabled=false",
                               "--set", "student.enabled=false", "--set", 'embed.encoders=["stft-mean"]',
                               "--set", "embed.noisy_encoders=[]", "--set", "register.enabled=false"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"workspace {ws.root} is in use by another pipeline run (pid {os.getpid()}" in proc.stderr
    assert "test holder" in proc.stderr
    assert not ws.duckdb_path.exists()  # the refused run wrote nothing


def _reader(db: str, seconds: float, out) -> None:
    """Analyst process: read-only queries in a loop (connect() retries on the writer's short lock)."""
    from asd_core.config import Workspace as W
    from asd_core.storage.catalog import connect

    ok = errors = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with connect(W(Path(db).parent), read_only=True, timeout_s=30) as con:
                con.execute("SELECT count(*) FROM scores").fetchone()
            ok += 1
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors += 1
            out.put(repr(exc))
    out.put((ok, errors))


def test_readers_keep_working_while_runs_publish(tmp_path, demo_small, prefect_harness):
    from flows.embed import embed_flow
    from flows.ingest import ingest_flow
    from flows.score import score_flow

    ws = Workspace(tmp_path / "ws")
    ingest_flow(roots=[str(demo_small)], workspace=str(ws.root), dataset_name="demo")
    embed_flow(workspace=str(ws.root), encoder="stft-mean")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    reader = ctx.Process(target=_reader, args=(str(ws.duckdb_path), 14.0, out))
    reader.start()
    published = 0
    t_end = time.monotonic() + 10
    while time.monotonic() < t_end:
        for norm in ("none", "knn", "gwrp"):
            score_flow(workspace=str(ws.root), encoder="stft-mean", normalization=norm)
            published += 1
    reader.join(60)
    result = out.get(timeout=10)
    assert result[1] == 0 and result[0] > 5, result
    assert published >= 3
    scores = pq.read_table(next(ws.artifact_dir("scores").rglob("scores.parquet")))
    assert np.isfinite(scores.column("score").to_numpy()).all()


def test_rescore_ingests_new_data_and_scores_it_with_existing_encoders(tmp_path, demo_small, prefect_harness):
    import shutil

    from flows.pipeline import pipeline_flow
    from flows.rescore import rescore_flow

    ws = Workspace(tmp_path / "ws")
    pipeline_flow(config=_spectral(ws.root, demo_small))
    with pytest.raises(FileNotFoundError, match="no encoders"):
        rescore_flow(data_root=str(demo_small), workspace=str(tmp_path / "empty"))
    landed = tmp_path / "landed"
    shutil.copytree(demo_small / "dev_data" / "raw" / "fan", landed / "dev_data" / "raw" / "fan")
    r = rescore_flow(data_root=str(landed), workspace=str(ws.root), dataset_name="incoming", normalizations=["knn"])
    assert r["decoded"] == 90 and len(r["run_ids"]) == 1 and r["results"]
    datasets = _rows(ws, f"SELECT dataset, count(*) FROM scored_clips WHERE run_id = '{r['run_ids'][0]}' GROUP BY ALL ORDER BY 1")
    assert datasets == [("demo", 120), ("incoming", 40)]
    assert Path(ws.root / "reports" / r["run_ids"][0] / "index.html").exists()
