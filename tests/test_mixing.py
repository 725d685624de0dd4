"""asd mix: exact SNR without clipping, provenance that regenerates the audio, subsets, determinism."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from asd_core.config import Workspace
from asd_core.mixing.artifacts import mixtures_file, noisy_clips_file, read_mixtures
from asd_core.mixing.noise_library import NoiseLibraryConfig, build_noise_library, read_noise_library
from asd_core.mixing.render import render
from asd_core.mixing.snr import MixingError, gains_for_snr, measured_snr, mix, noise_segment
from asd_core.storage.audio import read_waves


@pytest.mark.parametrize("snr", [-10.0, -3.3, 0.0, 7.25, 10.0, 30.0])
def test_snr_is_exact_and_clipping_is_avoided(snr):
    rng = np.random.default_rng(0)
    clean = (0.6 * rng.standard_normal(16000)).astype(np.float32)  # loud: mixtures would clip
    noise = (0.3 * rng.standard_normal(16000)).astype(np.float32)
    gains = gains_for_snr(clean, noise, snr)
    m, c, n = mix(clean, noise, gains)
    assert abs(measured_snr(c, n) - snr) < 0.01
    assert np.max(np.abs(m)) <= 0.99 + 1e-6
    assert gains.clean < 1.0  # scaled down together, SNR kept


def test_quiet_inputs_keep_unit_clean_gain():
    rng = np.random.default_rng(1)
    clean, noise = 0.01 * rng.standard_normal(8000), 0.01 * rng.standard_normal(8000)
    g = gains_for_snr(clean, noise, 5.0)
    assert g.clean == 1.0
    assert np.isclose(10 * np.log10(np.mean(clean**2) / np.mean((g.noise * noise) ** 2)), 5.0, atol=1e-9)


def test_silent_inputs_are_clear_errors():
    with pytest.raises(MixingError, match="clean clip is silent"):
        gains_for_snr(np.zeros(100), np.ones(100), 0.0)
    with pytest.raises(MixingError, match="noise segment is silent"):
        gains_for_snr(np.ones(100), np.zeros(100), 0.0)


def test_noise_segment_loops_from_offset():
    noise = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(noise_segment(noise, 7, 3), [3, 4, 0, 1, 2, 3, 4])


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, demo_small, prefect_harness, ingest_tree):
    from flows.mix import mix_flow

    ws = ingest_tree(tmp_path_factory.mktemp("ws-mix"), demo_small)
    report = mix_flow(workspace=str(ws.root), noise=str(demo_small / "noise"), seed=5)
    return ws, report


def test_mixtures_regenerate_at_the_requested_snr(mixed):
    ws, report = mixed
    lib = read_noise_library(ws)
    mixtures = read_mixtures(ws)
    noisy = pq.read_table(noisy_clips_file(ws)).to_pylist()
    assert len(mixtures) == report["mixtures"] == 150  # 3 machines x 50 normal training clips
    assert len(noisy) == report["noisy_clips"] == 120 * 3 * 4  # test clips x subsets x bins
    clean = read_waves(ws, {r["clip_id"] for r in mixtures + noisy})
    for r in mixtures + noisy[::7]:
        m, c, n = render(r, clean[r["clip_id"]], lib)
        assert abs(measured_snr(c, n) - r["snr_db"]) < 0.01
        assert np.max(np.abs(m)) <= 0.99 + 1e-6
        np.testing.assert_allclose(m, c + n, atol=1e-6)
    assert all(-10 <= r["snr_db"] <= 10 for r in mixtures)
    for r in noisy:
        lo, hi = map(float, r["snr_bin"].split(".."))
        assert lo <= r["snr_db"] <= hi


def test_subsets_keep_evaluation_noise_out_of_training(mixed):
    ws, _ = mixed
    lib = read_noise_library(ws)
    held = {c for c, h in zip(lib.classes, lib.held_out) if h}
    assert held == {"pink", "impacts"}  # default rule: the last class by name of each kind
    mixtures = read_mixtures(ws)
    noisy = pq.read_table(noisy_clips_file(ws)).to_pylist()
    train_noise = {r["noise_id"] for r in mixtures}
    assert not {r["noise_class"] for r in mixtures} & held
    assert {r["subset"] for r in mixtures} == {"stationary", "non-stationary"}
    assert not train_noise & {r["noise_id"] for r in noisy}  # held-out recordings only
    assert {r["noise_class"] for r in noisy if r["subset"] == "mismatched"} <= held
    kinds = dict(zip(lib.classes, lib.kinds))
    assert all(kinds[r["noise_class"]] == r["subset"] for r in noisy if r["subset"] != "mismatched")


def test_mix_is_deterministic_and_published(mixed, demo_small):
    from asd_core.storage.catalog import connect
    from flows.mix import mix_flow

    ws, _ = mixed
    before = pq.read_table(mixtures_file(ws)), pq.read_table(noisy_clips_file(ws))
    mix_flow(workspace=str(ws.root), noise=str(demo_small / "noise"), seed=5)
    assert pq.read_table(mixtures_file(ws)).equals(before[0]) and pq.read_table(noisy_clips_file(ws)).equals(before[1])
    with connect(ws, read_only=True) as con:
        counts = con.execute("SELECT (SELECT count(*) FROM mixtures), (SELECT count(*) FROM noisy_clips), "
                             "(SELECT count(*) FROM noise)").fetchone()
        bins = con.execute("SELECT DISTINCT snr_bin FROM noisy_clips ORDER BY 1").fetchall()
    assert counts == (before[0].num_rows, before[1].num_rows, 28)
    assert [b[0] for b in bins] == ["-10..-5", "-5..0", "0..5", "5..10"]
    other = mix_flow(workspace=str(ws.root), noise=str(demo_small / "noise"), seed=6)
    assert other["mixtures"] == 150
    assert not pq.read_table(mixtures_file(ws)).equals(before[0])
    mix_flow(workspace=str(ws.root), noise=str(demo_small / "noise"), seed=5)  # back, for the other tests


def test_kind_is_measured_without_classes_csv(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        (tmp_path / "noise" / "fanhum").mkdir(parents=True, exist_ok=True)
        (tmp_path / "noise" / "knocks").mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "noise" / "fanhum" / f"{i}.wav", 0.1 * rng.standard_normal(16000), 16000)
        x = np.zeros(16000)
        x[4000 * i : 4000 * i + 800] = rng.standard_normal(800)
        sf.write(tmp_path / "noise" / "knocks" / f"{i}.wav", x, 16000)
    lib = build_noise_library(Workspace(tmp_path / "ws"), NoiseLibraryConfig(folder=tmp_path / "noise", supplemental=False))
    assert dict(zip(lib.classes, lib.kinds)) == {"fanhum": "stationary", "knocks": "non-stationary"}
    assert not any(lib.held_out)  # one class per kind: nothing to hold out
    assert sorted(lib.splits) == ["eval", "eval", "train", "train"]


def test_bad_noise_input_names_the_file(tmp_path):
    (tmp_path / "noise" / "hum").mkdir(parents=True)
    (tmp_path / "noise" / "hum" / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(MixingError, match=r"broken\.wav"):
        build_noise_library(Workspace(tmp_path / "ws"), NoiseLibraryConfig(folder=tmp_path / "noise", supplemental=False))
    with pytest.raises(MixingError, match="noise folder does not exist"):
        build_noise_library(Workspace(tmp_path / "ws"), NoiseLibraryConfig(folder=tmp_path / "nope", supplemental=False))
    with pytest.raises(MixingError, match="not in the noise library: dog"):
        sf.write(tmp_path / "noise" / "hum" / "broken.wav", 0.1 * np.ones(1600), 16000)
        build_noise_library(Workspace(tmp_path / "ws"), NoiseLibraryConfig(folder=tmp_path / "noise", supplemental=False,
                                                                           mismatched=("dog",)))
