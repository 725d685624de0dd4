"""Parameters of a scoring run (methods.md section 2): which normalisation, distance and index."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from asd_core.choices import INDEX_TYPES, NORMALIZATIONS, TRANSDUCTIVE
from asd_core.config import option
from asd_core.scoring.distances import ScoringInputError, check_metric


@dataclass(frozen=True)
class ScoringConfig:
    """Parameters of one scoring run (they key runs and indexes)."""

    normalization: str = "knn"
    metric: str = option("cosine", choices=("cosine", "euclidean"),
                         help="distance (default: the encoder's preferred one)")
    k: int = 1  # K of knn / lof
    # decay of gwrp: 0.5 from the measured grid (README "Choosing K and r"; 0.9, the earlier default, was worst or
    # second-worst on every demo set and encoder measured)
    r: float = 0.5
    index_type: str = option("exact", flag="--index", choices=INDEX_TYPES,
                             help="exact: all references; ivf: approximate (IVF lists, float64 re-ranked; agreement "
                                  "measured in benchmarks/scoring.py --approx)")
    threshold_quantile: float = option(0.9, help="decision threshold: this quantile of the leave-one-out reference scores")
    kmeans_clusters: int = 16
    smote_neighbors: int = 4
    seed: int = 0
    # derived from index_type, never set: labels approximate runs in runs.params and index manifests
    approximate: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            raise ScoringInputError(f"unknown index type {self.index_type!r}; choose one of {', '.join(INDEX_TYPES)}")
        object.__setattr__(self, "approximate", self.index_type != "exact")
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
        """The parameters that matter for this normalisation (stored in runs.params); approximate runs
        carry ``approximate: true`` (exact ones omit it, so their run ids are unchanged)."""
        keep = {"metric", "index_type", "threshold_quantile"} | ({"approximate"} if self.approximate else set())
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
