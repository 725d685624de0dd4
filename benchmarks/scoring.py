"""Scoring benchmark: fit time, peak memory, queries/s of FAISS's float32 values against the exact
float64 re-ranked scores (same index, side by side; cost ratio), agreement with a float64 brute
force, and SQL metrics vs pandas.

Each (N, dim) runs in a fresh process so its peak RSS is its own. Fitting (leave-one-out k-NN
among all N references) costs about 2 N^2 dim flops; combinations above ``--fit-budget-tflop``
report the estimate instead of running for many minutes on a 2-core machine.

    .venv/bin/python benchmarks/scoring.py                  # full grid
    .venv/bin/python benchmarks/scoring.py --n 1000 --dims 128 --metric-rows 100000

``--approx N DIM`` (issue 15 part 3) compares the approximate mode (``index_type="ivf"``) with the
exhaustive one on clustered data, for the rho fit (K = 1) and the query: time, speed-up, the share
of rows whose float64 result (argmin and score) is identical, and the fit's peak memory. The
exhaustive fit is timed on ``--approx-rows`` references and extrapolated linearly in rows (it is
O(N^2 d)); the output says so. ``--hnsw`` adds FAISS's IndexHNSWFlat as fit candidate generator
(the alternative that measurement rejected).

    nice .venv/bin/python benchmarks/scoring.py --approx 100000 768 --dims --metric-rows 0
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


REPEAT = 15  # alternating f32 / exact query batches, median of each


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _one(n: int, dim: int, budget_tflop: float, queries: int = 200) -> dict:
    from asd_core.runtime import configure_threads
    from asd_core.scoring import ScoringConfig, make_detector
    from asd_core.scoring.density import RHO_EPS
    from asd_core.scoring.distances import prepare64
    from asd_core.scoring.search import NormalizedIndex, build_index

    configure_threads()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(32, dim)).astype(np.float32)
    refs = centres[rng.integers(0, 32, n)]
    for s in range(0, n, 4096):  # float32 noise in chunks: no float64 copy of the whole set
        refs[s : s + 4096] += 0.3 * rng.standard_normal((min(4096, n - s), dim), dtype=np.float32)
    x = centres[rng.integers(0, 32, queries)] + 0.4 * rng.standard_normal((queries, dim), dtype=np.float32)
    base_rss = _rss_mb()
    tflop = 2 * n * n * dim / 1e12
    out = {"n": n, "dim": dim, "fit_tflop": round(tflop, 2)}
    if tflop <= budget_tflop:
        t0 = time.perf_counter()
        det = make_detector(ScoringConfig("knn", "cosine")).fit(refs)
        out["fit_s"] = round(time.perf_counter() - t0, 2)
        index, rho = det.index_, det.rho_
    else:
        out["fit_s"] = None
        rho = np.maximum(rng.uniform(0.05, 0.2, n), RHO_EPS)  # stand-in scales: queries cost the same
        index = build_index(refs, rho, "cosine", "ratio")
    out["peak_rss_MB"] = round(_rss_mb(), 0)
    out["data_MB"] = round(refs.nbytes / 2**20, 0)
    out["rss_over_data_MB"] = round(_rss_mb() - base_rss, 0)
    # today's float32 MIPS values and the exact re-ranked scores, side by side on the same FAISS index
    legacy = NormalizedIndex("cosine", index.mode, index.index, None, rho)
    # alternated, median of REPEAT: one call of a few milliseconds is at the mercy of thread scheduling
    t_f32, t_exact = [], []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        f32_scores = legacy.search(x)[0][:, 0]
        t_f32.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        exact_scores = index.search(x)[0][:, 0]
        t_exact.append(time.perf_counter() - t0)
    out["f32_qps"] = round(queries / float(np.median(t_f32)), 0)
    out["exact_qps"] = round(queries / float(np.median(t_exact)), 0)
    out["exact_cost"] = round(out["f32_qps"] / out["exact_qps"], 2)
    # oracle: float64 brute force over every reference (expansion in float64, chunked over references)
    X = prepare64(x, "cosine")
    t0 = time.perf_counter()
    brute = np.full(queries, np.inf)
    for s in range(0, n, 8192):
        R = prepare64(refs[s : s + 8192], "cosine")
        d = np.maximum(0.5 * (1.0 - X @ R.T), 0.0)
        brute = np.minimum(brute, (d / rho[None, s : s + 8192]).min(1))
    out["brute64_qps"] = round(queries / (time.perf_counter() - t0), 0)
    out["rel_diff_f32"] = float(np.max(np.abs(f32_scores - brute) / np.abs(brute)))
    out["rel_diff_exact"] = float(np.max(np.abs(exact_scores - brute) / np.abs(brute)))
    return out


def _clustered(n: int, dim: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """32 Gaussian clusters (noise 0.3 per dimension), queries with noise 0.4: the search table's data."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(32, dim)).astype(np.float32)
    refs = centres[rng.integers(0, 32, n)]
    for s in range(0, n, 4096):
        refs[s : s + 4096] += 0.3 * rng.standard_normal((min(4096, n - s), dim), dtype=np.float32)
    x = centres[rng.integers(0, 32, queries)] + 0.4 * rng.standard_normal((queries, dim), dtype=np.float32)
    return refs, x


def _approx(n: int, dim: int, rows: int, queries: int, hnsw: bool) -> dict:
    """Approximate (ivf) against exhaustive rho fit and query, one process (peak RSS is its own)."""
    import faiss

    from asd_core.runtime import configure_threads
    from asd_core.scoring.density import loo_neighbour_distances
    from asd_core.scoring.distances import index_center, index_form
    from asd_core.scoring.search import IVFPartition, build_index

    threads = configure_threads()
    refs, x = _clustered(n, dim, queries)
    sample = np.sort(np.random.default_rng(1).choice(n, min(rows, n), replace=False))
    base = _rss_mb()
    out = {"n": n, "dim": dim, "threads": threads, "rows": len(sample), "queries": queries}
    # approximate fit of every reference: partition + leave-one-out K = 1 among probed lists
    t0 = time.perf_counter()
    part = IVFPartition.fit(index_form(refs, "cosine", index_center(refs, "cosine")))
    out["partition_s"] = time.perf_counter() - t0
    d_approx = loo_neighbour_distances(refs, "cosine", 1, index_type="ivf", partition=part)
    out["fit_approx_s"] = time.perf_counter() - t0
    out["fit_peak_over_data_MB"] = _rss_mb() - base
    out["nlist"], out["nprobe"] = len(part.centroids), part.nprobe
    # exhaustive fit on a sample of rows (flat index over all N), extrapolated linearly in rows
    t0 = time.perf_counter()
    d_exact = loo_neighbour_distances(refs, "cosine", 1, rows=sample)
    t = time.perf_counter() - t0
    out["fit_exact_s"] = t * n / len(sample)
    out["fit_agree"] = float(np.mean(d_approx[sample, 0] == d_exact[:, 0]))
    if hnsw:
        from asd_core.scoring.distances import prepare

        P = prepare(refs, "cosine")
        t0 = time.perf_counter()
        h = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        h.hnsw.efConstruction, h.hnsw.efSearch = 40, 128
        h.add(P)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        ids = h.search(P[sample], 2)[1]
        out["hnsw_fit_s"] = build + (time.perf_counter() - t0) * n / len(sample)
        first = np.where(ids[:, 0] == sample, ids[:, 1], ids[:, 0])
        exact_first = faiss.knn(P[sample], P, 2, metric=faiss.METRIC_INNER_PRODUCT)[1]
        exact_first = np.where(exact_first[:, 0] == sample, exact_first[:, 1], exact_first[:, 0])
        out["hnsw_fit_agree"] = float(np.mean(first == exact_first))
        del h, P
    # queries: the same rho (the approximate fit's), exhaustive flat index vs the IVF partition
    rho = np.maximum(d_approx[:, 0], 1e-8)
    exhaustive, approx = build_index(refs, rho, "cosine", "ratio"), build_index(refs, rho, "cosine", "ratio", "ivf",
                                                                              partition=part)
    t0 = time.perf_counter()
    s_e, i_e = exhaustive.search(x, 1)
    out["query_exact_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    s_a, i_a = approx.search(x, 1)
    out["query_approx_s"] = time.perf_counter() - t0
    out["query_agree"] = float(np.mean((i_a[:, 0] == i_e[:, 0]) & (s_a[:, 0] == s_e[:, 0])))
    out["query_argmin_agree"] = float(np.mean(i_a[:, 0] == i_e[:, 0]))
    return out


def _print_approx(r: dict) -> None:
    nk_mb, nn_mb = r["n"] * 1 * 8 / 2**20, r["n"] ** 2 * 8 / 2**20
    print(f"\napproximate mode (index_type=ivf: nlist={r['nlist']}, nprobe={r['nprobe']}, float64 re-ranking) vs "
          f"exhaustive, N={r['n']:,}, d={r['dim']}, 32 clusters, cosine, K=1, {r['threads']} threads")
    cols = ["stage", "exhaustive_s", "approx_s", "speed-up", "identical", "peak_MB"]
    print(" ".join(f"{c:>13}" for c in cols))
    rows = [("rho fit", r["fit_exact_s"], r["fit_approx_s"], r["fit_agree"], f"{r['fit_peak_over_data_MB']:.0f}"),
            ("query", r["query_exact_s"], r["query_approx_s"], r["query_agree"], "")]
    if "hnsw_fit_s" in r:
        rows.append(("fit, hnsw", r["fit_exact_s"], r["hnsw_fit_s"], r["hnsw_fit_agree"], ""))
    for name, e, a, agree, mem in rows:
        print(" ".join(f"{v:>13}" for v in (name, f"{e:.1f}", f"{a:.1f}", f"{e / a:.1f}x", f"{100 * agree:.2f}%", mem)))
    print(f"exhaustive fit timed on {r['rows']:,} of {r['n']:,} reference rows, extrapolated linearly in rows; "
          f"approximate fit on all rows (partition {r['partition_s']:.1f} s included); agreement of the fit on those "
          f"{r['rows']:,} rows (rho identical), of the query on {r['queries']:,} queries (argmin and score identical, "
          f"same rho). Fit peak RSS above the data {r['fit_peak_over_data_MB']:.0f} MB: O(N d) copies + O(N K) "
          f"(N K float64 = {nk_mb:.1f} MB; an N x N float64 matrix would be {nn_mb:,.0f} MB). hnsw: IndexHNSWFlat "
          f"M=32, efConstruction=40, efSearch=128, candidates only (agreement of the first neighbour).", flush=True)


def _metrics_bench(rows: int, sections: int = 100, repeat: int = 3) -> dict:
    """Median of ``repeat`` runs of each side (pandas + scikit-learn: 10,000 sections take minutes a run)."""
    import duckdb
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from asd_core.config import Workspace
    from asd_core.storage.catalog import connect

    rng = np.random.default_rng(0)
    per = rows // sections
    sec = np.repeat(np.arange(sections), per)
    label = np.where(rng.random(sec.size) < 0.3, "anomaly", "normal")
    domain = np.where(rng.random(sec.size) < 0.5, "source", "target")
    score = rng.normal(size=sec.size) + (label == "anomaly")
    df = pd.DataFrame({"clip_id": [f"c{i}" for i in range(sec.size)], "section": [f"{s:02d}" for s in sec],
                       "label": label, "domain": domain, "score": score})
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp))
        with connect(ws) as con:
            con.register("df", df)
            con.execute("""INSERT INTO clips SELECT clip_id, 'bench', 'dcase2021+', 'test', 'm', section, domain, label,
                           MAP {}, clip_id || '.wav', '/', 16000, 1, 1, 1.0, 'mono', 16000, 1, 1, 'x', NULL, NULL FROM df""")
            con.execute("INSERT INTO scores SELECT 'r', clip_id, score, 0 FROM df")
            con.execute("INSERT INTO runs VALUES ('r', now(), 'e', 'v', 'knn', '{}', false)")
        sql_times = []
        for _ in range(repeat):  # a fresh connection each time: no cached results
            con = duckdb.connect(str(ws.duckdb_path), read_only=True)
            t0 = time.perf_counter()
            official = con.execute("SELECT official_score FROM run_metrics WHERE run_id = 'r'").fetchone()[0]
            sql_times.append(time.perf_counter() - t0)
            con.close()
    pandas_times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        parts = []
        for _, g in df.groupby("section"):
            y = (g["label"] == "anomaly").to_numpy()
            for d in ("source", "target"):
                m = (g["domain"] == d).to_numpy() | y
                parts.append(roc_auc_score(y[m], g["score"].to_numpy()[m]))
            parts.append(roc_auc_score(y, g["score"], max_fpr=0.1))
        pandas_official = len(parts) / sum(1 / p for p in parts)
        pandas_times.append(time.perf_counter() - t0)
    return {"rows": rows, "sections": sections, "repeat": repeat, "duckdb_s": round(float(np.median(sql_times)), 3),
            "pandas_sklearn_s": round(float(np.median(pandas_times)), 3), "official_diff": abs(official - pandas_official)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--dims", type=int, nargs="*", default=[128, 768, 6144], help="none: skip the search table")
    ap.add_argument("--fit-budget-tflop", type=float, default=1.5)
    ap.add_argument("--metric-rows", type=int, default=1_000_000)
    ap.add_argument("--metric-sections", type=int, nargs="+", default=[100, 10_000])
    ap.add_argument("--approx", nargs=2, type=int, metavar=("N", "DIM"), help="approximate vs exhaustive table")
    ap.add_argument("--approx-rows", type=int, default=1000, help="rows the exhaustive fit is timed on")
    ap.add_argument("--approx-queries", type=int, default=2000)
    ap.add_argument("--hnsw", action="store_true", help="add IndexHNSWFlat to the approximate table")
    ap.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--one-approx", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(*args.one, args.fit_budget_tflop)))
        return
    if args.one_approx:
        print(json.dumps(_approx(*args.one_approx, args.approx_rows, args.approx_queries, args.hnsw)))
        return
    cols = ["n", "dim", "fit_s", "fit_tflop", "peak_rss_MB", "data_MB", "f32_qps", "exact_qps", "exact_cost", "brute64_qps",
            "rel_diff_f32", "rel_diff_exact"]
    if args.dims:
        print(" ".join(f"{c:>12}" for c in cols), flush=True)
    for n in args.n if args.dims else []:
        for dim in args.dims:
            out = subprocess.run([sys.executable, __file__, "--one", str(n), str(dim), "--fit-budget-tflop",
                                  str(args.fit_budget_tflop)], check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            r["rel_diff_f32"], r["rel_diff_exact"] = f"{r['rel_diff_f32']:.1e}", f"{r['rel_diff_exact']:.1e}"
            r["fit_s"] = "skipped" if r["fit_s"] is None else r["fit_s"]
            print(" ".join(f"{str(r[c]):>12}" for c in cols), flush=True)
    if args.approx:
        cmd = [sys.executable, __file__, "--one-approx", *map(str, args.approx), "--approx-rows", str(args.approx_rows),
               "--approx-queries", str(args.approx_queries)] + (["--hnsw"] if args.hnsw else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        _print_approx(json.loads(out.strip().splitlines()[-1]))
    for sections in args.metric_sections if args.metric_rows else []:
        m = _metrics_bench(args.metric_rows, sections, 3 if sections <= 1000 else 1)
        print(f"\nmetrics over {m['rows']:,} scores in {m['sections']:,} sections (median of {m['repeat']}): "
              f"DuckDB SQL {m['duckdb_s']} s, "
              f"pandas + scikit-learn {m['pandas_sklearn_s']} s, ratio {m['pandas_sklearn_s'] / m['duckdb_s']:.1f}x "
              f"(official score difference {m['official_diff']:.1e})", flush=True)


if __name__ == "__main__":
    main()
