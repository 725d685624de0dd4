"""Run reports: figures and numbers that can be checked, MLflow artifacts, regeneration."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from asd_core.reporting.data import report_inputs
from asd_core.reporting.figures import roc_points


@pytest.fixture(scope="module")
def scored_ws(tmp_path_factory, demo_small, prefect_harness):
    from flows.embed import embed_flow
    from flows.ingest import ingest_flow
    from flows.score import score_flow

    ws = tmp_path_factory.mktemp("ws-report")
    ingest_flow(roots=[str(demo_small)], workspace=str(ws), dataset_name="demo")
    embed_flow(workspace=str(ws), encoder="logmel-stats")
    runs = {n: score_flow(workspace=str(ws), encoder="logmel-stats", normalization=n)["run_id"] for n in ("none", "knn")}
    from asd_core.config import Workspace

    return Workspace(ws), runs


def test_roc_points_match_sklearn_with_ties():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=200), 1)  # many ties
    labels = (rng.random(200) < 0.3).astype(int)
    fpr, tpr = roc_points(scores, labels)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)


def test_report_data_before_is_the_plain_knn_run(scored_ws):
    ws, runs = scored_ws
    knn, none = report_inputs(ws, runs["knn"]), report_inputs(ws, runs["none"])
    assert [s.name for s in knn.sections] == [s.name for s in none.sections] and len(knn.sections) == 3
    for a, b in zip(knn.sections, none.sections):
        assert a.raw_scores is not None and b.raw_scores is None
        np.testing.assert_allclose(a.raw_scores, b.scores, rtol=1e-6, atol=1e-9)  # "before" == the unnormalized run
        assert a.raw_threshold == pytest.approx(b.threshold, rel=1e-6)
        assert set(a.domains) == {"source", "target"} and set(a.labels) == {0, 1}


@pytest.mark.slow  # a report flow with MLflow logging: ~14 s
def test_report_flow_writes_html_pngs_and_mlflow_artifacts(scored_ws):
    from mlflow import MlflowClient

    from flows.report import report_flow

    ws, runs = scored_ws
    r = report_flow(workspace=str(ws.root), run_id=runs["knn"])
    html = open(r["index"]).read()
    assert len(r["figures"]) == 2 * 3
    for fig in r["figures"]:
        with open(fig, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
        assert f'src="{fig.rsplit("/", 1)[1]}"' in html
    assert "official_score" in html and runs["knn"] in html and "before: k-NN distance" not in html  # text lives in PNGs
    c = MlflowClient(tracking_uri=f"sqlite:///{ws.mlflow_dir / 'mlflow.db'}")
    names = {a.path for a in c.list_artifacts(r["mlflow_run_id"], "report")}
    assert "report/index.html" in names and len(names) == 7
    run = c.get_run(r["mlflow_run_id"])
    assert run.data.tags["scoring_run_id"] == runs["knn"] and 0 < run.data.metrics["official_score"] <= 1

    again = report_flow(workspace=str(ws.root), run_id=runs["knn"])  # regenerated: same MLflow run, no second one
    assert again["mlflow_run_id"] == r["mlflow_run_id"]
    exp = c.get_experiment_by_name("asd-reports")
    assert len(c.search_runs([exp.experiment_id])) == 1


def test_asd_report_command(scored_ws, capsys):
    from flows.cli import main

    ws, runs = scored_ws
    assert main(["report", "--workspace", str(ws.root), "--run", runs["none"], "--no-mlflow"]) == 0
    out = capsys.readouterr().out
    assert f"report of run {runs['none']}" in out and "(6 figures)" in out
    assert main(["report", "--workspace", str(ws.root), "--run", "nosuchrun"]) == 2
    assert "nosuchrun" in capsys.readouterr().err
