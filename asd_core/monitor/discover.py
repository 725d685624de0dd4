"""Find incoming recordings: a folder tree ``<machine_type>/section_<ss>/**/*.wav`` or a manifest CSV,
each with the time it was recorded (manifest, else a time in the file name, else the file's mtime).

Discovery never fails on one file: a path outside the layout, a manifest row without a machine
type, a missing file or an unreadable time becomes a :class:`Problem` for the quarantine table.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

AUDIO_SUFFIXES = (".wav",)
MANIFEST_COLUMNS = ("path", "machine_type", "section")
SECTION_DIR = re.compile(r"^section_(?P<section>.+)$")

# Times in file names: ISO-8601 extended (2026-11-24T02:00:03, also with '-' between the time
# fields, fractions and a zone), ISO-8601 basic (20261124T020003Z) and YYYYMMDD_HHMMSS.
_ZONE = r"(?P<zone>Z|[+-]\d{2}:?\d{2})?"
_NAME_TIMES = (
    re.compile(r"(?<!\d)(?P<Y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})T(?P<H>\d{2})[:\-]?(?P<M>\d{2})[:\-]?(?P<S>\d{2})"
               r"(?:[.,](?P<f>\d{1,6}))?" + _ZONE + r"(?!\d)"),
    re.compile(r"(?<!\d)(?P<Y>\d{4})(?P<m>\d{2})(?P<d>\d{2})T(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})"
               r"(?:[.,](?P<f>\d{1,6}))?" + _ZONE + r"(?!\d)"),
    re.compile(r"(?<!\d)(?P<Y>\d{4})(?P<m>\d{2})(?P<d>\d{2})_(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})(?!\d)"),
)


class ManifestError(ValueError):
    """A manifest that cannot be read at all (missing file, missing columns); one line naming it."""


@dataclass(frozen=True)
class Candidate:
    """A recording to score: where it is, which section's detector judges it, when it was recorded."""

    path: Path
    machine_type: str
    section: str
    recorded_at: datetime  # naive UTC
    recorded_at_source: str  # manifest | file name | mtime
    dataset: str | None = None  # only needed when the model has the section in several datasets


@dataclass(frozen=True)
class Problem:
    """A file (or manifest row) discovery could not turn into a candidate, with the reason."""

    path: Path
    reason: str
    machine_type: str | None = None
    section: str | None = None
    stage: str = "discover"


def normalise_section(section: str) -> str:
    """``0`` -> ``00``, as the registered model names its sections (DCASE ``section_00``)."""
    section = str(section).strip()
    return section.zfill(2) if section.isdigit() else section


def _to_utc_naive(t: datetime) -> datetime:
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def time_in_name(name: str) -> datetime | None:
    """The first valid timestamp in a file name (UTC when it has a zone, else taken as UTC), or None."""
    for pattern in _NAME_TIMES:
        for m in pattern.finditer(name):
            g = m.groupdict()
            try:
                t = datetime(int(g["Y"]), int(g["m"]), int(g["d"]), int(g["H"]), int(g["M"]), int(g["S"]),
                             int((g.get("f") or "0").ljust(6, "0")))
            except ValueError:  # 20261399_250000: digits, not a time
                continue
            zone = g.get("zone")
            if zone and zone != "Z":
                sign = 1 if zone[0] == "+" else -1
                hh, mm = int(zone[1:3]), int(zone[-2:])
                t = t.replace(tzinfo=timezone(sign * timedelta(hours=hh, minutes=mm)))
            elif zone == "Z":
                t = t.replace(tzinfo=timezone.utc)
            return _to_utc_naive(t)
    return None


def parse_time(text: str) -> datetime:
    """An ISO-8601 time from a manifest cell (a date alone is midnight); ``ValueError`` otherwise."""
    text = text.strip()
    try:
        return _to_utc_naive(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"recorded_at {text!r} is not an ISO-8601 time") from None


def recorded_at(path: Path) -> tuple[datetime, str]:
    """A time in the file name, else the file's mtime (``OSError`` when it cannot be stat'ed)."""
    t = time_in_name(path.name)
    if t is not None:
        return t, "file name"
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).replace(tzinfo=None), "mtime"


def _is_audio(name: str) -> bool:
    return name.lower().endswith(AUDIO_SUFFIXES) and not name.startswith(".")


def discover_folder(incoming: Path) -> tuple[list[Candidate], list[Problem]]:
    """Every ``*.wav`` under ``incoming`` (hidden files and folders skipped; symlinks to files followed,
    to folders not), as candidates when the path reads ``<machine_type>/section_<ss>/...``."""
    incoming = Path(incoming).absolute()
    candidates, problems = [], []
    for folder, dirs, files in os.walk(incoming):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not _is_audio(name):
                continue
            path = Path(folder) / name
            parts = path.relative_to(incoming).parts
            m = SECTION_DIR.match(parts[1]) if len(parts) >= 3 else None
            if m is None:
                problems.append(Problem(path, "not under <machine_type>/section_<ss>/ in the incoming folder"))
                continue
            machine_type, section = parts[0], normalise_section(m["section"])
            try:
                when, source = recorded_at(path)
            except OSError as exc:
                problems.append(Problem(path, f"cannot stat the file ({exc.strerror or exc})", machine_type, section, "read"))
                continue
            candidates.append(Candidate(path, machine_type, section, when, source))
    return candidates, problems


def read_manifest(manifest: Path, base: Path) -> tuple[list[Candidate], list[Problem]]:
    """Rows ``path, machine_type, section[, recorded_at][, dataset]`` of a CSV; relative paths are under ``base``."""
    manifest = Path(manifest)
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in reader.fieldnames or []]
            missing = [c for c in MANIFEST_COLUMNS if c not in header]
            if missing:
                raise ManifestError(f"{manifest}: manifest lacks column(s) {', '.join(missing)} "
                                    f"(needs {', '.join(MANIFEST_COLUMNS)}[, recorded_at][, dataset])")
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except OSError as exc:
        raise ManifestError(f"{manifest}: cannot read the manifest ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"{manifest}: not a readable CSV file ({exc})") from None
    candidates, problems = [], []
    for line, row in enumerate(rows, start=2):
        if not row.get("path"):
            problems.append(Problem(manifest, f"manifest line {line}: empty path"))
            continue
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else Path(base).absolute() / path
        machine_type, section = row.get("machine_type") or None, normalise_section(row.get("section") or "") or None
        if machine_type is None or section is None:
            problems.append(Problem(path, f"manifest line {line}: machine_type and section are required", machine_type, section))
            continue
        try:
            if row.get("recorded_at"):
                when, source = parse_time(row["recorded_at"]), "manifest"
            else:
                when, source = recorded_at(path)
        except ValueError as exc:
            problems.append(Problem(path, f"manifest line {line}: {exc}", machine_type, section))
            continue
        except OSError as exc:
            reason = "file not found" if isinstance(exc, FileNotFoundError) else f"cannot stat the file ({exc.strerror or exc})"
            problems.append(Problem(path, reason, machine_type, section, "read"))
            continue
        candidates.append(Candidate(path, machine_type, section, when, source, row.get("dataset") or None))
    return candidates, problems
