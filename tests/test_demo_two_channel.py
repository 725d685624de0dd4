"""``asd make-demo-data --channels 2`` (issue 20): DCASE 2026-style near and far microphones. Every
clip two-channel, channel 0 the one-channel clip, channel 1 the machine 10-20 dB weaker and later
plus stronger, correlated (not copied) site noise; placements in microphones.csv; deterministic;
``asd ingest`` keeps both channels; and the one-channel output is unchanged by the option."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from asd_core.demo import DemoSize, make_demo_data
from asd_core.demo.generate import SAMPLE_RATE, _plan_held_out, _plan_machine, _render_clip
from asd_core.demo.microphones import FAR_DELAY_MS, FAR_GAIN_DB, FAR_NOISE_GAIN_DB
from asd_core.storage.audio import channel_waves
from asd_core.storage.paths import all_files

# every machine type, few clips (the held-out demo test's size)
TINY = DemoSize(("fan", "valve", "slider", "gearbox"), 1, 3, 2, 2, 2.0, 1, 4, 3)
SEED = 5
# sha256 of the one-channel TINY tree (seed 5, held_out=True) written before --channels existed
# (numpy 2 / libsndfile of this venv): --channels must not change a byte of it
MONO_TREE_SHA256 = "ae68cdb3653f7ecf0abbdf0cc5f5449e4abb98d6447018b8a533970f57203253"


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _wavs(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav"))


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_channel")
    out = {name: root / name for name in ("mono", "mono1", "stereo", "stereo_again")}
    make_demo_data(out["mono"], seed=SEED, size=TINY, held_out=True)
    make_demo_data(out["mono1"], seed=SEED, size=TINY, held_out=True, channels=1)
    for name in ("stereo", "stereo_again"):
        make_demo_data(out[name], seed=SEED, size=TINY, held_out=True, channels=2)
    return out


def _microphones(tree: Path) -> dict[str, dict]:
    with open(tree / "microphones.csv", newline="") as fh:
        return {r["path"]: r for r in csv.DictReader(fh)}


def _jobs(tree: Path):
    return [j for m in TINY.machines for j in _plan_machine(tree, m, TINY, SEED) + _plan_held_out(tree, m, TINY, SEED, 3)]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x)))


def _peak_correlation(a: np.ndarray, b: np.ndarray, max_lag: int) -> float:
    """Largest normalised cross-correlation of ``a`` and ``b`` within +-``max_lag`` samples."""
    a, b = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    n = a.size
    cc = np.fft.irfft(np.fft.rfft(a, 2 * n) * np.conj(np.fft.rfft(b, 2 * n)), 2 * n) / n
    return float(np.max(np.r_[cc[: max_lag + 1], cc[-max_lag:]]))


def test_one_channel_output_is_unchanged(trees):
    assert _tree_hash(trees["mono"]) == MONO_TREE_SHA256
    assert _tree_hash(trees["mono1"]) == MONO_TREE_SHA256
    assert not (trees["mono"] / "microphones.csv").exists()


def test_every_clip_is_two_channel_and_channel_0_is_the_mono_clip(trees):
    mono, stereo = trees["mono"], trees["stereo"]
    wavs = _wavs(stereo)
    assert wavs == _wavs(mono)  # same names: the DCASE 2023+ scheme, held-out clips included
    assert any(w.startswith("held_out/") for w in wavs) and any("_target_test_anomaly_" in w for w in wavs)
    for rel in wavs:
        info = sf.info(stereo / rel)
        if rel.startswith("noise/"):  # the noise library stays mono, the same files
            assert info.channels == 1 and (stereo / rel).read_bytes() == (mono / rel).read_bytes()
            continue
        assert (info.channels, info.samplerate, info.subtype) == (2, SAMPLE_RATE, "PCM_16")
        two, _ = sf.read(stereo / rel, dtype="int16")
        one, _ = sf.read(mono / rel, dtype="int16")
        assert two.shape == (one.size, 2)
        np.testing.assert_array_equal(two[:, 0], one)
        assert np.abs(two[:, 1].astype(float) - two[:, 0]).mean() > 100  # the far channel is another signal
    for name in ("anomalies.csv", "held_out/labels.csv", "dev_data/raw/fan/attributes_00.csv"):
        assert (stereo / name).read_bytes() == (mono / name).read_bytes()


def test_deterministic(trees, tmp_path):
    assert _tree_hash(trees["stereo"]) == _tree_hash(trees["stereo_again"])
    other = tmp_path / "other"
    make_demo_data(other, seed=SEED + 1, size=TINY, channels=2)
    rel = "dev_data/raw/fan/train/" + sorted(p.name for p in (other / "dev_data/raw/fan/train").iterdir())[0]
    assert (other / rel).read_bytes() != (trees["stereo"] / rel).read_bytes()


def test_microphones_csv_matches_the_far_channel(trees):
    stereo = trees["stereo"]
    mics = _microphones(stereo)
    assert set(next(iter(mics.values()))) == {"path", "far_gain_db", "far_delay_ms", "far_noise_gain_db"}
    assert sorted(mics) == [w for w in _wavs(stereo) if not w.startswith("noise/")]
    jobs = _jobs(stereo)
    assert {j.path.relative_to(stereo).as_posix() for j in jobs} == set(mics)
    delays, zero_lag = [], {}
    for job in jobs:
        row = mics[job.path.relative_to(stereo).as_posix()]
        gain_db, delay_ms = float(row["far_gain_db"]), float(row["far_delay_ms"])
        assert FAR_GAIN_DB[0] <= gain_db <= FAR_GAIN_DB[1]
        assert FAR_DELAY_MS[0] - 0.04 <= delay_ms <= FAR_DELAY_MS[1] + 0.04
        assert FAR_NOISE_GAIN_DB[0] <= float(row["far_noise_gain_db"]) <= FAR_NOISE_GAIN_DB[1]
        clip = _render_clip(job, TINY, SEED, channels=2)
        pair = clip.pair
        audio, _ = sf.read(job.path, dtype="float64")
        np.testing.assert_allclose(audio[:, 1], clip.audio[:, 1], atol=1 / 32768)  # the far channel never clips
        # the machine part of the far channel in the file (the file minus its noise part), against the
        # machine part of the near channel: weaker by the drawn gain, later by the drawn delay, and
        # otherwise the same signal, so an anomaly reaches the far microphone too
        far_machine = audio[:, 1] - clip.scale * pair.far_noise
        near_machine = clip.scale * pair.machine
        assert 20 * np.log10(_rms(near_machine) / _rms(far_machine)) == pytest.approx(gain_db, abs=0.5)
        lag = int(round(delay_ms * SAMPLE_RATE / 1000))
        np.testing.assert_allclose(far_machine, 10 ** (-gain_db / 20) * np.roll(near_machine, lag), atol=3e-4)
        # the site noise: stronger at the far microphone, correlated with the near channel's, not a copy
        assert 20 * np.log10(_rms(pair.far_noise) / _rms(pair.near_noise)) == \
            pytest.approx(float(row["far_noise_gain_db"]), abs=0.01)
        # (with the paths lined up: the far microphone hears the sources 0.25-1.5 ms earlier)
        assert 0.2 < _peak_correlation(pair.near_noise, pair.far_noise, SAMPLE_RATE // 50) < 0.95
        zero_lag.setdefault(job.domain, []).append(np.corrcoef(pair.near_noise, pair.far_noise)[0, 1])
        delays.append(delay_ms)
    assert len(set(delays)) > len(delays) // 2  # drawn per clip
    # the source (1/f) and target (1/f^1.6) sites' noise stays correlated even without lining the
    # paths up; the held-out site's whiter noise does not, at zero lag
    for domain in ("source", "target"):
        assert 0.2 < np.mean(zero_lag[domain]) < 0.95


def test_target_domain_noise_differs_from_source_on_both_channels(trees):
    """Spectral centroid of each channel's noise part: the target site's noise is darker (1/f^1.6)
    than the source site's (1/f) on the near and on the far microphone alike."""
    jobs = [j for j in _jobs(trees["stereo"]) if j.domain in ("source", "target")]

    def centroid(x: np.ndarray) -> float:
        p = np.abs(np.fft.rfft(x - x.mean())) ** 2
        return float((np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE) * p).sum() / p.sum())

    by_domain: dict[str, list[tuple[float, float]]] = {"source": [], "target": []}
    for job in jobs:
        pair = _render_clip(job, TINY, SEED, channels=2).pair
        by_domain[job.domain].append((centroid(pair.near_noise), centroid(pair.far_noise)))
    for ch in (0, 1):
        assert max(c[ch] for c in by_domain["target"]) < min(c[ch] for c in by_domain["source"])


def test_ingest_keeps_near_and_far(trees, tmp_path, ingest_tree):
    stereo = trees["stereo"]
    ws = ingest_tree(tmp_path / "ws", stereo)
    clips = [r for p in all_files(ws, "clips") for r in pq.read_table(p).to_pylist()]
    dev = [w for w in _wavs(stereo) if w.startswith("dev_data/")]
    assert sorted(r["relative_path"] for r in clips) == dev  # held_out/ and noise/ skipped, nothing quarantined
    assert {tuple(r["channel_roles"]) for r in clips} == {("near", "far")}
    ids = {r["clip_id"]: r["relative_path"] for r in clips}
    near, far = channel_waves(ws, "near", set(ids)), channel_waves(ws, "far", set(ids))
    for cid, rel in list(ids.items())[::7]:
        ref, _ = sf.read(stereo / rel, dtype="int16")
        np.testing.assert_array_equal(np.rint(near[cid] * 32768).astype(np.int16), ref[:, 0])
        np.testing.assert_array_equal(np.rint(far[cid] * 32768).astype(np.int16), ref[:, 1])


def test_cli_option(tmp_path, capsys):
    from flows.cli import main

    out = tmp_path / "demo"
    assert main(["make-demo-data", str(out), "--seed", "1", "--channels", "2"]) == 0
    said = capsys.readouterr().out
    assert "microphones.csv" in said and "far microphone" in said
    assert sf.info(next((out / "dev_data/raw/valve/test").glob("*.wav"))).channels == 2
    with pytest.raises(SystemExit):
        main(["make-demo-data", str(tmp_path / "x"), "--channels", "3"])
    with pytest.raises(ValueError, match="channels must be 1 or 2"):
        make_demo_data(tmp_path / "y", size=TINY, channels=3)
