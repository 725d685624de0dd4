"""pyod-style detectors: ``fit(references)`` once per section, ``score(x)``: higher = more anomalous.

Normalisations (methods.md section 2): ``none``; ``knn`` / ``gwrp`` (ratio d / rho, the
proposed method) and ``knn-diff`` / ``gwrp-diff`` (d - rho); comparison methods
``kmeans-source``, ``smote``, ``domain-standardize`` (transductive: uses test statistics)
and ``lof``. Fitted state has a trailing underscore.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import faiss
import numpy as np

from asd_core.scoring import density
from asd_core.scoring.distances import ScoringInputError, check_embeddings, check_metric, from_faiss, prepare
from asd_core.scoring.search import NormalizedIndex, build_index

NORMALIZATIONS = ("none", "knn", "gwrp", "knn-diff", "gwrp-diff", "kmeans-source", "smote", "domain-standardize", "lof")
TRANSDUCTIVE = {"domain-standardize"}


@dataclass(frozen=True)
class ScoringConfig:
    """Parameters of one scoring run (they key runs and indexes)."""

    normalization: str = "knn"
    metric: str = "cosine"
    k: int = 1  # K of knn / lof
    r: float = 0.9  # decay of gwrp
    index_type: str = "exact"  # exact | ivf
    threshold_quantile: float = 0.9
    kmeans_clusters: int = 16
    smote_neighbors: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ScoringInputError(f"unknown normalization {self.normalization!r}; choose one of {', '.join(NORMALIZATIONS)}")
        check_metric(self.metric)
        if self.k < 1:
            raise ScoringInputError(f"k must be >= 1, got {self.k}")
        if not 0.0 <= self.r <= 1.0:
            raise ScoringInputError(f"r must be in [0, 1], got {self.r}")
        if not 0.0 < self.threshold_quantile < 1.0:
            raise ScoringInputError(f"threshold quantile must be in (0, 1), got {self.threshold_quantile}")

    @property
    def transductive(self) -> bool:
        return self.normalization in TRANSDUCTIVE

    def params(self) -> dict:
        """The parameters that matter for this normalisation (stored in runs.params)."""
        keep = {"metric", "index_type", "threshold_quantile"}
        n = self.normalization
        if n.startswith("knn") or n == "lof":
            keep.add("k")
        if n.startswith("gwrp"):
            keep.add("r")
        if n == "kmeans-source":
            keep |= {"kmeans_clusters", "seed"}
        if n == "smote":
            keep |= {"smote_neighbors", "seed"}
        return {k: v for k, v in asdict(self).items() if k in keep}


class Detector:
    """Nearest-reference anomaly detector for one section."""

    def __init__(self, config: ScoringConfig):
        self.config = config

    # -- fitting -------------------------------------------------------------------------
    def fit(self, references: np.ndarray, reference_domains=None, ids=None) -> "Detector":
        cfg = self.config
        refs = check_embeddings(references, "references", ids=ids)
        n = refs.shape[0]
        if n == 0:
            raise ScoringInputError("no reference embeddings (the section has no normal training clips)")
        needs = cfg.k + 1 if cfg.normalization in ("knn", "knn-diff", "lof") else 2 if cfg.normalization != "none" else 1
        if n < needs:
            raise ScoringInputError(f"{n} reference(s), but normalization {cfg.normalization!r} with k={cfg.k} needs at least {needs}")
        self.dim_ = refs.shape[1]
        self.n_references_ = n
        x = prepare(refs, cfg.metric)  # float32 form for k-means, SMOTE and LOF
        self.references_ = refs
        domains = None if reference_domains is None else np.asarray(reference_domains, dtype=object)
        norm = cfg.normalization
        self.self_ids_ = np.arange(n)  # id of each reference inside the searched set (-1: absent)
        if norm in ("kmeans-source", "smote", "domain-standardize"):
            if domains is None:
                raise ScoringInputError(f"normalization {norm!r} needs the domain of each reference")
        self.rho_ = np.ones(n)
        mode = "plain"
        if norm in ("knn", "knn-diff"):
            self.rho_ = density.local_scale(refs, cfg.metric, "knn", k=cfg.k)
            mode = "ratio" if norm == "knn" else "diff"
        elif norm in ("gwrp", "gwrp-diff"):
            self.rho_ = density.local_scale(refs, cfg.metric, "gwrp", r=cfg.r)
            mode = "ratio" if norm == "gwrp" else "diff"
        elif norm == "kmeans-source":
            x, self.self_ids_ = self._kmeans_source(x, domains)
            refs = x
            self.rho_ = np.ones(x.shape[0])
        elif norm == "smote":
            x = refs = self._smote(x, domains)
            self.rho_ = np.ones(x.shape[0])
        elif norm == "domain-standardize":
            self._domain_index = {}
            for d in ("source", "target"):
                sel = np.flatnonzero(domains == d)
                if sel.size == 0:
                    raise ScoringInputError(f"normalization 'domain-standardize' needs {d} references; the section has none")
                self._domain_index[d] = (build_index(refs[sel], np.ones(sel.size), cfg.metric, "plain"), sel)
        elif norm == "lof":
            d = density.loo_neighbour_distances(x, cfg.metric, cfg.k)
            self._lof_index = density.flat_index(x, cfg.metric)
            self.k_distance_ = d[:, -1]
            self.lrd_ = self._lof_lrd_refs(x)
        if norm not in ("domain-standardize", "lof"):
            self.index_: NormalizedIndex = build_index(refs, self.rho_, cfg.metric, mode, cfg.index_type)
        return self

    def _kmeans_source(self, x, domains):
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

    def _smote(self, x, domains):
        src, tgt = np.flatnonzero(domains == "source"), np.flatnonzero(domains == "target")
        extra = src.size - tgt.size
        if tgt.size < 2 or extra <= 0:
            return x
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
        return np.vstack([x, prepare(synth.astype(np.float32), self.config.metric)]).astype(np.float32)

    # -- LOF --------------------------------------------------------------------------------
    def _lof_neighbours(self, x, exclude_self: bool):
        k = self.config.k
        vals, ids = self._lof_index.search(x, k + 1 if exclude_self else k)
        d = from_faiss(vals, self.config.metric)
        if exclude_self:
            d, ids = density.drop_self(d, ids, np.arange(x.shape[0]))
        return d, ids

    def _lof_lrd_refs(self, x):
        d, ids = self._lof_neighbours(x, exclude_self=True)
        reach = np.maximum(self.k_distance_[ids], d)
        return 1.0 / (reach.mean(1) + 1e-10)

    def _lof_score(self, x, exclude_self=False):
        d, ids = self._lof_neighbours(x, exclude_self)
        reach = np.maximum(self.k_distance_[ids], d)
        lrd = 1.0 / (reach.mean(1) + 1e-10)
        return self.lrd_[ids].mean(1) / lrd

    # -- scoring --------------------------------------------------------------------------
    def score(self, embeddings: np.ndarray, ids=None) -> np.ndarray:
        """Anomaly scores (float64), higher = more anomalous."""
        self._check_fitted()
        x = check_embeddings(embeddings, "test embeddings", self.dim_, ids=ids)
        norm = self.config.normalization
        if norm == "lof":
            return self._lof_score(prepare(x, self.config.metric))
        if norm == "domain-standardize":
            parts = {d: idx.search(x, 1)[0][:, 0] for d, (idx, _) in self._domain_index.items()}
            # transductive: z-score with the statistics of the scored (test) clips
            self.test_stats_ = {d: (s.mean(), s.std() + 1e-12) for d, s in parts.items()}
            return np.minimum(*[(parts[d] - m) / sd for d, (m, sd) in self.test_stats_.items()])
        return self.index_.search(x, 1)[0][:, 0]

    decision_function = score

    def reference_scores(self) -> np.ndarray:
        """Leave-one-out scores of the references (for the decision threshold)."""
        self._check_fitted()
        x, norm = self.references_, self.config.normalization
        if norm == "lof":
            return self._lof_score(prepare(x, self.config.metric), exclude_self=True)
        if norm == "domain-standardize":
            stats = getattr(self, "test_stats_", None)
            if stats is None:
                raise RuntimeError("domain-standardize: score the test clips before asking for reference scores")
            parts = {}
            for d, (idx, sel) in self._domain_index.items():
                own = np.full(x.shape[0], -1)
                own[sel] = np.arange(sel.size)
                parts[d] = idx.search(x, 1, exclude=own)[0][:, 0]
            return np.minimum(*[(parts[d] - m) / sd for d, (m, sd) in stats.items()])
        return self.index_.search(x, 1, exclude=self.self_ids_)[0][:, 0]

    def threshold(self) -> float:
        """One threshold for the whole section: a quantile of the LOO reference scores."""
        return float(np.quantile(self.reference_scores(), self.config.threshold_quantile))

    # -- persistence (index-based normalisations) -------------------------------------------
    @property
    def persistable(self) -> bool:
        return self.config.normalization in ("none", "knn", "gwrp", "knn-diff", "gwrp-diff")

    @classmethod
    def restore(cls, config: ScoringConfig, index: NormalizedIndex, dim: int, n_references: int) -> "Detector":
        """A detector that scores with a saved index and its saved references (no refit)."""
        det = cls(config)
        det.index_, det.rho_, det.dim_, det.n_references_ = index, index.rho, dim, n_references
        return det

    def _check_fitted(self) -> None:
        if not hasattr(self, "dim_"):
            raise RuntimeError("detector is not fitted; call fit(references) first")


def make_detector(config: ScoringConfig) -> Detector:
    return Detector(config)
