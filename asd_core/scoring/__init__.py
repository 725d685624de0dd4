"""Embedding-based anomaly scoring with local-density normalisation (methods.md sections 1-2).

``ScoringConfig`` (scoring/config.py) imports without FAISS; detectors load on first use (PEP 562),
so the CLI builds its options from the config cheaply.
"""

from asd_core.choices import NORMALIZATIONS
from asd_core.scoring.config import ScoringConfig

__all__ = ["NORMALIZATIONS", "Detector", "ScoringConfig", "get_detector", "make_detector"]


def __getattr__(name: str):
    if name in ("Detector", "get_detector", "make_detector"):
        from asd_core.scoring import detector

        return getattr(detector, name)
    raise AttributeError(f"module 'asd_core.scoring' has no attribute {name!r}")
