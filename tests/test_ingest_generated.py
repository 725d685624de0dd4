"""Ingest of generated data: round trip, idempotency, bad input, crash safety (real files and Prefect)."""

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from asd_core.config import IngestConfig, Workspace
from asd_core.ingest import ingest_group, plan_ingest
from asd_core.ingest.layout import all_files, audio_file, clips_file


def _rows(ws: Workspace, artifact: str) -> list[dict]:
    return [r for p in all_files(ws, artifact) for r in pq.read_table(p).to_pylist()]


def _ingest(root, ws, **kw):
    from flows.ingest import ingest_flow

    return ingest_flow(roots=[str(r) for r in (root if isinstance(root, list) else [root])], workspace=str(ws), **kw)


@pytest.fixture
def tree(tmp_path, demo_small) -> Path:
    root = tmp_path / "data"
    shutil.copytree(demo_small, root)
    return root


def test_demo_data_is_dcase_shaped_and_deterministic(tmp_path, demo_small):
    from asd_core.demo import make_demo_data

    train = sorted((demo_small / "dev_data/raw/fan/train").glob("*.wav"))
    assert sum("_source_" in p.name for p in train) == 40 and sum("_target_" in p.name for p in train) == 10
    test = Counter(tuple(p.name.split("_")[2:5:2]) for p in (demo_small / "dev_data/raw/fan/test").glob("*.wav"))
    assert test == {("source", "normal"): 10, ("source", "anomaly"): 10, ("target", "normal"): 10, ("target", "anomaly"): 10}
    assert (demo_small / "noise/.asdignore").exists() and len(list((demo_small / "noise").glob("*/*.wav"))) == 28
    again = tmp_path / "again"
    make_demo_data(again, seed=3, size="small")
    for p in list(demo_small.rglob("*.wav"))[::25]:
        assert (again / p.relative_to(demo_small)).read_bytes() == p.read_bytes()
    other = tmp_path / "other"
    make_demo_data(other, seed=4, size="small")
    other_first = sorted((other / "dev_data/raw/fan/train").glob("*.wav"))[0]
    assert other_first.read_bytes() != train[0].read_bytes()


def test_round_trip_and_idempotent_rerun(tree, tmp_path, prefect_harness):
    ws = Workspace(tmp_path / "ws")
    report = _ingest(tree, ws.root)
    assert report["clips"] == 270 and report["decoded"] == 270 and report["quarantined"] == []
    clips = {r["clip_id"]: r for r in _rows(ws, "clips")}
    assert Counter(r["machine_type"] for r in clips.values()) == {"fan": 90, "valve": 90, "slider": 90}
    # WAV -> Parquet -> waveform: equal within int16 precision (exact for PCM16 files)
    audio = {r["clip_id"]: r for r in _rows(ws, "audio")}
    assert set(audio) == set(clips)
    for cid in list(clips)[::30]:
        ref, sr = sf.read(tree / clips[cid]["relative_path"], dtype="int16")
        np.testing.assert_array_equal(np.asarray(audio[cid]["waveform"], np.int16), ref)
        assert audio[cid]["sample_rate"] == sr == 16000

    files = all_files(ws, "clips") + all_files(ws, "audio")
    before = {p: p.stat().st_mtime_ns for p in files}
    again = _ingest(tree, ws.root)
    assert (again["decoded"], again["reused"], again["clips"]) == (0, 270, 270)
    assert {p: p.stat().st_mtime_ns for p in files} == before  # nothing rewritten

    # A changed file replaces its row; its siblings are not decoded again.
    changed = next(tree.glob("dev_data/raw/valve/train/*.wav"))
    x, sr = sf.read(changed)
    sf.write(changed, 0.5 * x, sr, subtype="PCM_16")
    third = _ingest(tree, ws.root)
    assert (third["decoded"], third["clips"]) == (1, 270)
    rows = [r for r in _rows(ws, "clips") if r["relative_path"] == changed.relative_to(tree).as_posix()]
    assert len(rows) == 1 and rows[0]["sha256"] != clips[rows[0]["clip_id"]]["sha256"]
    new_audio = {r["clip_id"]: r for r in _rows(ws, "audio")}
    assert len(new_audio) == 270
    np.testing.assert_array_equal(np.asarray(new_audio[rows[0]["clip_id"]]["waveform"], np.int16), sf.read(changed, dtype="int16")[0])


def _write_bad_files(root: Path) -> dict[str, str]:
    """Each bad file next to good ones, with the expected quarantine reason."""
    fan_train = root / "dev_data/raw/fan/train"
    good = next(fan_train.glob("*source_train_normal_0000*.wav"))
    corrupt = fan_train / "section_00_source_train_normal_0900_spd_28.wav"
    corrupt.write_bytes(b"this is not audio at all" * 100)
    truncated = fan_train / "section_00_source_train_normal_0901_spd_28.wav"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = fan_train / "section_00_source_train_normal_0902_spd_28.wav"
    empty.write_bytes(b"")
    short = fan_train / "section_00_source_train_normal_0903_spd_28.wav"
    x, sr = sf.read(good)
    sf.write(short, x[: sr // 10], sr, subtype="PCM_16")
    unknown = fan_train / "recording_final_v2.wav"
    shutil.copy(good, unknown)
    flac = fan_train / "section_00_source_train_normal_0904_spd_28.flac"
    sf.write(flac, x, sr, format="FLAC")
    wrong_rate = fan_train / "section_00_source_train_normal_0905_spd_28.wav"
    from asd_core.datasets.audio_io import resample
    sf.write(wrong_rate, resample(x.astype(np.float32), 16000, 22050), 22050, subtype="PCM_16")
    return {
        corrupt.name: "not a WAV file", truncated.name: "truncated WAV", empty.name: "empty file",
        short.name: "far shorter than", unknown.name: "matches no DCASE", flac.name: "not a .wav file name",
    }


def test_bad_files_are_quarantined_rest_ingested(tree, tmp_path, prefect_harness):
    expected = _write_bad_files(tree)
    ws = Workspace(tmp_path / "ws")
    # (a missing root is no longer quarantined but fails the ingest: test_ingest_safety.py)
    report = _ingest(tree, ws.root, dataset_name="mixed")
    reasons = {Path(q["relative_path"]).name: q["reason"] for q in report["quarantined"] if q["relative_path"]}
    for name, fragment in expected.items():
        assert fragment in reasons.get(name, ""), (name, reasons.get(name))
    assert report["clips"] == 271  # 270 good + the resampled wrong-rate file
    wrong = next(r for r in _rows(ws, "clips") if r["relative_path"].endswith("normal_0905_spd_28.wav"))
    assert wrong["sample_rate"] == 22050 and wrong["pipeline_sample_rate"] == 16000
    wave = next(r for r in _rows(ws, "audio") if r["clip_id"] == wrong["clip_id"])["waveform"]
    assert len(wave) == pytest.approx(2.0 * 16000, abs=2)
    # quarantine is a table in DuckDB too
    import duckdb
    con = duckdb.connect(str(ws.duckdb_path), read_only=True)
    assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == len(report["quarantined"])
    con.close()


def test_cli_exits_nonzero_only_when_nothing_usable(tmp_path, prefect_harness, capsys):
    from flows.cli import main

    bad = tmp_path / "bad" / "dev_data" / "fan" / "train"
    bad.mkdir(parents=True)
    (bad / "section_00_source_train_normal_0000.wav").write_bytes(b"garbage")
    assert main(["ingest", str(tmp_path / "bad"), "--workspace", str(tmp_path / "ws")]) == 1
    err = capsys.readouterr().err
    assert "section_00_source_train_normal_0000.wav" in err and "not a WAV file" in err


def test_duplicate_clip_ids_across_roots(tmp_path, demo_small, prefect_harness):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "fan/train").mkdir(parents=True)
        for src in sorted((demo_small / "dev_data/raw/fan/train").glob("*.wav"))[:5]:
            shutil.copy(src, root / "fan/train" / src.name)
    report = _ingest([a, b], tmp_path / "ws", dataset_name="same")
    assert report["clips"] == 5
    dupes = [q for q in report["quarantined"] if "duplicate clip id" in q["reason"]]
    assert len(dupes) == 5 and all(q["root"] == str(b.resolve()) for q in dupes)


def test_failed_run_leaves_earlier_outputs_intact(tree, tmp_path, monkeypatch):
    """A crash mid-partition (no Prefect needed: the library call) keeps the old Parquet readable."""
    from asd_core.datasets import audio_io

    ws = Workspace(tmp_path / "ws").ensure()
    cfg = IngestConfig()
    plan = plan_ingest(ws, [tree], None, cfg)
    cands = plan.groups[("data", "fan")]
    ingest_group(ws, "data", "fan", cands, plan.roots["data"], cfg)
    before = pq.read_table(audio_file(ws, "data", "fan"))
    for p in tree.glob("dev_data/raw/fan/**/*.wav"):  # every file changes: all must be decoded again
        x, sr = sf.read(p)
        sf.write(p, 0.9 * x, sr, subtype="PCM_16")
    real_decode, calls = audio_io.decode_channels, {"n": 0}

    def flaky(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 40:
            raise RuntimeError("simulated crash on the 40th clip")
        return real_decode(*args, **kw)

    monkeypatch.setattr(audio_io, "decode_channels", flaky)
    plan = plan_ingest(ws, [tree], None, cfg)
    with pytest.raises(RuntimeError, match="40th clip"):
        ingest_group(ws, "data", "fan", plan.groups[("data", "fan")], plan.roots["data"], cfg)
    assert pq.read_table(audio_file(ws, "data", "fan")).equals(before)
    assert pq.read_table(clips_file(ws, "data", "fan")).num_rows == 90
    assert not [p for p in ws.parquet.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.setattr(audio_io, "decode_channels", real_decode)
    result = ingest_group(ws, "data", "fan", plan.groups[("data", "fan")], plan.roots["data"], cfg)
    assert (result.decoded, result.clips) == (90, 90)
