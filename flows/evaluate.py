"""Evaluate flow: the evaluator-style tables of a run, also stored as Prefect table artifacts."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_table_artifact

from asd_core.config import DEFAULT_WORKSPACE_NAME, Workspace
from asd_core.evaluation import evaluation_tables


@flow(name="asd-evaluate")
def evaluate_flow(workspace: str = DEFAULT_WORKSPACE_NAME, run_id: str | None = None) -> dict:
    tables = evaluation_tables(Workspace(Path(workspace)), run_id)
    key = f"evaluation-{tables.run_id}"
    for name, rows in (("sections", tables.sections), ("summary", tables.summary),
                       ("sections-2020", tables.sections_2020), ("summary-2020", tables.summary_2020)):
        if rows:
            create_table_artifact(key=f"{key}-{name}", table=[{k: _plain(v) for k, v in r.items()} for r in rows],
                                  description=f"{name} of run {tables.run_id} ({tables.run['encoder']}, {tables.run['normalization']})")
    return {k: v for k, v in asdict(tables).items()}


def _plain(v):
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
