"""A recording replaced under the same name changes every result derived from it (issue 18, part 1).

Each test replaces one WAV of a copy of the demo tree with other audio, re-ingests, and checks
that embeddings, scores, noisy clips and trained models follow the new content, while
unchanged clips are reused; the reference is a fresh workspace built from the changed tree.
"""

from __future__ import annotations

import os
import shutil

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from asd_core.config import Workspace
from asd_core.storage.paths import embedding_files
from asd_core.encoders import get_encoder


def _copy_tree(demo_small, dest):
    shutil.copytree(demo_small, dest)
    return dest


def _wav(tree, split: str, label: str, machine: str = "fan"):
    return sorted((tree / "dev_data" / "raw" / machine / split).glob(f"*_{label}_*.wav"))


def _replace_audio(target, source) -> None:
    """Write ``source``'s audio (reversed, so it differs from every clip) under ``target``'s name."""
    wave, sr = sf.read(source, dtype="int16")
    sf.write(target, wave[::-1].copy(), sr, subtype="PCM_16")
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a copy tool may keep the size; the mtime moves


def _clip_id(ws: Workspace, name: str) -> str:
    con = duckdb.connect(str(ws.duckdb_path), read_only=True)
    try:
        return con.execute("SELECT clip_id FROM clips WHERE relative_path LIKE ?", [f"%{name}"]).fetchone()[0]
    finally:
        con.close()


def _scores(ws: Workspace, run_id: str) -> dict[str, float]:
    con = duckdb.connect(str(ws.duckdb_path), read_only=True)
    try:
        return dict(con.execute("SELECT clip_id, score FROM scores WHERE run_id = ?", [run_id]).fetchall())
    finally:
        con.close()


def _vectors(ws: Workspace) -> dict[str, np.ndarray]:
    enc = get_encoder("logmel-stats")
    out = {}
    for path in embedding_files(ws, enc.name, enc.version):
        t = pq.read_table(path)
        for cid, vec in zip(t.column("clip_id").to_pylist(), t.column("vector").to_pylist()):
            out[cid] = np.asarray(vec, np.float32)
    return out


@pytest.mark.slow
def test_replaced_recording_is_embedded_and_scored_again(tmp_path, demo_small, prefect_harness):
    from flows.embed import embed_flow
    from flows.ingest import ingest_flow
    from flows.score import score_flow
    from asd_core.scoring.run import StaleEmbeddingsError

    tree = _copy_tree(demo_small, tmp_path / "tree")
    ws = Workspace(tmp_path / "ws")
    ingest_flow(roots=[str(tree)], workspace=str(ws.root), dataset_name="demo")
    assert embed_flow(workspace=str(ws.root), encoder="logmel-stats")["embedded"] == 270
    before = score_flow(workspace=str(ws.root), encoder="logmel-stats", normalization="knn")
    old_scores, old_vectors = _scores(ws, before["run_id"]), _vectors(ws)

    test_clip, train_clip = _wav(tree, "test", "anomaly")[0], _wav(tree, "train", "normal")[0]
    _replace_audio(test_clip, _wav(tree, "test", "normal")[3])
    _replace_audio(train_clip, _wav(tree, "train", "normal")[5])
    ingest_flow(roots=[str(tree)], workspace=str(ws.root), dataset_name="demo")
    test_id, train_id = _clip_id(ws, test_clip.name), _clip_id(ws, train_clip.name)

    # scoring the old vectors of the new recordings is refused, not silently done
    with pytest.raises(StaleEmbeddingsError, match=r"2 fan clip\(s\) changed since they were embedded"):
        score_flow(workspace=str(ws.root), encoder="logmel-stats", normalization="knn")

    again = embed_flow(workspace=str(ws.root), encoder="logmel-stats")
    assert (again["embedded"], again["reused"]) == (2, 268)
    new_vectors = _vectors(ws)
    assert {c for c in new_vectors if not np.array_equal(new_vectors[c], old_vectors[c])} == {test_id, train_id}
    after = score_flow(workspace=str(ws.root), encoder="logmel-stats", normalization="knn")
    assert after["run_id"] == before["run_id"]
    new_scores = _scores(ws, after["run_id"])
    assert new_scores[test_id] != pytest.approx(old_scores[test_id], rel=1e-6)

    # the reference: a workspace built from scratch on the changed tree gives the same vectors and scores
    fresh = Workspace(tmp_path / "fresh")
    ingest_flow(roots=[str(tree)], workspace=str(fresh.root), dataset_name="demo")
    embed_flow(workspace=str(fresh.root), encoder="logmel-stats")
    ref = score_flow(workspace=str(fresh.root), encoder="logmel-stats", normalization="knn")
    ref_vectors, ref_scores = _vectors(fresh), _scores(fresh, ref["run_id"])
    assert set(ref_vectors) == set(new_vectors)
    assert all(np.array_equal(ref_vectors[c], new_vectors[c]) for c in ref_vectors)
    assert set(ref_scores) == set(new_scores)
    assert [new_scores[c] for c in sorted(ref_scores)] == pytest.approx([ref_scores[c] for c in sorted(ref_scores)], rel=1e-12)

    # unchanged: nothing is embedded again
    assert embed_flow(workspace=str(ws.root), encoder="logmel-stats")["embedded"] == 0


def test_embeddings_without_content_keys_are_recomputed(tmp_path, demo_small, ingest_tree, prefect_harness):
    """Files written before content keys existed cannot prove what they were computed from."""
    from flows.embed import embed_flow

    ws = ingest_tree(tmp_path / "ws", demo_small)
    embed_flow(workspace=str(ws.root), encoder="logmel-stats")
    enc = get_encoder("logmel-stats")
    legacy = embedding_files(ws, enc.name, enc.version)[0]
    table = pq.read_table(legacy)
    pq.write_table(table.drop(["content_key"]), legacy)
    report = embed_flow(workspace=str(ws.root), encoder="logmel-stats")
    assert report["embedded"] == table.num_rows and report["reused"] == 270 - table.num_rows
    assert pq.read_table(legacy).column("content_key").null_count == 0


@pytest.mark.slow
def test_noisy_clips_follow_their_clean_recording(tmp_path, demo_small, prefect_harness):
    from flows.embed import embed_flow
    from flows.ingest import ingest_flow
    from flows.mix import mix_flow
    from asd_core.mixing.artifacts import StalePlanError, noisy_rows_by_partition

    tree = _copy_tree(demo_small, tmp_path / "tree")
    ws = Workspace(tmp_path / "ws")
    ingest_flow(roots=[str(tree)], workspace=str(ws.root), dataset_name="demo")
    mix_flow(workspace=str(ws.root), noise=str(tree / "noise"), seed=1)
    first = embed_flow(workspace=str(ws.root), encoder="logmel-stats", noisy=True)
    noisy_total = first["embedded"] - 270

    clip = _wav(tree, "test", "normal")[0]
    _replace_audio(clip, _wav(tree, "test", "normal")[4])
    ingest_flow(roots=[str(tree)], workspace=str(ws.root), dataset_name="demo")
    cid = _clip_id(ws, clip.name)
    # the plan's gains were measured on the old audio: refused until `asd mix` re-plans
    with pytest.raises(StalePlanError, match=f"clip {cid} changed since `asd mix` planned"):
        embed_flow(workspace=str(ws.root), encoder="logmel-stats", noisy=True)
    mix_flow(workspace=str(ws.root), noise=str(tree / "noise"), seed=1)
    versions = sum(r["clip_id"] == cid for rows in noisy_rows_by_partition(ws).values() for r in rows)
    assert versions == 12  # 3 subsets x 4 SNR bins
    again = embed_flow(workspace=str(ws.root), encoder="logmel-stats", noisy=True)
    assert (again["embedded"], again["reused"]) == (1 + versions, 269 + noisy_total - versions)


def test_teacher_retrains_when_its_training_audio_changes(tmp_path, demo_small, ingest_tree):
    import json

    from asd_core.models.teacher import TeacherConfig
    from asd_core.training.teacher import TeacherTrainConfig, train_teacher

    tree = _copy_tree(demo_small, tmp_path / "tree")
    ws = ingest_tree(tmp_path / "ws", tree)
    cfg = TeacherTrainConfig(model=TeacherConfig(n_mels=16, channels=(4, 8), embedding_dim=8), epochs=1, batch_size=64)
    first = train_teacher(ws, cfg, device="cpu")
    first_key = json.loads((first.model_dir / "config.json").read_text())["data_key"]
    assert train_teacher(ws, cfg, device="cpu").resumed_from == 1  # unchanged data: the finished model is reused

    for i in range(4):  # some training clips are in the validation split
        _replace_audio(_wav(tree, "train", "normal")[i], _wav(tree, "train", "normal")[7 + i])
    ingest_tree(tmp_path / "ws", tree)
    second = train_teacher(ws, cfg, device="cpu")
    assert second.resumed_from is None and second.model_dir == first.model_dir
    assert second.model_hash != first.model_hash
    assert json.loads((second.model_dir / "config.json").read_text())["data_key"] != first_key
