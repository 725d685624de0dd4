"""The far-channel noise reference (asd_core/scoring/noise_reference.py, methods.md section 7):
ridge against scikit-learn, GCV against an explicit hat matrix, the constant-far case bit-exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from asd_core.scoring.noise_reference import NoiseReference, NoiseReferenceError


def _data(n, d_far, d_near, seed=0):
    rng = np.random.default_rng(seed)
    far = rng.normal(size=(n, d_far)) @ rng.normal(size=(d_far, d_far)) + rng.normal(size=d_far)
    near = far @ rng.normal(size=(d_far, d_near)) * 0.3 + rng.normal(size=(n, d_near)) + 2.0
    return far, near


def _brute_gcv(far, near, alpha):
    """GCV from the explicit hat matrix of [1, far] (uncentred) with an unpenalised intercept column."""
    n = far.shape[0]
    xa = np.hstack([np.ones((n, 1)), far])
    penalty = np.diag(np.r_[0.0, np.ones(far.shape[1])])
    h = xa @ np.linalg.solve(xa.T @ xa + alpha * penalty, xa.T)
    return n * np.sum((near - h @ near) ** 2) / (n - np.trace(h)) ** 2, np.trace(h)


@pytest.mark.parametrize("n, d_far", [(80, 12), (15, 40)])
def test_matches_sklearn_ridge_at_a_fixed_alpha(n, d_far):
    far, near = _data(n, d_far, 7, seed=n)
    new_far, new_near = _data(9, d_far, 7, seed=n + 1)
    for alpha in (0.05, 3.0, 200.0):
        ours = NoiseReference(alphas=[alpha]).fit(far, near)
        ref = Ridge(alpha=alpha, fit_intercept=True).fit(far, near)
        assert ours.alpha_ == alpha
        np.testing.assert_allclose(ours.coef_, ref.coef_.T, rtol=1e-9, atol=1e-9 * np.abs(ref.coef_).max())
        for f, y in ((far, near), (new_far, new_near)):
            expected = y - ref.predict(f)
            np.testing.assert_allclose(ours.residual(f, y), expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())


@pytest.mark.parametrize("n, d_far", [(60, 8), (12, 30)])
def test_gcv_matches_the_explicit_hat_matrix(n, d_far):
    rel = np.logspace(-6, 6, 37)
    far, near = _data(n, d_far, 5, seed=3 + n)
    scale = np.mean(np.linalg.svd(far - far.mean(0), compute_uv=False)[: min(n - 1, d_far)] ** 2)
    alphas = rel * scale
    fitted = NoiseReference(alphas=alphas).fit(far, near)
    brute = np.array([_brute_gcv(far, near, a) for a in alphas])
    np.testing.assert_allclose(fitted.alphas_, alphas)
    np.testing.assert_allclose(fitted.gcv_, brute[:, 0], rtol=1e-8)
    best = int(np.argmin(brute[:, 0]))
    assert fitted.alpha_ == alphas[best]
    np.testing.assert_allclose(fitted.effective_dof_, brute[best, 1], rtol=1e-8)
    default = NoiseReference().fit(far, near)  # default grid: the same 1e-6..1e6 relative grid
    np.testing.assert_allclose(default.alphas_, alphas, rtol=1e-12)
    assert default.alpha_ == pytest.approx(fitted.alpha_, rel=1e-12)


def test_gcv_picks_small_alpha_for_a_linear_relation_and_large_for_independent_channels():
    rng = np.random.default_rng(7)
    n, d_far, d_near = 300, 10, 6
    far = rng.normal(size=(n, d_far))
    scale = np.mean(np.linalg.svd(far - far.mean(0), compute_uv=False) ** 2)
    near = far @ rng.normal(size=(d_far, d_near)) + 1.0 + 1e-3 * rng.normal(size=(n, d_near))
    linked = NoiseReference().fit(far, near)
    assert linked.alpha_ < 1e-3 * scale
    assert linked.effective_dof_ > 1 + d_far - 0.01
    energy = np.sum(linked.residual(far, near) ** 2) / np.sum((near - near.mean(0)) ** 2)
    assert energy < 1e-4
    independent = NoiseReference().fit(far, rng.normal(size=(n, d_near)))
    assert independent.alpha_ > scale
    assert independent.effective_dof_ < 1 + 0.5 * d_far


@pytest.mark.parametrize("value", [0.1, -3.7, 1e3 / 3])
def test_constant_far_channel_leaves_near_minus_its_training_mean_exactly(value):
    rng = np.random.default_rng(11)
    far = np.full((23, 9), value)
    far[:, 4] = 2.0 / 3.0
    near = rng.normal(size=(23, 5)) * 5 + 1.3
    fitted = NoiseReference().fit(far, near)
    assert fitted.rank_ == 0 and not fitted.coef_.any()
    assert fitted.alpha_ == fitted.alphas_.max()
    assert np.array_equal(fitted.residual(far, near), near - near.mean(0))
    new_near = rng.normal(size=(4, 5))
    assert np.array_equal(fitted.residual(far[:4], new_near), new_near - near.mean(0))
    assert np.array_equal(fitted.residual(rng.normal(size=(4, 9)), new_near), new_near - near.mean(0))
    json.dumps(fitted.summary())


def test_summary_is_json_for_the_run_params():
    far, near = _data(40, 6, 3)
    s = NoiseReference().fit(far, near).summary()
    assert json.loads(json.dumps(s)) == s
    assert {"alpha", "effective_dof", "n", "rank", "gcv"} <= set(s) and s["n"] == 40
    assert s["gcv"] == min(s["gcv_per_alpha"]) and s["alpha"] in s["alphas"]


def test_bad_inputs_name_the_problem():
    far, near = _data(10, 4, 3)
    with pytest.raises(NoiseReferenceError, match="rows"):
        NoiseReference().fit(far, near[:9])
    with pytest.raises(NoiseReferenceError, match="at least 2"):
        NoiseReference().fit(far[:1], near[:1])
    bad = far.copy()
    bad[2, 1] = np.nan
    with pytest.raises(NoiseReferenceError, match="far.*non-finite"):
        NoiseReference().fit(bad, near)
    with pytest.raises(NoiseReferenceError, match="2-D"):
        NoiseReference().fit(far[:, 0], near)
    with pytest.raises(NoiseReferenceError, match="alphas"):
        NoiseReference(alphas=[1.0, 0.0]).fit(far, near)
    fitted = NoiseReference().fit(far, near)
    with pytest.raises(NoiseReferenceError, match="far embeddings have 5 dims, but the fit used 4"):
        fitted.residual(np.ones((3, 5)), near[:3])
    with pytest.raises(NoiseReferenceError, match="near embeddings have 2 dims, but the fit used 3"):
        fitted.residual(far[:3], near[:3, :2])
    with pytest.raises(NoiseReferenceError, match="rows"):
        fitted.residual(far[:3], near[:4])
    inf = near[:3].copy()
    inf[0, 0] = np.inf
    with pytest.raises(NoiseReferenceError, match="near.*non-finite"):
        fitted.residual(far[:3], inf)
    with pytest.raises(RuntimeError, match="not fitted"):
        NoiseReference().residual(far, near)
