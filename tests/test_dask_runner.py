"""Embedding and scoring shards on a real distributed.LocalCluster (2 worker processes) give
exactly what the local thread runner gives."""

import numpy as np
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow


def _outputs(ws, encoder="logmel-stats"):
    from asd_core.storage.paths import embedding_files
    from asd_core.encoders import get_encoder

    enc = get_encoder(encoder)
    emb = {}
    for f in embedding_files(ws, enc.name, enc.version):
        t = pq.read_table(f)
        emb.update(zip(t.column("clip_id").to_pylist(), np.asarray(t.column("vector").to_pylist(), np.float32)))
    scores = {}
    for f in sorted(ws.artifact_dir("scores").rglob("scores.parquet")):
        t = pq.read_table(f)
        scores.update({(r, c): (s, d) for r, c, s, d in zip(*(t.column(k).to_pylist() for k in ("run_id", "clip_id", "score", "decision")))})
    thresholds = sorted(tuple(r.values()) for f in ws.artifact_dir("scores").rglob("thresholds.parquet") for r in pq.read_table(f).to_pylist())
    return emb, scores, thresholds


def test_dask_local_cluster_equals_thread_runner(tmp_path, demo_small, ingest_tree, prefect_harness):
    from distributed import LocalCluster
    from prefect_dask import DaskTaskRunner

    from flows.embed import embed_flow
    from flows.score import score_flow

    local, dask = ingest_tree(tmp_path / "local", demo_small), ingest_tree(tmp_path / "dask", demo_small)
    embed_flow(workspace=str(local.root), encoder="logmel-stats", threads=1)
    for norm in ("none", "knn"):
        score_flow(workspace=str(local.root), encoder="logmel-stats", normalization=norm, threads=1)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        runner = DaskTaskRunner(address=cluster.scheduler_address)
        report = embed_flow.with_options(task_runner=runner)(workspace=str(dask.root), encoder="logmel-stats", threads=1)
        for norm in ("none", "knn"):
            score_flow.with_options(task_runner=runner)(workspace=str(dask.root), encoder="logmel-stats", normalization=norm, threads=1)
        with cluster.get_client() as client:
            seen = client.run(lambda: (__import__("os").getpid(), "asd_core.scoring.run" in __import__("sys").modules))
    assert len({pid for pid, _ in seen.values()}) == 2  # two worker processes ...
    assert any(ran for _, ran in seen.values())  # ... and the shards ran in them (the worker imported the scoring code)
    assert report["embedded"] == 270 and len(report["partitions"]) == 3

    emb_l, scores_l, thr_l = _outputs(local)
    emb_d, scores_d, thr_d = _outputs(dask)
    assert emb_l.keys() == emb_d.keys() and len(emb_l) == 270
    assert all(np.array_equal(emb_l[k], emb_d[k]) for k in emb_l)
    assert scores_l == scores_d and len(scores_l) == 2 * 120
    assert thr_l == thr_d
