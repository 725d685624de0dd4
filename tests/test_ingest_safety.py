"""Ingest never destroys data by accident (issue 18): missing or empty roots change nothing, one bad
path is quarantined instead of aborting the run, float WAVs far above full scale are not hidden,
and a whole dataset goes only through the explicit ``forget_dataset``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from asd_core.config import AudioConfig, IngestConfig, Workspace
from asd_core.ingest import ingest_roots
from asd_core.ingest.layout import all_files, audio_file

SR = 16_000


def _wav(path: Path, seed: int, peak: float = 0.3, subtype: str = "PCM_16", seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).uniform(-1, 1, int(SR * seconds)).astype(np.float32)
    sf.write(path, peak * x / np.abs(x).max(), SR, subtype=subtype)
    return path


def _tree(root: Path, seed: int = 0, machine: str = "fan") -> Path:
    """A small DCASE 2021+ tree: one machine type, one section, both domains, train and test."""
    names = [f"train/section_00_source_train_normal_{i:04d}.wav" for i in range(6)]
    names += [f"train/section_00_target_train_normal_{i:04d}.wav" for i in range(2)]
    names += [f"test/section_00_{d}_test_{lab}_{i:04d}.wav" for d in ("source", "target")
              for lab in ("normal", "anomaly") for i in range(2)]
    for i, name in enumerate(names):
        _wav(root / machine / name, seed * 1000 + i, peak=0.9 if "anomaly" in name else 0.3)
    return root


def _ingest(ws: Workspace, roots: list[Path], dataset: str | None = None, cfg: IngestConfig | None = None):
    """The ingest flow's steps through the library: plan, every group, quarantine, publish."""
    run = ingest_roots(ws, roots, dataset, cfg)
    return run.groups, run.quarantined


def _sql(ws: Workspace, query: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(ws.duckdb_path), read_only=True)
    try:
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


def _snapshot(ws: Workspace) -> dict[Path, int]:
    """Every data file and its mtime (lock files, which every command holds, are not data)."""
    return {p: p.stat().st_mtime_ns for p in ws.root.rglob("*") if p.is_file() and p.suffix != ".lock"}


# --- 4. a missing or empty root removes nothing ---------------------------------------------------

@pytest.mark.parametrize("damage", ["renamed", "emptied", "replaced-by-file", "only-non-audio"])
def test_missing_or_empty_root_is_an_error_that_changes_nothing(tmp_path, damage):
    from asd_core.datasets.scan import DatasetRootError

    root = _tree(tmp_path / "dcase")
    ws = Workspace(tmp_path / "ws")
    _ingest(ws, [root])
    before = _snapshot(ws)
    assert _sql(ws, "SELECT count(*) FROM clips")[0][0] == 16

    if damage == "renamed":
        root.rename(tmp_path / "dcase-moved")
    else:
        shutil.rmtree(root)
        if damage == "replaced-by-file":
            root.write_text("not a folder")
        else:
            (root / "fan").mkdir(parents=True)  # an unmounted mount point: folders, no audio
            if damage == "only-non-audio":
                (root / "fan" / "README.txt").write_text("nothing here")
    with pytest.raises(DatasetRootError, match=str(root)):
        _ingest(ws, [root])
    assert _snapshot(ws) == before  # no partition, quarantine file or database byte touched
    assert _sql(ws, "SELECT count(*) FROM clips")[0][0] == 16


def test_one_missing_root_among_several_changes_nothing(tmp_path):
    from asd_core.datasets.scan import DatasetRootError

    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b", seed=1, machine="valve")
    ws = Workspace(tmp_path / "ws")
    _ingest(ws, [a, b], dataset="both")
    before = _snapshot(ws)
    shutil.rmtree(b)
    _wav(a / "fan/train/section_00_source_train_normal_0100.wav", 99)  # a new file in the good root
    with pytest.raises(DatasetRootError, match=f"{b}.*does not exist"):
        _ingest(ws, [a, b], dataset="both")
    assert _snapshot(ws) == before
    assert _sql(ws, "SELECT count(*) FROM clips")[0][0] == 32


def test_files_gone_from_a_root_that_still_has_files_are_removed(tmp_path):
    root = _tree(tmp_path / "dcase")
    ws = Workspace(tmp_path / "ws")
    _ingest(ws, [root])
    for p in (root / "fan/test").glob("*target*"):
        p.unlink()
    results, _ = _ingest(ws, [root])
    assert sum(r.removed for r in results) == 4
    assert _sql(ws, "SELECT count(*) FROM clips WHERE domain = 'target' AND split = 'test'")[0][0] == 0
    assert _sql(ws, "SELECT count(*) FROM clips")[0][0] == 12


def test_cli_missing_root_exits_2_naming_it(tmp_path, prefect_harness, capsys):
    from flows.cli import main

    root = _tree(tmp_path / "dcase")
    ws = Workspace(tmp_path / "ws")
    _ingest(ws, [root])
    before = _snapshot(ws)
    missing = tmp_path / "unmounted"
    assert main(["ingest", str(missing), "--workspace", str(ws.root), "--dataset-name", "dcase"]) == 2
    err = capsys.readouterr().err
    assert f"error: dataset root {missing} does not exist" in err and "nothing was ingested or removed" in err
    assert _snapshot(ws) == before


def test_unlisted_sub_folder_is_quarantined_and_its_clips_kept(tmp_path, monkeypatch):
    """A sub-folder that cannot be listed (permissions, a flaky mount) was not seen, not seen to be empty."""
    root = _tree(tmp_path / "dcase")
    ws = Workspace(tmp_path / "ws")
    _ingest(ws, [root])
    locked = root / "fan" / "test"
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    results, quarantined = _ingest(ws, [root])
    assert sum(r.removed for r in results) == 0
    assert _sql(ws, "SELECT count(*) FROM clips")[0][0] == 16
    folder = [q for q in quarantined if q.relative_path == "fan/test"]
    assert len(folder) == 1 and "cannot be listed (Permission denied)" in folder[0].reason


# --- forget_dataset: the explicit way to drop a dataset -------------------------------------------

def test_forget_dataset_removes_its_artifacts_and_nothing_else(tmp_path, prefect_harness):
    from flows.embed import embed_flow
    from flows.score import score_flow

    from asd_core.ingest.forget import ForgetReport, UnknownDatasetError, forget_dataset

    ws = Workspace(tmp_path / "ws")
    _ingest(ws, [_tree(tmp_path / "keep")])
    _ingest(ws, [_tree(tmp_path / "gone", seed=1)])
    embed_flow(workspace=str(ws.root), encoder="logmel-stats")
    run = score_flow(workspace=str(ws.root), encoder="logmel-stats", normalization="none")
    assert {r[0] for r in _sql(ws, "SELECT DISTINCT dataset FROM scored_clips")} == {"keep", "gone"}

    def artifacts(ds: str) -> list[Path]:
        return sorted(p for p in ws.root.rglob("*") if p.is_file() and (f"dataset={ds}" in p.parts or
                      (p.is_relative_to(ws.indexes) and ds in p.relative_to(ws.indexes).parts)))

    gone_before, keep_before = artifacts("gone"), {p: p.read_bytes() for p in artifacts("keep")}
    kinds = {p.relative_to(ws.root).parts[1] if p.parts[len(ws.root.parts)] == "parquet" else "indexes" for p in gone_before}
    assert kinds == {"clips", "audio", "embeddings", "indexes"}

    with pytest.raises(UnknownDatasetError, match="known datasets: gone, keep"):
        forget_dataset(ws, "nope")
    with pytest.raises(UnknownDatasetError):
        forget_dataset(ws, "..")

    dry = forget_dataset(ws, "gone", dry_run=True)
    assert isinstance(dry, ForgetReport) and not dry.nothing and dry.dry_run
    assert artifacts("gone") == gone_before  # a dry run removes nothing
    assert (dry.clips, len(dry.clip_partitions), len(dry.audio_partitions), len(dry.index_folders)) == (16, 1, 1, 1)
    assert dry.embedding_files and all("dataset=gone" in p.parts for p in dry.embedding_files)
    assert dry.scores == 8 and dry.runs == 1
    text = "\n".join(dry.lines())
    assert "would remove" in text and "16 clips" in text and "8 scores of 1 run(s)" in text

    done = forget_dataset(ws, "gone")
    assert "removed" in done.lines()[0] and done.clips == 16
    assert artifacts("gone") == []
    assert not any(p.name == "dataset=gone" for p in ws.parquet.rglob("*"))
    assert {p: p.read_bytes() for p in artifacts("keep")} == keep_before  # the other dataset is untouched
    assert _sql(ws, "SELECT DISTINCT dataset FROM clips") == [("keep",)]
    assert _sql(ws, "SELECT count(*) FROM quarantine WHERE dataset = 'gone'")[0][0] == 0
    # scores of the run stay (the run's record), but the metric views only see the clips that exist
    assert _sql(ws, "SELECT count(*) FROM scores WHERE run_id = ?", [run["run_id"]])[0][0] == 16
    assert {r[0] for r in _sql(ws, "SELECT DISTINCT dataset FROM scored_clips")} == {"keep"}
    with pytest.raises(UnknownDatasetError, match="known datasets: keep"):
        forget_dataset(ws, "gone")


# --- 5. one bad path is quarantined, not fatal ----------------------------------------------------

def test_symlink_loops_and_broken_links_are_quarantined_with_their_reason(tmp_path):
    root = _tree(tmp_path / "dcase")
    train = root / "fan" / "train"
    os.symlink("section_00_source_train_normal_0200.wav", train / "section_00_source_train_normal_0200.wav")
    os.symlink("section_00_source_train_normal_0202.wav", train / "section_00_source_train_normal_0201.wav")
    os.symlink("section_00_source_train_normal_0201.wav", train / "section_00_source_train_normal_0202.wav")
    os.symlink("does-not-exist.wav", train / "section_00_source_train_normal_0203.wav")
    os.symlink("section_00_source_train_normal_0000.wav", train / "section_00_source_train_normal_0204.wav")  # fine
    os.mkfifo(train / "section_00_source_train_normal_0205.wav")
    os.symlink("me.wav", train / "me.wav")  # a bad name on a looping link: rejected by name at scan
    ws = Workspace(tmp_path / "ws")
    results, quarantined = _ingest(ws, [root])
    reasons = {Path(q.relative_path).name[-8:]: q.reason for q in quarantined}
    assert "symlink loop" in reasons["0200.wav"]
    assert "symlink loop" in reasons["0201.wav"] and "symlink loop" in reasons["0202.wav"]
    assert "broken symlink" in reasons["0203.wav"] and "does-not-exist.wav" in reasons["0203.wav"]
    assert "not a regular file" in reasons["0205.wav"]
    assert any(q.relative_path == "fan/train/me.wav" and q.stage == "scan" for q in quarantined)
    assert sum(r.clips for r in results) == 17  # the 16 good files and the good link
    assert _sql(ws, "SELECT count(*) FROM quarantine WHERE reason LIKE '%symlink%'")[0][0] == 4


def test_a_file_that_breaks_after_an_earlier_ingest_is_quarantined(tmp_path):
    """Re-ingest over a link that became a loop: its row is dropped with the reason, the rest stays."""
    root = _tree(tmp_path / "dcase")
    ws = Workspace(tmp_path / "ws")
    _ingest(ws, [root])
    victim = root / "fan/train/section_00_source_train_normal_0003.wav"
    victim.unlink()
    os.symlink(victim.name, victim)
    results, quarantined = _ingest(ws, [root])
    assert [q.reason for q in quarantined if q.relative_path.endswith(victim.name)] == [
        "symlink loop: the link never resolves to a file (too many levels of symbolic links)"]
    assert sum(r.clips for r in results) == 15


# --- 7. float WAVs beyond full scale ----------------------------------------------------------------

@pytest.mark.parametrize("storage_dtype", ["int16", "float32"])
def test_float_wavs_beyond_full_scale_are_quarantined_or_clipped_with_a_warning(tmp_path, storage_dtype):
    root = _tree(tmp_path / "dcase")
    train = root / "fan" / "train"
    far = _wav(train / "section_00_source_train_normal_0300.wav", 1, peak=37.2, subtype="FLOAT")
    near = _wav(train / "section_00_source_train_normal_0301.wav", 2, peak=1.5, subtype="FLOAT")
    fine = _wav(train / "section_00_source_train_normal_0302.wav", 3, peak=0.99, subtype="FLOAT")
    ws = Workspace(tmp_path / "ws")
    cfg = IngestConfig(audio=AudioConfig(storage_dtype=storage_dtype))
    results, quarantined = _ingest(ws, [root], cfg=cfg)
    bad = [q for q in quarantined if q.relative_path.endswith(far.name)]
    assert len(bad) == 1 and bad[0].stage == "decode" and "37.2x full scale" in bad[0].reason
    warnings = [w for r in results for w in r.warnings]
    assert warnings == [f"{near}: float samples up to 1.50x full scale were clipped to [-1, 1]"]
    assert not any(q.relative_path.endswith((near.name, fine.name)) for q in quarantined)
    assert sum(r.clips for r in results) == 18
    ids = dict(_sql(ws, "SELECT relative_path, clip_id FROM clips"))
    audio = {r["clip_id"]: np.asarray(r["waveform"]) for r in pq.read_table(audio_file(ws, "dcase", "fan")).to_pylist()}
    full = 32767 if storage_dtype == "int16" else 1.0
    assert np.abs(audio[ids[f"fan/train/{near.name}"]]).max() == pytest.approx(full, abs=1)
    assert np.abs(audio[ids[f"fan/train/{fine.name}"]]).max() < full
    assert len(all_files(ws, "quarantine")) == 1


# --- the library's ingest equals the flow's ---------------------------------------------------------

def test_ingest_roots_writes_what_the_ingest_flow_writes(tmp_path, prefect_harness):
    """``ingest_roots`` (tests, benchmarks, library users) and ``asd ingest`` (one Prefect task per
    group) run the same steps: the same clips, audio and quarantine rows, the same DuckDB tables."""
    from flows.ingest import ingest_flow

    root = _tree(tmp_path / "dcase")
    _tree(root, seed=1, machine="valve")
    (root / "fan" / "train" / "section_00_source_train_normal_0100.wav").write_bytes(b"RIFF not a wav")
    (root / "fan" / "train" / "notes.wav").write_bytes(b"")  # rejected by name at scan
    lib, flow = Workspace(tmp_path / "lib"), Workspace(tmp_path / "flow")
    run = ingest_roots(lib, [root])
    ingest_flow(roots=[str(root)], workspace=str(flow.root))
    assert run.clips == 32 and len(run.groups) == 2
    assert sorted((q.stage, q.relative_path) for q in run.quarantined) == [
        ("probe", "fan/train/section_00_source_train_normal_0100.wav"), ("scan", "fan/train/notes.wav")]

    def rows(ws: Workspace, kind: str) -> list[dict]:
        out = [r for p in all_files(ws, kind) for r in pq.read_table(p).to_pylist()]
        return sorted(out, key=lambda r: (r.get("clip_id") or "", r.get("relative_path") or ""))

    for kind in ("clips", "audio", "quarantine"):
        assert rows(lib, kind) == rows(flow, kind), kind
        assert rows(lib, kind), kind
    for table in ("clips", "quarantine"):
        query = f"SELECT * FROM {table} ORDER BY ALL"
        assert _sql(lib, query) == _sql(flow, query), table
