"""Normalised nearest-reference search: float32 candidates from a FAISS index, then exact float64 re-ranking.

methods.md section 2: with a_j = 0.5 / rho_j, cosine d/rho_j = a_j - <x, a_j y_j>, so
min_j d/rho_j = -max_j <[x, 1], [a_j y_j, -a_j]>. The subtractive variant is
0.5 - max_j <[x, 1], [0.5 y_j, rho_j]>. For the Euclidean distance the squared ratio
||x - y_j||^2 / rho_j^2 = <[|x|^2, x, 1], [1/rho_j^2, -2 y_j/rho_j^2, |y_j|^2/rho_j^2]>,
minimised as the maximum of its negation. The Euclidean subtractive variant has no such
form; its shortlist comes from a chunked float64 brute force.

The inner-product form cancels catastrophically in float32 for near neighbours (cosine
distances of 1e-4 lose about 1e-4 of their value), so float32 values only propose candidates:
with a flat index, every reference within the float32 rounding-error bound of the best (almost
always one or two); otherwise a ``shortlist`` of the best. Each score is then d(x, y_j) / rho_j
(or d - rho_j) recomputed in float64 from the difference vector of the stored embeddings, and
the minimum taken over the candidates.

``index_type="ivf"`` is the approximate mode for large reference sets (issue 15 part 3): an
inverted-file partition (``IVFPartition``, k-means lists) restricts each query to the references
of its ``nprobe`` nearest lists, scanned in blocks by BLAS; the shortlist is re-ranked in float64 as
above, but it may miss the true minimum, so agreement is measured (benchmarks/scoring.py). IVF was
chosen over HNSW by that measurement (README, Benchmarks). The same partition serves the rho fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from asd_core.scoring.distances import (SHORTLIST, candidate_distances, index_center, index_form, pairwise, prepare, prepare64,
                                       reference_norms)

MODES = ("plain", "ratio", "diff")
NPROBE = 8  # lists probed per query by the approximate mode (measured: benchmarks/scoring.py)


@dataclass
class IVFPartition:
    """Approximate-mode candidate sets: references split into k-means lists (index form, L2); a query
    is compared with the references of its ``nprobe`` nearest lists only (methods.md section 2).

    Queries are grouped by their nearest list and each group scans the union of its members' probed
    lists at once, so the scan is a matrix product, and every query sees at least its own lists."""

    centroids: np.ndarray  # [nlist, d] float32, index form
    lists: np.ndarray  # [N] list of each reference
    nprobe: int = NPROBE

    def __post_init__(self) -> None:
        self.centroids = np.ascontiguousarray(self.centroids, np.float32)
        self.lists = np.asarray(self.lists, np.int64)
        self.order = np.argsort(self.lists, kind="stable")
        self.offsets = np.searchsorted(self.lists[self.order], np.arange(len(self.centroids) + 1))

    @classmethod
    def fit(cls, vectors: np.ndarray, nlist: int = 0, nprobe: int = NPROBE, seed: int = 0) -> "IVFPartition":
        """k-means (FAISS, 10 iterations on at most 40 points per list) over the index-form references;
        ``nlist`` defaults to round(sqrt(N))."""
        n, dim = vectors.shape
        nlist = max(1, min(n, nlist or int(round(np.sqrt(n)))))
        if nlist == 1:
            centroids = vectors.mean(0, keepdims=True)
        else:
            km = faiss.Kmeans(dim, nlist, niter=10, seed=seed, min_points_per_centroid=1, max_points_per_centroid=40)
            km.train(np.ascontiguousarray(vectors, np.float32))
            centroids = km.centroids
        part = cls(centroids, np.zeros(n, np.int64), nprobe)
        return cls(centroids, part.probe(vectors, 1)[:, 0], nprobe)

    def probe(self, xq: np.ndarray, nprobe: int | None = None) -> np.ndarray:
        """The ``nprobe`` nearest lists of each index-form query [q, nprobe], nearest first."""
        p = min(len(self.centroids), nprobe or self.nprobe)
        return faiss.knn(np.ascontiguousarray(xq, np.float32), self.centroids, p, metric=faiss.METRIC_L2)[1]

    def groups(self, probes: np.ndarray):
        """(query rows, candidate reference ids) per nearest list: the union of the rows' probed lists."""
        by_first = np.argsort(probes[:, 0], kind="stable")
        bounds = np.flatnonzero(np.diff(probes[by_first, 0])) + 1
        for sel in np.split(by_first, bounds):
            if len(sel):
                lists = np.unique(probes[sel])
                yield sel, np.concatenate([self.order[self.offsets[c] : self.offsets[c + 1]] for c in lists])


def partition_shortlist(xq: np.ndarray, vectors: np.ndarray, partition: IVFPartition, probes: np.ndarray, m: int,
                        inner: bool, memory_mb: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Best ``m`` reference ids per query among its probed lists by the float32 value (inner product
    or L2 of ``xq`` and ``vectors``, both in FAISS form) [q, m], and those values; -1 pads where
    fewer were probed.

    ``vectors`` are sorted by list (``vectors[i]`` is reference ``partition.order[i]``), so each list
    is a contiguous block scanned once for all queries probing it; queries go in chunks so the
    [chunk, nprobe * m] merge stays near ``memory_mb``."""
    q, p = probes.shape
    out = np.full((q, m), -1, np.int64)
    out_vals = np.full((q, m), -np.inf if inner else np.inf, np.float32)
    chunk = max(1, memory_mb * 2**20 // (16 * p * m))
    for start in range(0, q, chunk):
        pr = probes[start : start + chunk]
        vals = np.full((len(pr), p * m), -np.inf if inner else np.inf, np.float32)
        ids = np.full((len(pr), p * m), -1, np.int64)
        flat = pr.ravel()
        by_list = np.argsort(flat, kind="stable")
        for pos in np.split(by_list, np.flatnonzero(np.diff(flat[by_list])) + 1):
            if not len(pos):
                continue
            lo, hi = partition.offsets[flat[pos[0]]], partition.offsets[flat[pos[0]] + 1]
            if hi == lo:
                continue
            mm = int(min(m, hi - lo))
            rows, cols = pos // p, (pos % p)[:, None] * m + np.arange(mm)
            d, i = _block_top(xq[start + rows], vectors[lo:hi], mm, inner)
            vals[rows[:, None], cols], ids[rows[:, None], cols] = d, partition.order[lo + i]
        mm = min(m, p * m)
        best = np.argsort(-vals if inner else vals, axis=1, kind="stable")[:, :mm]
        out[start : start + len(pr), :mm] = np.take_along_axis(ids, best, 1)
        out_vals[start : start + len(pr), :mm] = np.take_along_axis(vals, best, 1)
    return out, out_vals


def _block_top(xq: np.ndarray, block: np.ndarray, m: int, inner: bool) -> tuple[np.ndarray, np.ndarray]:
    """The ``m`` best of ``block`` for each row of ``xq`` (unordered): float32 inner products, or
    squared L2 distances by their expansion, as FAISS computes them; one BLAS product (a FAISS
    top-m search of a small block costs about 2.5x its product: profiled 0.30 s against 0.12 s
    for 2,000 queries at N = 1e5, d = 768)."""
    s = xq @ block.T
    if not inner:
        s = (np.einsum("ij,ij->i", xq, xq)[:, None] - 2 * s) + np.einsum("ij,ij->i", block, block)[None, :]
    if m < s.shape[1]:
        idx = np.argpartition(-s if inner else s, m - 1, axis=1)[:, :m]
        return np.take_along_axis(s, idx, 1), idx
    return s, np.broadcast_to(np.arange(s.shape[1]), s.shape)


@dataclass
class NormalizedIndex:
    """Fitted search structure: ``search(x)`` returns (score, nearest reference) per row.

    ``refs`` are the stored (unprepared) float32 references; ``None`` only for indexes saved
    before float64 re-ranking existed, which score with FAISS's float32 values as they did then.
    The shortlist comes from ``index`` (a FAISS index: flat, or a legacy IVF), from ``partition``
    (the approximate mode) or, with neither, from a float64 brute force."""

    metric: str
    mode: str
    index: faiss.Index | None
    refs: np.ndarray | None
    rho: np.ndarray
    shortlist: int = SHORTLIST
    partition: IVFPartition | None = None

    def __post_init__(self) -> None:
        self.norms = None if self.refs is None else reference_norms(self.refs, self.metric)
        self.center = index_center(self.refs, self.metric) if self.refs is not None else None
        searched = self.index is not None or self.partition is not None
        self.unreliable = (np.empty(0, np.int64) if self.refs is None or not searched
                           else unreliable_references(self.refs, self.rho, self.metric, self.mode, self.center))
        # norms of the indexed (augmented) vectors: the float32 error bound of each FAISS value
        bounded = isinstance(self.index, faiss.IndexFlat) or (
            self.partition is not None and not (self.metric == "euclidean" and self.mode == "diff"))
        self.aug_norms = (augmented_norms(self.refs, self.rho, self.metric, self.mode, self.center)
                          if self.refs is not None and bounded else None)
        if self.aug_norms is not None:  # the unreliable references join every shortlist anyway
            reliable = np.setdiff1d(np.arange(len(self.aug_norms)), self.unreliable)
            self.aug_norm_max = float(self.aug_norms[reliable].max(initial=0.0))
        self.vectors = None
        if self.partition is not None and not (self.metric == "euclidean" and self.mode == "diff"):
            vectors = augment_refs(index_form(self.refs, self.metric, self.center), self.rho, self.metric, self.mode)
            self.vectors = vectors[self.partition.order]  # sorted by list: each list one contiguous block

    @property
    def reranked(self) -> bool:
        """Scores are recomputed in float64 from the stored references (not whether the search is exhaustive)."""
        return self.refs is not None

    @property
    def approximate(self) -> bool:
        """The shortlist may miss the true minimum (an IVF partition or a legacy FAISS IVF index)."""
        return self.partition is not None or (self.index is not None and not isinstance(self.index, faiss.IndexFlat))

    def search(self, x: np.ndarray, k: int = 1, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k normalised scores (ascending, float64) and reference ids for raw float32 queries.

        ``exclude[i]`` is a reference id query i may not match (leave-one-out: itself; -1: none)."""
        if not self.reranked:
            return self._search_float32(x, k, exclude)
        n = len(self.rho)
        m = min(n, self.shortlist + k + (exclude is not None))
        keep = None  # which candidates to re-rank: all of them, unless the FAISS values rule some out
        if (self.index is None and self.partition is None) or len(self.unreliable) > max(64, n // 4):
            cand = _brute_candidates(x, self.refs, self.rho, m, self.metric, self.mode)
        else:
            if self.partition is not None:
                cand, keep = self._partition_candidates(x, m, k, exclude)
            else:
                cand, keep = self._index_candidates(x, m, k, exclude)
            if self.approximate:  # too few probed (tiny lists): those rows fall back to the brute force
                short = np.flatnonzero((cand >= 0).sum(1) < min(n, k + (exclude is not None)))
                if len(short):
                    brute = _brute_candidates(x[short], self.refs, self.rho, m, self.metric, self.mode)
                    cand = _pad_columns(cand, brute.shape[1])
                    cand[short] = _pad_columns(brute, cand.shape[1])
                    if keep is not None:
                        keep = _pad_columns(keep, cand.shape[1], False)
                        keep[short] = cand[short] >= 0
            if len(self.unreliable):  # too close to their neighbours for float32: always re-ranked
                cand = np.hstack([cand, np.broadcast_to(self.unreliable, (len(x), len(self.unreliable)))])
                if keep is not None:
                    keep = np.hstack([keep, np.ones((len(x), len(self.unreliable)), bool)])
        d = candidate_distances(prepare64(x, self.metric), self.refs, self.norms, cand, self.metric, mask=keep)
        rho = self.rho[np.where(cand >= 0, cand, 0)]
        vals = d if self.mode == "plain" else d / rho if self.mode == "ratio" else d - rho
        vals = np.where(cand >= 0, vals, np.inf)
        if exclude is not None:
            vals = np.where(cand == np.asarray(exclude)[:, None], np.inf, vals)
        # k = 1 (every score): argmin is the first minimum, as the stable sort's first column
        order = vals.argmin(1)[:, None] if k == 1 else np.argsort(vals, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(vals, order, 1), np.take_along_axis(cand, order, 1)

    def _index_candidates(self, x: np.ndarray, m: int, k: int, exclude) -> tuple[np.ndarray, np.ndarray | None]:
        """Candidate ids [q, width] (-1 pads) and which of them to re-rank (None: all of them).

        Flat index: the float32 value of every reference by one BLAS product per query chunk (the
        same numbers FAISS computes, read from its storage), and every reference whose value is
        within the rounding-error bound of the k-th best (n u |q| |a| for an inner product of length
        n, safety factor >= 2) is kept: only those can be among the k best in exact arithmetic, so
        most queries re-rank one difference vector, and near ties are never cut off by a list length.
        A FAISS top-k search would cost 1.3x its top-1 search at N = 1e3 (README, Benchmarks); the
        product is cheaper than either. Other FAISS indexes (legacy IVF): their top-``m`` list."""
        q = augment_queries(index_form(x, self.metric, self.center), self.metric, self.mode)
        if self.aug_norms is None:
            return self.index.search(q, m)[1], None
        n = len(self.rho)
        inner = isinstance(self.index, faiss.IndexFlatIP)
        stored = self._stored_vectors()
        qn = np.sqrt(np.einsum("ij,ij->i", q, q, dtype=np.float64))
        scale = FLOAT32_ERROR * (q.shape[1] + 8)
        excl = None if exclude is None else np.asarray(exclude)
        chunk = max(1, DENSE_BUDGET // max(1, n))
        rows_all, cols_all = [], []
        for start in range(0, len(q), chunk):
            qc, qnc = q[start : start + chunk], qn[start : start + chunk, None]
            # larger is better: the inner product, or 2 <q, y> - |y|^2 (= -|q - y|^2 up to the query's |q|^2)
            s = qc @ stored.T if inner else 2 * (qc @ stored.T) - self._stored_sq
            if len(self.unreliable):  # garbage in float32: joined to every list below, never a threshold
                s[:, self.unreliable] = -np.inf
            if excl is not None:
                own = np.flatnonzero(excl[start : start + chunk] >= 0)
                s[own, excl[start : start + chunk][own]] = -np.inf
            kth = s.max(1) if k == 1 else (-np.partition(-s, k - 1, axis=1)[:, k - 1] if k <= n
                                            else np.full(len(s), -np.inf, np.float32))
            err_any = scale * (qnc[:, 0] * self.aug_norm_max if inner else (qnc[:, 0] + self.aug_norm_max) ** 2)
            # the k-th's value and any other's are each off by at most err_any: nothing below can win
            floor = np.maximum(kth - 2 * err_any, np.finfo(np.float32).min).astype(np.float32)
            r, c = np.nonzero(s >= floor[:, None])
            rows_all.append(r + start)
            cols_all.append(c)
        rows, cols = np.concatenate(rows_all), np.concatenate(cols_all)
        counts = np.bincount(rows, minlength=len(q))
        ids = np.full((len(q), max(1, int(counts.max(initial=0)))), -1, np.int64)
        ids[rows, np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)] = cols
        return ids, ids >= 0

    def _stored_vectors(self) -> np.ndarray:
        """The flat index's float32 vectors as a read-only view of FAISS's storage (no copy); for an
        L2 index also their squared norms."""
        if getattr(self, "_stored", None) is None:
            ntotal, dim = self.index.ntotal, self.index.d
            self._stored = faiss.rev_swig_ptr(self.index.get_xb(), ntotal * dim).reshape(ntotal, dim)
            if not isinstance(self.index, faiss.IndexFlatIP):
                self._stored_sq = np.einsum("ij,ij->i", self._stored, self._stored, dtype=np.float64).astype(np.float32)
        return self._stored

    def _partition_candidates(self, x: np.ndarray, m: int, k: int, exclude) -> tuple[np.ndarray, np.ndarray | None]:
        """Shortlist among each query's probed lists (FAISS values, or float64 for the Euclidean
        subtractive variant, which has no inner-product form) and which of it to re-rank: as in the
        exhaustive mode, only candidates within the float32 error bound of the k-th best."""
        xq = index_form(x, self.metric, self.center)
        probes = self.partition.probe(xq)
        if self.vectors is not None:
            inner = not (self.mode == "plain" and self.metric == "euclidean")
            q = augment_queries(xq, self.metric, self.mode)
            ids, vals = partition_shortlist(q, self.vectors, self.partition, probes, m, inner)
            valid = ids >= 0
            if exclude is not None:
                valid &= ids != np.asarray(exclude)[:, None]
            if len(self.unreliable):  # garbage in float32 and re-ranked anyway: never the threshold
                valid &= ~np.isin(ids, self.unreliable)
            better = np.where(valid, vals.astype(np.float64) * (1 if inner else -1), -np.inf)
            kth = better.max(1) if k == 1 else -np.sort(-better, axis=1)[:, min(k, better.shape[1]) - 1]
            qn = np.sqrt(np.einsum("ij,ij->i", q, q, dtype=np.float64))
            scale = FLOAT32_ERROR * (q.shape[1] + 8)
            err_any = scale * (qn * self.aug_norm_max if inner else (qn + self.aug_norm_max) ** 2)
            return ids, valid & (better >= (kth - 2 * err_any)[:, None])
        out = np.full((len(x), m), -1, np.int64)
        for sel, cand in self.partition.groups(probes):
            local = _brute_candidates(x[sel], self.refs[cand], self.rho[cand], min(m, len(cand)), self.metric, self.mode)
            out[sel, : local.shape[1]] = cand[local]
        return out, None

    def _search_float32(self, x, k, exclude):
        """The pre-re-ranking path (indexes saved without their references)."""
        q = augment_queries(prepare(x, self.metric), self.metric, self.mode)
        kk = k + (exclude is not None)
        vals, ids = self.index.search(q, kk)
        vals = vals.astype(np.float64)
        if self.mode == "plain":
            scores = np.clip(0.5 * (1 - vals), 0, 1) if self.metric == "cosine" else 0.25 * np.sqrt(np.maximum(vals, 0))
        elif self.metric == "cosine":
            scores = -vals if self.mode == "ratio" else 0.5 - vals
        else:  # euclidean ratio: vals = -||x - y||^2 / rho^2
            scores = 0.25 * np.sqrt(np.maximum(-vals, 0.0))
        if exclude is not None:
            scores = np.where(ids == np.asarray(exclude)[:, None], np.inf, scores)
            order = np.argsort(scores, axis=1, kind="stable")[:, :k]
            scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
        return scores, ids


UNRELIABLE_NOISE = 1e-3  # float32 error of a reference's MIPS value, relative to a unit ratio
# Rounding error of a float32 inner product of length n is at most n * u * |q| |a| (u = 2^-24, the
# classic bound for any summation order); this uses eps32 = 2u for that and for the rounding of the
# vectors themselves (normalisation, centring, augmentation), with 8 extra terms: a safe factor >= 2.
FLOAT32_ERROR = float(np.finfo(np.float32).eps)
DENSE_BUDGET = 1 << 24  # float32 values of one query chunk against every reference (64 MB)


def augmented_norms(refs: np.ndarray, rho: np.ndarray, metric: str, mode: str, center) -> np.ndarray:
    """float64 norms of the vectors ``augment_refs`` indexes (computed, not read back from FAISS)."""
    rho = np.asarray(rho, np.float64)
    if metric == "cosine":
        if mode == "plain":
            return np.ones(len(rho))
        return np.sqrt(2.0) * 0.5 / rho if mode == "ratio" else np.sqrt(0.25 + rho**2)
    y = np.linalg.norm(np.asarray(refs, np.float64) - center, axis=1)
    if mode == "plain":
        return y
    return np.sqrt(1.0 + 4 * y**2 + y**4) / rho**2  # |[-1, 2 y, |y|^2]| / rho^2


def unreliable_references(refs: np.ndarray, rho: np.ndarray, metric: str, mode: str, center,
                          eps: float = float(np.finfo(np.float32).eps)) -> np.ndarray:
    """Ids of references whose ratio the float32 MIPS value cannot rank (rho tiny against the
    vectors' scale, e.g. duplicates with rho clamped to 1e-8): they join every shortlist.

    Cosine: the value a_j - <x, a_j y_j> carries an error of about eps32 * a_j = eps32 / (2 rho_j);
    Euclidean: ||x - y||^2 / rho^2 carries about eps32 (|x| + |y_j|)^2 / rho_j^2 (|x| bounded by the
    largest centred reference norm). Plain and subtractive scores have no per-reference scale."""
    if mode != "ratio":
        return np.empty(0, np.int64)
    if metric == "cosine":
        noise = eps / (2 * rho)
    else:
        norms = np.linalg.norm(np.asarray(refs, np.float64) - center, axis=1)
        noise = eps * (norms + norms.max()) ** 2 / rho**2
    return np.flatnonzero(noise > UNRELIABLE_NOISE).astype(np.int64)


def augment_refs(refs: np.ndarray, rho: np.ndarray, metric: str, mode: str) -> np.ndarray:
    """Reference side of the inner-product reformulation, written into one float32 array."""
    if mode == "plain":
        return refs
    n, d = refs.shape
    rho = rho.astype(np.float64)
    if metric == "cosine":
        out = np.empty((n, d + 1), np.float32)
        if mode == "ratio":
            a = 0.5 / rho
            np.multiply(refs, a[:, None].astype(np.float32), out=out[:, :d])
            out[:, d] = -a
        else:
            np.multiply(refs, np.float32(0.5), out=out[:, :d])
            out[:, d] = rho
        return out
    inv = 1.0 / rho**2
    sq = np.einsum("ij,ij->i", refs, refs, dtype=np.float64)
    out = np.empty((n, d + 2), np.float32)
    out[:, 0] = -inv
    np.multiply(refs, (2 * inv)[:, None].astype(np.float32), out=out[:, 1 : d + 1])
    out[:, d + 1] = -(sq * inv)
    return out


def augment_queries(x: np.ndarray, metric: str, mode: str) -> np.ndarray:
    if mode == "plain":
        return x
    ones = np.ones((x.shape[0], 1), np.float32)
    if metric == "cosine":
        return np.hstack([x, ones]).astype(np.float32)
    sq = (x.astype(np.float64) ** 2).sum(1, keepdims=True).astype(np.float32)
    return np.hstack([sq, x, ones]).astype(np.float32)


def build_index(refs: np.ndarray, rho: np.ndarray, metric: str, mode: str, index_type: str = "exact",
                nlist: int = 0, nprobe: int = NPROBE, partition: IVFPartition | None = None) -> NormalizedIndex:
    """Index the (augmented) references for k-NN queries with the normalised score (methods.md section 2).

    ``refs`` are the stored float32 embeddings, unprepared: the index holds their prepared,
    augmented float32 form, the re-ranking reads them as they are. ``"ivf"``: the approximate mode,
    re-using ``partition`` (e.g. the rho fit's) when given, else fitting one."""
    refs = np.ascontiguousarray(refs, dtype=np.float32)
    rho = np.asarray(rho, dtype=np.float64)
    if index_type == "ivf":
        if partition is None:
            partition = IVFPartition.fit(index_form(refs, metric, index_center(refs, metric)), nlist, nprobe)
        return NormalizedIndex(metric, mode, None, refs, rho, partition=partition)
    if index_type != "exact":
        raise ValueError(f"unknown index type {index_type!r}; choose exact or ivf")
    if metric == "euclidean" and mode == "diff":
        return NormalizedIndex(metric, mode, None, refs, rho)
    vectors = augment_refs(index_form(refs, metric, index_center(refs, metric)), rho, metric, mode)
    dim = vectors.shape[1]
    inner = not (mode == "plain" and metric == "euclidean")
    index = faiss.IndexFlatIP(dim) if inner else faiss.IndexFlatL2(dim)
    index.add(vectors)
    return NormalizedIndex(metric, mode, index, refs, rho)


def _pad_columns(a: np.ndarray, width: int, fill=-1) -> np.ndarray:
    """``a`` widened to ``width`` columns with ``fill`` (-1: no candidate)."""
    if a.shape[1] >= width:
        return a
    return np.hstack([a, np.full((a.shape[0], width - a.shape[1]), fill, a.dtype)])


def _brute_candidates(x: np.ndarray, refs: np.ndarray, rho: np.ndarray, m: int, metric: str, mode: str,
                      chunk: int = 1024) -> np.ndarray:
    """Shortlist from a chunked float64 brute force (the Euclidean subtractive variant, which has no
    MIPS form, and sections of mostly unreliable references): the ``m`` best by the float64
    expansion, plus the references even float64 cannot rank (``unreliable_references`` at eps64)."""
    center = index_center(refs, metric)
    R = prepare64(refs, metric) if center is None else np.asarray(refs, np.float64) - center
    extra = unreliable_references(refs, rho, metric, mode, center, eps=float(np.finfo(np.float64).eps))
    out = np.empty((x.shape[0], m + len(extra)), np.int64)
    out[:, m:] = extra
    for start in range(0, x.shape[0], chunk):
        xs = prepare64(x[start : start + chunk], metric)
        xs = xs if center is None else xs - center
        d = pairwise(xs, R, metric)
        d = d if mode == "plain" else d / rho[None, :] if mode == "ratio" else d - rho[None, :]
        out[start : start + chunk, :m] = np.argpartition(d, m - 1, axis=1)[:, :m] if m < d.shape[1] else np.arange(d.shape[1])
    return out
