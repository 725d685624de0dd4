"""asd mix --noise-from-channel far (issue 20 part 3, methods.md sections 3 and 7): the far channels of
the training clips of a DCASE 2026-style two-channel tree become noise recordings that name their
clip and channel; flagged channels are left out; a clip is never mixed with its own far channel; a
rendered mixture is near(X) * clean_gain + far(Y)[offset ...] * noise_gain of the files themselves;
the student's mixture provenance names far-channel sources; folder and far noise combine."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from asd_core.config import Workspace
from asd_core.hashing import bytes_id
from asd_core.mixing.artifacts import check_planned_on, noise_file, read_mixtures
from asd_core.mixing.config import MixConfig, MixingError, NoiseLibraryConfig
from asd_core.mixing.noise_library import build_noise_library, noise_table, read_noise_library
from asd_core.mixing.plan import plan_mixtures
from asd_core.mixing.render import render
from asd_core.storage.content import clip_audio_keys
from asd_core.storage.paths import all_files, mixtures_file, noisy_clips_file

SR = 16000
SILENT = ("fan", 5)  # this training clip's far channel is digital silence: flagged at ingest


def _write(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, SR, subtype="PCM_16")


def _two_channel_tree(root: Path, train: dict[str, int], test: int = 2, silent=SILENT, seed: int = 7) -> Path:
    """dev_data/<machine>/{train,test}/section_00_..._noAttribute.wav, channel 0 near, channel 1 far
    (a weak copy of the machine plus that clip's own plant noise, different in every clip)."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    for m, (machine, n) in enumerate(sorted(train.items())):
        def clip(split: str, label: str, i: int) -> None:
            near = 0.3 * np.sin(2 * np.pi * (120 + 40 * m + 3 * i) * t) + 0.05 * rng.standard_normal(SR)
            far = 0.1 * near + (0.1 + 0.02 * i) * rng.standard_normal(SR)
            if (machine, i) == silent and split == "train":
                far = np.zeros(SR)
            _write(root / machine / split / f"section_00_source_{split}_{label}_{i:04d}_noAttribute.wav",
                   np.stack([near, far], 1).astype(np.float32))

        for i in range(n):
            clip("train", "normal", i)
        for i in range(test):
            clip("test", "normal", i)
            clip("test", "anomaly", i)
    return root


def _clips(ws: Workspace) -> dict[str, dict]:
    return {r["clip_id"]: r for p in all_files(ws, "clips") for r in pq.read_table(p).to_pylist()}


def _channel(row: dict, index: int) -> np.ndarray:
    """One channel of a clip's file as soundfile decodes it (float64 in [-1, 1])."""
    data, sr = sf.read(Path(row["root"]) / row["relative_path"], dtype="float64", always_2d=True)
    assert sr == SR
    return data[:, index]


def _noise_folder(root: Path) -> Path:
    """Two stationary classes (aircon, hum) and one non-stationary (knocks), two recordings each."""
    rng = np.random.default_rng(11)
    for cls in ("aircon", "hum"):
        for i in range(2):
            _write(root / cls / f"{i}.wav", (0.1 * rng.standard_normal(SR)).astype(np.float32))
    for i in range(2):
        x = np.zeros(SR)
        x[3000 * i: 3000 * i + 800] = 0.5 * rng.standard_normal(800)
        _write(root / "knocks" / f"{i}.wav", x.astype(np.float32))
    return root


@pytest.fixture(scope="module")
def far_ws(tmp_path_factory, ingest_tree) -> Workspace:
    """fan: 6 training clips (one with a silent far channel), valve: 4; two normal and two anomalous
    test clips each."""
    tmp = tmp_path_factory.mktemp("far")
    tree = _two_channel_tree(tmp / "dev_data", {"fan": 6, "valve": 4})
    return ingest_tree(tmp / "ws", tree, "d26")


def test_library_holds_one_far_recording_per_usable_training_clip(far_ws):
    clips = _clips(far_ws)
    lib = build_noise_library(far_ws, NoiseLibraryConfig(supplemental=False, noise_from_channel="far"))
    silent = next(c for c, r in clips.items() if r["machine_type"] == "fan" and r["split"] == "train"
                  and r["relative_path"].endswith("normal_0005_noAttribute.wav"))
    assert dict(clips[silent]["channel_flags"]) == {"far": "silent"}
    usable = {c for c, r in clips.items() if r["split"] == "train" and c != silent}
    assert len(usable) == 9 and len(lib) == 9
    assert set(lib.source_clip_ids) == usable  # one per usable training clip; no test clip, not the silent one
    assert set(lib.source_channels) == {"far"}
    for i, cid in enumerate(lib.source_clip_ids):
        row = clips[cid]
        assert lib.classes[i] == f"{row['machine_type']}-far"
        assert lib.sources[i] == f"clip:{cid}:far"
        np.testing.assert_array_equal(lib.waves[i], _channel(row, 1).astype(np.float32))  # the file's channel 1
        assert lib.ids[i] == bytes_id(np.ascontiguousarray(lib.waves[i], np.float32).tobytes(), 16)  # content hash
    assert set(lib.kinds) == {"stationary"} and not any(lib.held_out)  # far classes: never held out by the default rule
    assert sorted(lib.splits).count("eval") == 2  # a quarter of each class (at least one)


def test_a_clip_is_never_mixed_with_its_own_far_channel(tmp_path, ingest_tree):
    """Three usable far channels: one goes to evaluation, so each of the other two training clips can only
    draw the other one; with two, the clip whose far channel is the only training noise is skipped."""
    ws = ingest_tree(tmp_path / "ws3", _two_channel_tree(tmp_path / "t3", {"fan": 3}, test=0, silent=None), "d26")
    lib = build_noise_library(ws, NoiseLibraryConfig(supplemental=False, noise_from_channel="far"))
    cfg = MixConfig(mixtures_per_clip=20, eval_subsets=("stationary",))
    plan = plan_mixtures(ws, lib, cfg)
    source = dict(zip(lib.ids, lib.source_clip_ids))
    split = dict(zip(lib.ids, lib.splits))
    rows = plan.mixtures.to_pylist()
    assert len(rows) == 60 and not plan.skipped
    train_sources = {source[n] for n, s in split.items() if s == "train"}
    assert len(train_sources) == 2
    for r in rows:
        assert source[r["noise_id"]] != r["clip_id"]
        assert split[r["noise_id"]] == "train"
        if r["clip_id"] in train_sources:  # its only other choice
            assert source[r["noise_id"]] == (train_sources - {r["clip_id"]}).pop()
    assert plan_mixtures(ws, lib, cfg).mixtures.equals(plan.mixtures)  # same seed, same plan

    ws2 = ingest_tree(tmp_path / "ws2", _two_channel_tree(tmp_path / "t2", {"fan": 2}, test=0, silent=None), "d26")
    lib2 = build_noise_library(ws2, NoiseLibraryConfig(supplemental=False, noise_from_channel="far"))
    plan2 = plan_mixtures(ws2, lib2, MixConfig(mixtures_per_clip=5, eval_subsets=("stationary",)))
    (only,) = [c for c, s in zip(lib2.source_clip_ids, lib2.splits) if s == "train"]
    (skipped,) = plan2.skipped
    assert only in skipped and "its own far channel is the only training noise recording" in skipped
    assert {r["clip_id"] for r in plan2.mixtures.to_pylist()} == set(lib2.source_clip_ids) - {only}


@pytest.fixture(scope="module")
def far_mixed(far_ws, prefect_harness):
    from flows.mix import mix_flow

    report = mix_flow(workspace=str(far_ws.root), noise_from_channel="far", seed=3, mixtures_per_clip=4)
    return far_ws, report


def test_far_only_mix_flow_publishes_far_provenance(far_mixed):
    ws, report = far_mixed
    assert report["noise_recordings"] == report["channel_noise_recordings"] == 9
    assert report["mixtures"] == 10 * 4 and not report["skipped"]  # every normal training clip x mixtures_per_clip
    # only the stationary subset has held-out far recordings: the other subsets are reported, not an error
    assert report["eval_subsets_dropped"] == ["non-stationary", "mismatched"]
    assert report["noisy_clips"] == 8 * 4  # 8 test clips x 1 subset x 4 bins
    con = duckdb.connect(str(ws.duckdb_path), read_only=True)
    try:
        bad = con.execute("SELECT count(*) FROM mixtures m JOIN noise n USING (noise_id) "
                          "WHERE n.source_channel IS DISTINCT FROM 'far' OR n.source_clip_id = m.clip_id "
                          "OR n.split <> 'train'").fetchone()[0]
        far_sources = con.execute("SELECT count(DISTINCT source_clip_id) FROM noise WHERE source_channel = 'far'").fetchone()[0]
        classes = [r[0] for r in con.execute("SELECT DISTINCT noise_class FROM mixtures ORDER BY 1").fetchall()]
    finally:
        con.close()
    assert bad == 0 and far_sources == 9 and classes == ["fan-far", "valve-far"]


def test_silent_far_channel_clip_is_still_mixed_as_clean_sound(far_mixed):
    """Its far channel is no noise source, but its near channel is a normal training clip like any other."""
    ws, _ = far_mixed
    clips = _clips(ws)
    silent = next(c for c, r in clips.items() if r["split"] == "train" and (r["channel_flags"] or []))
    assert sum(r["clip_id"] == silent for r in read_mixtures(ws)) == 4
    assert silent not in read_noise_library(ws).source_clip_ids


def test_rendered_mixture_is_near_plus_another_clips_far_channel_of_the_files(far_mixed):
    ws, _ = far_mixed
    clips = _clips(ws)
    lib = read_noise_library(ws)
    source = dict(zip(lib.ids, lib.source_clip_ids))
    from asd_core.storage.audio import read_waves

    rows = read_mixtures(ws)
    clean = read_waves(ws, {r["clip_id"] for r in rows})
    for r in rows:
        y = source[r["noise_id"]]
        assert y != r["clip_id"]
        near, far = _channel(clips[r["clip_id"]], 0), _channel(clips[y], 1)
        idx = (r["noise_offset"] + np.arange(len(near))) % len(far)
        m, c, n = render(r, clean[r["clip_id"]], lib)
        np.testing.assert_allclose(c, r["clean_gain"] * near, atol=1e-6)
        np.testing.assert_allclose(n, r["noise_gain"] * far[idx], atol=1e-6)
        np.testing.assert_allclose(m, r["clean_gain"] * near + r["noise_gain"] * far[idx], atol=2e-6)
        assert abs(10 * np.log10(np.mean(c.astype(np.float64) ** 2) / np.mean(n.astype(np.float64) ** 2)) - r["snr_db"]) < 0.01


def test_student_reads_mixtures_whose_noise_is_far_channel_recordings(far_mixed):
    """What train_student reads (asd_core/training/student.py): read_mixtures, check_planned_on,
    read_noise_library, render -> the teacher's noise part is another clip's far channel and the
    tagging targets name the far-channel noise classes."""
    ws, _ = far_mixed
    mixtures = sorted(read_mixtures(ws), key=lambda r: r["mixture_id"])
    check_planned_on(mixtures, clip_audio_keys(ws), "training mixtures")
    lib = read_noise_library(ws)
    row = {nid: i for i, nid in enumerate(lib.ids)}
    clips_mt = {c: r["machine_type"] for c, r in _clips(ws).items()}
    for r in mixtures:
        i = row[r["noise_id"]]
        assert lib.source_channels[i] == "far" and lib.source_clip_ids[i] != r["clip_id"]
        assert lib.sources[i] == f"clip:{lib.source_clip_ids[i]}:far"
        assert r["noise_class"] == lib.classes[i] == f"{clips_mt[lib.source_clip_ids[i]]}-far"
        assert r["lam"] == 0.5  # the alignment target lambda * teacher(near) + (1 - lambda) * teacher(far noise)
    assert sorted({f"noise:{r['noise_class']}" for r in mixtures}) == ["noise:fan-far", "noise:valve-far"]


def test_far_mix_is_deterministic(far_mixed):
    from flows.mix import mix_flow

    ws, _ = far_mixed
    before = [pq.read_table(f(ws)) for f in (noise_file, mixtures_file, noisy_clips_file)]
    mix_flow(workspace=str(ws.root), noise_from_channel="far", seed=3, mixtures_per_clip=4)
    assert all(pq.read_table(f(ws)).equals(b) for f, b in zip((noise_file, mixtures_file, noisy_clips_file), before))


def test_folder_and_far_channel_noise_combine(far_ws, tmp_path, prefect_harness):
    from flows.mix import mix_flow

    folder = _noise_folder(tmp_path / "noise")
    lib = build_noise_library(far_ws, NoiseLibraryConfig(folder=folder, supplemental=False, noise_from_channel="far"))
    assert len(lib) == 6 + 9
    by_source = {(cls, ch) for cls, ch in zip(lib.classes, lib.source_channels)}
    assert by_source == {("aircon", None), ("hum", None), ("knocks", None), ("fan-far", "far"), ("valve-far", "far")}
    # the default held-out rule picks among the folder classes: adding far noise leaves it as it was
    held = {c for c, h in zip(lib.classes, lib.held_out) if h}
    assert held == {c for c, h in zip(*_folder_only(far_ws, folder)) if h} == {"hum"}

    report = mix_flow(workspace=str(far_ws.root), noise=str(folder), noise_from_channel="far", seed=3, mixtures_per_clip=8)
    assert report["channel_noise_recordings"] == 9 and report["noise_recordings"] == 15
    lib = read_noise_library(far_ws)
    channel = dict(zip(lib.ids, lib.source_channels))
    source = dict(zip(lib.ids, lib.source_clip_ids))
    rows = read_mixtures(far_ws)
    assert {channel[r["noise_id"]] for r in rows} == {None, "far"}  # both kinds of noise in training mixtures
    assert all(source[r["noise_id"]] != r["clip_id"] for r in rows)
    mix_flow(workspace=str(far_ws.root), noise_from_channel="far", seed=3, mixtures_per_clip=4)  # back, for other tests


def _folder_only(ws: Workspace, folder: Path):
    lib = build_noise_library(ws, NoiseLibraryConfig(folder=folder, supplemental=False))
    return lib.classes, lib.held_out


def test_noise_files_written_before_source_columns_still_read(far_mixed, tmp_path):
    ws, _ = far_mixed
    old = noise_table(read_noise_library(ws)).drop_columns(["source_clip_id", "source_channel"])
    ws_old = Workspace(tmp_path / "old").ensure()
    noise_file(ws_old).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(old, noise_file(ws_old))
    lib = read_noise_library(ws_old)
    assert len(lib) == 9 and lib.source_clip_ids == [None] * 9 and lib.source_channels == [None] * 9
    assert lib.own("anything") == set()


def test_errors_name_the_problem(tmp_path, ingest_tree):
    with pytest.raises(MixingError, match=r"noise_from_channel must be far .* got 'left'"):
        NoiseLibraryConfig(noise_from_channel="left")
    with pytest.raises(MixingError, match="got 'near'"):
        NoiseLibraryConfig(noise_from_channel="near")
    # a mono workspace: no far channels
    mono = tmp_path / "mono" / "valve" / "train"
    for i in range(3):
        wave = 0.1 * np.random.default_rng(i).standard_normal(SR)
        _write(mono / f"section_00_source_train_normal_{i:04d}_noAttribute.wav", wave.astype(np.float32))
    ws = ingest_tree(tmp_path / "ws-mono", tmp_path / "mono", "d23")
    expected = f"workspace {tmp_path / 'ws-mono'} have no far channel; ingest two-channel"
    with pytest.raises(MixingError, match=re.escape(expected)) as e:
        build_noise_library(ws, NoiseLibraryConfig(supplemental=False, noise_from_channel="far"))
    assert "\n" not in str(e.value)
    # every far channel flagged
    ws2 = ingest_tree(tmp_path / "ws-silent", _two_channel_tree(tmp_path / "t1", {"fan": 1}, test=0, silent=("fan", 0)), "d26")
    with pytest.raises(MixingError, match=r"every far channel .* is flagged \(silent\)"):
        build_noise_library(ws2, NoiseLibraryConfig(supplemental=False, noise_from_channel="far"))
    with pytest.raises(MixingError, match="--noise-from-channel far"):
        build_noise_library(ws2, NoiseLibraryConfig(supplemental=False))


def test_cli_rejects_an_unknown_role_in_one_line(tmp_path, capsys):
    from flows.cli import main

    assert main(["mix", "--workspace", str(tmp_path / "ws"), "--noise-from-channel", "left"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: noise_from_channel must be far") and "\n" not in err
