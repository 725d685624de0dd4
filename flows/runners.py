"""Task runners for the shard fan-out of embedding and scoring, from ``[runner]`` of the config.

``thread``: Prefect's thread pool in this process. ``dask``: prefect-dask's DaskTaskRunner on
the cluster at ``dask_address`` (every worker must see the workspace path and have this
package installed), or on a ``distributed.LocalCluster`` of ``dask_workers`` processes that
lives as long as the pipeline run.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from prefect.task_runners import ThreadPoolTaskRunner

from asd_core.pipeline.config import RunnerConfig


def process_threads(cfg: RunnerConfig) -> int | None:
    """torch/FAISS threads per process: the configured count, else the cores shared by the
    processes of a local Dask cluster (so 2 workers on 2 cores get 1 thread each), else all."""
    if cfg.threads:
        return cfg.threads
    if cfg.task_runner == "dask" and not cfg.dask_address:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cores // max(1, cfg.dask_workers))
    return None


@contextmanager
def shard_task_runner(cfg: RunnerConfig) -> Iterator:
    """The task runner embed and score flows fan their shards out on (used via ``with_options``)."""
    if cfg.task_runner == "thread":
        yield ThreadPoolTaskRunner(max_workers=max(1, cfg.max_workers))
        return
    from prefect_dask import DaskTaskRunner

    if cfg.dask_address:
        yield DaskTaskRunner(address=cfg.dask_address)
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=cfg.dask_workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield DaskTaskRunner(address=cluster.scheduler_address)
