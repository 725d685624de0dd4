"""Teacher training flow: one task (training is one process on all cores), checkpoint per epoch, resumable."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from asd_core.config import Workspace
from asd_core.runtime import configure_threads
from asd_core.training.teacher import TeacherTrainConfig, train_teacher


@task(cache_policy=NO_CACHE)
def train(ws: Workspace, cfg: TeacherTrainConfig, device: str | None):
    return train_teacher(ws, cfg, device=device)


@flow(name="asd-train-teacher")
def train_teacher_flow(workspace: str = "./asd-workspace", config: dict | None = None, device: str | None = None,
                       threads: int | None = None) -> dict:
    """Train the teacher; re-running the same config resumes (or returns the finished model)."""
    log = get_run_logger()
    configure_threads(threads)
    cfg = TeacherTrainConfig.from_dict(config or {})
    result = train(Workspace(Path(workspace)), cfg, device)
    create_table_artifact(key="teacher-training", table=result.history,
                          description=f"teacher {result.model_hash}: per-epoch losses (best epoch {result.best_epoch})")
    log.info("teacher %s saved in %s (best epoch %d of %d)", result.model_hash, result.model_dir, result.best_epoch, result.epochs_run)
    return {"model_dir": str(result.model_dir), "model_hash": result.model_hash, "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run, "resumed_from": result.resumed_from, "history": result.history}


def load_config_file(path: str | None) -> dict:
    """A JSON file of TeacherTrainConfig fields (``model`` nested), e.g. {"epochs": 20, "model": {"n_mels": 64}}."""
    return json.loads(Path(path).read_text()) if path else {}
