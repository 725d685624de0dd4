"""The scoring methods by name (methods.md section 2): ``make_detector(config)`` gives the fitted-to-be
detector of a ScoringConfig (detectors/: one class per method).

Normalisations: ``none``; ``knn`` / ``gwrp`` (ratio d / rho, the proposed method) and
``knn-diff`` / ``gwrp-diff`` (d - rho); comparison methods ``kmeans-source``, ``smote``,
``domain-standardize`` (transductive: fit with the test clips) and ``lof``.
"""

from __future__ import annotations

from asd_core.scoring.config import NORMALIZATIONS, TRANSDUCTIVE, ScoringConfig
from asd_core.scoring.detectors import BaseDetector, get_detector

Detector = BaseDetector


def make_detector(config: ScoringConfig) -> BaseDetector:
    return get_detector(config)


__all__ = ["NORMALIZATIONS", "TRANSDUCTIVE", "Detector", "ScoringConfig", "get_detector", "make_detector"]
