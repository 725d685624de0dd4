"""Far microphone as a noise reference (methods.md section 7, DCASE 2026 two-microphone data).

Per section, a ridge regression (unpenalised intercept) from far-channel to near-channel embeddings
is fitted on the training normals; what the far channel (the plant's noise) explains is removed and
the near *residual* is scored by any normalisation, e.g. the local-density one of methods.md
sections 1-2 (``asd score --channel near --noise-reference far``). The penalty is chosen by
generalised cross-validation (Golub, Heath & Wahba 1979), one value for all output dimensions, and
``summary()`` records the choice for the run's parameters.

Model: near ~ (far - far_mean) @ W + b with b = mean of the training near rows (the intercept is
unpenalised) and W minimising ||Y_c - X_c W||_F^2 + alpha ||W||_F^2, X_c / Y_c the centred training
far / near rows. GCV convention: H is the hat matrix of the full model, intercept included, so
tr H = 1 + sum_i s_i^2 / (s_i^2 + alpha) (s: singular values of X_c) and
GCV(alpha) = n ||(I - H) Y||_F^2 / (n - tr H)^2; ``effective_dof_`` is that tr H (>= 1).
Everything is float64 and one thin SVD of X_c serves the whole alpha grid (n < d or n > d).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RELATIVE_ALPHAS = np.logspace(-6, 6, 37)  # times the mean squared (kept) singular value of X_c


class NoiseReferenceError(ValueError):
    """Far / near embeddings that cannot be used (shape, count, non-finite values, bad alphas)."""


def _matrix(x, name: str, dim: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise NoiseReferenceError(f"{name} embeddings must be a 2-D array [clips, dims], got shape {a.shape}")
    if dim is not None and a.shape[1] != dim:
        raise NoiseReferenceError(f"{name} embeddings have {a.shape[1]} dims, but the fit used {dim}")
    if not np.isfinite(a).all():
        raise NoiseReferenceError(f"{name} embeddings contain non-finite values (NaN or inf)")
    return a


def _pair(far, near, far_dim: int | None = None, near_dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    far, near = _matrix(far, "far", far_dim), _matrix(near, "near", near_dim)
    if far.shape[0] != near.shape[0]:
        raise NoiseReferenceError(f"far has {far.shape[0]} rows but near has {near.shape[0]}: "
                                  "one far and one near embedding per clip, in the same order")
    return far, near


@dataclass
class NoiseReference:
    """Ridge from far to near embeddings, alpha by GCV; ``residual`` gives what is left to score.

    ``alphas``: absolute penalty candidates (one value: fit with exactly that alpha); None: the
    default grid, ``DEFAULT_RELATIVE_ALPHAS`` times the mean of the kept s_i^2 (1 if there are none).
    Singular values <= max(n, d_far) * eps * ||far||_F count as zero (centring noise); if none is
    left (every far embedding identical) W = 0 and the residual is exactly near - b.
    """

    alphas: Sequence[float] | None = None

    def fit(self, far, near) -> NoiseReference:
        far, near = _pair(far, near)
        n = far.shape[0]
        if n < 2:
            raise NoiseReferenceError(f"{n} training row(s): the regression needs at least 2")
        self.far_mean_, self.intercept_ = far.mean(axis=0), near.mean(axis=0)
        xc, yc = far - self.far_mean_, near - self.intercept_
        xc[:, (far == far[0]).all(axis=0)] = 0.0  # constant columns: exactly zero, not rounding noise
        u, s, vt = np.linalg.svd(xc, full_matrices=False)
        keep = s > max(far.shape) * np.finfo(np.float64).eps * np.linalg.norm(far)
        u, s, vt = u[:, keep], s[keep], vt[keep]
        scale = float(np.mean(s**2)) if s.size else 1.0
        alphas = np.sort(np.asarray(DEFAULT_RELATIVE_ALPHAS * scale if self.alphas is None else self.alphas,
                                    dtype=np.float64).ravel())
        if alphas.size == 0 or not (np.isfinite(alphas) & (alphas > 0)).all():
            raise NoiseReferenceError(f"alphas must be a non-empty list of finite values > 0, got {self.alphas!r}")
        z = u.T @ yc  # [rank, d_near]
        outside = float(np.sum((yc - u @ z) ** 2))  # part of Y_c no alpha can fit
        shrink = alphas[:, None] / (s**2 + alphas[:, None])  # [n_alphas, rank]: 1 - (eigenvalue of H)
        rss = outside + shrink**2 @ np.sum(z**2, axis=1)
        n_minus_trace = (n - 1 - s.size) + shrink.sum(axis=1)  # n - tr H, accurate for small alpha
        gcv = n * rss / n_minus_trace**2
        best = alphas.size - 1 - int(np.argmin(gcv[::-1]))  # ties (e.g. rank 0): the larger alpha
        self.alphas_, self.gcv_, self.alpha_ = alphas, gcv, float(alphas[best])
        self.effective_dof_ = float(n - n_minus_trace[best])
        self.n_, self.rank_ = n, int(s.size)
        self.coef_ = vt.T @ (z * (s / (s**2 + self.alpha_))[:, None])  # W [d_far, d_near]
        return self

    def residual(self, far, near) -> np.ndarray:
        """near - (far - far_mean) @ W - b for each clip, float64 [n, d_near]."""
        if not hasattr(self, "coef_"):
            raise RuntimeError("NoiseReference is not fitted; call fit(far, near) on the training normals first")
        far, near = _pair(far, near, *self.coef_.shape)
        if self.rank_ == 0:  # W = 0: no matmul, so the residual is bit-exactly near - b
            return near - self.intercept_
        return near - (far - self.far_mean_) @ self.coef_ - self.intercept_

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted state as arrays (``np.savez``), enough for ``residual`` (a registered model)."""
        return {"far_mean": self.far_mean_, "intercept": self.intercept_, "coef": self.coef_,
                "alpha": np.float64(self.alpha_), "rank": np.int64(self.rank_)}

    @classmethod
    def from_arrays(cls, arrays) -> NoiseReference:
        """A fitted NoiseReference from ``to_arrays`` (e.g. an ``np.load`` of its ``.npz``)."""
        model = cls()
        model.far_mean_, model.intercept_, model.coef_ = (np.asarray(arrays[k], np.float64)
                                                          for k in ("far_mean", "intercept", "coef"))
        model.alpha_, model.rank_ = float(arrays["alpha"]), int(arrays["rank"])
        return model

    def summary(self) -> dict:
        """The fitted choice as JSON-able values, for the run's parameters."""
        return {"alpha": self.alpha_, "effective_dof": self.effective_dof_, "n": self.n_, "rank": self.rank_,
                "gcv": float(self.gcv_.min()), "alphas": [float(a) for a in self.alphas_],
                "gcv_per_alpha": [float(g) for g in self.gcv_]}
