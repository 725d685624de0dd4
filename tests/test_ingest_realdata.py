"""Ingest of the real DCASE 2023, DCASE 2020-style and 8-channel MIMII recordings (real Prefect + DuckDB)."""

from collections import Counter

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from asd_core.config import Workspace
from asd_core.ingest.layout import all_files


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, realdata, prefect_harness):
    from flows.ingest import ingest_flow

    ws = tmp_path_factory.mktemp("ws-real")
    roots = [realdata / "dcase2023_dev_mini", realdata / "dcase2020_style_id00", realdata / "mimii_valve_8ch"]
    report = ingest_flow(roots=[str(r) for r in roots], workspace=str(ws))
    return Workspace(ws), report


def _clips(ws):
    return [r for p in all_files(ws, "clips") for r in pq.read_table(p).to_pylist()]


def test_counts_and_labels(ingested):
    ws, report = ingested
    assert report["clips"] == 28 + 76 + 5
    assert report["quarantined"] == []
    rows = _clips(ws)
    by_ds = Counter(r["dataset"] for r in rows)
    assert by_ds == {"dcase2023_dev_mini": 28, "dcase2020_style_id00": 76, "mimii_valve_8ch": 5}
    dcase23 = [r for r in rows if r["dataset"] == "dcase2023_dev_mini"]
    assert Counter(r["machine_type"] for r in dcase23) == {m: 4 for m in
                                                             ["bearing", "fan", "gearbox", "slider", "ToyCar", "ToyTrain", "valve"]}
    assert Counter((r["split"], r["label"]) for r in dcase23) == {("train", "normal"): 14, ("test", "normal"): 9, ("test", "anomaly"): 5}
    assert Counter(r["domain"] for r in dcase23) == {"source": 20, "target": 8}
    gear = next(r for r in dcase23 if r["relative_path"].endswith("anomaly_0040_volt_1.5_wt_130.wav"))
    assert dict(gear["attributes"]) == {"volt": "1.5", "wt": "130"}
    assert (gear["domain"], gear["label"], gear["split"]) == ("target", "anomaly", "test")
    toycar = [r for r in dcase23 if r["machine_type"] == "ToyCar"]
    assert all(r["duration_s"] == pytest.approx(12.0, abs=0.01) for r in toycar)
    d20 = [r for r in rows if r["dataset"] == "dcase2020_style_id00"]
    assert Counter((r["split"], r["label"], r["section"], r["scheme"]) for r in d20) == {
        ("train", "normal", "00", "dcase2020"): 75, ("test", "anomaly", "00", "dcase2020"): 1}


def test_mimii_multichannel(ingested, realdata):
    ws, _ = ingested
    mimii = {r["relative_path"]: r for r in _clips(ws) if r["dataset"] == "mimii_valve_8ch"}
    assert all(r["channels"] == 8 and r["channel_selection"] == "0" and r["sample_rate"] == 16000 for r in mimii.values())
    assert Counter(r["label"] for r in mimii.values()) == {"normal": 4, "anomaly": 1}
    assert mimii["valve_id06_abn_00000008.wav"]["section"] == "06"
    # The stored waveform is channel 0 of the file, exactly (PCM16 -> int16 storage).
    audio = {r["clip_id"]: r for r in pq.read_table(ws.artifact_dir("audio") / "machine_type=valve" / "dataset=mimii_valve_8ch").to_pylist()}
    for rel in ("valve_id00_n_00000117.wav", "valve_id00_n_00000117_quiet.wav"):
        ref, _ = sf.read(realdata / "mimii_valve_8ch" / rel, dtype="int16", always_2d=True)
        got = np.asarray(audio[mimii[rel]["clip_id"]]["waveform"], dtype=np.int16)
        np.testing.assert_array_equal(got, ref[:, 0])
    # the quieter copy stays quieter: ingest applies no level normalisation
    loud = np.asarray(audio[mimii["valve_id00_n_00000117.wav"]["clip_id"]]["waveform"], float)
    quiet = np.asarray(audio[mimii["valve_id00_n_00000117_quiet.wav"]["clip_id"]]["waveform"], float)
    assert np.std(quiet) < 0.9 * np.std(loud)


def test_duckdb_tables(ingested):
    ws, _ = ingested
    con = duckdb.connect(str(ws.duckdb_path), read_only=True)
    try:
        got = dict(con.execute("SELECT machine_type, count(*) FROM clips WHERE dataset = 'dcase2023_dev_mini' GROUP BY ALL").fetchall())
        assert got == {m: 4 for m in ["bearing", "fan", "gearbox", "slider", "ToyCar", "ToyTrain", "valve"]}
        assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM audio").fetchone()[0] == 109
        assert con.execute("SELECT attributes['volt'] FROM clips WHERE relative_path LIKE '%wt_150.wav'").fetchone()[0] == "1.5"
    finally:
        con.close()
