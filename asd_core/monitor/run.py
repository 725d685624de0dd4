"""One monitor run: discover incoming recordings, score each new one with a registered model version,
quarantine what cannot be scored, write the batch's Parquet and publish it to DuckDB.

A file is keyed by its content (sha256) with its machine type and section: a file scored by any
version of the model is not scored again unless ``rescore`` asks for the current version's score.
A file quarantined for a reason is recorded once per version (an unchanged file does not fill the
table every run). One bad file never stops the batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from asd_core.config import Workspace
from asd_core.datasets import audio_io
from asd_core.hashing import file_sha256, new_batch_id
from asd_core.monitor.discover import Candidate, discover_folder, read_manifest
from asd_core.monitor.model import MonitorModel
from asd_core.monitor.tables import monitor_lock, publish, quarantined_keys, scored_keys, write_batch
from asd_core.tracking.channel_bundle import channel_waves

logger = logging.getLogger("asd.monitor")


class IncomingError(ValueError):
    """The incoming folder or manifest cannot be used at all (one line naming it)."""


@dataclass
class MonitorReport:
    """What a run did: the rows it added, and counts of what it left alone."""

    batch_id: str
    model_name: str
    model_version: str
    found: int = 0  # recordings discovered (plus paths outside the layout)
    detections: list[dict] = field(default_factory=list)  # scored in this run
    quarantined: list[dict] = field(default_factory=list)  # not scored in this run (new rows)
    notes: list[dict] = field(default_factory=list)  # scored after a change (resampled, clipped)
    already_scored: int = 0
    already_quarantined: int = 0

    @property
    def anomalies(self) -> list[dict]:
        return [d for d in self.detections if d["decision"] == 1]

    @property
    def nothing_scored(self) -> bool:
        """Files were found and not one of them is scored (now or before): the run failed."""
        return self.found > 0 and not self.detections and self.already_scored == 0

    def as_dict(self) -> dict:
        return {"batch_id": self.batch_id, "model_name": self.model_name, "model_version": self.model_version,
                "found": self.found, "scored": len(self.detections), "anomalies": len(self.anomalies),
                "quarantined": len(self.quarantined), "notes": len(self.notes), "already_scored": self.already_scored,
                "already_quarantined": self.already_quarantined, "nothing_scored": self.nothing_scored,
                "detections": self.detections, "quarantine": self.quarantined + self.notes}


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class _Skip(Exception):
    """A file that cannot be scored: ``stage`` and ``reason`` go to the quarantine table."""

    def __init__(self, stage: str, reason: str):
        super().__init__(reason)
        self.stage, self.reason = stage, reason


def score_file(model: MonitorModel, cand: Candidate) -> tuple[dict, list[tuple[str, str]]]:
    """Score one recording: the detection's values and notes (stage, reason) on changes made to the audio.

    Decoding follows the registered pyfunc (same sample rate and channel choice; a channel model reads
    each channel it scores, and a file that lacks one, e.g. a mono file, is quarantined naming it);
    float samples beyond full scale are handled as ingest does. Raises ``_Skip`` for anything that
    stops the file.
    """
    try:
        key = model.section(cand.machine_type, cand.section, cand.dataset)
    except KeyError as exc:
        raise _Skip("model", exc.args[0]) from None
    roles = model.roles
    try:
        info = audio_io.probe(cand.path)
        waves, clip_warnings = {}, []
        for role, wave in channel_waves(cand.path, info, model.audio_config, roles).items():
            waves[role], warning = audio_io.limit_full_scale(wave, info)
            if warning:
                clip_warnings.append(warning if roles is None else f"{warning} ({role} channel)")
    except audio_io.AudioFileError as exc:
        raise _Skip("decode", str(exc)) from None
    except OSError as exc:  # TransientIOError included: this run leaves the file for the next
        raise _Skip("read", f"I/O error while decoding ({exc.strerror or exc})") from None
    notes = []
    if info.sample_rate != model.sample_rate:
        notes.append(("resample", f"sample rate {info.sample_rate} Hz, resampled to the model's {model.sample_rate} Hz"))
    notes += [("clip", w) for w in dict.fromkeys(clip_warnings)]
    try:
        vectors = model.embed([waves])
        if any(v.shape[0] != 1 or not np.isfinite(v).all() for v in vectors.values()):
            raise ValueError("the encoder returned a non-finite or misshapen embedding")
        scores, thresholds = model.score([key], vectors)
        score, threshold = float(scores[0]), float(thresholds[0])
    except Exception as exc:  # noqa: BLE001 - one file's failure must not stop the batch
        raise _Skip("embed", f"cannot embed or score the audio ({type(exc).__name__}: {exc})") from None
    det = model.detectors[key][0]
    q = getattr(getattr(det, "config", None), "threshold_quantile", None) or model.scoring.get("threshold_quantile")
    return {"dataset": key[0], "score": score, "threshold": threshold, "decision": int(score > threshold),
            "sample_rate": int(info.sample_rate), "threshold_quantile": None if q is None else float(q)}, notes


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def run_monitor(ws: Workspace, model: MonitorModel, incoming: Path, manifest: Path | None = None,
                rescore: bool = False) -> MonitorReport:
    """Score the new recordings of ``incoming`` (or of ``manifest``, relative paths under ``incoming``)."""
    incoming = Path(incoming).expanduser()
    if manifest is None and not incoming.is_dir():
        raise IncomingError(f"{incoming}: the incoming folder does not exist or is not a folder")
    with monitor_lock(ws):
        publish(ws)  # complete a batch an earlier run wrote but did not publish
        if manifest is not None:
            candidates, problems = read_manifest(Path(manifest).expanduser(), incoming)
        else:
            candidates, problems = discover_folder(incoming)
        now = _now()
        report = MonitorReport(new_batch_id(now), model.name, model.version, found=len(candidates) + len(problems))
        done = scored_keys(ws, model.name, model.version if rescore else None)
        known_bad = quarantined_keys(ws, model.name, model.version)
        base = {"model_name": model.name, "model_version": model.version, "batch_id": report.batch_id}

        def quarantine(path: Path, sha: str | None, mt, sec, stage: str, reason: str, scored: bool = False) -> None:
            row = {**base, "path": str(path), "sha256": sha, "machine_type": mt, "section": sec, "stage": stage,
                   "reason": reason, "scored": scored, "file_size": _size(path), "quarantined_at": _now()}
            if scored:
                report.notes.append(row)
            elif (row["path"], sha, mt, sec, reason) in known_bad:
                report.already_quarantined += 1
            else:
                known_bad.add((row["path"], sha, mt, sec, reason))
                report.quarantined.append(row)

        def sha_of(path: Path) -> str | None:
            try:
                return file_sha256(path)
            except OSError:
                return None

        for p in problems:
            quarantine(p.path, sha_of(p.path), p.machine_type, p.section, p.stage, p.reason)
        for cand in candidates:
            try:
                sha = file_sha256(cand.path)
            except OSError as exc:
                quarantine(cand.path, None, cand.machine_type, cand.section, "read", audio_io.os_error_reason(exc, cand.path))
                continue
            key = (sha, cand.machine_type, cand.section)
            if key in done:
                report.already_scored += 1
                continue
            try:
                values, notes = score_file(model, cand)
            except _Skip as skip:
                quarantine(cand.path, sha, cand.machine_type, cand.section, skip.stage, skip.reason)
                continue
            done.add(key)  # the same content twice in one batch is scored once
            report.detections.append({**base, **values, "path": str(cand.path), "sha256": sha,
                                      "machine_type": cand.machine_type, "section": cand.section,
                                      "recorded_at": cand.recorded_at, "recorded_at_source": cand.recorded_at_source,
                                      "scored_at": _now()})
            for stage, reason in notes:
                quarantine(cand.path, sha, cand.machine_type, cand.section, stage, reason, scored=True)
        write_batch(ws, "detections", report.batch_id, report.detections)
        write_batch(ws, "monitor_quarantine", report.batch_id, report.quarantined + report.notes)
        publish(ws)
    logger.info("monitor batch %s: %d scored (%d anomalous), %d quarantined, %d already scored",
                report.batch_id, len(report.detections), len(report.anomalies), len(report.quarantined), report.already_scored)
    return report
