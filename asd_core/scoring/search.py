"""Exact normalised nearest-reference search as one FAISS maximum-inner-product query.

methods.md section 2: with a_j = 0.5 / rho_j, cosine d/rho_j = a_j - <x, a_j y_j>, so
min_j d/rho_j = -max_j <[x, 1], [a_j y_j, -a_j]>. The subtractive variant is
0.5 - max_j <[x, 1], [0.5 y_j, rho_j]>. For the Euclidean distance the squared ratio
||x - y_j||^2 / rho_j^2 = <[|x|^2, x, 1], [1/rho_j^2, -2 y_j/rho_j^2, |y_j|^2/rho_j^2]>,
minimised as the maximum of its negation. The Euclidean subtractive variant has no such
form and is searched exactly by chunked brute force.

``index_type="ivf"`` swaps in an approximate inverted-file MIPS index for large reference
sets; its agreement with the exact index must be measured (see benchmarks/scoring.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from asd_core.scoring.distances import pairwise

MODES = ("plain", "ratio", "diff")


@dataclass
class NormalizedIndex:
    """Fitted search structure: ``search(x)`` returns (score, nearest reference) per row."""

    metric: str
    mode: str
    index: faiss.Index | None
    refs: np.ndarray  # prepared references (kept for the brute-force euclidean diff path)
    rho: np.ndarray

    def search(self, x: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Top-k normalised scores (ascending) and reference ids for prepared queries."""
        if self.index is None:
            return _brute_diff_euclidean(x, self.refs, self.rho, k)
        q = augment_queries(x, self.metric, self.mode)
        vals, ids = self.index.search(q, k)
        vals = vals.astype(np.float64)
        if self.mode == "plain":
            scores = np.clip(0.5 * (1 - vals), 0, 1) if self.metric == "cosine" else 0.25 * np.sqrt(np.maximum(vals, 0))
        elif self.metric == "cosine":
            scores = -vals if self.mode == "ratio" else 0.5 - vals
        else:  # euclidean ratio: vals = -||x - y||^2 / rho^2
            scores = 0.25 * np.sqrt(np.maximum(-vals, 0.0))
        return scores, ids


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


def build_index(refs: np.ndarray, rho: np.ndarray, metric: str, mode: str,
                index_type: str = "exact", nlist: int = 0, nprobe: int = 16) -> NormalizedIndex:
    """Index the (augmented) references for k-NN queries with the normalised score."""
    if metric == "euclidean" and mode == "diff":
        return NormalizedIndex(metric, mode, None, refs, rho)
    vectors = augment_refs(refs, rho, metric, mode)
    dim = vectors.shape[1]
    inner = not (mode == "plain" and metric == "euclidean")
    faiss_metric = faiss.METRIC_INNER_PRODUCT if inner else faiss.METRIC_L2
    if index_type == "exact":
        index = faiss.IndexFlatIP(dim) if inner else faiss.IndexFlatL2(dim)
    elif index_type == "ivf":
        nlist = nlist or max(1, int(np.sqrt(vectors.shape[0])))
        quantizer = faiss.IndexFlatIP(dim) if inner else faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss_metric)
        index.train(vectors)
        index.nprobe = nprobe
    else:
        raise ValueError(f"unknown index type {index_type!r}; choose exact or ivf")
    index.add(vectors)
    return NormalizedIndex(metric, mode, index, refs, rho)


def _brute_diff_euclidean(x: np.ndarray, refs: np.ndarray, rho: np.ndarray, k: int, chunk: int = 1024):
    scores = np.empty((x.shape[0], k))
    ids = np.empty((x.shape[0], k), np.int64)
    for start in range(0, x.shape[0], chunk):
        d = pairwise(x[start : start + chunk], refs, "euclidean") - rho[None, :]
        part = np.argpartition(d, min(k, d.shape[1] - 1), axis=1)[:, :k] if d.shape[1] > k else np.tile(np.arange(d.shape[1]), (d.shape[0], 1))
        vals = np.take_along_axis(d, part, 1)
        order = np.argsort(vals, axis=1)
        scores[start : start + chunk] = np.take_along_axis(vals, order, 1)
        ids[start : start + chunk] = np.take_along_axis(part, order, 1)
    return scores, ids
