"""Teacher training flow: one task (training is one process on all cores), checkpoint per epoch, resumable."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from asd_core.config import DEFAULT_WORKSPACE_NAME, Workspace
from asd_core.runtime import configure_threads
from asd_core.tracking.store import TrackingConfig, training_run
from asd_core.training.teacher import TeacherTrainConfig, train_teacher


@task(cache_policy=NO_CACHE)
def train(ws: Workspace, cfg: TeacherTrainConfig, device: str | None, on_epoch_end=None):
    return train_teacher(ws, cfg, device=device, on_epoch_end=on_epoch_end)


@flow(name="asd-train-teacher")
def train_teacher_flow(workspace: str = DEFAULT_WORKSPACE_NAME, config: dict | None = None, device: str | None = None,
                       threads: int | None = None, tracking_uri: str | None = None) -> dict:
    """Train the teacher; re-running the same config resumes (or returns the finished model).
    Parameters, per-epoch metrics, the config and loss curves go to MLflow."""
    log = get_run_logger()
    configure_threads(threads)
    cfg = TeacherTrainConfig.from_dict(config or {})
    ws = Workspace(Path(workspace))
    with training_run(ws, TrackingConfig(uri=tracking_uri), run_name="teacher", tags={"kind": "teacher"}) as mlog:
        mlog.log_params(cfg.to_dict())
        mlog.log_dict(cfg.to_dict(), "config.json")
        result = train(ws, cfg, device, on_epoch_end=mlog.log_epoch)
        mlog.log_loss_curves(result.history, ["train_loss", "val_loss"])
        mlog.set_tags({"model_hash": result.model_hash, "model_dir": str(result.model_dir)})
    create_table_artifact(key="teacher-training", table=result.history,
                          description=f"teacher {result.model_hash}: per-epoch losses (best epoch {result.best_epoch})")
    log.info("teacher %s saved in %s (best epoch %d of %d)", result.model_hash, result.model_dir, result.best_epoch, result.epochs_run)
    return {"model_dir": str(result.model_dir), "model_hash": result.model_hash, "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run, "resumed_from": result.resumed_from, "history": result.history,
            "mlflow_run_id": mlog.run_id}


def load_config_file(path: str | None) -> dict:
    """A JSON file of TeacherTrainConfig fields (``model`` nested), e.g. {"epochs": 20, "model": {"n_mels": 64}}."""
    return json.loads(Path(path).read_text()) if path else {}
