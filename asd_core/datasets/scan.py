"""Walk dataset roots and turn each audio file into a parsed candidate or a quarantine record.

A folder holding a file named ``.asdignore`` is skipped (the demo noise library uses it);
files that are not audio (CSV, README, ...) are ignored; audio files that are not WAV are
quarantined, as are names that match no scheme.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

from asd_core.datasets.ground_truth import GroundTruth, GroundTruthError, load_attribute_csvs
from asd_core.datasets.naming import NamingError, ParsedName, parse_clip_path

AUDIO_SUFFIXES = {".wav", ".wave", ".flac", ".mp3", ".ogg", ".opus", ".aif", ".aiff", ".m4a"}
IGNORE_MARKER = ".asdignore"


@dataclass(frozen=True)
class Candidate:
    dataset: str
    root: Path
    relative_path: str  # posix
    parsed: ParsedName

    @property
    def path(self) -> Path:
        return self.root / self.relative_path

    @property
    def clip_id(self) -> str:
        return clip_id_for(self.dataset, self.relative_path)


@dataclass(frozen=True)
class QuarantineRecord:
    dataset: str
    root: str
    relative_path: str
    stage: str
    reason: str
    file_size: int | None = None

    def message(self) -> str:
        where = Path(self.root, self.relative_path) if self.relative_path else Path(self.root)
        return f"{where}: {self.reason}"


def clip_id_for(dataset: str, relative_path: str) -> str:
    """Stable clip id: the same dataset name and relative path always give the same id."""
    return hashlib.sha1(f"{dataset}\0{relative_path}".encode()).hexdigest()[:16]


def iter_audio_files(root: Path):
    """Yield audio file paths under ``root`` in a deterministic order."""
    for dirpath, dirnames, filenames in os.walk(root):
        if IGNORE_MARKER in filenames:
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES:
                yield Path(dirpath) / name


def scan_root(root: Path, dataset: str, ground_truth: GroundTruth | None = None) -> tuple[list[Candidate], list[QuarantineRecord]]:
    """Parse every audio file name under ``root``."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        reason = "dataset root does not exist" if not root.exists() else "dataset root is not a folder"
        return [], [QuarantineRecord(dataset, str(root), "", "scan", reason)]
    candidates, quarantined = [], []
    try:
        csv_attributes = load_attribute_csvs(root)
    except GroundTruthError as exc:  # a broken CSV costs its attributes, not the dataset
        quarantined.append(QuarantineRecord(dataset, str(root), "", "scan", f"attribute CSV ignored: {exc}"))
        csv_attributes = {}
    for path in iter_audio_files(root):
        rel = path.relative_to(root).as_posix()
        try:
            parsed = parse_clip_path(rel)
        except NamingError as exc:
            size = path.stat().st_size if path.exists() else None
            quarantined.append(QuarantineRecord(dataset, str(root), rel, "scan", str(exc), size))
            continue
        if ground_truth:
            parsed = ground_truth.apply(parsed, path.name)
        extra = csv_attributes.get((parsed.machine_type, path.name))
        if extra:  # names win where both say something
            parsed = replace(parsed, attributes={**extra, **parsed.attributes})
        candidates.append(Candidate(dataset, root, rel, parsed))
    return candidates, quarantined


def drop_duplicate_ids(candidates: list[Candidate]) -> tuple[list[Candidate], list[QuarantineRecord]]:
    """Keep the first candidate of each clip id; quarantine the rest with the clash named."""
    seen: dict[str, Candidate] = {}
    kept, dropped = [], []
    for cand in candidates:
        first = seen.get(cand.clip_id)
        if first is None:
            seen[cand.clip_id] = cand
            kept.append(cand)
        else:
            dropped.append(
                QuarantineRecord(
                    cand.dataset, str(cand.root), cand.relative_path, "scan",
                    f"duplicate clip id {cand.clip_id}: {first.path} has the same dataset name and relative path",
                )
            )
    return kept, dropped
