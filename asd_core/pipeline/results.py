"""The table a pipeline run ends with: clean results per encoder x normalization (the noisy bins
come from evaluation.noise.noise_comparison)."""

from __future__ import annotations

from asd_core.config import Workspace
from asd_core.storage.catalog import connect, query_rows

RESULT_COLUMNS = ("encoder", "normalization", "official_score", "hmean_auc_source", "hmean_auc_target", "hmean_pauc")


def results_table(ws: Workspace, run_ids: list[str]) -> list[dict]:
    """Official score and harmonic-mean AUCs on the clean test clips, one row per run."""
    if not run_ids:
        return []
    with connect(ws, read_only=True) as con:
        return query_rows(con, f"""
            SELECT {', '.join(RESULT_COLUMNS)}, run_id FROM run_metrics
            WHERE run_id IN ({', '.join('?' * len(run_ids))}) AND noise_subset = 'clean'
            ORDER BY official_score DESC NULLS LAST, encoder, normalization""", list(run_ids))
