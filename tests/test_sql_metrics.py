"""The SQL metrics in sql/metrics.sql against scikit-learn and scipy (random and heavily tied scores)."""

import json

import numpy as np
import pytest
from scipy.stats import hmean
from sklearn.metrics import roc_auc_score

from asd_core.config import Workspace
from asd_core.storage.catalog import connect


def _fill(con, rng, tie_levels=None, sections=(("fan", "00"), ("fan", "01"), ("valve", "00")), run_id="r1"):
    clips, scores, truth = [], [], {}
    for machine, section in sections:
        for domain in ("source", "target"):
            n_norm, n_anom = int(rng.integers(8, 30)), int(rng.integers(5, 25))
            for label, n in (("normal", n_norm), ("anomaly", n_anom)):
                for i in range(n):
                    cid = f"{run_id}-{machine}-{section}-{domain}-{label}-{i}"
                    s = rng.normal(1.0 if label == "anomaly" else 0.0, 1.0)
                    if tie_levels:
                        s = float(np.round(s * tie_levels) / tie_levels)
                    clips.append((cid, "ds", "dcase2021+", "test", machine, section, domain, label, f"{machine}/test/{cid}.wav"))
                    scores.append((run_id, cid, s, int(s > 0.5)))
                    truth[cid] = (machine, section, domain, label, s, int(s > 0.5))
    con.executemany(
        "INSERT INTO clips (clip_id, dataset, scheme, split, machine_type, section, domain, label, attributes, relative_path, root, "
        "sample_rate, channels, num_samples, duration_s, channel_selection, pipeline_sample_rate, file_size, file_mtime_ns, sha256) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, MAP {}, ?, '/r', 16000, 1, 16000, 1.0, 'mono', 16000, 1, 1, 'x')", clips)
    con.executemany("INSERT INTO scores VALUES (?, ?, ?, ?)", scores)
    con.execute("INSERT INTO runs VALUES (?, now(), 'enc', 'v', 'knn', ?, false)", [run_id, json.dumps({"metric": "cosine"})])
    return truth


def _expected(truth):
    out = {}
    for key in sorted({(m, s) for m, s, *_ in truth.values()}):
        rows = [v for v in truth.values() if (v[0], v[1]) == key]
        y = np.array([r[3] == "anomaly" for r in rows])
        sc = np.array([r[4] for r in rows])
        dom = np.array([r[2] for r in rows])
        dec = np.array([r[5] for r in rows])
        e = {}
        for d in ("source", "target"):
            m = (dom == d) | y
            e[f"auc_{d}"] = roc_auc_score(y[m], sc[m])
            md = dom == d
            tp, fp, fn = ((dec == 1) & y & md).sum(), ((dec == 1) & ~y & md).sum(), ((dec == 0) & y & md).sum()
            e[f"precision_{d}"], e[f"recall_{d}"] = tp / (tp + fp), tp / (tp + fn)
            e[f"f1_{d}"] = 2 * tp / (2 * tp + fp + fn)
        e["pauc"] = roc_auc_score(y, sc, max_fpr=0.1)
        out[key] = e
    return out


@pytest.mark.parametrize("tie_levels", [None, 2, 1])
def test_section_and_run_metrics_equal_sklearn(tmp_path, tie_levels):
    rng = np.random.default_rng(tie_levels or 0)
    with connect(Workspace(tmp_path)) as con:
        truth = _fill(con, rng, tie_levels)
        if tie_levels:
            assert len({v[4] for v in truth.values()}) < 15  # heavily tied
        got = {(r[0], r[1]): r[2:] for r in con.execute(
            "SELECT machine_type, section, auc_source, auc_target, pauc, precision_source, recall_source, f1_source, "
            "precision_target, recall_target, f1_target FROM section_metrics WHERE run_id = 'r1' ORDER BY ALL").fetchall()}
        run = con.execute("SELECT official_score, hmean_auc_source, hmean_auc_target, mean_auc_source, mean_pauc "
                          "FROM run_metrics WHERE run_id = 'r1'").fetchone()
    exp = _expected(truth)
    assert set(got) == set(exp)
    names = ["auc_source", "auc_target", "pauc", "precision_source", "recall_source", "f1_source",
             "precision_target", "recall_target", "f1_target"]
    for key, e in exp.items():
        for name, value in zip(names, got[key]):
            assert value == pytest.approx(e[name], abs=1e-9), (key, name)
    parts = [e[n] for e in exp.values() for n in ("auc_source", "auc_target", "pauc")]
    assert run[0] == pytest.approx(hmean(parts), abs=1e-9)
    assert run[1] == pytest.approx(hmean([e["auc_source"] for e in exp.values()]), abs=1e-9)
    assert run[2] == pytest.approx(hmean([e["auc_target"] for e in exp.values()]), abs=1e-9)
    assert run[3] == pytest.approx(np.mean([e["auc_source"] for e in exp.values()]), abs=1e-9)
    assert run[4] == pytest.approx(np.mean([e["pauc"] for e in exp.values()]), abs=1e-9)


def test_runs_are_separate_and_2020_view(tmp_path):
    rng = np.random.default_rng(5)
    with connect(Workspace(tmp_path)) as con:
        t1 = _fill(con, rng, run_id="a")
        _fill(con, rng, run_id="b")
        n = con.execute("SELECT count(*) FROM section_metrics WHERE run_id = 'a'").fetchone()[0]
        assert n == 3
        # a DCASE 2020 machine id: no domains
        con.execute("INSERT INTO clips SELECT * REPLACE ('x' || clip_id AS clip_id, NULL AS domain, '2020' AS dataset) FROM clips WHERE clip_id LIKE 'a-fan-00-%'")
        con.execute("INSERT INTO scores SELECT run_id, 'x' || clip_id, score, decision FROM scores WHERE clip_id LIKE 'a-fan-00-%'")
        auc, pauc = con.execute("SELECT auc, pauc FROM section_metrics_2020 WHERE run_id = 'a' AND dataset = '2020'").fetchone()
    rows = [v for k, v in t1.items() if k.startswith("a-fan-00-")]
    y = [r[3] == "anomaly" for r in rows]
    sc = [r[4] for r in rows]
    assert auc == pytest.approx(roc_auc_score(y, sc), abs=1e-9)
    assert pauc == pytest.approx(roc_auc_score(y, sc, max_fpr=0.1), abs=1e-9)


def test_precision_is_zero_without_positive_decisions(tmp_path):
    """The official evaluator reports precision 0 (not undefined) when a domain has no positive decision."""
    rng = np.random.default_rng(11)
    with connect(Workspace(tmp_path)) as con:
        _fill(con, rng)
        con.execute("UPDATE scores SET decision = 0 WHERE clip_id LIKE 'r1-fan-00-source-%'")
        row = con.execute("SELECT precision_source, recall_source, f1_source, precision_target IS NOT NULL FROM section_metrics "
                          "WHERE machine_type = 'fan' AND section = '00'").fetchone()
        prec = con.execute("SELECT prec FROM decision_metrics WHERE machine_type = 'fan' AND section = '00' "
                           "AND domain = 'source'").fetchone()[0]
    assert row[:3] == (0.0, 0.0, 0.0) and row[3] and prec == 0.0
