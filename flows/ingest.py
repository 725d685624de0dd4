"""Ingest flow: scan roots, ingest each (dataset, machine type) in parallel, publish to DuckDB."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from asd_core.config import CHANNEL_ROLES, AudioConfig, DEFAULT_WORKSPACE_NAME, IngestConfig, PIPELINE_SAMPLE_RATE, Workspace
from asd_core.datasets.audio_io import TransientIOError
from asd_core.ingest import GroupResult, ingest_group, plan_ingest, summarize_clips, write_quarantine
from asd_core.storage.catalog import publish_ingest


# Idempotency lives in asd_core (content hashes per file), so Prefect result caching is off;
# retries cover transient I/O errors (asd_core raises TransientIOError for those).
def _transient(task, task_run, state) -> bool:
    """Retry I/O errors that may pass (TransientIOError), not a file's or a user's mistake."""
    return isinstance(state.result(raise_on_failure=False), TransientIOError)


@task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=_transient, cache_policy=NO_CACHE,
      task_run_name="ingest-{dataset}-{machine_type}")
def ingest_machine_type(ws: Workspace, dataset: str, machine_type: str, candidates: list, roots_now: list[str],
                        cfg: IngestConfig, unlisted: list[tuple[str, str]]) -> GroupResult:
    return ingest_group(ws, dataset, machine_type, candidates, roots_now, cfg, unlisted)


@task(cache_policy=NO_CACHE)
def publish(ws: Workspace) -> None:
    publish_ingest(ws)


@flow(name="asd-ingest", task_runner=ThreadPoolTaskRunner(max_workers=2))
def ingest_flow(
    roots: list[str],
    workspace: str = DEFAULT_WORKSPACE_NAME,
    dataset_name: str | None = None,
    channel: str = "auto",
    sample_rate: int = PIPELINE_SAMPLE_RATE,
    storage_dtype: str = "int16",
    ground_truth: str | None = None,
    min_relative_duration: float = 0.5,
    channels: str = "auto",
    channel_roles: str = ",".join(CHANNEL_ROLES),
) -> dict:
    """Ingest DCASE-style dataset roots into ``<workspace>/parquet`` and ``asd.duckdb``.

    A missing, non-folder or empty root raises ``DatasetRootError`` before anything is written.
    """
    log = get_run_logger()
    cfg = IngestConfig(
        audio=AudioConfig(sample_rate=sample_rate, channel=channel, channels=channels, channel_roles=channel_roles,
                          storage_dtype=storage_dtype),
        min_relative_duration=min_relative_duration,
        ground_truth=Path(ground_truth) if ground_truth else None,
    )
    ws = Workspace(Path(workspace))
    plan = plan_ingest(ws, [Path(r) for r in roots], dataset_name, cfg)  # checks every root first
    ws.ensure()
    log.info("scanned %d root(s): %d clip files in %d (dataset, machine type) groups, %d rejected by name",
             len(roots), sum(len(c) for c in plan.groups.values()), len(plan.groups), len(plan.quarantined))
    futures = [
        ingest_machine_type.submit(ws, ds, mt, cands, plan.roots[ds], cfg, plan.unlisted.get(ds, []))
        for (ds, mt), cands in plan.groups.items()
    ]
    results: list[GroupResult] = [f.result() for f in futures]
    quarantined = plan.quarantined + [q for r in results for q in r.quarantined]
    for dataset, roots_now in plan.roots.items():
        write_quarantine(ws, dataset, roots_now, [q for q in quarantined if q.dataset == dataset])
    for q in quarantined:
        log.warning("quarantined %s", q.message())
    warnings = [w for r in results for w in r.warnings]
    for w in warnings:
        log.warning("kept with a warning: %s", w)
    publish(ws)
    summary = summarize_clips(ws, list(plan.roots))
    create_table_artifact(
        key="ingest-summary", table=summary,
        description=f"Clips per machine type / section / split / domain / label in {ws.root}",
    )
    report = {
        "workspace": str(ws.root),
        "datasets": sorted(plan.roots),
        "clips": sum(r.clips for r in results),
        "decoded": sum(r.decoded for r in results),
        "reused": sum(r.reused for r in results),
        "removed": sum(r.removed for r in results),
        "quarantined": [asdict(q) for q in quarantined],
        "warnings": warnings,
        "groups": [{k: v for k, v in asdict(r).items() if k not in ("quarantined", "warnings")} for r in results],
        "summary": summary,
    }
    log.info("ingest done: %d clips (%d decoded, %d unchanged), %d quarantined",
             report["clips"], report["decoded"], report["reused"], len(quarantined))
    return report
