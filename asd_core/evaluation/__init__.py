"""Evaluation: metric tables read from DuckDB's SQL views, and DCASE submission export."""

from asd_core.evaluation.report import EvaluationTables, evaluation_tables, export_dcase

__all__ = ["EvaluationTables", "evaluation_tables", "export_dcase"]
