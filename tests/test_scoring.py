"""Detectors: FAISS exact scores against a brute-force numpy oracle, invariants, errors, quality."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from asd_core.scoring import ScoringConfig, make_detector
from asd_core.scoring.density import local_scale
from asd_core.scoring.distances import ScoringInputError, pairwise, prepare


def oracle_rho(refs, metric, method, k=1, r=0.9):
    d = pairwise(refs, refs, metric)
    np.fill_diagonal(d, np.inf)
    d = np.sort(d, axis=1)[:, :-1]
    if method == "knn":
        return np.maximum(d[:, :k].mean(1), 1e-8)
    w = r ** np.arange(d.shape[1])
    return np.maximum((d * w).sum(1) / w.sum(), 1e-8)


def oracle_scores(refs, x, metric, normalization, k=1, r=0.9):
    R, X = prepare(refs, metric), prepare(x, metric)
    d = pairwise(X, R, metric)
    if normalization == "none":
        return d.min(1)
    method = normalization.split("-")[0]
    rho = oracle_rho(R, metric, method, k, r)
    return (d / rho).min(1) if normalization in ("knn", "gwrp") else (d - rho).min(1)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    refs = rng.normal(size=(300, 24)).astype(np.float32)
    refs[:60] *= 3.0  # regions of different density
    x = rng.normal(size=(80, 24)).astype(np.float32) * 1.5
    return refs, x


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("normalization,k,r", [
    ("none", 1, 0.9), ("knn", 1, 0.9), ("knn", 3, 0.9), ("gwrp", 1, 0.9), ("gwrp", 1, 0.5),
    ("knn-diff", 2, 0.9), ("gwrp-diff", 1, 0.8),
])
def test_faiss_matches_brute_force(data, metric, normalization, k, r):
    refs, x = data
    det = make_detector(ScoringConfig(normalization=normalization, metric=metric, k=k, r=r)).fit(refs)
    got = det.score(x)
    want = oracle_scores(refs, x, metric, normalization, k, r)
    assert got.dtype == np.float64 and got.shape == (80,)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-6)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_rho_matches_oracle_and_invariants(data, metric):
    refs, _ = data
    R = prepare(refs, metric)
    np.testing.assert_allclose(local_scale(R, metric, "knn", k=4), oracle_rho(R, metric, "knn", k=4), rtol=1e-5, atol=1e-7)
    # r = 0 equals K = 1; r = 1 is the mean distance to all other references
    np.testing.assert_allclose(local_scale(R, metric, "gwrp", r=0.0), local_scale(R, metric, "knn", k=1), rtol=1e-12)
    d = pairwise(R, R, metric)
    np.fill_diagonal(d, 0.0)
    np.testing.assert_allclose(local_scale(R, metric, "gwrp", r=1.0), d.sum(1) / (len(R) - 1), rtol=1e-4)


def test_duplicate_references_do_not_divide_by_zero():
    rng = np.random.default_rng(1)
    refs = rng.normal(size=(20, 8)).astype(np.float32)
    refs = np.vstack([refs, refs[:5]])  # exact duplicates: rho = 0 before the guard
    det = make_detector(ScoringConfig(normalization="knn")).fit(refs)
    assert (det.rho_ > 0).all() and det.rho_.min() == pytest.approx(1e-8)
    s = det.score(rng.normal(size=(10, 8)).astype(np.float32))
    assert np.isfinite(s).all()


def test_leave_one_out_excludes_self(data):
    refs, _ = data
    for norm in ("none", "knn", "gwrp"):
        det = make_detector(ScoringConfig(normalization=norm, metric="euclidean")).fit(refs)
        loo = det.reference_scores()
        assert (loo > 0).all()  # self would give distance 0
        # oracle: each reference scored against the others with the others' rho (rho itself is LOO already)
        R = prepare(refs, "euclidean")
        d = pairwise(R, R, "euclidean")
        rho = det.rho_
        val = d / rho[None, :] if norm != "none" else d
        np.fill_diagonal(val, np.inf)
        np.testing.assert_allclose(loo, val.min(1), rtol=2e-4)
    assert det.threshold_ == pytest.approx(np.quantile(loo, 0.9))


def test_lof_matches_scikit_learn(data):
    from sklearn.neighbors import LocalOutlierFactor

    refs, x = data
    det = make_detector(ScoringConfig(normalization="lof", metric="euclidean", k=5)).fit(refs)
    sk = LocalOutlierFactor(n_neighbors=5, novelty=True).fit(refs)
    np.testing.assert_allclose(det.score(x), -sk.score_samples(x), rtol=1e-4)


def _domain_shift_section(rng, n_source=990, n_target=10, dim=16):
    """Source references dense around one centre, target references few and sparse elsewhere."""
    # orthogonal centres far from the origin: the domains differ in angle and in position
    src_c, tgt_c = 4.0 * np.eye(dim)[0], 4.0 * np.eye(dim)[1]
    src = src_c + 0.5 * rng.normal(size=(n_source, dim))
    tgt = tgt_c + 0.5 * rng.normal(size=(n_target, dim))
    test = {
        ("source", "normal"): src_c + 0.5 * rng.normal(size=(50, dim)),
        ("target", "normal"): tgt_c + 0.5 * rng.normal(size=(50, dim)),
        ("source", "anomaly"): src_c + 0.8 * rng.normal(size=(50, dim)),
        ("target", "anomaly"): tgt_c + 0.8 * rng.normal(size=(50, dim)),
    }
    refs = np.vstack([src, tgt]).astype(np.float32)
    domains = np.array(["source"] * n_source + ["target"] * n_target)
    return refs, domains, test


def _aucs(det, test):
    # one call over the whole test set, as the transductive method needs its statistics
    all_scores = det.score(np.vstack(list(test.values())).astype(np.float32))
    bounds = np.cumsum([0] + [len(v) for v in test.values()])
    s = {k: all_scores[bounds[i]:bounds[i + 1]] for i, k in enumerate(test)}
    anom = np.concatenate([s["source", "anomaly"], s["target", "anomaly"]])

    def auc(normals):
        return roc_auc_score(np.r_[np.zeros(len(normals)), np.ones(len(anom))], np.r_[normals, anom])

    src, tgt = auc(s["source", "normal"]), auc(s["target", "normal"])
    return src, tgt


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_ratio_normalization_helps_sparse_target_domain(metric):
    rng = np.random.default_rng(7)
    refs, domains, test = _domain_shift_section(rng)
    base = _aucs(make_detector(ScoringConfig("none", metric)).fit(refs, domains), test)
    knn = _aucs(make_detector(ScoringConfig("knn", metric)).fit(refs, domains), test)
    hmean = lambda a: len(a) / sum(1 / v for v in a)  # noqa: E731
    assert knn[1] > base[1] + 0.05, (base, knn)
    assert hmean(knn) > hmean(base), (base, knn)


@pytest.mark.parametrize("normalization", ["kmeans-source", "smote", "domain-standardize"])
def test_comparison_methods_score_and_need_domains(normalization):
    rng = np.random.default_rng(3)
    refs, domains, test = _domain_shift_section(rng, n_source=200)
    transductive = ScoringConfig(normalization).transductive
    assert transductive == (normalization == "domain-standardize")
    tests = {"test": np.vstack(list(test.values())).astype(np.float32)} if transductive else {}
    det = make_detector(ScoringConfig(normalization)).fit(refs, domains, **tests)
    src, tgt = _aucs(det, test)
    assert src > 0.6 and tgt > 0.6
    assert np.isfinite(det.reference_scores()).all() and det.threshold_ == np.quantile(det.reference_scores(), 0.9)
    with pytest.raises(ScoringInputError, match="needs the domain"):
        make_detector(ScoringConfig(normalization)).fit(refs, **tests)
    if transductive:  # its use of the test clips is explicit, never a side effect of scoring
        with pytest.raises(ScoringInputError, match="transductive: fit it with the test clips"):
            make_detector(ScoringConfig(normalization)).fit(refs, domains)


def test_registry_one_class_per_method():
    from asd_core.scoring import NORMALIZATIONS
    from asd_core.scoring.detectors import DETECTORS, LocalOutlierFactor, NearestReference, get_detector

    assert set(DETECTORS) == set(NORMALIZATIONS)
    assert isinstance(get_detector("gwrp", r=0.5), NearestReference) and get_detector("gwrp", r=0.5).config.r == 0.5
    assert isinstance(get_detector(ScoringConfig("lof", k=3)), LocalOutlierFactor)
    refs = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    det = get_detector("knn").fit(refs)
    np.testing.assert_array_equal(det.decision_function(refs[:3]), det.score(refs[:3]))
    with pytest.raises(ScoringInputError, match="'knn' is inductive"):
        get_detector("knn").fit(refs, test=refs)


def test_clear_errors():
    rng = np.random.default_rng(0)
    refs = rng.normal(size=(5, 4)).astype(np.float32)
    with pytest.raises(ScoringInputError, match="no reference embeddings"):
        make_detector(ScoringConfig()).fit(np.empty((0, 4), np.float32))
    with pytest.raises(ScoringInputError, match="5 reference.*k=5 needs at least 6"):
        make_detector(ScoringConfig("knn", k=5)).fit(refs)
    det = make_detector(ScoringConfig()).fit(refs)
    with pytest.raises(ScoringInputError, match="dimension 3 does not match the fitted dimension 4"):
        det.score(np.ones((2, 3), np.float32))
    bad = np.ones((3, 4), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(ScoringInputError, match="clip c1 has NaN"):
        det.score(bad, ids=["c0", "c1", "c2"])
    with pytest.raises(ScoringInputError, match="unknown normalization 'zscore'"):
        ScoringConfig("zscore")
    with pytest.raises(ScoringInputError, match="unknown metric 'manhattan'"):
        ScoringConfig("knn", metric="manhattan")


def test_index_store_round_trip_and_invalidation(tmp_path, data):
    from asd_core.scoring import index_store

    refs, x = data
    cfg = ScoringConfig("gwrp", "cosine", r=0.7)
    det = make_detector(cfg).fit(refs)
    ids = [f"c{i}" for i in range(len(refs))]
    h = index_store.content_hash(ids, refs)
    folder = tmp_path / "idx"
    index_store.save(folder, det, det.threshold_, h, {"references": len(refs)})
    manifest = (folder / "manifest.json").read_text()
    assert '"n_references": 300' in manifest and '"r": 0.7' in manifest
    loaded, thr = index_store.load(folder, cfg, h)
    np.testing.assert_array_equal(loaded.score(x), det.score(x))
    assert thr == det.threshold_
    changed = refs.copy()
    changed[0, 0] += 1e-3
    assert index_store.load(folder, cfg, index_store.content_hash(ids, changed)) is None
    assert index_store.load(folder, ScoringConfig("gwrp", "cosine", r=0.8), h) is None


def test_ivf_probing_every_list_equals_exact(data):
    from asd_core.scoring.search import build_index

    refs, x = data
    R, X = prepare(refs, "cosine"), prepare(x, "cosine")
    rho = local_scale(R, "cosine", "knn", k=1)
    exact = build_index(R, rho, "cosine", "ratio").search(X)[0]
    ivf = build_index(R, rho, "cosine", "ratio", index_type="ivf", nlist=8, nprobe=8).search(X)[0]
    np.testing.assert_allclose(ivf, exact, rtol=1e-5)
