"""Enroll a new operating condition into one section of a registered model version (issue 16 part 3).

Steps: resolve the parent version and its section detector; check and decode the clips (each
channel a channel model scores); embed them with the version's own encoder; refit the section on
parent references + new clips (rho of every reference and the threshold, exact as in a scoring run:
methods.md section 2; every channel's index of a channel model, refit.py); copy the parent's bundle
with that one section replaced; store the clips and register the copy as a new version (alias
``challenger``). The parent's files and registry entry are never written.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from asd_core.config import Workspace
from asd_core.enrollment import tables
from asd_core.enrollment.clips import EnrollmentClip, EnrollmentError, check_domain, read_enrollment_clips
from asd_core.enrollment.refit import refit_model_section
from asd_core.hashing import json_id
from asd_core.monitor.discover import normalise_section
from asd_core.monitor.model import DEFAULT_MODEL, ModelError, bundle_dir, load_model, parse_model
from asd_core.storage.catalog import connect
from asd_core.storage.lock import workspace_lock
from asd_core.tracking.registry import register_bundle
from asd_core.tracking.store import TrackingConfig, client, git_commit

# parent tags an enrolled version does not inherit: they describe the parent's own promotion
_NOT_INHERITED = ("promotion_",)


@dataclass
class EnrollmentResult:
    """What an enrollment registered. ``already_enrolled``: nothing was refitted now, so the reference
    counts are None; the thresholds too, except on a re-run of the very enrollment (read from its rows)."""
    name: str
    version: str
    parent_version: str
    dataset: str
    machine_type: str
    section: str
    domain: str
    enrollment_id: str
    clips: int
    references_before: int | None
    references_after: int | None
    threshold_before: float | None
    threshold_after: float | None
    refit_seconds: float
    already_enrolled: bool = False
    sha256: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    channels: str | None = None  # what a channel model scores (BundleChannels.describe); None: the primary waveform

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainingClips:
    """The section's training clips in the workspace (enrolled ones left out), read in one query:
    what enrollment checks new clips against."""
    paths: dict[str, str] = field(default_factory=dict)  # sha256 -> the clip's path
    median_duration_s: float | None = None


def training_clips(ws: Workspace, dataset: str, machine_type: str, section: str) -> TrainingClips:
    """One read-only connection, one query (none without a database)."""
    if not ws.duckdb_path.exists():
        return TrainingClips()
    with connect(ws, read_only=True) as con:
        rows = con.execute("SELECT sha256, root || '/' || relative_path, median(duration_s) OVER () FROM clips "
                           "WHERE dataset = ? AND machine_type = ? AND section = ? AND split = 'train' AND scheme <> ?",
                           [dataset, machine_type, section, tables.SCHEME]).fetchall()
    paths: dict[str, str] = {}
    for sha, path, _ in rows:
        paths.setdefault(sha, path)
    median = rows[0][2] if rows else None
    return TrainingClips(paths, None if median is None else float(median))


def _section_duration(bundle: Path, training: TrainingClips, dataset: str, machine_type: str, section: str) -> float | None:
    """The section's median training clip duration: from the bundle (registered since enrollment
    exists), else the workspace's clips, else unknown."""
    sections = bundle / "sections.json"
    if sections.exists():
        for s in json.loads(sections.read_text()):
            if (s["dataset"], s["machine_type"], s["section"]) == (dataset, machine_type, section):
                return s.get("median_duration_s")
    return training.median_duration_s


def _known_references(bundle: Path, training: TrainingClips, dataset: str, machine_type: str, section: str) -> dict[str, str]:
    """sha256 -> why it is already a reference of the section: enrolled in this version's lineage
    (the bundle's enrollments.json), or a training clip of the workspace's dataset."""
    known: dict[str, str] = {}
    history = bundle / "enrollments.json"
    for e in json.loads(history.read_text()) if history.exists() else []:
        if (e["dataset"], e["machine_type"], e["section"]) == (dataset, machine_type, section):
            for sha in e["sha256"]:
                known[sha] = f"enrolled as domain {e['domain']} into version {e['parent_version']}, enrollment {e['enrollment_id']}"
    for sha, path in training.paths.items():
        known.setdefault(sha, f"the training clip {path}")
    return known


def _write_clip_list(path: Path, clips: list[EnrollmentClip], ids: list[str]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clip_id", "sha256", "path", "duration_s"])
        for cid, c in zip(ids, clips):
            w.writerow([cid, c.sha256, str(c.path), f"{c.info.duration_s:.6f}"])
    return path


def enroll(ws: Workspace, clips_dir: Path, machine_type: str, section: str, domain: str, model: str = DEFAULT_MODEL,
           tracking_uri: str | None = None, log=print) -> EnrollmentResult:
    """Enroll the normal clips of ``clips_dir`` as domain ``domain`` of ``machine_type``/``section`` of
    ``model``; registers and returns the new version. Re-running the same enrollment (same parent
    version, section, domain and clip contents) returns the version it registered the first time."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    check_domain(domain)
    section = normalise_section(section)
    m = load_model(ws, model, tracking_uri)
    try:
        key = m.section(machine_type, section)
    except KeyError as exc:
        raise EnrollmentError(f"cannot enroll into {model}: {exc.args[0]}; nothing was registered") from None
    dataset, det = key[0], m.detectors[key][0]
    if not det.persistable:
        raise EnrollmentError(f"{m.name} version {m.version}: normalization {det.config.normalization!r} cannot be refitted")
    bundle = bundle_dir(m.folder)
    training = training_clips(ws, dataset, machine_type, section)
    clips = read_enrollment_clips(Path(clips_dir), m.sample_rate, det.config.k + 1,
                                  _section_duration(bundle, training, dataset, machine_type, section), m.roles, m.audio_config)
    folder = Path(clips_dir).expanduser().resolve()
    timings["read"] = time.perf_counter() - t0
    shas = [c.sha256 for c in clips]
    enrollment_id = json_id({"model": m.name, "parent": m.version, "dataset": dataset, "machine_type": machine_type,
                             "section": section, "domain": domain, "sha256": sorted(shas)}, 16)
    ids = [tables.enrolled_clip_id(dataset, machine_type, section, domain, s) for s in shas]
    done = tables.registered_version(ws, enrollment_id)
    if done is not None and _version_exists(ws, m.name, done, tracking_uri):
        tables.publish(ws)  # a run that died after its Parquet: complete it
        log(f"already enrolled: {m.name} version {done} holds these {len(clips)} clips of {domain} ({enrollment_id})")
        return _result_from_rows(ws, enrollment_id, clips, timings)

    known = _known_references(bundle, training, dataset, machine_type, section)
    already = [(c, known[c.sha256]) for c in clips if c.sha256 in known]
    if already and len(already) == len(clips) and all(w.startswith("enrolled") for _, w in already):
        log(f"already enrolled: {m.name} version {m.version} holds these {len(clips)} clips ({already[0][1]}); "
            "nothing new registered")
        return EnrollmentResult(m.name, m.version, m.version, dataset, machine_type, section, domain, enrollment_id,
                                len(clips), None, None, None, None, 0.0, already_enrolled=True, sha256=shas,
                                timings=timings)
    if already:  # a reference twice is its own nearest neighbour at distance 0: its rho, and its neighbours', collapse
        listed = "\n  ".join(f"{c.path}: already a reference of {machine_type}/section_{section} in version {m.version} "
                              f"({why})" for c, why in already[:10])
        raise EnrollmentError(f"{len(already)} of the {len(clips)} clips in {folder} are already references of the section; "
                              f"remove them from the folder (nothing was stored or registered):\n  {listed}")

    scored = f" ({m.channels.describe()})" if m.channels else ""
    log(f"embedding {len(clips)} clips with {m.card['name']} (version {m.card['version']}){scored} ...")
    t = time.perf_counter()
    inputs = m.inputs(key, m.embed([c.waves for c in clips]))
    timings["embed"] = time.perf_counter() - t
    with workspace_lock(ws, f"asd enroll {machine_type}/section_{section} {domain}"), \
            tempfile.TemporaryDirectory(prefix="asd-enroll-") as tmp:
        new_bundle = Path(tmp) / bundle.name
        shutil.copytree(bundle, new_bundle)
        refit = refit_model_section(bundle, new_bundle, key, m.channels, inputs, ids, domain)
        timings["refit"] = refit.seconds
        log(f"{machine_type}/section_{section}: {refit.references_before} -> {refit.references_after} references, "
            f"threshold {refit.threshold_before:.6g} -> {refit.threshold_after:.6g} (refit {refit.seconds:.2f} s)")
        _append_enrollment_note(new_bundle, m.version, dataset, machine_type, section, domain, enrollment_id, shas)

        t = time.perf_counter()
        tables.store_clips(ws, dataset, machine_type, section, domain, folder, clips, m.sample_rate, ids, m.audio_config)
        timings["store"] = time.perf_counter() - t

        t = time.perf_counter()
        parent_tags = client(ws, TrackingConfig(uri=tracking_uri, model_name=m.name)).get_model_version(m.name, m.version).tags
        enrolled_at = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
        tags = {k: v for k, v in parent_tags.items() if not k.startswith(_NOT_INHERITED)}
        tags.update({
            "parent_version": m.version, "enrolled_domain": domain,
            "enrolled_section": f"{dataset}/{machine_type}/section_{section}", "enrolled_clips": str(len(clips)),
            "enrollment_id": enrollment_id, "enrolled_at": enrolled_at.isoformat(), "git_commit": git_commit(),
            "official_score": parent_tags.get("official_score", "nan"),
            "official_score_note": f"version {m.version}'s: enrollment adds references without re-evaluating test clips",
            "threshold_before": repr(refit.threshold_before), "threshold_after": repr(refit.threshold_after),
        })
        clip_list = _write_clip_list(Path(tmp) / "enrolled_clips.csv", clips, ids)
        official = _float(tags["official_score"])
        reg = register_bundle(ws, new_bundle, TrackingConfig(uri=tracking_uri, model_name=m.name), tags,
                              run_name=f"enroll-{machine_type}-{section}-{domain}",
                              params={"parent_version": m.version, "machine_type": machine_type, "section": section,
                                      "dataset": dataset, "domain": domain, "clips": len(clips),
                                      "normalization": refit.config.normalization, **refit.config.params(),
                                      **({"channels": m.channels.describe()} if m.channels else {})},
                              official=official, kind="enrollment", artifacts={"enrollment": clip_list})
        timings["register"] = time.perf_counter() - t
        rows = [{"enrollment_id": enrollment_id, "model_name": m.name, "model_version": reg["version"],
                 "parent_version": m.version, "dataset": dataset, "machine_type": machine_type, "section": section,
                 "domain": domain, "clip_id": cid, "sha256": c.sha256, "path": str(c.path),
                 "threshold_before": refit.threshold_before, "threshold_after": refit.threshold_after,
                 "enrolled_at": enrolled_at} for cid, c in zip(ids, clips)]
        tables.write_enrollment(ws, enrollment_id, rows)
    timings["total"] = time.perf_counter() - t0
    return EnrollmentResult(m.name, reg["version"], m.version, dataset, machine_type, section, domain, enrollment_id,
                            len(clips), refit.references_before, refit.references_after, refit.threshold_before,
                            refit.threshold_after, refit.seconds, sha256=shas, timings=timings,
                            channels=m.channels.describe() if m.channels else None)


def _append_enrollment_note(bundle: Path, parent: str, dataset: str, machine_type: str, section: str, domain: str,
                            enrollment_id: str, shas: list[str]) -> None:
    """``enrollments.json`` in the bundle: every enrollment behind this version, oldest first."""
    path = bundle / "enrollments.json"
    history = json.loads(path.read_text()) if path.exists() else []
    history.append({"enrollment_id": enrollment_id, "parent_version": parent, "dataset": dataset,
                    "machine_type": machine_type, "section": section, "domain": domain, "sha256": shas})
    path.write_text(json.dumps(history, indent=2))


def _version_exists(ws: Workspace, name: str, version: str, tracking_uri: str | None) -> bool:
    from asd_core.monitor.model import resolve_version

    try:
        resolve_version(ws, parse_model(f"{name}/{version}"), tracking_uri)
        return True
    except ModelError:
        return False


def _result_from_rows(ws: Workspace, enrollment_id: str, clips: list[EnrollmentClip], timings: dict) -> EnrollmentResult:
    import pyarrow.parquet as pq

    rows = pq.read_table(tables.enrollment_file(ws, enrollment_id)).to_pylist()
    r = rows[0]
    return EnrollmentResult(r["model_name"], r["model_version"], r["parent_version"], r["dataset"], r["machine_type"],
                            r["section"], r["domain"], enrollment_id, len(rows), None, None, r["threshold_before"],
                            r["threshold_after"], 0.0, already_enrolled=True, sha256=[c.sha256 for c in clips],
                            timings=timings)


def _float(text) -> float | None:
    try:
        x = float(text)
    except (TypeError, ValueError):
        return None
    return None if x != x else x
