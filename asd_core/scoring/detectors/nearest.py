"""Nearest-reference detectors: plain distance (``none``), local-density ratio (``knn``, ``gwrp``:
the proposed method) and subtractive variant (``knn-diff``, ``gwrp-diff``), methods.md section 2."""

from __future__ import annotations

import numpy as np

from asd_core.scoring import density
from asd_core.scoring.config import ScoringConfig
from asd_core.scoring.detectors.base import BaseDetector
from asd_core.scoring.distances import index_center, index_form
from asd_core.scoring.search import IVFPartition, NormalizedIndex, build_index


class NearestReference(BaseDetector):
    """min_j d(x, y_j), min_j d / rho_j or min_j d - rho_j over the section's references (search.py);
    rho is the leave-one-out local scale (density.py). ``index_type="exact"`` searches all
    references; ``"ivf"`` (approximate, issue 15 part 3) one IVF partition for rho fit and queries,
    both re-ranked in float64 (methods.md section 2)."""

    persistable = True

    @property
    def mode(self) -> str:
        n = self.config.normalization
        return "plain" if n == "none" else "diff" if n.endswith("-diff") else "ratio"

    def min_references(self) -> int:
        n = self.config.normalization
        return self.config.k + 1 if n.startswith("knn") else super().min_references()

    def _fit(self, refs, domains, test) -> None:
        cfg = self.config
        searched, self.self_ids_ = self._searched(refs, domains)
        n = cfg.normalization
        partition = None
        if cfg.index_type == "ivf":  # one partition serves the rho fit and the queries
            partition = IVFPartition.fit(index_form(searched, cfg.metric, index_center(searched, cfg.metric)))
        search = dict(index_type=cfg.index_type, partition=partition)
        if n.startswith("knn"):
            self.rho_ = density.local_scale(searched, cfg.metric, "knn", k=cfg.k, **search)
        elif n.startswith("gwrp"):
            self.rho_ = density.local_scale(searched, cfg.metric, "gwrp", r=cfg.r, **search)
        else:
            self.rho_ = np.ones(searched.shape[0])
        self.index_: NormalizedIndex = build_index(searched, self.rho_, cfg.metric, self.mode, **search)

    def _searched(self, refs: np.ndarray, domains) -> tuple[np.ndarray, np.ndarray]:
        """The searched reference set and, per original reference, its id in it (-1: absent)."""
        return refs, np.arange(refs.shape[0])

    def _score(self, x: np.ndarray) -> np.ndarray:
        return self.index_.search(x, 1)[0][:, 0]

    def reference_scores(self) -> np.ndarray:
        return self.index_.search(self.references_, 1, exclude=self.self_ids_)[0][:, 0]

    @classmethod
    def restore(cls, config: ScoringConfig, index: NormalizedIndex, dim: int, n_references: int, threshold: float):
        """A fitted detector from a saved index (index_store.py), no refit."""
        det = cls(config)
        det.index_, det.rho_, det.dim_, det.n_references_, det.threshold_ = index, index.rho, dim, n_references, threshold
        return det
