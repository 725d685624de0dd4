"""Enroll flow: add a new operating condition to a registered model's section (asd_core/enrollment),
recorded as a Prefect flow run with a table artifact of what was enrolled (and, for a model of
channels, which channels it scores: each one's index was refitted)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from asd_core.config import DEFAULT_WORKSPACE_NAME, Workspace
from asd_core.enrollment import enroll
from asd_core.monitor import DEFAULT_MODEL

ARTIFACT_KEY = "enrollment"


@flow(name="asd-enroll")
def enroll_flow(clips_dir: str, machine_type: str, section: str, domain: str, workspace: str = DEFAULT_WORKSPACE_NAME,
                model: str = DEFAULT_MODEL, tracking_uri: str | None = None) -> dict:
    """Embed the normal clips of ``clips_dir``, refit the section and register the result (alias challenger)."""
    log = get_run_logger()
    r = enroll(Workspace(Path(workspace)), Path(clips_dir), machine_type, section, domain, model, tracking_uri, log=log.info)
    if r.already_enrolled:  # nothing refitted: no thresholds when the clips came in by an earlier enrollment in the lineage
        description = f"{r.clips} clips of domain {r.domain} already held by {r.name} version {r.version}; nothing new registered"
    else:
        description = f"{r.clips} clips of domain {r.domain} enrolled into {r.name} version {r.parent_version}"
    create_table_artifact(
        key=ARTIFACT_KEY,
        table=[{"model": f"{r.name} version {r.version}", "parent_version": r.parent_version,
                "section": f"{r.dataset}/{r.machine_type}/section_{r.section}", "domain": r.domain, "clips": r.clips,
                "threshold_before": r.threshold_before, "threshold_after": r.threshold_after,
                "scores": r.channels or "primary waveform"}],
        description=description)
    return r.as_dict()
