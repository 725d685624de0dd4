"""Local distance scale rho of each reference (methods.md section 2), leave-one-out.

rho is computed once per section from FAISS k-NN among the references, in chunks of queries,
with the candidates' distances recomputed exactly in float64, so memory is O(chunk x k),
never N x N. GWRP first uses the neighbours whose weight r^(k-1) is at least 1e-12
(``GWRP_MIN_WEIGHT``); dropping the rest moves rho by at most r^m * d_max, which relative to a
small rho can be far above 1e-12 / (1 - r), so references whose bound exceeds ``GWRP_RTOL`` are
recomputed with enough ranks (``_gwrp``). With r = 1 every neighbour has weight 1 and all N - 1
are used.

``index_type="ivf"`` (the approximate mode, methods.md section 2 / issue 15 part 3) takes the
candidates from the references' ``nprobe`` nearest k-means lists (search.IVFPartition) instead of all
N, scanned in blocks; the float64 re-ranking is the same, memory stays O(N k), and a reference whose
probed lists hold fewer than k others is recomputed exhaustively.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import faiss
import numpy as np

from asd_core.scoring.distances import SHORTLIST, candidate_distances, index_center, index_form, prepare64, reference_norms
from asd_core.scoring.search import IVFPartition

GWRP_MIN_WEIGHT = 1e-12
GWRP_RTOL = 1e-12  # bound on the relative error of a truncated GWRP rho (see _gwrp)
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


def loo_neighbour_distances(refs: np.ndarray, metric: str, k: int, memory_mb: int = 256,
                            shortlist: int = SHORTLIST, rows: np.ndarray | None = None,
                            index_type: str = "exact", partition: IVFPartition | None = None) -> np.ndarray:
    """Sorted float64 distances from each reference to its ``k`` nearest *other* references [N, k].

    ``refs`` are the stored (unprepared) embeddings. FAISS proposes k + 1 + ``shortlist``
    candidates per reference in float32 (all N: ``"exact"``; its probed IVF lists: ``"ivf"``,
    approximate); their distances are recomputed in float64 from the difference vectors and self is
    removed by index, not by position, so duplicates (distance 0 to another reference) are kept as
    real neighbours. Memory is O(len(rows) k) plus chunks of ``memory_mb``, never N x N.
    """
    refs = np.ascontiguousarray(refs, dtype=np.float32)
    n = refs.shape[0]
    m = min(n, k + 1 + shortlist)
    prepared = index_form(refs, metric, index_center(refs, metric))
    # row-wise, in blocks: no float64 copy of all references (the values are reference_norms')
    norms = np.concatenate([reference_norms(refs[s : s + 8192], metric) for s in range(0, n, 8192)] or [np.ones(0)])
    all_rows = rows is None
    rows = np.arange(n) if rows is None else np.asarray(rows)
    out = np.full((len(rows), k), np.inf)
    # FAISS returns m distances and ids per query, the re-ranking m x dim float64 values: bound both.
    chunk = max(1, min(4096, memory_mb * 2**20 // (16 * m + 8 * m * refs.shape[1])))

    def rerank(at: np.ndarray, ids: np.ndarray) -> None:
        own = rows[at]
        d = candidate_distances(prepare64(refs[own], metric), refs, norms, ids, metric)
        d[ids == own[:, None]] = np.inf
        out[at] = np.sort(d, axis=1)[:, :k]

    todo = np.arange(len(rows))
    if index_type == "ivf":
        if partition is None:
            partition = IVFPartition.fit(prepared)
        metric_faiss = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
        for sel, cand in partition.groups(partition.probe(prepared if all_rows else prepared[rows])):
            base = np.ascontiguousarray(prepared[cand])  # one group's probed lists, scanned as a block
            mm = min(m, len(cand))
            for start in range(0, len(sel), chunk):
                at = sel[start : start + chunk]
                ids = np.full((len(at), m), -1, np.int64)
                ids[:, :mm] = cand[faiss.knn(prepared[rows[at]], base, mm, metric=metric_faiss)[1]]
                rerank(at, ids)
        todo = np.flatnonzero(~np.isfinite(out[:, -1])) if k <= n - 1 else np.empty(0, np.int64)
    elif index_type != "exact":
        raise ValueError(f"unknown index type {index_type!r}; choose exact or ivf")
    if len(todo):
        index = flat_index(prepared, metric)
        for start in range(0, len(todo), chunk):
            at = todo[start : start + chunk]
            rerank(at, index.search(prepared[rows[at]], m)[1])
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


_SHARED: ContextVar[dict | None] = ContextVar("asd_shared_scales", default=None)


@contextmanager
def shared_scales() -> Iterator[None]:
    """Inside the block, rho of the same references, metric, method and K (or r) is computed once:
    a parameter grid fits knn and knn-diff of one K (gwrp and gwrp-diff of one r) on one fit."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def local_scale(refs: np.ndarray, metric: str, method: str, k: int = 1, r: float = 0.9,
                index_type: str = "exact", partition: IVFPartition | None = None) -> np.ndarray:
    """rho_K (mean of the K nearest) or rho_r (GWRP) for every reference (stored form), float64;
    ``index_type="ivf"`` finds the neighbours approximately (``loo_neighbour_distances``)."""
    shared = _SHARED.get()
    if shared is None:
        return _local_scale(refs, metric, method, k, r, index_type, partition)
    # the entry holds ``refs`` itself, so its id cannot be reused by another array while the block lasts
    key = (id(refs), refs.shape, metric, method, k if method == "knn" else r, index_type)
    if key not in shared:
        shared[key] = (refs, _local_scale(refs, metric, method, k, r, index_type, partition))
    return shared[key][1].copy()


def _local_scale(refs, metric, method, k, r, index_type, partition) -> np.ndarray:
    n = refs.shape[0]
    if index_type == "ivf" and partition is None:
        partition = IVFPartition.fit(index_form(refs, metric, index_center(refs, metric)))
    search = dict(index_type=index_type, partition=partition)
    if method == "knn":
        rho = loo_neighbour_distances(refs, metric, k, **search).mean(axis=1)
    elif method == "gwrp":
        rho = _gwrp(refs, metric, r, n, search)
    else:
        raise ValueError(f"unknown local scale method {method!r}")
    return np.maximum(rho, RHO_EPS)


def _gwrp_mean(d: np.ndarray, r: float) -> np.ndarray:
    m = d.shape[1]
    w = np.power(r, np.arange(m, dtype=np.float64)) if r > 0 else np.eye(1, m).ravel()
    return (d * w).sum(axis=1) / w.sum()


def _gwrp(refs: np.ndarray, metric: str, r: float, n: int, search: dict | None = None) -> np.ndarray:
    """GWRP over the first m ranked neighbours, m grown per reference until the truncated tail is
    provably below ``GWRP_RTOL`` of rho.

    Dropping ranks > m moves rho by at most r^m * d_max (the tail's weights are r^m / (1 - r) of
    a total 1 / (1 - r), and each dropped distance is at most d_max), so the relative error is at
    most r^m * d_max / rho; d_max is 1 for cosine (methods.md section 1) and
    0.25 (|y_j - c| + max_i |y_i - c|) for Euclidean (c: the references' mean)."""
    search = search or {}
    m = gwrp_neighbours(r, n - 1)
    rho = _gwrp_mean(loo_neighbour_distances(refs, metric, m, **search), r)
    if m >= n - 1 or r <= 0.0:
        return rho
    if metric == "cosine":
        d_max = np.ones(n)
    else:
        norms = np.linalg.norm(np.asarray(refs, np.float64) - np.asarray(refs, np.float64).mean(0), axis=1)
        d_max = 0.25 * (norms + norms.max())
    bound = np.power(r, m) * d_max / np.maximum(rho, RHO_EPS)
    need = np.flatnonzero(bound > GWRP_RTOL)
    if need.size:
        # rank count that brings each remaining bound below the tolerance, for the worst of them
        wanted = np.log(GWRP_RTOL * np.maximum(rho[need], RHO_EPS) / d_max[need]) / np.log(r)
        m2 = int(min(n - 1, np.ceil(wanted.max())))
        rho[need] = _gwrp_mean(loo_neighbour_distances(refs, metric, m2, rows=need, **search), r)
    return rho
