"""The approximate mode (``index_type="ivf"``, issue 15 part 3) against a float64 brute force of
methods.md section 2: rho fit and query agree on >= 99% of rows, and where the approximate search
finds the true minimum its float64 re-ranked value is identical to the exhaustive mode's."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from asd_core.scoring import ScoringConfig, index_store, make_detector
from asd_core.scoring.density import local_scale, loo_neighbour_distances
from asd_core.scoring.distances import ScoringInputError
from asd_core.scoring.search import IVFPartition, NormalizedIndex


def _dist64(x, y, metric):
    """methods.md section 1 in float64 from the difference vectors (independent of the package)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if metric == "cosine":
        x, y = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
    sq = np.einsum("ijd,ijd->ij", x[:, None] - y[None], x[:, None] - y[None])
    return 0.25 * sq if metric == "cosine" else 0.25 * np.sqrt(sq)


def _loo_sorted(refs, metric):
    d = _dist64(refs, refs, metric)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, :-1]


def _brute(refs, x, rho, metric, mode):
    d = _dist64(x, refs, metric)
    vals = d if mode == "plain" else d / rho if mode == "ratio" else d - rho
    return vals.min(1), vals.argmin(1)


@pytest.fixture(scope="module")
def clustered():
    """12 clusters of different spread in 24 dimensions, 1200 references, 300 queries."""
    rng = np.random.default_rng(11)
    centres = 3 * rng.normal(size=(12, 24))
    spread = rng.uniform(0.2, 0.6, 12)
    lab = rng.integers(0, 12, 1200)
    refs = (centres[lab] + spread[lab, None] * rng.normal(size=(1200, 24))).astype(np.float32)
    q = rng.integers(0, 12, 300)
    x = (centres[q] + 1.3 * spread[q, None] * rng.normal(size=(300, 24))).astype(np.float32)
    return refs, x


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_approximate_rho_agrees_with_brute_force(clustered, metric):
    refs, _ = clustered
    d = _loo_sorted(refs, metric)
    for k in (1, 3):
        exact = np.maximum(d[:, :k].mean(1), 1e-8)
        approx = local_scale(refs, metric, "knn", k=k, index_type="ivf")
        exhaustive = local_scale(refs, metric, "knn", k=k)
        np.testing.assert_allclose(exhaustive, exact, rtol=1e-9)
        assert (approx == exhaustive).mean() >= 0.99  # float64 re-ranking: identical where the neighbours are
        hit = np.isclose(approx, exact, rtol=1e-12, atol=0)
        assert hit.mean() >= 0.99
        assert (approx[~hit] >= exact[~hit]).all()  # a missed neighbour can only make rho larger


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("norm", ["none", "knn", "knn-diff"])
def test_approximate_scores_agree_with_brute_force(clustered, metric, norm):
    refs, x = clustered
    cfg = ScoringConfig(normalization=norm, metric=metric, k=2, index_type="ivf")
    approx = make_detector(cfg).fit(refs)
    exhaustive = make_detector(ScoringConfig(normalization=norm, metric=metric, k=2)).fit(refs)
    assert approx.index_.approximate and not exhaustive.index_.approximate and approx.index_.reranked
    assert len(approx.index_.partition.centroids) > 2 * approx.index_.partition.nprobe  # not every list probed
    # the query side alone, on the approximate fit's rho: brute force over every reference
    oracle, arg = _brute(refs, x, approx.rho_, metric, approx.mode)
    scores, ids = approx.index_.search(x, 1)
    hit = ids[:, 0] == arg
    assert hit.mean() >= 0.99
    np.testing.assert_allclose(scores[hit, 0], oracle[hit], rtol=1e-9, atol=1e-12)
    # against the exhaustive mode with the same rho: identical float64 values where the argmin matches
    same_rho = NormalizedIndex(metric, approx.mode, exhaustive.index_.index, refs, approx.rho_)
    if exhaustive.index_.index is None:  # Euclidean subtractive: float64 brute-force shortlist
        same_rho = NormalizedIndex(metric, approx.mode, None, refs, approx.rho_)
    ref_scores, ref_ids = same_rho.search(x, 1)
    match = ids[:, 0] == ref_ids[:, 0]
    assert match.mean() >= 0.99
    np.testing.assert_array_equal(scores[match], ref_scores[match])
    assert (scores[:, 0] >= ref_scores[:, 0]).all()  # a minimum over fewer references of the same values
    # end to end (approximate rho and search) against exhaustive: >= 99% identical scores
    assert (approx.score(x) == exhaustive.score(x)).mean() >= 0.99
    assert (approx.reference_scores() == exhaustive.reference_scores()).mean() >= 0.99


def test_missed_minimum_is_never_below_the_true_one():
    """Unclustered data and one probed list: the approximate search misses some minima; its score is a
    minimum over fewer references of the same float64 values, so it is >= the true one, equal on a hit."""
    rng = np.random.default_rng(5)
    refs, x = rng.normal(size=(800, 16)).astype(np.float32), rng.normal(size=(200, 16)).astype(np.float32)
    det = make_detector(ScoringConfig("knn", "euclidean", index_type="ivf")).fit(refs)
    det.index_.partition.nprobe = 1
    oracle, arg = _brute(refs, x, det.rho_, "euclidean", "ratio")
    scores, ids = det.index_.search(x, 1)
    hit = ids[:, 0] == arg
    assert 0.2 < hit.mean() < 0.99
    np.testing.assert_allclose(scores[hit, 0], oracle[hit], rtol=1e-9)
    assert (scores[~hit, 0] > oracle[~hit]).all()


def test_memory_bounded_chunks_give_the_same_neighbours(clustered):
    """A zero budget splits every IVF group into single rows; the result does not depend on it."""
    refs, _ = clustered
    part = IVFPartition.fit(refs / np.linalg.norm(refs, axis=1, keepdims=True))
    small = loo_neighbour_distances(refs, "cosine", 5, memory_mb=0, index_type="ivf", partition=part)
    large = loo_neighbour_distances(refs, "cosine", 5, index_type="ivf", partition=part)
    np.testing.assert_array_equal(small, large)
    assert small.shape == (len(refs), 5)


def test_too_few_probed_neighbours_fall_back_to_all_references(clustered):
    """GWRP at r = 0.9 needs 263 ranks: more than a few probed lists of 1200 references hold, so those
    rows are recomputed over all references and rho equals the brute force."""
    refs, _ = clustered
    refs = refs[:400]
    d = _loo_sorted(refs, "euclidean")
    w = 0.9 ** np.arange(d.shape[1])
    exact = (d * w).sum(1) / w.sum()
    part = IVFPartition(*_one_point_lists(refs), nprobe=2)
    approx = local_scale(refs, "euclidean", "gwrp", r=0.9, index_type="ivf", partition=part)
    np.testing.assert_allclose(approx, exact, rtol=1e-9)


def _one_point_lists(refs):
    """A partition whose lists are tiny (40 lists of 10): probing 2 of them finds 19 others."""
    c = refs.astype(np.float64).mean(0)
    lists = np.repeat(np.arange(40), 10)
    cent = np.stack([refs[lists == i].astype(np.float64).mean(0) - c for i in range(40)])
    return cent.astype(np.float32), lists


@pytest.mark.parametrize("metric,norm", [("cosine", "gwrp"), ("euclidean", "knn"), ("euclidean", "gwrp-diff")])
def test_approximate_index_round_trips(clustered, tmp_path, metric, norm):
    refs, x = clustered
    cfg = ScoringConfig(normalization=norm, metric=metric, k=2, r=0.5, index_type="ivf")
    det = make_detector(cfg).fit(refs)
    h = index_store.content_hash([str(i) for i in range(len(refs))], refs)
    folder = tmp_path / "idx"
    index_store.save(folder, det, det.threshold_, h, {"references": len(refs)})
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["search"] == "approximate" and manifest["config"]["approximate"] is True
    assert not (folder / "index.faiss").exists()
    for loaded, thr in (index_store.load(folder, cfg, h), index_store.load_saved(folder)):
        assert thr == det.threshold_ and loaded.index_.approximate
        np.testing.assert_array_equal(loaded.score(x), det.score(x))
    assert index_store.load(folder, ScoringConfig(normalization=norm, metric=metric, k=2, r=0.5), h) is None


def test_version_2_faiss_ivf_folder_still_loads(clustered, tmp_path):
    """Before version 3 the ivf mode saved a FAISS IndexIVFFlat over the augmented references."""
    refs, x = clustered
    det = make_detector(ScoringConfig("knn", "cosine", index_type="ivf")).fit(refs)
    from asd_core.scoring.search import augment_refs
    from asd_core.scoring.distances import prepare

    vectors = augment_refs(prepare(refs, "cosine"), det.rho_, "cosine", "ratio")
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(vectors.shape[1]), vectors.shape[1], 8, faiss.METRIC_INNER_PRODUCT)
    ivf.train(vectors)
    ivf.add(vectors)
    ivf.nprobe = 8  # every list: the legacy index then finds the true minimum
    folder = tmp_path / "v2"
    folder.mkdir()
    faiss.write_index(ivf, str(folder / "index.faiss"))
    np.save(folder / "references.npy", refs)
    np.save(folder / "rho.npy", det.rho_)
    config = {"normalization": "knn", "metric": "cosine", "index_type": "ivf", "k": 1, "threshold_quantile": 0.9}
    (folder / "manifest.json").write_text(json.dumps({"version": 2, "config": config, "mode": "ratio", "metric": "cosine",
                                                      "dim": 24, "n_references": len(refs), "threshold": 0.5}))
    loaded, thr = index_store.load_saved(folder)
    assert thr == 0.5 and loaded.index_.approximate and loaded.config.approximate
    oracle, _ = _brute(refs, x, det.rho_, "cosine", "ratio")
    np.testing.assert_allclose(loaded.score(x), oracle, rtol=1e-9)


def test_index_type_is_validated_and_labelled():
    with pytest.raises(ScoringInputError, match="unknown index type 'hnsw'; choose one of exact, ivf"):
        ScoringConfig(index_type="hnsw")
    assert ScoringConfig(index_type="ivf").params()["approximate"] is True
    assert "approximate" not in ScoringConfig().params()  # exact run ids are unchanged


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_pruned_candidates_keep_every_near_tie(metric):
    """The approximate mode re-ranks only the probed candidates float32 cannot rule out. Here 12
    references lie at one distance from the queries (a cone; every list probed, all within the
    shortlist), their exact distances ~1e-7 relative apart and FAISS's float32 order among them
    noise: the score must still be the float64 minimum (fails when the error bound is set to 0)."""
    rng = np.random.default_rng(5)
    d = 32
    q = rng.normal(size=d)
    q /= np.linalg.norm(q)
    v = rng.normal(size=(12, d))
    v -= (v @ q)[:, None] * q
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    refs = (3.0 * (np.cos(1.0) * q + np.sin(1.0) * v)).astype(np.float32)
    x = (3.0 * q + 1e-7 * rng.normal(size=(10, d))).astype(np.float32)
    det = make_detector(ScoringConfig(normalization="none", metric=metric, index_type="ivf")).fit(refs)
    assert det.index_.partition.nprobe >= len(det.index_.partition.centroids)  # every list probed
    np.testing.assert_allclose(det.score(x), _dist64(x, refs, metric).min(1), rtol=1e-9, atol=0)
