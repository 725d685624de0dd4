"""Scan all roots and group what was found by (dataset, machine type): the units of parallel work."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from asd_core.config import IngestConfig, Workspace
from asd_core.datasets.ground_truth import load_ground_truth
from asd_core.datasets.scan import Candidate, QuarantineRecord, drop_duplicate_ids, scan_root
from asd_core.ingest.layout import existing_machine_types


@dataclass
class IngestPlan:
    roots: dict[str, list[str]]  # dataset -> absolute roots ingested now
    groups: dict[tuple[str, str], list[Candidate]] = field(default_factory=dict)
    quarantined: list[QuarantineRecord] = field(default_factory=list)


def plan_ingest(ws: Workspace, roots: list[Path], dataset_name: str | None, cfg: IngestConfig) -> IngestPlan:
    """Scan ``roots``; a dataset name defaults to each root's folder name."""
    gt = load_ground_truth(cfg.ground_truth) if cfg.ground_truth else None
    plan = IngestPlan(roots=defaultdict(list))
    found: list[Candidate] = []
    for root in roots:
        root = Path(root).expanduser().resolve()
        dataset = dataset_name or root.name
        plan.roots[dataset].append(str(root))
        cands, bad = scan_root(root, dataset, gt)
        found.extend(cands)
        plan.quarantined.extend(bad)
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
    return plan
