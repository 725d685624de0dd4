"""Embedding-based anomaly scoring with local-density normalisation (methods.md sections 1-2)."""

from asd_core.scoring.detector import NORMALIZATIONS, Detector, ScoringConfig, get_detector, make_detector

__all__ = ["NORMALIZATIONS", "Detector", "ScoringConfig", "get_detector", "make_detector"]
