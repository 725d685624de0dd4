"""Evaluator-style tables (from the views in sql/metrics.sql) and DCASE submission CSVs."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from asd_core.config import Workspace
from asd_core.storage.atomic import atomic_path
from asd_core.storage.catalog import connect, query_rows, resolve_run

SECTION_COLUMNS = ["dataset", "machine_type", "section", "n_source_normal", "n_target_normal", "n_anomaly",
                   "auc_source", "auc_target", "pauc", "f1_source", "f1_target"]
RUN_COLUMNS = ["dataset", "encoder", "normalization", "sections", "official_score", "hmean_auc_source",
               "hmean_auc_target", "hmean_pauc", "mean_auc_source", "mean_auc_target", "mean_pauc", "transductive"]


@dataclass
class EvaluationTables:
    run_id: str
    run: dict
    sections: list[dict]
    summary: list[dict]
    sections_2020: list[dict]
    summary_2020: list[dict]


def evaluation_tables(ws: Workspace, run_id: str | None = None) -> EvaluationTables:
    with connect(ws, read_only=True) as con:
        run_id = resolve_run(con, run_id)
        run = query_rows(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])[0]
        sections = query_rows(con, f"SELECT {', '.join(SECTION_COLUMNS)} FROM section_metrics WHERE run_id = ? AND noise_subset = 'clean' ORDER BY ALL", [run_id])
        summary = query_rows(con, f"SELECT {', '.join(RUN_COLUMNS)} FROM run_metrics WHERE run_id = ? AND noise_subset = 'clean' ORDER BY dataset", [run_id])
        s2020 = query_rows(con, "SELECT dataset, machine_type, machine_id, n_normal, n_anomaly, auc, pauc "
                                "FROM section_metrics_2020 WHERE run_id = ? AND noise_subset = 'clean' ORDER BY ALL", [run_id])
        r2020 = query_rows(con, "SELECT dataset, machine_ids, mean_auc, mean_pauc, hmean_auc, hmean_pauc "
                                "FROM run_metrics_2020 WHERE run_id = ? AND noise_subset = 'clean' ORDER BY dataset", [run_id])
    return EvaluationTables(run_id, run, sections, summary, s2020, r2020)


def export_dcase(ws: Workspace, run_id: str, out: Path) -> list[Path]:
    """Write ``anomaly_score_<machine>_section_<ss>_test.csv`` and ``decision_result_...`` (no header).

    One folder per dataset under ``out``; file names are the clips' own names, as the
    evaluators expect.
    """
    with connect(ws, read_only=True) as con:
        run_id = resolve_run(con, run_id)
        rows = query_rows(con, """
            SELECT c.dataset, c.machine_type, c.section, c.relative_path, s.score, s.decision
            FROM scores s JOIN clips c USING (clip_id)
            WHERE s.run_id = ? AND c.split = 'test' ORDER BY c.dataset, c.machine_type, c.section, c.relative_path""", [run_id])
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["machine_type"], r["section"]), []).append(r)
    written = []
    for (dataset, machine, section), items in groups.items():
        folder = Path(out) / dataset
        for kind, column in (("anomaly_score", "score"), ("decision_result", "decision")):
            path = folder / f"{kind}_{machine}_section_{section}_test.csv"
            with atomic_path(path) as tmp:
                with open(tmp, "w", newline="") as fh:
                    w = csv.writer(fh)
                    for it in items:
                        w.writerow([Path(it["relative_path"]).name, repr(float(it[column])) if column == "score" else int(it[column])])
            written.append(path)
    return written
