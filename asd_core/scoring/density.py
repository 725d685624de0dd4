"""Local distance scale rho of each reference (methods.md section 2), leave-one-out.

rho is computed once per section from FAISS k-NN among the references, in chunks of queries,
so memory is O(chunk x k), never N x N. For GWRP only the neighbours whose weight r^(k-1) is at
least 1e-12 are used (``GWRP_MIN_WEIGHT``): the dropped terms change rho by a relative amount
below about 1e-12 / (1 - r). With r = 1 every neighbour has weight 1 and all N - 1 are used.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from asd_core.scoring.distances import from_faiss

GWRP_MIN_WEIGHT = 1e-12
RHO_EPS = 1e-8  # duplicate references give rho = 0; the guard keeps the ratio finite


def gwrp_neighbours(r: float, n_others: int) -> int:
    """How many ranked neighbours GWRP with decay r needs for ``n_others`` candidates."""
    if r <= 0.0:
        return 1
    if r >= 1.0:
        return n_others
    return min(n_others, 1 + int(math.floor(math.log(GWRP_MIN_WEIGHT) / math.log(r))))


def flat_index(refs: np.ndarray, metric: str) -> faiss.Index:
    index = faiss.IndexFlatIP(refs.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(refs.shape[1])
    index.add(refs)
    return index


def loo_neighbour_distances(refs: np.ndarray, metric: str, k: int, memory_mb: int = 256) -> np.ndarray:
    """Sorted distances from each reference to its ``k`` nearest *other* references [N, k].

    Self is removed by index, not by position, so duplicates (distance 0 to another reference)
    are kept as real neighbours.
    """
    n = refs.shape[0]
    index = flat_index(refs, metric)
    out = np.empty((n, k), np.float64)
    # FAISS returns (k+1) distances and ids per query; bound that working set.
    chunk = max(1, min(4096, memory_mb * 2**20 // (40 * (k + 1))))
    for start in range(0, n, chunk):
        q = refs[start : start + chunk]
        vals, ids = index.search(q, k + 1)
        d, _ = drop_self(from_faiss(vals, metric), ids, np.arange(start, start + q.shape[0]))
        out[start : start + q.shape[0]] = d
    out.sort(axis=1)
    return out


def drop_self(d: np.ndarray, ids: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From k+1 neighbours per row, remove the row's own id (``own[i]``), keeping k.

    Where self is not among them (lost in a tie at distance 0 with a duplicate), the
    farthest of the k+1 is dropped instead, which leaves the same k distances.
    """
    rows, k1 = d.shape
    is_self = ids == own[:, None]
    drop = np.where(is_self.any(1), is_self.argmax(1), k1 - 1)
    keep = np.ones_like(is_self)
    keep[np.arange(rows), drop] = False
    return d[keep].reshape(rows, k1 - 1), ids[keep].reshape(rows, k1 - 1)


def local_scale(refs: np.ndarray, metric: str, method: str, k: int = 1, r: float = 0.9) -> np.ndarray:
    """rho_K (mean of the K nearest) or rho_r (GWRP) for every prepared reference, float64."""
    n = refs.shape[0]
    if method == "knn":
        d = loo_neighbour_distances(refs, metric, k)
        rho = d.mean(axis=1)
    elif method == "gwrp":
        m = gwrp_neighbours(r, n - 1)
        d = loo_neighbour_distances(refs, metric, m)
        w = np.power(r, np.arange(m, dtype=np.float64)) if r > 0 else np.eye(1, m).ravel()
        rho = (d * w).sum(axis=1) / w.sum()
    else:
        raise ValueError(f"unknown local scale method {method!r}")
    return np.maximum(rho, RHO_EPS)
