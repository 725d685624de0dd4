"""Comparison methods that change the reference set before plain nearest-reference scoring
(methods.md section 2): k-means of the source references, SMOTE oversampling of the target ones."""

from __future__ import annotations

import faiss
import numpy as np

from asd_core.scoring.detectors.nearest import NearestReference
from asd_core.scoring.distances import ScoringInputError, prepare


class _Resampled(NearestReference):
    persistable = False  # their state depends on a random draw; refit instead of storing it

    @property
    def mode(self) -> str:
        return "plain"

    def _searched(self, refs, domains):
        if domains is None:
            raise ScoringInputError(f"normalization {self.config.normalization!r} needs the domain of each reference")
        return self._resample(prepare(refs, self.config.metric), domains)


class KMeansSource(_Resampled):
    """Source references replaced by ``kmeans_clusters`` centroids; target references kept."""

    def _resample(self, x, domains):
        src, tgt = np.flatnonzero(domains == "source"), np.flatnonzero(domains != "source")
        c = min(self.config.kmeans_clusters, src.size)
        if c == 0:
            return x, np.arange(x.shape[0])
        km = faiss.Kmeans(x.shape[1], c, niter=25, seed=self.config.seed, spherical=self.config.metric == "cosine")
        km.train(x[src])
        centroids = prepare(km.centroids, self.config.metric)
        ids = np.full(x.shape[0], -1)
        ids[tgt] = c + np.arange(tgt.size)
        return np.vstack([centroids, x[tgt]]).astype(np.float32), ids


class Smote(_Resampled):
    """Target references oversampled to the source count (``smote_neighbors`` neighbours)."""

    def _resample(self, x, domains):
        src, tgt = np.flatnonzero(domains == "source"), np.flatnonzero(domains == "target")
        extra = src.size - tgt.size
        if tgt.size < 2 or extra <= 0:
            return x, np.arange(x.shape[0])
        rng = np.random.default_rng(self.config.seed)
        t = x[tgt].astype(np.float64)
        k = min(self.config.smote_neighbors, tgt.size - 1)
        d2 = ((t[:, None] - t[None]) ** 2).sum(-1)
        np.fill_diagonal(d2, np.inf)
        neigh = np.argsort(d2, axis=1)[:, :k]
        base = rng.integers(0, tgt.size, extra)
        partner = neigh[base, rng.integers(0, k, extra)]
        gap = rng.random((extra, 1))
        synth = t[base] + gap * (t[partner] - t[base])
        out = np.vstack([x, prepare(synth.astype(np.float32), self.config.metric)]).astype(np.float32)
        return out, np.arange(x.shape[0])
