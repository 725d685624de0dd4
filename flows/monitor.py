"""Monitor flow: score new incoming recordings with a registered model (asd_core/monitor), then alert
through Prefect: a table artifact of the run's anomalies and one ``asd.anomaly.detected`` event per
anomalous clip (the ``max_events`` highest scores; the rest in one ``asd.anomaly.burst`` event), so
automations (webhook, e-mail) attach without code. A run that found files and could score none
ends in Prefect state Failed (its report is the state's data), so failure automations fire too.
A model of channels (far, fused near + far, near conditioned on far) reads them from each
two-channel file; a file without them (mono) is quarantined, naming the missing channel."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.events import emit_event
from prefect.states import Failed

from asd_core.config import Workspace
from asd_core.monitor import DEFAULT_MODEL, load_model, run_monitor

EVENT = "asd.anomaly.detected"
BURST_EVENT = "asd.anomaly.burst"
# a broken microphone can make every clip anomalous: past this many, one burst event per section instead
MAX_EVENTS = 100
ARTIFACT_KEY = "monitor-anomalies"


def section_resource(machine_type: str, section: str) -> dict[str, str]:
    """The Prefect resource of a machine section: ``asd.machine.<machine_type>.section.<ss>``."""
    return {"prefect.resource.id": f"asd.machine.{machine_type}.section.{section}",
            "prefect.resource.name": f"{machine_type}/section_{section}",
            "asd.machine_type": machine_type, "asd.section": section}


def emit_anomaly(d: dict) -> None:
    """One event per anomalous clip; the payload carries what an alert needs."""
    emit_event(
        event=EVENT,
        resource=section_resource(d["machine_type"], d["section"]),
        related=[{"prefect.resource.id": f"asd.model.{d['model_name']}.{d['model_version']}",
                  "prefect.resource.role": "model", "prefect.resource.name": f"{d['model_name']} version {d['model_version']}"}],
        payload={"path": d["path"], "score": d["score"], "threshold": d["threshold"], "sha256": d["sha256"],
                 "recorded_at": d["recorded_at"].isoformat(), "model_name": d["model_name"],
                 "model_version": d["model_version"], "batch_id": d["batch_id"]},
    )


def emit_burst(rest: list[dict], batch_id: str) -> None:
    """One event per section for the anomalies past ``max_events``: their count and highest score."""
    by_section: dict[tuple[str, str], list[dict]] = {}
    for d in rest:
        by_section.setdefault((d["machine_type"], d["section"]), []).append(d)
    for (machine_type, section), items in sorted(by_section.items()):
        top = max(items, key=lambda d: d["score"])
        emit_event(event=BURST_EVENT, resource=section_resource(machine_type, section),
                   payload={"anomalies": len(items), "max_score": top["score"], "max_score_path": top["path"],
                            "threshold": top["threshold"], "model_name": top["model_name"],
                            "model_version": top["model_version"], "batch_id": batch_id})


def _artifact_rows(anomalies: list[dict]) -> list[dict]:
    return [{"recorded_at": a["recorded_at"].isoformat(sep=" "), "machine_type": a["machine_type"], "section": a["section"],
             "score": round(a["score"], 6), "threshold": round(a["threshold"], 6), "path": a["path"]}
            for a in sorted(anomalies, key=lambda a: -a["score"])]


@flow(name="asd-monitor")
def monitor_flow(incoming: str, workspace: str = "./asd-workspace", model: str = DEFAULT_MODEL, manifest: str | None = None,
                 rescore: bool = False, tracking_uri: str | None = None, max_events: int = MAX_EVENTS):
    """Score the recordings of ``incoming`` not scored yet (``rescore``: not by this model version).

    Returns the report (a dict), or a Failed state holding it when nothing could be scored."""
    log = get_run_logger()
    ws = Workspace(Path(workspace))
    m = load_model(ws, model, tracking_uri)
    report = run_monitor(ws, m, Path(incoming), Path(manifest) if manifest else None, rescore)
    anomalies = report.anomalies
    scores = f" ({m.channels.describe()})" if m.channels else ""  # a channel model: which channels it scores
    create_table_artifact(key=ARTIFACT_KEY, table=_artifact_rows(anomalies),
                          description=f"{len(anomalies)} anomalous of {len(report.detections)} clips scored by {m.name} "
                                      f"version {m.version}{scores} in {incoming} (batch {report.batch_id})")
    ranked = sorted(anomalies, key=lambda a: -a["score"])
    for a in ranked[:max_events]:
        emit_anomaly(a)
    if ranked[max_events:]:
        log.warning("%d anomalies: events for the %d highest scores, one %s event per section for the other %d",
                    len(ranked), max_events, BURST_EVENT, len(ranked) - max_events)
        emit_burst(ranked[max_events:], report.batch_id)
    for q in report.quarantined:
        log.warning("quarantined: %s: %s", q["path"], q["reason"])
    log.info("%s version %s: %d clips scored (%d anomalous), %d quarantined, %d already scored", m.name, m.version,
             len(report.detections), len(anomalies), len(report.quarantined), report.already_scored)
    if report.nothing_scored:
        return Failed(message=f"none of the {report.found} recordings in {manifest or incoming} could be scored",
                      data=report.as_dict())
    return report.as_dict()
