"""Quarantine bookkeeping and the per-(machine type, section, split, domain, label) summary."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from asd_core.config import Workspace
from asd_core.datasets.scan import QuarantineRecord
from asd_core.storage.paths import all_files, quarantine_file
from asd_core.schemas import CLIPS, QUARANTINE
from asd_core.storage.atomic import read_parquet_or_empty, write_parquet_atomic


def write_quarantine(ws: Workspace, dataset: str, roots_now: list[str], records: list[QuarantineRecord]) -> int:
    """Replace this dataset's quarantine rows for the roots ingested now; keep other roots' rows."""
    path = quarantine_file(ws, dataset)
    old = [r for r in read_parquet_or_empty(path, QUARANTINE).to_pylist() if r["root"] not in roots_now]
    new = [r.__dict__ for r in records]
    rows = sorted({(r["root"], r["relative_path"], r["stage"]): r for r in old + new}.values(),
                  key=lambda r: (r["root"], r["relative_path"]))
    if rows:
        write_parquet_atomic(pa.Table.from_pylist(rows, schema=QUARANTINE), path, QUARANTINE)
    else:
        path.unlink(missing_ok=True)
    return len(rows)


def summarize_clips(ws: Workspace, datasets: list[str] | None = None) -> list[dict]:
    """Counts per dataset / machine type / section / split / domain / label (metadata only)."""
    cols = ["dataset", "machine_type", "section", "split", "domain", "label"]
    counts: Counter = Counter()
    for path in all_files(ws, "clips"):
        table = pq.read_table(path, columns=cols, schema=CLIPS)
        for row in table.to_pylist():
            if datasets is None or row["dataset"] in datasets:
                counts[tuple(row[c] for c in cols)] += 1
    return [
        {**dict(zip(cols, key)), "clips": n}
        for key, n in sorted(counts.items(), key=lambda kv: tuple("" if v is None else v for v in kv[0]))
    ]
