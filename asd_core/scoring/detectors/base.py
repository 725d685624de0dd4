"""What every detector offers (pyod-style): ``fit(references)`` once per section,
``decision_function(x)`` (higher = more anomalous) and ``threshold_``, one per section."""

from __future__ import annotations

import numpy as np

from asd_core.scoring.config import ScoringConfig
from asd_core.scoring.distances import ScoringInputError, check_embeddings


class BaseDetector:
    """Fitted state has a trailing underscore; ``threshold_`` is the ``threshold_quantile`` of the
    leave-one-out reference scores, the same for both domains (methods.md section 2)."""

    transductive = False  # True: fitting needs the scored (test) clips too
    persistable = False  # True: the fitted state can be saved as an index folder (index_store.py)

    def __init__(self, config: ScoringConfig):
        self.config = config

    def fit(self, references: np.ndarray, reference_domains=None, ids=None, test: np.ndarray | None = None):
        """Fit on a section's normal training clips (``test``: only for transductive detectors)."""
        refs = check_embeddings(references, "references", ids=ids)
        if refs.shape[0] == 0:
            raise ScoringInputError("no reference embeddings (the section has no normal training clips)")
        needs = self.min_references()
        if refs.shape[0] < needs:
            raise ScoringInputError(f"{refs.shape[0]} reference(s), but normalization {self.config.normalization!r} "
                                    f"with k={self.config.k} needs at least {needs}")
        if test is not None and not self.transductive:
            raise ScoringInputError(f"normalization {self.config.normalization!r} is inductive: fit it without test clips")
        self.dim_, self.n_references_, self.references_ = refs.shape[1], refs.shape[0], refs
        domains = None if reference_domains is None else np.asarray(reference_domains, dtype=object)
        self._fit(refs, domains, test)
        self.threshold_ = float(np.quantile(self.reference_scores(), self.config.threshold_quantile))
        return self

    def min_references(self) -> int:
        return 1 if self.config.normalization == "none" else 2

    def decision_function(self, embeddings: np.ndarray, ids=None) -> np.ndarray:
        """Anomaly scores (float64), higher = more anomalous."""
        if not hasattr(self, "dim_"):
            raise RuntimeError("detector is not fitted; call fit(references) first")
        return self._score(check_embeddings(embeddings, "test embeddings", self.dim_, ids=ids))

    score = decision_function  # the name the rest of the pipeline uses

    def reference_scores(self) -> np.ndarray:
        """Leave-one-out scores of the references (each scored against the others)."""
        raise NotImplementedError

    def _fit(self, refs: np.ndarray, domains, test) -> None:
        raise NotImplementedError

    def _score(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError
