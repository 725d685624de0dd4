"""`asd monitor` end to end on real stores: a model registered in a real MLflow sqlite registry, an
INCOMING tree of real WAV files (good, broken, empty, truncated, 22.05 kHz, unknown section), scores
against the pipeline's DuckDB scores, idempotence, --rescore, quarantine, the SQL views against
pandas, and the Prefect events read back from a real (test harness) Prefect server."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from asd_core.monitor import ManifestError, parse_model, read_manifest, time_in_name
from asd_core.monitor.model import ModelError

MTIME = datetime(2026, 11, 20, 8, 30, 0)  # naive UTC, given to files without a time in their name


# --- fast: discovery, times, model names ----------------------------------------------------------

@pytest.mark.parametrize("name, want", [
    ("fan_20261124_020003.wav", datetime(2026, 11, 24, 2, 0, 3)),
    ("rec-2026-11-24T02:00:03.wav", datetime(2026, 11, 24, 2, 0, 3)),
    ("rec-2026-11-24T02-00-03Z.wav", datetime(2026, 11, 24, 2, 0, 3)),
    ("rec_2026-11-24T03:00:03+01:00.wav", datetime(2026, 11, 24, 2, 0, 3)),
    ("x_20261124T020003.250Z.wav", datetime(2026, 11, 24, 2, 0, 3, 250000)),
    ("section_00_0001.wav", None),
    ("id_20261399_250000.wav", None),  # digits, not a time
])
def test_time_in_file_name(name, want):
    assert time_in_name(name) == want


def test_model_names():
    assert str(parse_model("asd-encoder")) == "asd-encoder@champion"
    assert str(parse_model("models:/asd-encoder@challenger")) == "asd-encoder@challenger"
    assert parse_model("asd-encoder/3").version == "3"
    with pytest.raises(ModelError, match="expected NAME@ALIAS"):
        parse_model("a@b@c")


def test_manifest_rows_and_errors(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    os.utime(tmp_path / "a.wav", (MTIME.replace(tzinfo=timezone.utc).timestamp(),) * 2)
    csv = tmp_path / "m.csv"
    csv.write_text("path,machine_type,section,recorded_at\n"
                   "a.wav,fan,0,2026-11-24T02:00:03+01:00\n"
                   "a.wav,fan,00,\n"
                   "missing.wav,fan,00,\n"
                   "a.wav,fan,00,yesterday\n"
                   "a.wav,,00,\n")
    cands, problems = read_manifest(csv, tmp_path)
    assert [(c.section, c.recorded_at, c.recorded_at_source) for c in cands] == [
        ("00", datetime(2026, 11, 24, 1, 0, 3), "manifest"), ("00", MTIME, "mtime")]
    assert [p.reason for p in problems] == ["file not found", "manifest line 5: recorded_at 'yesterday' is not an ISO-8601 time",
                                            "manifest line 6: machine_type and section are required"]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,machine_type\nx,fan\n")
    with pytest.raises(ManifestError, match=r"bad.csv: manifest lacks column\(s\) path, section"):
        read_manifest(bad, tmp_path)


def test_new_tables_declare_the_same_columns_in_sql_and_parquet(tmp_path):
    """As tests/test_schema_parity.py does for the other published tables."""
    from asd_core import schemas
    from asd_core.config import Workspace
    from asd_core.storage.catalog import connect
    from tests.test_schema_parity import duckdb_type

    with connect(Workspace(tmp_path / "ws")) as con:
        for table, schema in (("detections", schemas.DETECTIONS), ("monitor_quarantine", schemas.MONITOR_QUARANTINE)):
            got = [(r[0], r[1], r[2] == "YES") for r in con.execute(f"DESCRIBE {table}").fetchall()]
            assert got == [(f.name, duckdb_type(f.type), f.nullable) for f in schema], table


def test_readme_example_queries_run(tmp_path):
    """The example queries of sql/README.md's monitoring section run on a fresh database."""
    import re

    from asd_core.config import Workspace
    from asd_core.storage.catalog import connect
    from tests.conftest import REPO

    text = (REPO / "sql" / "README.md").read_text().split("## Monitoring incoming recordings")[1]
    statements = [q.strip() for q in re.search(r"```sql\n(.*?)```", text, re.S).group(1).split(";") if q.strip()]
    assert len(statements) >= 4
    with connect(Workspace(tmp_path / "ws")) as con:
        for q in statements:
            con.execute(q).fetchall()


def test_a_batch_written_but_not_published_is_published_once(tmp_path):
    """Parquet first, DuckDB after: a run killed in between leaves a batch the next publish completes."""
    from asd_core.config import Workspace
    from asd_core.monitor.tables import publish, scored_keys, write_batch
    from asd_core.storage.catalog import connect

    ws = Workspace(tmp_path / "ws")
    row = {"path": "/x/a.wav", "sha256": "ab" * 32, "machine_type": "fan", "section": "00", "recorded_at": MTIME,
           "model_name": "m", "model_version": "1", "score": 1.5, "threshold": 1.0, "decision": 1, "scored_at": MTIME,
           "recorded_at_source": "mtime", "dataset": "demo", "sample_rate": 16000, "threshold_quantile": 0.9, "batch_id": "b1"}
    write_batch(ws, "detections", "b1", [row])
    assert write_batch(ws, "detections", "b2", []) is None
    assert scored_keys(ws, "m", None) == {("ab" * 32, "fan", "00")} and scored_keys(ws, "m", "2") == set()
    assert publish(ws) == {"detections": 1, "monitor_quarantine": 0}
    assert publish(ws) == {"detections": 0, "monitor_quarantine": 0}
    with connect(ws, read_only=True) as con:
        assert con.execute("SELECT score, decision FROM detections").fetchall() == [(1.5, 1)]
    # both tables in one publish; the same key scored again replaces its detection
    write_batch(ws, "detections", "b3", [{**row, "score": 0.5, "decision": 0, "batch_id": "b3"}])
    write_batch(ws, "monitor_quarantine", "b3", [
        {"path": "/x/b.wav", "sha256": None, "machine_type": None, "section": None, "model_name": "m", "model_version": "1",
         "stage": "read", "reason": "broken", "scored": False, "file_size": 3, "quarantined_at": MTIME, "batch_id": "b3"}])
    assert publish(ws) == {"detections": 0, "monitor_quarantine": 1}
    with connect(ws, read_only=True) as con:
        assert con.execute("SELECT score, decision, batch_id FROM detections").fetchall() == [(0.5, 0, "b3")]


# --- slow: a registered model and a real INCOMING tree ---------------------------------------------

@pytest.fixture(scope="module")
def registered(tmp_path_factory, demo_small, prefect_harness, ingest_tree):
    """A workspace with logmel-stats embeddings, a knn run registered as version 1 (champion) and a
    none run as version 2 (challenger), in the workspace's real MLflow sqlite registry."""
    from asd_core.tracking.registry import promote, register_run
    from flows.embed import embed_flow
    from flows.score import score_flow

    ws = ingest_tree(tmp_path_factory.mktemp("ws-monitor"), demo_small)
    embed_flow(workspace=str(ws.root), encoder="logmel-stats")
    knn = score_flow(workspace=str(ws.root), encoder="logmel-stats", normalization="knn")
    none = score_flow(workspace=str(ws.root), encoder="logmel-stats", normalization="none")
    v1 = register_run(ws, knn["run_id"])
    promote(ws)
    v2 = register_run(ws, none["run_id"])
    return ws, {"1": knn["run_id"], "2": none["run_id"]}, (v1["version"], v2["version"])


def _pipeline_clips(ws, run_id):
    from asd_core.storage.catalog import connect, query_rows

    with connect(ws, read_only=True) as con:
        return pd.DataFrame(query_rows(con, """
            SELECT c.root || '/' || c.relative_path AS source, c.sha256, c.machine_type, c.section, c.label,
                   s.score, s.decision, t.threshold
            FROM scores s JOIN clips c USING (clip_id)
            JOIN thresholds t ON t.run_id = s.run_id AND t.machine_type = c.machine_type AND t.section = c.section
            WHERE s.run_id = ? ORDER BY c.machine_type, c.label DESC, c.relative_path""", [run_id]))


def _write_resampled(src: Path, dest: Path, rate: int = 22050) -> None:
    from scipy.signal import resample_poly

    x, sr = sf.read(src, dtype="float32")
    dest.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dest, resample_poly(x, rate // 50, sr // 50).astype(np.float32), rate, subtype="PCM_16")


@pytest.fixture(scope="module")
def incoming(tmp_path_factory, registered):
    """INCOMING/<mt>/section_00/<day>/..., 6 test clips per machine type (anomalies first), and bad files."""
    ws, runs, _ = registered
    root = tmp_path_factory.mktemp("incoming") / "INCOMING"
    clips = _pipeline_clips(ws, runs["1"])
    good = []
    for mt, g in clips.groupby("machine_type"):
        picked = pd.concat([g[g.label == "anomaly"].head(3), g[g.label == "normal"].head(3)])
        for i, row in enumerate(picked.itertuples()):
            if i % 3 == 0:
                name, when = f"{mt}_2026112{i // 3 + 4}_0{i}0000.wav", datetime(2026, 11, 24 + i // 3, i, 0, 0)
            elif i % 3 == 1:
                name, when = f"rec-2026-11-2{4 + i // 3}T0{i}-00-00Z.wav", datetime(2026, 11, 24 + i // 3, i, 0, 0)
            else:
                name, when = f"clip{i}.wav", MTIME
            dest = root / mt / "section_00" / f"2026-11-{24 + i // 3}" / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(row.source, dest)
            if when == MTIME:
                os.utime(dest, (MTIME.replace(tzinfo=timezone.utc).timestamp(),) * 2)
            good.append({"path": str(dest), "source": row.source, "sha256": row.sha256, "machine_type": mt,
                         "score": row.score, "decision": row.decision, "threshold": row.threshold, "recorded_at": when})
    fan = root / "fan" / "section_00"
    sample = Path(good[0]["source"])
    (fan / "broken.wav").write_bytes(b"this is not audio at all" * 10)
    (fan / "empty.wav").write_bytes(b"")
    blob = sample.read_bytes()
    (fan / "truncated.wav").write_bytes(blob[: len(blob) // 2])
    _write_resampled(sample, fan / "at22k_20261126_120000.wav")
    (root / "fan" / "section_07").mkdir(parents=True)
    shutil.copyfile(sample, root / "fan" / "section_07" / "unknown_section.wav")
    (root / "pump" / "section_00").mkdir(parents=True)
    shutil.copyfile(sample, root / "pump" / "section_00" / "unknown_machine.wav")
    shutil.copyfile(sample, root / "stray.wav")
    (root / "fan" / "section_00" / "notes.txt").write_text("ignored: not a WAV file name")
    return root, pd.DataFrame(good)


def _detections(ws, where="", params=()):
    from asd_core.storage.catalog import connect

    with connect(ws, read_only=True) as con:
        return con.execute(f"SELECT * FROM detections {where} ORDER BY path, model_version", list(params)).fetch_df()


def _quarantine(ws):
    from asd_core.storage.catalog import connect

    with connect(ws, read_only=True) as con:
        return con.execute("SELECT * FROM monitor_quarantine ORDER BY path, batch_id").fetch_df()


@pytest.fixture(scope="module")
def first_run(registered, incoming):
    """``asd monitor INCOMING`` once through the CLI (the champion, version 1)."""
    from flows.cli import main

    ws, _, _ = registered
    root, _ = incoming
    t0 = time.monotonic()
    code = main(["monitor", str(root), "--workspace", str(ws.root)])
    return code, time.monotonic() - t0


@pytest.mark.slow
def test_scores_equal_the_pipeline_scores(registered, incoming, first_run):
    ws, runs, (v1, _) = registered
    _, good = incoming
    assert first_run[0] == 0
    got = _detections(ws).set_index("path")
    assert set(good["path"]) <= set(got.index)
    g = got.loc[good["path"]]
    assert (g["model_name"] == "asd-encoder").all() and (g["model_version"] == v1).all()
    assert g["sha256"].tolist() == good["sha256"].tolist()
    np.testing.assert_allclose(g["score"], good["score"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(g["threshold"], good["threshold"], rtol=1e-12)
    assert g["decision"].tolist() == good["decision"].tolist()
    assert g["decision"].sum() > 0 and (g["decision"] == 0).sum() > 0
    assert [t.to_pydatetime() for t in g["recorded_at"]] == good["recorded_at"].tolist()
    assert (g["recorded_at_source"] == ["mtime" if t == MTIME else "file name" for t in good["recorded_at"]]).all()
    assert (g["threshold_quantile"] == 0.9).all() and (g["sample_rate"] == 16000).all()
    # the Parquet beside the table holds the same rows
    import duckdb

    files = sorted(ws.root.glob("parquet/detections/batch=*/detections.parquet"))
    assert len(files) == 1
    pq_rows = duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [[str(f) for f in files]]).fetchone()[0]
    assert pq_rows == len(got)


@pytest.mark.slow
def test_bad_files_are_quarantined_with_their_reason(registered, incoming, first_run):
    ws, _, _ = registered
    root, good = incoming
    q = _quarantine(ws)
    by_name = {Path(p).name: (s, r, sc) for p, s, r, sc in zip(q["path"], q["stage"], q["reason"], q["scored"])}
    assert by_name["broken.wav"][:2] == ("decode", "not a WAV file (no RIFF/WAVE header)")
    assert by_name["empty.wav"][:2] == ("decode", "empty file (0 bytes)")
    assert by_name["truncated.wav"][0] == "decode" and by_name["truncated.wav"][1].startswith("truncated WAV")
    assert by_name["unknown_section.wav"][0] == "model"
    assert "no detector for fan/section_07" in by_name["unknown_section.wav"][1]
    assert "it covers: fan/section_00, slider/section_00, valve/section_00" in by_name["unknown_section.wav"][1]
    assert "no detector for pump/section_00" in by_name["unknown_machine.wav"][1]
    assert by_name["stray.wav"][:2] == ("discover", "not under <machine_type>/section_<ss>/ in the incoming folder")
    assert "notes.txt" not in by_name
    # the 22.05 kHz file is resampled, scored, and the change recorded
    assert by_name["at22k_20261126_120000.wav"] == ("resample", "sample rate 22050 Hz, resampled to the model's 16000 Hz", True)
    d = _detections(ws).set_index("path").loc[str(root / "fan" / "section_00" / "at22k_20261126_120000.wav")]
    assert d["sample_rate"] == 22050 and np.isfinite(d["score"])
    assert d["recorded_at"].to_pydatetime() == datetime(2026, 11, 26, 12, 0, 0)
    assert len(q) == 7 and q["scored"].sum() == 1
    assert len(_detections(ws)) == len(good) + 1


@pytest.mark.slow
def test_cli_prints_quarantined_paths_and_a_second_run_scores_nothing_new(registered, incoming, first_run, capsys):
    from flows.cli import main

    ws, _, _ = registered
    root, good = incoming
    before = _detections(ws)
    assert main(["monitor", str(root), "--workspace", str(ws.root)]) == 0
    out = capsys.readouterr()
    assert "0 clips scored (0 anomalous), 0 quarantined, 19 already scored, 6 already quarantined" in out.out
    assert "quarantined:" not in out.err
    pd.testing.assert_frame_equal(_detections(ws), before)
    assert len(_quarantine(ws)) == 7
    assert len(list(ws.root.glob("parquet/detections/batch=*"))) == 1  # an empty batch writes nothing


@pytest.mark.slow
def test_rescore_with_a_new_version(registered, incoming, first_run, capsys):
    from flows.cli import main

    ws, runs, (v1, v2) = registered
    root, good = incoming
    n = len(_detections(ws))
    # a new version does not re-score what the model already scored, unless asked
    assert main(["monitor", str(root), "--workspace", str(ws.root), "--model", "asd-encoder@challenger"]) == 0
    assert len(_detections(ws)) == n
    capsys.readouterr()
    assert main(["monitor", str(root), "--workspace", str(ws.root), "--model", "asd-encoder@challenger", "--rescore"]) == 0
    out = capsys.readouterr().out
    assert f"asd-encoder version {v2}: {n} clips scored" in out
    d2 = _detections(ws, "WHERE model_version = ?", [v2]).set_index("path").loc[good["path"]]
    want = _pipeline_clips(ws, runs["2"]).set_index("sha256").loc[good["sha256"]]
    np.testing.assert_allclose(d2["score"], want["score"], rtol=1e-9, atol=0)
    assert len(_detections(ws, "WHERE model_version = ?", [v1])) == n  # version 1's rows stay
    assert main(["monitor", str(root), "--workspace", str(ws.root), "--model", "asd-encoder/2", "--rescore"]) == 0
    assert len(_detections(ws)) == 2 * n  # rescore is once per version too


@pytest.mark.slow
def test_exit_codes(registered, incoming, tmp_path, capsys):
    from flows.cli import main

    ws, _, _ = registered
    root, _ = incoming
    bad = tmp_path / "bad"
    (bad / "fan" / "section_00").mkdir(parents=True)
    shutil.copyfile(root / "fan" / "section_00" / "broken.wav", bad / "fan" / "section_00" / "b.wav")
    shutil.copyfile(root / "fan" / "section_07" / "unknown_section.wav", bad / "u.wav")
    assert main(["monitor", str(bad), "--workspace", str(ws.root)]) == 1
    err = capsys.readouterr().err
    assert f"quarantined: {bad / 'fan' / 'section_00' / 'b.wav'}: not a WAV file" in err
    assert f"quarantined: {bad / 'u.wav'}: not under" in err and "error: none of the 2 recordings" in err
    # the Prefect flow run failed too (failure automations fire), with the report as its data
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        last = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["asd-monitor"])),
                                     sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
    assert last.state.is_failed() and "none of the 2 recordings" in last.state.message
    assert main(["monitor", str(bad), "--workspace", str(ws.root)]) == 1  # still nothing scored
    (tmp_path / "empty").mkdir()
    assert main(["monitor", str(tmp_path / "empty"), "--workspace", str(ws.root)]) == 0  # nothing to do is fine
    assert main(["monitor", str(tmp_path / "nowhere"), "--workspace", str(ws.root)]) == 2
    assert "nowhere: the incoming folder does not exist" in capsys.readouterr().err
    assert main(["monitor", str(root), "--workspace", str(ws.root), "--model", "asd-encoder@nope"]) == 2
    assert "model asd-encoder@nope not found in the registry" in capsys.readouterr().err


@pytest.mark.slow
def test_manifest_layout(registered, incoming, tmp_path, capsys):
    from flows.cli import main

    ws, _, (v1, _) = registered
    root, good = incoming
    flat = tmp_path / "flat"
    flat.mkdir()
    rows = ["path,machine_type,section,recorded_at"]
    for i, g in enumerate(good.head(4).itertuples()):
        shutil.copyfile(g.source, flat / f"{i}.wav")
        rows.append(f"{i}.wav,{g.machine_type},0,2026-12-0{i + 1}T10:00:00")
    rows.append(f"{flat / 'gone.wav'},fan,00,")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    # same content as files already scored: nothing new (content-keyed), the missing file quarantined
    assert main(["monitor", str(flat), "--manifest", str(tmp_path / "m.csv"), "--workspace", str(ws.root)]) == 0
    assert f"quarantined: {flat / 'gone.wav'}: file not found" in capsys.readouterr().err
    # a fresh workspace-independent check: with --model version 1 in a new workspace it scores them
    ws2 = tmp_path / "ws2"
    shutil.copytree(ws.root / "mlflow", ws2 / "mlflow")
    assert main(["monitor", str(flat), "--manifest", str(tmp_path / "m.csv"), "--workspace", str(ws2),
                 "--model", f"asd-encoder/{v1}"]) == 0
    from asd_core.config import Workspace

    d = _detections(Workspace(ws2)).sort_values("path")
    assert d["recorded_at_source"].tolist() == ["manifest"] * 4
    assert [t.day for t in d["recorded_at"]] == [1, 2, 3, 4]
    np.testing.assert_allclose(d["score"], good.head(4)["score"], rtol=1e-9)


@pytest.mark.slow
def test_views_match_pandas(registered, first_run):
    from asd_core.storage.catalog import connect

    ws, _, _ = registered
    with connect(ws, read_only=True) as con:
        det = con.execute("SELECT * FROM detections").fetch_df()
        summary = con.execute("SELECT * FROM detection_summary ORDER BY ALL").fetch_df()
        drift = con.execute("SELECT * FROM detection_drift ORDER BY ALL").fetch_df()
    det["day"] = det["recorded_at"].dt.date
    keys = ["model_name", "model_version", "machine_type", "section", "day"]
    g = det.groupby(keys)
    want = pd.DataFrame({
        "clips": g.size(), "anomalies": g["decision"].sum(), "anomaly_rate": g["decision"].mean(),
        "score_p10": g["score"].quantile(0.1), "score_p50": g["score"].quantile(0.5), "score_p90": g["score"].quantile(0.9),
        "score_max": g["score"].max(), "threshold": g["threshold"].max()}).reset_index()
    summary["day"] = pd.to_datetime(summary["day"]).dt.date
    summary = summary.sort_values(keys).reset_index(drop=True)
    want = want.sort_values(keys).reset_index(drop=True)
    assert len(summary) == len(want) > 3
    for col in want.columns:
        if col in keys:
            assert summary[col].tolist() == want[col].tolist(), col
        else:
            np.testing.assert_allclose(summary[col].astype(float), want[col].astype(float), rtol=1e-12, err_msg=col)
    drift["day"] = pd.to_datetime(drift["day"]).dt.date
    drift = drift.sort_values(keys).reset_index(drop=True)
    share = want["anomalies"] / want["clips"]
    expected = 1 - g["threshold_quantile"].mean().reset_index(drop=True)
    np.testing.assert_allclose(drift["share_above"], share, rtol=1e-12)
    np.testing.assert_allclose(drift["expected_share"], expected, rtol=1e-12)
    np.testing.assert_allclose(drift["ratio"], share / expected, rtol=1e-12)
    z = (want["anomalies"] - want["clips"] * expected) / np.sqrt(want["clips"] * expected * (1 - expected))
    np.testing.assert_allclose(drift["z"], z, rtol=1e-12)


@pytest.mark.slow
def test_anomaly_events_and_artifact_on_the_prefect_server(registered, incoming, tmp_path):
    """The flow's events, read back from the (test harness) Prefect server's events API."""
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    from flows.monitor import monitor_flow

    ws, _, (v1, _) = registered
    root, good = incoming
    since = datetime.now(timezone.utc)
    ws_new = tmp_path / "ws-events"
    shutil.copytree(ws.root / "mlflow", ws_new / "mlflow")
    report = monitor_flow(incoming=str(root), workspace=str(ws_new), model=f"asd-encoder/{v1}")
    anomalies = {d["path"]: d for d in report["detections"] if d["decision"] == 1}
    assert anomalies
    flt = EventFilter(event=EventNameFilter(name=["asd.anomaly.detected"]), occurred=EventOccurredFilter(since=since, until=since + timedelta(hours=1)))
    deadline, events = time.monotonic() + 60, []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            page = client.read_events(filter=flt, limit=50)
            events = [e for e in page.events if e.payload.get("batch_id") == report["batch_id"]]
            if len(events) >= len(anomalies):
                break
            time.sleep(1)
        assert len(events) == len(anomalies)
        for e in events:
            d = anomalies[e.payload["path"]]
            assert e.resource.id == f"asd.machine.{d['machine_type']}.section.{d['section']}"
            assert e.resource["asd.machine_type"] == d["machine_type"] and e.resource["asd.section"] == d["section"]
            assert e.payload["score"] == pytest.approx(d["score"], rel=1e-12) and e.payload["threshold"] == d["threshold"]
            assert any(r.id == f"asd.model.asd-encoder.{v1}" for r in e.related)
        mine = [a for a in client.read_artifacts() if a.key == "monitor-anomalies" and report["batch_id"] in a.description]
        assert len(mine) == 1
        rows = json.loads(mine[0].data) if isinstance(mine[0].data, str) else mine[0].data
        assert sorted(r["path"] for r in rows) == sorted(anomalies)

    # capped: events for the highest score only, the rest as one burst event per section
    ws_cap = tmp_path / "ws-cap"
    shutil.copytree(ws.root / "mlflow", ws_cap / "mlflow")
    capped = monitor_flow(incoming=str(root), workspace=str(ws_cap), model=f"asd-encoder/{v1}", max_events=1)
    ranked = sorted((d for d in capped["detections"] if d["decision"] == 1), key=lambda d: -d["score"])
    assert len(ranked) >= 2
    burst_flt = EventFilter(event=EventNameFilter(name=["asd.anomaly.detected", "asd.anomaly.burst"]),
                            occurred=EventOccurredFilter(since=since, until=since + timedelta(hours=1)))
    deadline, want_burst = time.monotonic() + 60, {}
    for d in ranked[1:]:
        want_burst[(d["machine_type"], d["section"])] = want_burst.get((d["machine_type"], d["section"]), 0) + 1
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            page = client.read_events(filter=burst_flt, limit=50)
            got = [e for e in page.events if e.payload.get("batch_id") == capped["batch_id"]]
            if len(got) >= 1 + len(want_burst):
                break
            time.sleep(1)
    detected = [e for e in got if e.event == "asd.anomaly.detected"]
    bursts = {(e.resource["asd.machine_type"], e.resource["asd.section"]): e.payload["anomalies"]
              for e in got if e.event == "asd.anomaly.burst"}
    assert [e.payload["path"] for e in detected] == [ranked[0]["path"]]
    assert bursts == want_burst


def test_second_monitor_run_is_refused_naming_the_holder(tmp_path):
    import os

    from asd_core.config import Workspace
    from asd_core.monitor import MonitorBusyError
    from asd_core.monitor.tables import monitor_lock

    ws = Workspace(tmp_path / "ws")
    with monitor_lock(ws):
        with pytest.raises(MonitorBusyError, match=rf"another asd monitor run holds this workspace \(pid {os.getpid()}, started"):
            with monitor_lock(ws):
                pass
    with monitor_lock(ws):  # released: the next run goes ahead
        pass


@pytest.mark.slow
def test_unchanged_incoming_answers_without_a_flow_run(registered, incoming, first_run, tmp_path, fresh_asd, capsys):
    """``asd monitor`` over recordings it has seen, with the registry unchanged, prints the no-op report
    without Prefect, torch or MLflow (issue 16 part 5); a new recording or a registry change runs the
    flow again. The fresh process's report equals the flow's own no-op report."""
    from asd_core.tracking.store import TrackingConfig, client
    from flows.cli import main
    from tests.test_uptodate import flow_runs

    ws, _, (v1, _) = registered
    root, _ = incoming
    assert main(["monitor", str(root), "--workspace", str(ws.root)]) == 0  # other tests of the module wrote batches since
    capsys.readouterr()
    flows_before = flow_runs("asd-monitor")
    out, heavy = fresh_asd("monitor", root, "--workspace", ws.root)
    assert heavy == []
    noop = "0 clips scored (0 anomalous), 0 quarantined, 19 already scored, 6 already quarantined"
    assert noop in out and flow_runs("asd-monitor") == flows_before
    for f in ws.root.glob("cache/stages/cli-monitor-*.json"):  # the flow's own answer to the same question
        f.unlink()
    assert main(["monitor", str(root), "--workspace", str(ws.root)]) == 0
    assert noop in capsys.readouterr().out and flow_runs("asd-monitor") == flows_before + 1

    copy = tmp_path / "INCOMING"
    shutil.copytree(root, copy)
    assert main(["monitor", str(copy), "--workspace", str(ws.root)]) == 0  # other paths, same content: the flow runs
    out = capsys.readouterr().out  # scored once per content; a quarantined path is new, so quarantined again
    assert "0 clips scored (0 anomalous), 6 quarantined, 19 already scored" in out
    assert flow_runs("asd-monitor") == flows_before + 2
    assert main(["monitor", str(copy), "--workspace", str(ws.root)]) == 0
    assert noop in capsys.readouterr().out and flow_runs("asd-monitor") == flows_before + 2  # answered from the record
    new = copy / "fan" / "section_00" / "new.wav"
    x, sr = sf.read(next(p for p in copy.rglob("fan_*.wav")), dtype="float32")
    sf.write(new, 0.5 * x, sr, subtype="PCM_16")  # a recording never seen (other content)
    assert main(["monitor", str(copy), "--workspace", str(ws.root)]) == 0
    assert "1 clips scored" in capsys.readouterr().out and flow_runs("asd-monitor") == flows_before + 3
    # any write to the registry: the flow resolves the model again
    client(ws, TrackingConfig()).set_model_version_tag("asd-encoder", v1, "reviewed", "yes")
    assert main(["monitor", str(copy), "--workspace", str(ws.root)]) == 0
    assert "0 clips scored" in capsys.readouterr().out and flow_runs("asd-monitor") == flows_before + 4
