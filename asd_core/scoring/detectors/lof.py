"""Local outlier factor with K neighbours fit on the references, novelty mode (methods.md section 2)."""

from __future__ import annotations

import numpy as np

from asd_core.scoring import density
from asd_core.scoring.detectors.base import BaseDetector
from asd_core.scoring.distances import from_faiss, prepare


class LocalOutlierFactor(BaseDetector):
    def min_references(self) -> int:
        return self.config.k + 1

    def _fit(self, refs, domains, test) -> None:
        x = prepare(refs, self.config.metric)
        self._x = x
        self._index = density.flat_index(x, self.config.metric)
        self.k_distance_ = density.loo_neighbour_distances(refs, self.config.metric, self.config.k)[:, -1]
        self.lrd_ = self._lrd(*self._neighbours(x, exclude_self=True))

    def _neighbours(self, x, exclude_self: bool):
        k = self.config.k
        vals, ids = self._index.search(x, k + 1 if exclude_self else k)
        d = from_faiss(vals, self.config.metric)
        if exclude_self:
            d, ids = density.drop_self(d, ids, np.arange(x.shape[0]))
        return d, ids

    def _lrd(self, d, ids):
        return 1.0 / (np.maximum(self.k_distance_[ids], d).mean(1) + 1e-10)

    def _lof(self, x, exclude_self=False):
        d, ids = self._neighbours(x, exclude_self)
        return self.lrd_[ids].mean(1) / self._lrd(d, ids)

    def _score(self, x):
        return self._lof(prepare(x, self.config.metric))

    def reference_scores(self):
        return self._lof(self._x, exclude_self=True)
