"""Scan all roots and group what was found by (dataset, machine type): the units of parallel work.

Every root is checked before anything is scanned or written: one missing, non-folder or empty
root fails the whole ingest with :class:`DatasetRootError`, so an unmounted drive never reads as
"all its clips were deleted".
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from asd_core.config import IngestConfig, Workspace
from asd_core.datasets.ground_truth import load_ground_truth
from asd_core.datasets.scan import (Candidate, DatasetRootError, QuarantineRecord, drop_duplicate_ids, root_problem,
                                    scan_root_full)
from asd_core.storage.paths import existing_machine_types


@dataclass
class IngestPlan:
    roots: dict[str, list[str]]  # dataset -> absolute roots ingested now
    groups: dict[tuple[str, str], list[Candidate]] = field(default_factory=dict)
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    # dataset -> (root, sub-folder) pairs that could not be listed: their earlier clips are kept
    unlisted: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


def check_roots(roots: list[Path]) -> list[Path]:
    """Resolved ``roots``; :class:`DatasetRootError` naming every missing, non-folder or empty root.

    Cheap (stops at each root's first audio file): callers may run it before starting Prefect.
    """
    resolved = [Path(r).expanduser().resolve() for r in roots]
    problems = [p for p in (root_problem(r, need_audio=True) for r in resolved) if p]
    if problems:
        raise DatasetRootError("; ".join(problems) + "; nothing was ingested or removed")
    return resolved


def plan_ingest(ws: Workspace, roots: list[Path], dataset_name: str | None, cfg: IngestConfig) -> IngestPlan:
    """Scan ``roots``; a dataset name defaults to each root's folder name."""
    resolved = check_roots(roots)
    gt = load_ground_truth(cfg.ground_truth) if cfg.ground_truth else None
    plan = IngestPlan(roots=defaultdict(list))
    unlisted: dict[str, list[tuple[str, str]]] = defaultdict(list)
    found: list[Candidate] = []
    for root in resolved:
        dataset = dataset_name or root.name
        plan.roots[dataset].append(str(root))
        scanned = scan_root_full(root, dataset, gt)
        found.extend(scanned.candidates)
        plan.quarantined.extend(scanned.quarantined)
        unlisted[dataset].extend((str(root), folder) for folder in scanned.unlisted)
    kept, dupes = drop_duplicate_ids(found)
    plan.quarantined.extend(dupes)
    groups: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
    for cand in kept:
        groups[(cand.dataset, cand.parsed.machine_type)].append(cand)
    # Machine types ingested before but gone now still get a group, so their rows from these roots are dropped.
    for dataset in plan.roots:
        for machine in existing_machine_types(ws, dataset):
            groups.setdefault((dataset, machine), [])
    plan.groups = dict(sorted(groups.items()))
    plan.roots = dict(plan.roots)
    plan.unlisted = {ds: folders for ds, folders in unlisted.items() if folders}
    return plan
