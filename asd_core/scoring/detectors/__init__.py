"""One class per scoring method behind a registry (pyod-style ``fit`` / ``decision_function`` /
``threshold_``): ``get_detector("knn", k=2)`` or ``get_detector(ScoringConfig(...))``."""

from __future__ import annotations

from asd_core.scoring.config import ScoringConfig
from asd_core.scoring.detectors.base import BaseDetector
from asd_core.scoring.detectors.domain import DomainStandardize
from asd_core.scoring.detectors.lof import LocalOutlierFactor
from asd_core.scoring.detectors.nearest import NearestReference
from asd_core.scoring.detectors.resampled import KMeansSource, Smote

DETECTORS: dict[str, type[BaseDetector]] = {
    "none": NearestReference, "knn": NearestReference, "gwrp": NearestReference,
    "knn-diff": NearestReference, "gwrp-diff": NearestReference,
    "kmeans-source": KMeansSource, "smote": Smote, "lof": LocalOutlierFactor, "domain-standardize": DomainStandardize,
}


def get_detector(config: ScoringConfig | str, **params) -> BaseDetector:
    """An unfitted detector for a config, or for a normalisation name plus ScoringConfig fields."""
    if isinstance(config, str):
        config = ScoringConfig(normalization=config, **params)
    elif params:
        raise TypeError("give a ScoringConfig or a name with parameters, not both")
    return DETECTORS[config.normalization](config)


__all__ = ["DETECTORS", "BaseDetector", "DomainStandardize", "KMeansSource", "LocalOutlierFactor", "NearestReference",
           "Smote", "get_detector"]
