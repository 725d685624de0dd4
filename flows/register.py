"""Register stage of the pipeline: a scoring run becomes a version of the MLflow model (tracking/registry.py)."""

from __future__ import annotations

from pathlib import Path

from asd_core.config import Workspace
from asd_core.tracking.registry import register_run
from asd_core.tracking.store import TrackingConfig


def register_scoring_run(workspace: str, run_id: str, tracking_uri: str | None, model_name: str, teacher: str,
                         loss_config: str) -> dict:
    reg = register_run(Workspace(Path(workspace)), run_id, TrackingConfig(uri=tracking_uri, model_name=model_name),
                       tags={"teacher": teacher, "loss_config": loss_config})
    return {k: v for k, v in reg.items() if k != "tags"}
