"""Ingest without an orchestrator: plan every root, ingest each (dataset, machine type) group in
turn, write the quarantine and publish. ``flows/ingest.py`` runs the same steps with one Prefect
task per group; tests, benchmarks and library users call this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asd_core.config import IngestConfig, Workspace
from asd_core.datasets.scan import QuarantineRecord
from asd_core.ingest.partition import GroupResult, ingest_group
from asd_core.ingest.plan import plan_ingest
from asd_core.ingest.summary import write_quarantine
from asd_core.storage.catalog import publish_ingest


@dataclass
class IngestRun:
    groups: list[GroupResult]  # one per (dataset, machine type), in plan order
    quarantined: list[QuarantineRecord]  # rejected by name when planning, or by content in a group

    @property
    def clips(self) -> int:
        return sum(g.clips for g in self.groups)


def ingest_roots(ws: Workspace, roots: list[Path], dataset_name: str | None = None, cfg: IngestConfig | None = None,
                 publish: bool = True) -> IngestRun:
    """Ingest ``roots`` into ``ws`` (a dataset name defaults to each root's folder name).
    ``publish=False`` leaves DuckDB as it was (Parquet only), for timing the ingest alone."""
    cfg = cfg or IngestConfig()
    plan = plan_ingest(ws, [Path(r) for r in roots], dataset_name, cfg)  # checks every root first
    ws.ensure()
    results = [ingest_group(ws, ds, mt, cands, plan.roots[ds], cfg, plan.unlisted.get(ds, []))
               for (ds, mt), cands in plan.groups.items()]
    quarantined = plan.quarantined + [q for r in results for q in r.quarantined]
    for dataset, roots_now in plan.roots.items():
        write_quarantine(ws, dataset, roots_now, [q for q in quarantined if q.dataset == dataset])
    if publish:
        publish_ingest(ws)
    return IngestRun(results, quarantined)
