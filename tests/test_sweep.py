"""Parameter grids and the label-free choice of K / r (scoring/sweep.py): the grid's runs equal
single runs, the auto choice equals an independent float64 computation of the criterion, and the
CLI and DuckDB carry the choice per section."""

import json

import numpy as np
import pytest

from asd_core.scoring import ScoringConfig
from asd_core.scoring.distances import ScoringInputError, pairwise, prepare64
from asd_core.scoring.run import SectionInput, run_id_for, score_section, scoring_config
from asd_core.scoring.sweep import AUTO, AUTO_CANDIDATES, RunSpec, choose, domain_gap, expand, parse_values


def test_grid_expands_to_distinct_runs():
    specs = expand(["none", "knn", "gwrp", "knn-diff"], parse_values("1,2,auto", "k"), parse_values([0.5, "auto"], "r"))
    labels = [s.label() for s in specs]
    assert labels == ["none", "knn k=1", "knn k=2", "knn k=auto", "gwrp r=0.5", "gwrp r=auto",
                      "knn-diff k=1", "knn-diff k=2", "knn-diff k=auto"]
    assert specs[3].params()["k"] == AUTO and [c.k for c in specs[3].candidates()] == list(AUTO_CANDIDATES["k"])
    # a fixed run's id is the id a single `asd score` always gave it
    assert run_id_for("e", "v", specs[2]) == run_id_for("e", "v", ScoringConfig("knn", k=2))
    assert len({run_id_for("e", "v", s) for s in specs}) == len(specs)


@pytest.mark.parametrize("text, param, message", [("1,x", "k", "'x' is not a number"), ("1.5", "k", "not an integer"),
                                                   ("", "r", "no values"), ("0", "k", "k must be >= 1"),
                                                   ("1.5", "r", "r must be in [0, 1]")])
def test_bad_values_are_clear_errors(text, param, message):
    with pytest.raises(ScoringInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        expand(["knn", "gwrp"], **{("ks" if param == "k" else "rs"): parse_values(text, param)})


def _loo_ratio_scores(refs, metric, k):
    """Leave-one-out knn-ratio scores of the references, float64 brute force (methods.md section 2)."""
    R = prepare64(refs, metric)
    d = pairwise(R, R, metric)
    np.fill_diagonal(d, np.inf)
    rho = np.maximum(np.sort(d, axis=1)[:, :k].mean(1), 1e-8)
    return (d / rho[None, :]).min(1), rho


def _section(rng):
    """Source: a dense cloud; target: a few sparse references elsewhere (the LDN setting)."""
    src = rng.normal(size=(60, 16)) * 0.5
    tgt = rng.normal(size=(12, 16)) * 2.0 + 4.0
    refs = np.vstack([src, tgt]).astype(np.float32)
    tests = np.vstack([rng.normal(size=(10, 16)) * 0.5, rng.normal(size=(10, 16)) * 2.0 + 4.0]).astype(np.float32)
    return SectionInput("d", "m", "00", [f"r{i}" for i in range(72)], ["source"] * 60 + ["target"] * 12,
                        [f"t{i}" for i in range(20)], refs, tests)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_auto_k_picks_the_candidate_of_smallest_domain_gap(tmp_path, metric):
    from asd_core.config import Workspace

    sec = _section(np.random.default_rng(3))
    domains = np.array(sec.ref_domains, dtype=object)
    gaps = []
    for k in AUTO_CANDIDATES["k"]:
        s, _ = _loo_ratio_scores(sec.refs, metric, k)
        src, tgt = s[domains == "source"], s[domains == "target"]
        gaps.append(abs(np.quantile(src, 0.9) - np.quantile(tgt, 0.9)) / (np.quantile(s, 0.9) - np.quantile(s, 0.1)))
    spec = RunSpec(ScoringConfig("knn", metric), auto="k")
    result = score_section(Workspace(tmp_path), "enc", "v", sec, spec)
    best = int(np.argmin(gaps))
    assert result.choice["k"] == AUTO_CANDIDATES["k"][best]
    assert result.choice["criterion"] == pytest.approx(gaps[best], rel=1e-9)
    assert [result.choice["candidates"][str(k)] for k in AUTO_CANDIDATES["k"]] == pytest.approx(gaps, rel=1e-9)
    # the test clips are scored with the chosen K exactly as a fixed run of that K scores them
    fixed = score_section(Workspace(tmp_path / "fixed"), "enc", "v", sec, ScoringConfig("knn", metric, k=result.choice["k"]))
    np.testing.assert_allclose(result.scores, fixed.scores, rtol=1e-12)
    assert result.threshold == pytest.approx(fixed.threshold, rel=1e-12)


def test_criterion_and_choice_edge_cases():
    s = np.array([0.0, 1.0, 2.0, 3.0, 10.0, 11.0])
    d = np.array(["source"] * 4 + ["target"] * 2, dtype=object)
    expected = abs(np.quantile(s[:4], 0.9) - np.quantile(s[4:], 0.9)) / (np.quantile(s, 0.9) - np.quantile(s, 0.1))
    assert domain_gap(s, d, 0.9) == pytest.approx(expected)
    assert domain_gap(s, np.array(["source"] * 6, dtype=object), 0.9) is None  # one domain: no criterion
    assert domain_gap(2 * s + 5, d, 0.9) == pytest.approx(expected)  # free of the candidate's scale and offset
    assert choose([None, 0.3, 0.1, 0.1]) == 2 and choose([None, None]) is None


def test_one_domain_keeps_the_default(tmp_path):
    from asd_core.config import Workspace

    sec = _section(np.random.default_rng(4))
    sec.ref_domains = ["source"] * len(sec.ref_ids)
    result = score_section(Workspace(tmp_path), "enc", "v", sec, RunSpec(ScoringConfig("knn", "euclidean"), auto="k"))
    assert result.choice["k"] == ScoringConfig().k and result.choice["criterion"] is None and "note" in result.choice


def test_scoring_config_of_an_auto_run_per_section():
    run = {"normalization": "knn", "params": json.dumps({"metric": "cosine", "k": "auto", "threshold_quantile": 0.9,
                                                         "choices": {"d/m/section_00": {"k": 4, "criterion": 0.1}}})}
    assert scoring_config(run).k == ScoringConfig().k
    assert scoring_config(run, {"dataset": "d", "machine_type": "m", "section": "00"}).k == 4


def test_shared_scales_fit_rho_once_per_k(monkeypatch):
    from asd_core.scoring import density, make_detector

    calls = []
    real = density._local_scale
    monkeypatch.setattr(density, "_local_scale", lambda *a: calls.append(a[2:5]) or real(*a))
    refs = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    with density.shared_scales():
        fits = {n: make_detector(ScoringConfig(n, "euclidean", k=2)).fit(refs) for n in ("knn", "knn-diff")}
        make_detector(ScoringConfig("knn", "euclidean", k=3)).fit(refs)
    assert [c[0] for c in calls] == ["knn", "knn"]  # k=2 once for both normalizations, k=3 once
    np.testing.assert_array_equal(fits["knn"].rho_, fits["knn-diff"].rho_)
    make_detector(ScoringConfig("knn", "euclidean", k=2)).fit(refs)  # outside the block: no sharing
    assert len(calls) == 3


@pytest.mark.slow
def test_cli_grid_equals_single_runs_and_compares(tmp_path, demo_small, ingest_tree, prefect_harness, capsys):
    """`asd score` with lists: each run equals the same run scored alone; the auto run records its
    choice per section in runs.params; `asd evaluate --compare` prints them side by side."""
    from asd_core.storage.catalog import connect, query_rows
    from flows.cli import main
    from flows.embed import embed_flow

    ws = ingest_tree(tmp_path / "ws", demo_small)
    embed_flow(workspace=str(ws.root), encoder="logmel-stats")
    assert main(["score", "--workspace", str(ws.root), "--encoder", "logmel-stats", "--normalization", "knn,knn-diff,none",
                 "--k", "1,2,auto,5000"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    # K = 5000 exceeds every section's references: those runs are reported, the others written
    assert "not written: knn k=5000: no section could be scored" in captured.err
    assert "not written: knn-diff k=5000" in captured.err
    assert out.count("\nrun ") + out.startswith("run ") == 7  # none once, knn and knn-diff x (1, 2, auto)
    with connect(ws, read_only=True) as con:
        runs = query_rows(con, "SELECT run_id, normalization, params FROM runs")
        grid = {(r["normalization"], json.loads(r["params"]).get("k")): r["run_id"] for r in runs}
        scores = {rid: dict(con.execute("SELECT clip_id, score FROM scores WHERE run_id = ?", [rid]).fetchall())
                  for rid in grid.values()}
    auto = json.loads(next(r["params"] for r in runs if r["run_id"] == grid[("knn", "auto")]))
    assert set(auto["choices"]) == {f"demo/{m}/section_00" for m in ("fan", "slider", "valve")}
    assert all(c["k"] in AUTO_CANDIDATES["k"] and c["criterion"] >= 0 for c in auto["choices"].values())
    for (norm, k), rid in grid.items():  # scored alone (a fresh run of the same config) gives the same scores
        if k == "auto":
            continue
        argv = ["score", "--workspace", str(ws.root), "--encoder", "logmel-stats", "--normalization", norm] + (["--k", str(k)] if k else [])
        assert main(argv) == 0
        with connect(ws, read_only=True) as con:
            alone = dict(con.execute("SELECT clip_id, score FROM scores WHERE run_id = ?", [rid]).fetchall())
        assert alone == scores[rid], (norm, k)
    capsys.readouterr()
    assert main(["evaluate", "--workspace", str(ws.root), "--compare"]) == 0
    table = capsys.readouterr().out
    assert all(rid in table for rid in grid.values()) and "k=" in table
    # the auto run bundles each section's index of the K it chose (what the registered pyfunc loads)
    from asd_core.tracking.registry import bundle_run

    bundle_run(ws, grid[("knn", "auto")], tmp_path / "bundle")
    for name, choice in auto["choices"].items():
        dataset, machine, section = name.split("/")
        manifest = json.loads((tmp_path / "bundle" / "indexes" / dataset / machine / section / "manifest.json").read_text())
        assert manifest["config"]["k"] == choice["k"], name
    assert json.loads((tmp_path / "bundle" / "scoring.json").read_text())["k"] == AUTO
