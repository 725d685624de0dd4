"""Walk dataset roots and turn each audio file into a parsed candidate or a quarantine record.

A folder holding a file named ``.asdignore`` is skipped (the demo noise library uses it);
files that are not audio (CSV, README, ...) are ignored; audio files that are not WAV are
quarantined, as are names that match no scheme and sub-folders that cannot be listed.
A root that is missing, not a folder, unreadable or holds no audio file at all raises
:class:`DatasetRootError`: ingesting it would read as "every clip was deleted".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from asd_core.datasets.ground_truth import GroundTruth, GroundTruthError, load_attribute_csvs
from asd_core.datasets.naming import NamingError, ParsedName, parse_clip_path
from asd_core.hashing import text_id

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
    return text_id(f"{dataset}\0{relative_path}", 16, "sha1")


class DatasetRootError(ValueError):
    """A dataset root that cannot be ingested as a whole; ``str(exc)`` names the root."""


EMPTY_ROOT = "holds no audio files (an empty folder or an unmounted drive?)"


def root_problem(root: Path, need_audio: bool = False) -> str | None:
    """Why ``root`` cannot be a dataset root (missing, not a folder, with ``need_audio`` empty), or None.

    The emptiness check stops at the first audio file, so it is cheap on a full tree.
    """
    try:
        if Path(root).is_dir():
            if need_audio and next(iter_audio_files(Path(root)), None) is None:
                return f"dataset root {root} {EMPTY_ROOT}"
            return None
        exists = Path(root).exists()
    except OSError as exc:
        return f"dataset root {root} cannot be read ({exc.strerror or exc})"
    if not exists:
        return f"dataset root {root} does not exist (unmounted or renamed?)"
    return f"dataset root {root} is not a folder"


def iter_audio_files(root: Path, errors: list[OSError] | None = None):
    """Yield audio file paths under ``root`` in a deterministic order.

    Folders that cannot be listed are appended to ``errors`` (skipped silently without it).
    """
    for dirpath, dirnames, filenames in os.walk(root, onerror=None if errors is None else errors.append):
        if IGNORE_MARKER in filenames:
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES:
                yield Path(dirpath) / name


@dataclass
class ScanResult:
    candidates: list[Candidate] = field(default_factory=list)
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    # Sub-folders (posix, relative to the root) that could not be listed: their clips from an
    # earlier ingest are kept, since their files were not seen, not seen to be gone.
    unlisted: list[str] = field(default_factory=list)


def scan_root(root: Path, dataset: str, ground_truth: GroundTruth | None = None) -> tuple[list[Candidate], list[QuarantineRecord]]:
    """Parse every audio file name under ``root``; raise :class:`DatasetRootError` for an unusable root."""
    result = scan_root_full(root, dataset, ground_truth)
    return result.candidates, result.quarantined


def scan_root_full(root: Path, dataset: str, ground_truth: GroundTruth | None = None) -> ScanResult:
    """:func:`scan_root` plus the sub-folders that could not be listed."""
    root = Path(root).expanduser().resolve()
    problem = root_problem(root)
    if problem:
        raise DatasetRootError(f"{problem}; nothing was ingested or removed")
    result = ScanResult()
    try:
        csv_attributes = load_attribute_csvs(root)
    except GroundTruthError as exc:  # a broken CSV costs its attributes, not the dataset
        result.quarantined.append(QuarantineRecord(dataset, str(root), "", "scan", f"attribute CSV ignored: {exc}"))
        csv_attributes = {}
    errors: list[OSError] = []
    found = 0
    for path in iter_audio_files(root, errors):
        found += 1
        rel = path.relative_to(root).as_posix()
        try:
            parsed = parse_clip_path(rel)
        except NamingError as exc:
            result.quarantined.append(QuarantineRecord(dataset, str(root), rel, "scan", str(exc), _size(path)))
            continue
        if ground_truth:
            parsed = ground_truth.apply(parsed, path.name)
        extra = csv_attributes.get((parsed.machine_type, path.name))
        if extra:  # names win where both say something
            parsed = replace(parsed, attributes={**extra, **parsed.attributes})
        result.candidates.append(Candidate(dataset, root, rel, parsed))
    for exc in errors:
        folder = Path(exc.filename) if exc.filename else root
        why = exc.strerror or str(exc)
        if folder == root:
            raise DatasetRootError(f"dataset root {root} cannot be listed ({why}); nothing was ingested or removed")
        rel = folder.relative_to(root).as_posix()
        result.unlisted.append(rel)
        result.quarantined.append(QuarantineRecord(
            dataset, str(root), rel, "scan", f"folder cannot be listed ({why}); its clips from earlier ingests are kept"))
    if not found:
        unreadable = f", {len(errors)} sub-folder(s) cannot be listed" if errors else ""
        raise DatasetRootError(f"dataset root {root} {EMPTY_ROOT}{unreadable}; nothing was ingested or removed")
    return result


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:  # broken or looping symlink: the probe stage names the problem
        return None


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
