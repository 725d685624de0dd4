"""Where MLflow lives: by default a sqlite tracking store and an artifact folder inside the
workspace (``mlflow/mlflow.db``, ``mlflow/artifacts``); ``--tracking-uri`` points at a server."""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from asd_core.config import Workspace

logger = logging.getLogger("asd.tracking")
DEFAULT_EXPERIMENT = "asd"
DEFAULT_MODEL_NAME = "asd-encoder"


@dataclass(frozen=True)
class TrackingConfig:
    uri: str | None = None  # None: sqlite store in the workspace
    experiment: str = DEFAULT_EXPERIMENT
    model_name: str = DEFAULT_MODEL_NAME

    def resolved_uri(self, ws: Workspace) -> str:
        return self.uri or f"sqlite:///{ws.mlflow_dir / 'mlflow.db'}"


def client(ws: Workspace, cfg: TrackingConfig):
    import mlflow
    from mlflow import MlflowClient

    ws.mlflow_dir.mkdir(parents=True, exist_ok=True)
    uri = cfg.resolved_uri(ws)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(ws: Workspace, cfg: TrackingConfig) -> str:
    c = client(ws, cfg)
    exp = c.get_experiment_by_name(cfg.experiment)
    if exp is not None:
        return exp.experiment_id
    location = None if cfg.uri else (ws.mlflow_dir / "artifacts").resolve().as_uri()
    return c.create_experiment(cfg.experiment, artifact_location=location)


def git_commit() -> str:
    """The commit of the code that ran (``unknown`` outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class RunLogger:
    """Logs one training run: parameters, per-epoch metrics, config, loss curves, tables."""

    def __init__(self, mlflow_module, run_id: str):
        self.mlflow, self.run_id = mlflow_module, run_id

    def log_params(self, params: dict) -> None:
        flat = _flatten(params)
        self.mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})

    def log_epoch(self, epoch: int, entry: dict) -> None:
        self.mlflow.log_metrics({k: float(v) for k, v in entry.items() if k != "epoch" and _finite(v)}, step=epoch)

    def log_dict(self, data: dict, name: str) -> None:
        self.mlflow.log_dict(data, name)

    def log_table(self, rows: list[dict], name: str) -> None:
        if rows:
            self.mlflow.log_table(data={k: [r.get(k) for r in rows] for k in rows[0]}, artifact_file=name)

    def log_loss_curves(self, history: list[dict], keys: list[str], name: str = "loss_curves.png") -> None:
        from asd_core.tracking.plots import loss_curves_png

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            loss_curves_png(history, keys, path)
            self.mlflow.log_artifact(str(path))

    def set_tags(self, tags: dict) -> None:
        self.mlflow.set_tags({k: str(v) for k, v in tags.items()})


@contextmanager
def training_run(ws: Workspace, cfg: TrackingConfig, run_name: str, tags: dict | None = None) -> Iterator[RunLogger]:
    """An MLflow run in the workspace's store; ends FAILED if the block raises."""
    import mlflow

    client(ws, cfg)
    exp = experiment_id(ws, cfg)
    with mlflow.start_run(experiment_id=exp, run_name=run_name, tags={"git_commit": git_commit(), **(tags or {})}) as run:
        yield RunLogger(mlflow, run.info.run_id)


def _finite(v) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return f == f and f not in (float("inf"), float("-inf"))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


REPORTS_EXPERIMENT = "asd-reports"


def log_report(ws: Workspace, cfg: TrackingConfig, run: dict, folder: Path, metrics: dict) -> tuple[str, str]:
    """Log a run report folder as artifacts of one MLflow run per scoring run (re-used when
    the report is regenerated, so there is one place to look); returns (MLflow run id, artifact URI)."""
    c = client(ws, cfg)
    exp = experiment_id(ws, replace(cfg, experiment=REPORTS_EXPERIMENT))
    found = c.search_runs([exp], filter_string=f"tags.scoring_run_id = '{run['run_id']}'", max_results=1)
    if found:
        mlflow_run_id = found[0].info.run_id
    else:
        mlflow_run_id = c.create_run(exp, run_name=f"report-{run['run_id']}", tags={
            "scoring_run_id": run["run_id"], "encoder": run["encoder"], "normalization": run["normalization"],
            "git_commit": git_commit(), "kind": "report"}).info.run_id
    for key, value in metrics.items():
        if _finite(value):
            c.log_metric(mlflow_run_id, key, float(value))
    c.log_artifacts(mlflow_run_id, str(folder), artifact_path="report")
    c.set_terminated(mlflow_run_id)
    return mlflow_run_id, f"{c.get_run(mlflow_run_id).info.artifact_uri}/report/index.html"
