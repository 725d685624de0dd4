"""``asd make-demo-data --difficulty hard`` (issue 17 part 1): three sections per machine type,
per-clip site nuisance on top of the standard renderer and only anomalies a spectral mean cannot
see. A clip's machine sound is what the standard renderer makes of its attributes and anomaly, only
the background changes; the output is deterministic; ``standard`` (the default) writes the same
bytes as before the option existed."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from asd_core.demo import make_demo_data
from asd_core.demo.generate import HARD_SECTIONS, _plan_held_out, _plan_machine, _render_clip
from asd_core.demo.machines import MACHINES
from asd_core.storage.paths import all_files
from tests.test_demo_two_channel import MONO_TREE_SHA256, SEED, TINY, _rms, _tree_hash

# the tiny tree of the two-channel test; its one-channel hash is the standard tree's
STANDARD_TREE_SHA256 = MONO_TREE_SHA256


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard")
    out = {name: root / name for name in ("standard", "hard", "hard_again")}
    make_demo_data(out["standard"], seed=SEED, size=TINY, held_out=True, difficulty="standard")
    for name in ("hard", "hard_again"):
        make_demo_data(out[name], seed=SEED, size=TINY, held_out=True, difficulty="hard")
    return out


def test_standard_is_unchanged_and_hard_is_deterministic(trees):
    assert _tree_hash(trees["standard"]) == STANDARD_TREE_SHA256
    assert _tree_hash(trees["hard"]) == _tree_hash(trees["hard_again"])
    assert _tree_hash(trees["hard"]) != STANDARD_TREE_SHA256


def test_hard_has_three_sections_per_machine_type_in_dcase_names(trees):
    hard = trees["hard"]
    for machine in TINY.machines:
        raw = hard / "dev_data" / "raw" / machine
        assert sorted(p.name for p in raw.glob("attributes_*.csv")) == [f"attributes_{s:02d}.csv" for s in range(3)]
        sections = Counter(p.name[:10] for p in (raw / "test").glob("*.wav"))
        assert sections == {f"section_{s:02d}": 4 * TINY.test_per_cell for s in range(HARD_SECTIONS)}
        held = sorted(p.name for p in (hard / "held_out" / "test" / machine).iterdir())
        assert held == [f"section_{s:02d}" for s in range(HARD_SECTIONS)]


def test_machine_sound_is_the_standard_one_and_only_the_background_varies():
    hard = replace(TINY, sections=HARD_SECTIONS, nuisance=True)
    gains, anomalous = [], []
    for machine in TINY.machines:
        for job in _plan_machine(Path("/unused"), machine, hard, SEED):
            a = _render_clip(job, replace(hard, nuisance=False), SEED, channels=2).pair
            b = _render_clip(job, hard, SEED, channels=2).pair
            np.testing.assert_array_equal(a.machine, b.machine)
            gains.append(20 * np.log10(_rms(b.near_noise) / _rms(a.near_noise)))
            anomalous.append(job.anomaly is not None)
    gains, anomalous = np.array(gains), np.array(anomalous)
    # every clip's background changes, over a range of levels (nuisance.py: -3..+6 dB plus tilt and interference)
    assert gains.std() > 1.5 and gains.max() - gains.min() > 5
    # drawn alike for normal and anomalous clips: the level says nothing about the label
    assert abs(gains[anomalous].mean() - gains[~anomalous].mean()) < 1.5


def test_hard_data_draws_only_anomalies_a_spectral_mean_cannot_see(trees):
    """No valve leak (a broadband hiss every encoder finds) and no slider missing_events (masked by
    the nuisance) in the hard data, dev and held-out alike; every other kind in turn; the standard
    data keeps all of them."""
    cell = 7  # anomalies per (section, domain): enough for every kind to come round
    sizes = {hard: replace(TINY, test_per_cell=cell, held_out_test=cell, sections=3 if hard else 1, nuisance=hard)
             for hard in (False, True)}
    for machine, model in MACHINES.items():
        for hard, size in sizes.items():
            jobs = _plan_machine(Path("/unused"), machine, size, SEED) + _plan_held_out(Path("/unused"), machine, size,
                                                                                      SEED, 0)
            drawn = Counter(j.anomaly.kind for j in jobs if j.anomaly)
            dropped = {"valve": {"leak"}, "slider": {"missing_events"}}.get(machine, set()) if hard else set()
            assert set(drawn) == set(model.anomaly_kinds) - dropped, (machine, hard)
            assert max(drawn.values()) - min(drawn.values()) <= 3 * size.sections, (machine, hard)  # in turn
    written = {(line.split("/")[2], line.split(",")[1])
               for line in (trees["hard"] / "anomalies.csv").read_text().splitlines()[1:]}
    assert written and not written & {("valve", "leak"), ("slider", "missing_events")}


def test_hard_tree_ingests_with_every_section(trees, tmp_path, ingest_tree):
    ws = ingest_tree(tmp_path / "ws", trees["hard"])
    clips = [r for p in all_files(ws, "clips") for r in pq.read_table(p).to_pylist()]
    sections = {(r["machine_type"], r["section"]) for r in clips}
    assert sections == {(m, f"{s:02d}") for m in TINY.machines for s in range(HARD_SECTIONS)}
    assert {r["domain"] for r in clips} == {"source", "target"}


def test_cli_option_and_unknown_difficulty(tmp_path, capsys):
    from flows.cli import main

    out = tmp_path / "demo"
    assert main(["make-demo-data", str(out), "--seed", "1", "--difficulty", "hard"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (out / "dev_data/raw/valve/attributes_02.csv").exists()
    with pytest.raises(SystemExit):
        main(["make-demo-data", str(tmp_path / "x"), "--difficulty", "harder"])
    with pytest.raises(ValueError, match="difficulty must be one of standard, hard"):
        make_demo_data(tmp_path / "y", size=TINY, difficulty="harder")
