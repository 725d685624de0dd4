"""Labels and domains of anonymised evaluation clips from DCASE evaluator CSVs (methods.md section 5).

Layout of the official evaluator repositories (searched recursively, so any nesting works)::

    ground_truth_data/ground_truth_<machine>_section_<ss>_test.csv     file,1|0 (1 = anomaly)
    ground_truth_domain/ground_truth_<machine>_section_<ss>_test.csv   file,0|1 (1 = target)
    ground_truth_attributes/<machine>/attributes_<ss>.csv              anonymised -> full name

A ground-truth file counts as a domain file when a folder on its path or its own name says
``domain``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
import re

from asd_core.datasets.naming import NamingError, ParsedName, parse_clip_path

_GT_NAME = re.compile(r"^ground_truth_(?:domain_)?(?P<machine>.+)_(?:section|id)_(?P<section>\d+)_test\.csv$")


class GroundTruthError(ValueError):
    """A ground-truth CSV that cannot be read."""


@dataclass
class GroundTruth:
    """(machine_type, file name) -> label / domain / full name."""

    labels: dict[tuple[str, str], str] = field(default_factory=dict)
    domains: dict[tuple[str, str], str] = field(default_factory=dict)
    full_names: dict[tuple[str, str], str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.labels or self.domains or self.full_names)

    def apply(self, parsed: ParsedName, file_name: str) -> ParsedName:
        """Fill label/domain/attributes of an anonymised clip; other clips pass unchanged."""
        if parsed.scheme not in ("dcase-eval", "dcase2020") or (parsed.label and parsed.domain):
            return parsed
        key = (parsed.machine_type, file_name)
        label, domain, attrs = parsed.label, parsed.domain, dict(parsed.attributes)
        if key in self.full_names:
            full = self.full_names[key]
            try:
                detail = parse_clip_path(f"{parsed.machine_type}/{parsed.split}/{full}")
                label, domain = label or detail.label, domain or detail.domain
                attrs = {**detail.attributes, **attrs}
            except NamingError:
                pass
        label = label or self.labels.get(key)
        domain = domain or self.domains.get(key)
        return ParsedName(
            scheme=parsed.scheme, machine_type=parsed.machine_type, section=parsed.section,
            split=parsed.split, domain=domain, label=label, index=parsed.index, attributes=attrs,
        )


def _read_rows(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="") as fh:
            return [row for row in csv.reader(fh) if row and any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GroundTruthError(f"{path}: cannot read ground-truth CSV ({exc})") from None


def load_ground_truth(folder: Path) -> GroundTruth:
    """Read every ground-truth and attribute CSV under ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GroundTruthError(f"{folder}: ground-truth folder does not exist")
    gt = GroundTruth()
    for path in sorted(folder.rglob("ground_truth_*.csv")):
        m = _GT_NAME.match(path.name)
        if not m:
            continue
        is_domain = "domain" in path.name or any("domain" in p for p in path.relative_to(folder).parts[:-1])
        machine = m["machine"]
        for row in _read_rows(path):
            if len(row) < 2:
                raise GroundTruthError(f"{path}: row {row!r} has no value column")
            name, value = PurePosixPath(row[0].strip()).name, row[1].strip()
            if value not in ("0", "1"):
                raise GroundTruthError(f"{path}: value {value!r} for {name} is not 0 or 1")
            if is_domain:
                gt.domains[(machine, name)] = "target" if value == "1" else "source"
            else:
                gt.labels[(machine, name)] = "anomaly" if value == "1" else "normal"
    for path in sorted(folder.rglob("attributes_*.csv")):
        _read_attribute_mapping(path, gt)
    return gt


def load_attribute_csvs(root: Path) -> dict[tuple[str, str], dict[str, str]]:
    """``attributes_<ss>.csv`` files of a dataset (2023+): (machine, file name) -> attributes.

    Rows are ``<machine>/<split>/<file>, d1p, d1v, d2p, d2v, ...`` (the first row is a header).
    Rows that map an anonymised name to a full name are handled by :class:`GroundTruth`.
    """
    out: dict[tuple[str, str], dict[str, str]] = {}
    for path in sorted(Path(root).rglob("attributes_*.csv")):
        for row in _read_rows(path):
            first = PurePosixPath(row[0].strip())
            if first.suffix.lower() != ".wav":
                continue  # header
            machine = first.parts[0] if len(first.parts) >= 2 else path.parent.name
            cells = [c.strip() for c in row[1:]]
            attrs = {cells[i]: cells[i + 1] for i in range(0, len(cells) - 1, 2)
                     if cells[i] and not cells[i + 1].endswith(".wav")}
            if attrs:
                out[(machine, first.name)] = attrs
    return out


def _read_attribute_mapping(path: Path, gt: GroundTruth) -> None:
    for row in _read_rows(path):
        first = PurePosixPath(row[0].strip())
        if len(row) < 2 or first.suffix.lower() != ".wav" or len(first.parts) < 2:
            continue  # header or a row without a machine folder
        machine = first.parts[0]
        second = row[1].strip()
        if second.endswith(".wav") or second.startswith("section_"):
            name = PurePosixPath(second).name
            gt.full_names[(machine, first.name)] = name if name.endswith(".wav") else name + ".wav"
