"""Two-channel recordings (issue 20 part 1): both channels stored with their roles, the near one
as each clip's primary waveform; mono files among two-channel siblings quarantined; silent and
clipped channels flagged; every channel read back equal to soundfile's decode of the file."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from asd_core.config import AudioConfig, IngestConfig, Workspace
from asd_core.ingest import ingest_group, ingest_roots, plan_ingest
from asd_core.ingest.partition import ChannelRoleError
from asd_core.storage.audio import channel_waves, read_waves
from asd_core.storage.content import clip_audio_keys
from asd_core.storage.paths import all_files, audio_channels_file

SR = 16000


def _write(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, SR, subtype="PCM_16")


@pytest.fixture()
def tree(tmp_path) -> Path:
    """A DCASE 2026-style tree: fan has near+far clips (one mono intruder, one silent far channel),
    valve is mono only."""
    rng = np.random.default_rng(5)
    root = tmp_path / "dev_data"
    for i in range(6):
        near = 0.3 * np.sin(2 * np.pi * 120 * np.arange(SR) / SR) + 0.05 * rng.standard_normal(SR)
        far = 0.1 * near + 0.2 * rng.standard_normal(SR)
        if i == 5:
            far = np.zeros(SR)
        _write(root / "fan" / "train" / f"section_00_source_train_normal_{i:04d}_noAttribute.wav",
               np.stack([near, far], 1).astype(np.float32))
    _write(root / "fan" / "train" / "section_00_source_train_normal_0006_noAttribute.wav",
           (0.1 * rng.standard_normal(SR)).astype(np.float32))  # mono: its far microphone is missing
    for i in range(4):
        _write(root / "valve" / "train" / f"section_00_source_train_normal_{i:04d}_noAttribute.wav",
               (0.1 * rng.standard_normal(SR)).astype(np.float32))
    return root


def _ingest(ws: Workspace, root: Path, **audio) -> dict:
    return {g.machine_type: g for g in ingest_roots(ws, [root], "d26", IngestConfig(audio=AudioConfig(**audio))).groups}


def _clips(ws: Workspace, machine_type: str) -> dict[str, dict]:
    return {r["relative_path"].rsplit("/", 1)[-1]: r for p in all_files(ws, "clips")
            for r in pq.read_table(p).to_pylist() if r["machine_type"] == machine_type}


def _file(root: Path, name: str) -> np.ndarray:
    return sf.read(root / "fan" / "train" / name, dtype="int16", always_2d=True)[0]


def test_both_channels_stored_with_roles_and_read_back_exactly(tmp_path, tree):
    ws = Workspace(tmp_path / "ws").ensure()
    res = _ingest(ws, tree)
    fan = _clips(ws, "fan")
    assert len(fan) == 6 and res["fan"].clips == 6
    (mono,) = [q for q in res["fan"].quarantined]
    assert mono.relative_path.endswith("normal_0006_noAttribute.wav")
    assert mono.reason == "mono file in a two-channel dataset (other fan clips have near and far channels)"
    assert {tuple(r["channel_roles"]) for r in fan.values()} == {("near", "far")}
    assert {r["channel_selection"] for r in fan.values()} == {"0"}
    silent = "section_00_source_train_normal_0005_noAttribute.wav"
    assert dict(fan[silent]["channel_flags"]) == {"far": "silent"}
    assert all(r["channel_flags"] is None for n, r in fan.items() if n != silent)
    # the primary waveform (what every stage reads) is channel 0, the far one channel 1, exactly
    ids = {r["clip_id"]: n for n, r in fan.items()}
    near, far = channel_waves(ws, "near", set(ids)), channel_waves(ws, "far", set(ids))
    primary = read_waves(ws, set(ids))
    for cid, name in ids.items():
        ref = _file(tree, name)
        np.testing.assert_array_equal(np.rint(primary[cid] * 32768).astype(np.int16), ref[:, 0])
        np.testing.assert_array_equal(np.rint(near[cid] * 32768).astype(np.int16), ref[:, 0])
        np.testing.assert_array_equal(np.rint(far[cid] * 32768).astype(np.int16), ref[:, 1])
    # mono valve: one channel, no roles, no second partition
    valve = _clips(ws, "valve")
    assert len(valve) == 4 and all(r["channel_roles"] is None and r["channel_selection"] == "mono" for r in valve.values())
    assert not audio_channels_file(ws, "d26", "valve").exists()
    con = duckdb.connect(str(ws.duckdb_path), read_only=True)
    rows = con.execute("SELECT c.machine_type, a.role, a.channel, count(*) FROM audio a JOIN clips c USING (clip_id) "
                       "GROUP BY ALL ORDER BY ALL").fetchall()
    assert rows == [("fan", "far", 1, 6), ("fan", "near", 0, 6), ("valve", "mono", 0, 4)]
    assert con.execute("SELECT channel_roles FROM clips WHERE machine_type = 'fan' LIMIT 1").fetchone()[0] == ["near", "far"]
    con.close()
    # re-ingest: nothing to do
    again = _ingest(ws, tree)
    assert again["fan"].decoded == 0 and not again["fan"].written


def test_swapped_roles_single_channels_and_upgrade_keep_content_keys(tmp_path, tree):
    ws = Workspace(tmp_path / "ws").ensure()
    _ingest(ws, tree, channel=0)  # today's single-channel ingest
    fan = _clips(ws, "fan")
    assert len(fan) == 7 and all(r["channel_roles"] is None for r in fan.values())  # no quarantine in single mode
    assert not audio_channels_file(ws, "d26", "fan").exists()
    keys_single = clip_audio_keys(ws)
    res = _ingest(ws, tree)  # the default now: near and far kept; the primary is the same channel 0
    assert res["fan"].decoded == 6
    keys_both = clip_audio_keys(ws)
    assert {c: k for c, k in keys_both.items()} == {c: keys_single[c] for c in keys_both}  # embeddings stay valid

    ws2 = Workspace(tmp_path / "ws2").ensure()
    _ingest(ws2, tree, channel_roles="far,near")  # the dataset's docs say channel 0 is the far microphone
    fan2 = _clips(ws2, "fan")
    assert {r["channel_selection"] for r in fan2.values()} == {"1"}
    name = "section_00_source_train_normal_0001_noAttribute.wav"
    cid = fan2[name]["clip_id"]
    ref = _file(tree, name)
    np.testing.assert_array_equal(np.rint(read_waves(ws2, {cid})[cid] * 32768).astype(np.int16), ref[:, 1])
    np.testing.assert_array_equal(np.rint(channel_waves(ws2, "far", {cid})[cid] * 32768).astype(np.int16), ref[:, 0])

    ws3 = Workspace(tmp_path / "ws3").ensure()
    cfg = IngestConfig(audio=AudioConfig(channel="far"))
    plan = plan_ingest(ws3, [tree], "d26", cfg)  # the fan group only: valve has no far channel (next test)
    ingest_group(ws3, "d26", "fan", plan.groups[("d26", "fan")], plan.roots["d26"], cfg)
    fan3 = _clips(ws3, "fan")
    assert len(fan3) == 6 and {r["channel_selection"] for r in fan3.values()} == {"1"}


def test_other_channels_partition_is_written_only_with_rows_and_a_stale_one_removed(tmp_path, tree, monkeypatch):
    """``audio_channels`` is never written empty: not for a mono dataset, not on a mono re-ingest of a
    two-channel one (whose earlier partition is removed); kept far channels survive a partial re-ingest."""
    from asd_core.ingest import partition

    opened = []
    real_writer = partition.audio_partition_writer
    monkeypatch.setattr(partition, "audio_partition_writer", lambda path, *a, **k: opened.append(path) or real_writer(path, *a, **k))
    ws = Workspace(tmp_path / "ws").ensure()
    fan_x, valve_x = audio_channels_file(ws, "d26", "fan"), audio_channels_file(ws, "d26", "valve")

    _ingest(ws, tree)  # two-channel fan: its far channels are written; mono valve: nothing
    assert fan_x.exists() and pq.read_table(fan_x).column("role").to_pylist() == ["far"] * 6
    assert fan_x in opened and valve_x not in opened and not valve_x.parent.exists()

    opened.clear()
    (tree / "fan" / "train" / "section_00_source_train_normal_0000_noAttribute.wav").unlink()
    res = _ingest(ws, tree)  # nothing decoded: the kept clips' far channels are copied
    assert res["fan"].decoded == 0 and res["fan"].written and fan_x in opened
    assert len(channel_waves(ws, "far")) == 5 == pq.read_table(fan_x).num_rows

    opened.clear()
    res = _ingest(ws, tree, channel=0)  # one channel per clip (the mono file no longer quarantined): no other channel to store
    assert res["fan"].decoded == 6 and fan_x not in opened and valve_x not in opened
    assert not fan_x.exists() and not all_files(ws, "audio_channels")
    con = duckdb.connect(str(ws.duckdb_path), read_only=True)
    assert con.execute("SELECT count(*), count(*) FILTER (role = 'far') FROM audio").fetchone() == (10, 0)  # 6 fan, 4 valve
    con.close()


def test_far_channel_of_a_mono_dataset_is_an_error_and_changes_nothing(tmp_path, tree):
    ws = Workspace(tmp_path / "ws").ensure()
    _ingest(ws, tree)
    before = pq.read_table(all_files(ws, "clips")[-1])
    cfg = IngestConfig(audio=AudioConfig(channel="far"))
    plan = plan_ingest(ws, [tree], "d26", cfg)
    with pytest.raises(ChannelRoleError, match=r"--channel far: dataset d26 has no two-channel files \(valve: 4 files"):
        ingest_group(ws, "d26", "valve", plan.groups[("d26", "valve")], plan.roots["d26"], cfg)
    assert pq.read_table(all_files(ws, "clips")[-1]).equals(before)


def test_bad_channel_options_are_one_line_errors():
    with pytest.raises(ValueError, match="channel_roles must name near and far once each"):
        AudioConfig(channel_roles="near,near")
    with pytest.raises(ValueError, match="cannot be combined with channel = 2"):
        AudioConfig(channel=2, channels="all")
    with pytest.raises(ValueError, match="channel must be 'auto', an integer index, 'mean', 'near' or 'far'"):
        AudioConfig(channel="left")


def test_mimii_eight_channels_all_kept_and_equal_to_soundfile(tmp_path, realdata):
    ws = Workspace(tmp_path / "ws")
    ingest_roots(ws, [realdata / "mimii_valve_8ch"], None, IngestConfig(audio=AudioConfig(channels="all")), publish=False)
    rows = {r["relative_path"]: r for p in all_files(ws, "clips") for r in pq.read_table(p).to_pylist()}
    assert all(r["channel_roles"] == [f"ch{i}" for i in range(8)] for r in rows.values())
    rel = "valve_id06_n_00000048.wav"
    ref, _ = sf.read(realdata / "mimii_valve_8ch" / rel, dtype="int16", always_2d=True)
    cid = rows[rel]["clip_id"]
    for ch in (0, 3, 7):
        got = channel_waves(ws, f"ch{ch}", {cid})[cid]
        np.testing.assert_array_equal(np.rint(got * 32768).astype(np.int16), ref[:, ch])
    # without --channels all: channel 0 only, as before
    ws2 = Workspace(tmp_path / "ws2")
    ingest_roots(ws2, [realdata / "mimii_valve_8ch"], None, publish=False)
    assert not all_files(ws2, "audio_channels")


def test_dcase2026_dev_and_eval_layouts(tmp_path):
    """Dev and eval trees of a machine type never seen before, clips of mixed length (6 / 10 / 16 s
    in DCASE 2026, scaled down here), anonymised eval names labelled from ground-truth CSVs."""
    rng = np.random.default_rng(2)

    def stereo(seconds: float) -> np.ndarray:
        n = int(seconds * SR)
        return (0.1 * rng.standard_normal((n, 2))).astype(np.float32)

    dev = tmp_path / "dev_data" / "raw" / "bearingEmu"
    lengths = [0.6, 1.0, 1.6, 1.0, 0.6, 1.6]
    for i, sec in enumerate(lengths):
        _write(dev / "train" / f"section_00_source_train_normal_{i:04d}_noAttribute.wav", stereo(sec))
    _write(dev / "test" / "section_00_source_test_anomaly_0000_noAttribute.wav", stereo(1.0))
    ev = tmp_path / "eval_data" / "raw" / "ToyDrone" / "test"
    for i in range(3):
        _write(ev / f"section_00_{i:04d}.wav", stereo(1.0))
    gt = tmp_path / "gt"
    (gt / "ground_truth_data").mkdir(parents=True)
    (gt / "ground_truth_domain").mkdir()
    (gt / "ground_truth_data" / "ground_truth_ToyDrone_section_00_test.csv").write_text(
        "section_00_0000.wav,1\nsection_00_0001.wav,0\nsection_00_0002.wav,0\n")
    (gt / "ground_truth_domain" / "ground_truth_ToyDrone_section_00_test.csv").write_text(
        "section_00_0000.wav,0\nsection_00_0001.wav,1\nsection_00_0002.wav,0\n")
    ws = Workspace(tmp_path / "ws").ensure()
    cfg = IngestConfig(ground_truth=gt)
    plan = plan_ingest(ws, [tmp_path / "dev_data", tmp_path / "eval_data"], None, cfg)
    results = [ingest_group(ws, ds, mt, c, plan.roots[ds], cfg) for (ds, mt), c in plan.groups.items()]
    assert plan.quarantined == [] and all(r.quarantined == [] for r in results)
    rows = [r for p in all_files(ws, "clips") for r in pq.read_table(p).to_pylist()]
    assert len(rows) == 10 and all(r["channel_roles"] == ["near", "far"] for r in rows)
    bearing = sorted(r["duration_s"] for r in rows if r["machine_type"] == "bearingEmu" and r["split"] == "train")
    assert bearing == pytest.approx(sorted(lengths))
    drone = {r["relative_path"].rsplit("/", 1)[-1]: (r["label"], r["domain"]) for r in rows if r["machine_type"] == "ToyDrone"}
    assert drone == {"section_00_0000.wav": ("anomaly", "source"), "section_00_0001.wav": ("normal", "target"),
                     "section_00_0002.wav": ("normal", "source")}
    far = channel_waves(ws, "far")
    assert len(far) == 10
