"""The two distances of methods.md section 1, and input checks shared by all detectors."""

from __future__ import annotations

import numpy as np

METRICS = ("cosine", "euclidean")


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
