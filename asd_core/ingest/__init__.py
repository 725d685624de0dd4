"""Ingest: dataset roots -> Parquet ``clips`` / ``audio`` / ``quarantine`` (methods.md section 5)."""

from asd_core.ingest.partition import GroupResult, ingest_group
from asd_core.ingest.plan import IngestPlan, check_roots, plan_ingest
from asd_core.ingest.run import IngestRun, ingest_roots
from asd_core.ingest.summary import summarize_clips, write_quarantine

__all__ = ["GroupResult", "IngestPlan", "IngestRun", "check_roots", "ingest_group", "ingest_roots", "plan_ingest", "summarize_clips", "write_quarantine"]
