"""Score flow: one task per shard (machine type) fits or re-uses its section indexes and scores
its test clips on the flow's task runner (threads, or Dask workers via ``with_options``);
the flow writes the run's Parquet and publishes it to DuckDB once."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from asd_core.config import DEFAULT_WORKSPACE_NAME, Workspace
from asd_core.runtime import configure_threads
from asd_core.scoring import ScoringConfig
from asd_core.scoring.distances import ScoringInputError
from asd_core.scoring.run import (data_snapshot, load_sections, machine_types_with_embeddings, run_id_for,
                                  score_section, write_run)
from asd_core.storage.catalog import publish_run
from asd_core.storage.embeddings import read_encoder_card


@task(cache_policy=NO_CACHE, task_run_name="score-{machine_type}")
def score_machine_type(ws: Workspace, encoder: str, version: str, machine_type: str, cfg: ScoringConfig, strict: bool,
                       noisy: bool = False, threads: int | None = None):
    configure_threads(threads)  # this task may run in another process (a Dask worker)
    results, skipped = [], []
    for sec in load_sections(ws, encoder, version, machine_type, noisy):
        try:
            results.append(score_section(ws, encoder, version, sec, cfg))
        except ScoringInputError as exc:
            if strict:
                raise
            skipped.append(str(exc))
    return results, skipped


@flow(name="asd-score", task_runner=ThreadPoolTaskRunner(max_workers=2))
def score_flow(workspace: str = DEFAULT_WORKSPACE_NAME, encoder: str = "logmel-stats", normalization: str = "knn",
               k: int = 1, r: float = 0.9, metric: str | None = None, threshold_quantile: float = 0.9,
               index_type: str = "exact", strict: bool = False, threads: int | None = None,
               encoder_version: str | None = None, noisy: bool = False) -> dict:
    """Score every section's test clips; one run per configuration (re-running replaces its rows).

    A section that cannot be scored (no references, fewer than K + 1, ...) is skipped with its
    reason, or fails the run with ``strict``; nothing published changes when the run fails.
    ``noisy`` also scores the noisy test clips of ``asd mix`` (metrics per noise subset and SNR bin).
    """
    log = get_run_logger()
    configure_threads(threads)
    ws = Workspace(Path(workspace))
    card = read_encoder_card(ws, encoder, encoder_version)
    name, version = card["name"], card["version"]
    cfg = ScoringConfig(normalization=normalization, metric=metric or card["distance"], k=k, r=r,
                        index_type=index_type, threshold_quantile=threshold_quantile)
    machine_types = machine_types_with_embeddings(ws, name, version)
    futures = [score_machine_type.submit(ws, name, version, mt, cfg, strict, noisy, threads) for mt in machine_types]
    results, skipped = [], []
    for f in futures:
        res, skip = f.result()
        results += res
        skipped += skip
    for reason in skipped:
        log.warning("section skipped: %s", reason)
    if not results:
        raise ScoringInputError("no section could be scored:\n  " + "\n  ".join(skipped))
    run_id = run_id_for(name, version, cfg, noisy)
    scores_path, thr_path = write_run(ws, run_id, results)
    used = [cid for r in results for cid in r.test_ids]
    run = {"run_id": run_id, "encoder": name, "encoder_version": version, "normalization": cfg.normalization,
           "params": {**cfg.params(), "data_snapshot": data_snapshot(ws, used), "skipped_sections": skipped,
                      **({"test_set": "clean+noisy"} if noisy else {})},
           "transductive": cfg.transductive}
    publish_run(ws, run, scores_path, thr_path)
    log.info("run %s: %d test clips in %d sections scored (%d indexes re-used), %d sections skipped",
             run_id, len(used), len(results), sum(r.index_reused for r in results), len(skipped))
    return {**run, "sections": len(results), "scored": len(used), "skipped": skipped,
            "indexes_reused": sum(r.index_reused for r in results)}
