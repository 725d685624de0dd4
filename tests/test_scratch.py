"""Disk-backed scratch matrices (storage/scratch.py): the teacher's and the student's training clips
live in an unnamed file of the workspace, hold exactly what the in-memory read holds, and leave
nothing behind."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import numpy as np
import pytest

from asd_core.config import Workspace
from asd_core.storage.audio import read_waves
from asd_core.storage.scratch import scratch_clips, scratch_matrix


def _mapped_from(root: Path) -> list[str]:
    """Lines of /proc/self/maps whose file lies under ``root``."""
    return [line for line in Path("/proc/self/maps").read_text().splitlines() if str(root) in line]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_scratch_matrix_is_mapped_from_an_unnamed_workspace_file(tmp_path):
    ws = Workspace(tmp_path / "ws")
    m = scratch_matrix(ws, 4, 50_000)
    assert isinstance(m, np.memmap) and m.dtype == np.float32 and m.shape == (4, 50_000)
    assert not m.any()  # zero-filled: rows shorter than the width are padded with zeros
    m[2, :3] = [1.0, -2.0, 0.5]
    assert m[2, :4].tolist() == [1.0, -2.0, 0.5, 0.0]
    assert _mapped_from(ws.root), "the matrix is not mapped from a file in the workspace"
    assert os.listdir(ws.root) == []  # no name: nothing for a crash or a kill to leave behind
    del m
    gc.collect()
    assert not _mapped_from(ws.root) and os.listdir(ws.root) == []


def test_scratch_clips_hold_each_wave_at_its_own_length(tmp_path):
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(k).astype(np.float32) for k in (300, 120, 301))
    clips = scratch_clips(Workspace(tmp_path), {"a": 300, "b": 120, "c": 300, "gone": 50},
                          [("a", a), ("b", b), ("c", c), ("other", a)])
    assert sorted(clips) == ["a", "b", "c"] and len(clips) == 3
    assert "gone" not in clips and "other" not in clips
    np.testing.assert_array_equal(clips["a"], a)
    np.testing.assert_array_equal(clips["b"], b)  # shorter than the matrix: its own 120 samples
    assert len(clips["c"]) == 301  # not the planned length: kept whole, so render's length check reports it
    np.testing.assert_array_equal(clips["c"], c)

    # A clip read twice keeps its last read, whichever kind each read is, and is counted once.
    twice = scratch_clips(Workspace(tmp_path), {"a": 300, "c": 300}, [("a", c), ("a", a), ("c", a), ("c", c)])
    assert sorted(twice) == ["a", "c"] and len(twice) == 2
    np.testing.assert_array_equal(twice["a"], a)
    np.testing.assert_array_equal(twice["c"], c)


def _in_memory_training_waves(ws: Workspace, ids: list[str], n: int) -> np.ndarray:
    """Independent of load_training_set: every clip read into memory, padded or cropped to ``n``."""
    waves = read_waves(ws, set(ids))
    return np.stack([np.pad(waves[c], (0, max(0, n - len(waves[c]))))[:n] for c in ids])


def test_training_set_equals_the_in_memory_read(tmp_path, demo_small, ingest_tree, monkeypatch):
    from asd_core.training import data

    ws = ingest_tree(tmp_path / "ws", demo_small)
    full = data.load_training_set(ws, clip_seconds=1.5)
    n = int(1.5 * 16000)
    assert full.waves.shape == (len(full.clip_ids), n) and isinstance(full.waves, np.memmap)
    assert full.clip_ids == sorted(full.clip_ids) and len(full.clip_ids) > 100
    np.testing.assert_array_equal(full.waves, _in_memory_training_waves(ws, full.clip_ids, n))
    longer = data.load_training_set(ws, clip_seconds=2.5)  # padded past the 2 s clips
    np.testing.assert_array_equal(longer.waves, _in_memory_training_waves(ws, longer.clip_ids, int(2.5 * 16000)))

    # Clips listed in `clips` without stored audio are left out; the rows after them move up in place.
    dropped = set(full.clip_ids[::7])
    stream = data.stream_waves
    monkeypatch.setattr(data, "stream_waves", lambda w, wanted: ((c, x) for c, x in stream(w, wanted) if c not in dropped))
    part = data.load_training_set(ws, clip_seconds=1.5)
    kept = [c for c in full.clip_ids if c not in dropped]
    assert part.clip_ids == kept and part.labels == [l for c, l in zip(full.clip_ids, full.labels) if c not in dropped]
    np.testing.assert_array_equal(part.waves, _in_memory_training_waves(ws, kept, n))
