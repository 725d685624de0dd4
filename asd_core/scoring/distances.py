"""The two distances of methods.md section 1, and input checks shared by all detectors."""

from __future__ import annotations

import numpy as np

METRICS = ("cosine", "euclidean")
SHORTLIST = 16  # FAISS candidates per query (beyond those asked for) re-ranked exactly in float64


class ScoringInputError(ValueError):
    """Bad embeddings or parameters handed to a detector; the message names what is wrong."""


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ScoringInputError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    return metric


def check_embeddings(x: np.ndarray, what: str, dim: int | None = None, ids=None) -> np.ndarray:
    """float32 C-contiguous 2-D array with finite values and the expected dimension."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ScoringInputError(f"{what}: expected a 2-D array of embeddings, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ScoringInputError(f"{what}: embedding dimension {x.shape[1]} does not match the fitted dimension {dim}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        name = f"clip {ids[i]}" if ids is not None else f"row {i}"
        raise ScoringInputError(f"{what}: {name} has NaN or infinite values ({int(bad.sum())} bad rows)")
    return np.ascontiguousarray(x, dtype=np.float32)


def prepare(x: np.ndarray, metric: str) -> np.ndarray:
    """Cosine works on L2-normalised vectors; Euclidean on raw ones."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.maximum(norms, 1e-12)
    return x


def prepare64(x: np.ndarray, metric: str) -> np.ndarray:
    """``prepare`` in float64: the exact side of the search (cosine: unit vectors in float64)."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def index_center(refs: np.ndarray, metric: str) -> np.ndarray | None:
    """Euclidean distances ignore a shift: indexing refs - mean keeps the float32 expansion
    ||x||^2 - 2<x, y> + ||y||^2 from cancelling on data far from the origin."""
    return np.asarray(refs, np.float64).mean(0) if metric == "euclidean" and len(refs) else None


def index_form(x: np.ndarray, metric: str, center: np.ndarray | None) -> np.ndarray:
    """The float32 vectors FAISS sees: unit vectors (cosine) or centred ones (Euclidean)."""
    if center is None:
        return prepare(x, metric)
    return np.ascontiguousarray(np.asarray(x, np.float64) - center, dtype=np.float32)


def reference_norms(refs: np.ndarray, metric: str) -> np.ndarray:
    """Per-reference float64 divisor that turns a stored float32 row into its prepared float64 form
    (the same division as ``prepare64``, so a query equal to a reference is at distance exactly 0)."""
    if metric == "cosine":
        return np.maximum(np.linalg.norm(np.asarray(refs, dtype=np.float64), axis=1), 1e-12)
    return np.ones(len(refs))


def candidate_distances(x64: np.ndarray, refs: np.ndarray, norms: np.ndarray, cand: np.ndarray, metric: str,
                        budget: int = 1 << 22, mask: np.ndarray | None = None) -> np.ndarray:
    """Exact float64 d(x_i, y_cand[i, m]) from the difference vectors [q, M] (methods.md section 1).

    Cosine uses 0.25 ||x - y||^2 on unit vectors, equal to 0.5 (1 - <x, y>) without its
    cancellation for near neighbours; Euclidean 0.25 ||x - y||. ``cand`` entries < 0 (and, with
    ``mask``, entries where it is False) give inf. Queries go in chunks so the gathered
    [chunk, M, d] block stays near ``budget`` values; with ``mask`` only its pairs are gathered."""
    q, m = cand.shape
    out = np.full((q, m), np.inf)
    if q == 0 or m == 0:
        return out
    if mask is not None:
        rows, cols = np.nonzero(mask & (cand >= 0))
        chunk = max(1, budget // max(1, refs.shape[1]))
        for start in range(0, len(rows), chunk):
            r, c = rows[start : start + chunk], cols[start : start + chunk]
            ids = cand[r, c]
            diff = x64[r] - refs[ids].astype(np.float64) / norms[ids][:, None]
            sq = np.einsum("pd,pd->p", diff, diff)
            out[r, c] = 0.25 * sq if metric == "cosine" else 0.25 * np.sqrt(sq)
        return out
    chunk = max(1, budget // max(1, m * refs.shape[1]))
    for start in range(0, q, chunk):
        c = cand[start : start + chunk]
        ok = c >= 0
        safe = np.where(ok, c, 0)
        y = refs[safe].astype(np.float64) / norms[safe][..., None]
        diff = x64[start : start + chunk, None, :] - y
        sq = np.einsum("qmd,qmd->qm", diff, diff)
        d = 0.25 * sq if metric == "cosine" else 0.25 * np.sqrt(sq)
        out[start : start + chunk] = np.where(ok, d, np.inf)
    return out


def pairwise(x: np.ndarray, y: np.ndarray, metric: str) -> np.ndarray:
    """Brute-force d(x_i, y_j) for prepared inputs, float64 (the test oracle)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    if metric == "cosine":
        return np.clip(0.5 * (1.0 - x @ y.T), 0.0, 1.0)
    sq = (x * x).sum(1)[:, None] - 2 * x @ y.T + (y * y).sum(1)[None, :]
    return 0.25 * np.sqrt(np.maximum(sq, 0.0))


def from_faiss(values: np.ndarray, metric: str) -> np.ndarray:
    """FAISS similarities (inner product) / squared L2 -> our distances."""
    values = values.astype(np.float64)
    if metric == "cosine":
        return np.clip(0.5 * (1.0 - values), 0.0, 1.0)
    return 0.25 * np.sqrt(np.maximum(values, 0.0))
