"""Report flow: the HTML report of a scoring run, logged to MLflow and linked from a Prefect artifact."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from asd_core.config import DEFAULT_WORKSPACE_NAME, Workspace
from asd_core.reporting import build_report
from asd_core.textable import format_table
from asd_core.tracking.store import TrackingConfig, log_report


@flow(name="asd-report")
def report_flow(workspace: str = DEFAULT_WORKSPACE_NAME, run_id: str | None = None, tracking_uri: str | None = None,
                mlflow: bool = True) -> dict:
    """(Re)build ``<workspace>/reports/<run_id>/index.html``; with ``mlflow`` also store it as
    artifacts of the run's MLflow report run."""
    log = get_run_logger()
    ws = Workspace(Path(workspace))
    result = build_report(ws, run_id)
    run = result.run
    out = {"run_id": result.run_id, "index": str(result.index), "figures": [str(f) for f in result.figures]}
    links = [f"- local file: [{result.index}]({result.index.as_uri()})"]
    if mlflow:
        summary = result.summary[0] if len(result.summary) == 1 else {}
        metrics = {k: summary.get(k) for k in ("official_score", "hmean_auc_source", "hmean_auc_target", "hmean_pauc")}
        out["mlflow_run_id"], out["mlflow_uri"] = log_report(ws, TrackingConfig(uri=tracking_uri), run, result.folder, metrics)
        links.append(f"- MLflow artifact: {out['mlflow_uri']} (run {out['mlflow_run_id']}, experiment asd-reports)")
    create_markdown_artifact(
        key=f"report-{result.run_id}",
        markdown=f"# Scoring run {result.run_id} ({run['encoder']}, {run['normalization']})\n\n" + "\n".join(links)
                 + "\n\n```\n" + format_table(result.summary) + "\n```\n",
        description=f"report of scoring run {result.run_id}")
    log.info("report of run %s: %s (%d figures)", result.run_id, result.index, len(result.figures))
    return out
