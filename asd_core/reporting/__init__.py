"""Run reports people look at: score histograms before/after normalization, ROC per domain, metrics."""

from asd_core.reporting.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
