"""The student flow end to end on a real MLflow sqlite store: noisy-bin runs in DuckDB, per-epoch
metrics and artifacts, registration, promotion and refusal, a pyfunc loaded by alias scoring WAVs."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import hmean
from sklearn.metrics import roc_auc_score

from asd_core.storage.catalog import connect, query_rows
from asd_core.tracking.registry import aliases
from asd_core.tracking.store import TrackingConfig, client
from flows.cli import main

# The module fixture (mix, student flow with MLflow, evaluation runs) alone takes 30-35 s.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def flow_ws(tmp_path_factory, demo_small, prefect_harness, ingest_tree, trained_teacher):
    from flows.mix import mix_flow
    from flows.train_student import train_student_flow

    ws = ingest_tree(tmp_path_factory.mktemp("ws-registry"), demo_small)
    mix_flow(workspace=str(ws.root), noise=str(demo_small / "noise"), eval_subsets=["non-stationary", "mismatched"],
             eval_bins=[[-10, 0], [0, 10]])
    teacher = trained_teacher[1].model_dir  # the session's shared tiny teacher (conftest.py)
    report = train_student_flow(workspace=str(ws.root), teacher=str(teacher),
                                config={"epochs": 2, "batch_size": 16, "lr": 3e-3, "patience": 100})
    return ws, report


def _official_by_sklearn(ws, run_id, noise_subset="clean", snr_bin="clean"):
    with connect(ws, read_only=True) as con:
        rows = query_rows(con, "SELECT machine_type, section, domain, label, score FROM scored_clips "
                               "WHERE run_id = ? AND noise_subset = ? AND snr_bin = ?", [run_id, noise_subset, snr_bin])
    df = pd.DataFrame(rows)
    parts = []
    for _, g in df.groupby(["machine_type", "section"]):
        y = (g["label"] == "anomaly").to_numpy()
        for dom in ("source", "target"):
            m = y | (g["domain"] == dom).to_numpy()
            parts.append(roc_auc_score(y[m], g["score"].to_numpy()[m]))
        parts.append(roc_auc_score(y, g["score"], max_fpr=0.1))
    return hmean(parts)


def test_flow_writes_noisy_runs_side_by_side(flow_ws):
    ws, report = flow_ws
    with connect(ws, read_only=True) as con:
        runs = query_rows(con, "SELECT run_id, encoder, normalization, params FROM runs ORDER BY ALL")
        per_bin = query_rows(con, "SELECT run_id, noise_subset, snr_bin, count(*) AS n FROM scored_clips GROUP BY ALL")
    assert {(r["encoder"], r["normalization"]) for r in runs} == {
        (e, n) for e in ("teacher", "oracle", "student-retain") for n in ("none", "knn")}
    assert all(json.loads(r["params"])["test_set"] == "clean+noisy" for r in runs)
    assert {(r["noise_subset"], r["snr_bin"], r["n"]) for r in per_bin} == {
        (s, b, 120) for s, b in [("clean", "clean")] + [(s, b) for s in ("non-stationary", "mismatched") for b in ("-10..0", "0..10")]}
    table = report["evaluation"]
    assert [(r["noise_subset"], r["snr_bin"]) for r in table] == [
        ("clean", "clean"), ("mismatched", "-10..0"), ("mismatched", "0..10"), ("non-stationary", "-10..0"), ("non-stationary", "0..10")]
    student_knn = next(r["run_id"] for r in runs if (r["encoder"], r["normalization"]) == ("student-retain", "knn"))
    for row in table:
        want = _official_by_sklearn(ws, student_knn, row["noise_subset"], row["snr_bin"])
        assert row["student-retain/knn"] == pytest.approx(want, abs=1e-9)
    # the oracle equals the teacher on clean clips (its clean embeddings are the teacher's)
    assert table[0]["oracle/knn"] == pytest.approx(table[0]["teacher/knn"], abs=1e-12)


def test_training_is_tracked_in_mlflow(flow_ws):
    ws, report = flow_ws
    c = client(ws, TrackingConfig())
    run = c.get_run(report["mlflow_run_id"])
    assert run.data.params["objective.objective"] == "retain" and run.data.tags["kind"] == "student"
    history = c.get_metric_history(report["mlflow_run_id"], "train_loss")
    assert [m.step for m in history] == [1, 2]
    assert [m.value for m in history] == pytest.approx([h["train_loss"] for h in report["history"]])
    artifacts = {a.path for a in c.list_artifacts(report["mlflow_run_id"])}
    assert {"loss_curves.png", "config.json", "evaluation.json", "student_card.json"} <= artifacts
    png = c.download_artifacts(report["mlflow_run_id"], "loss_curves.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert ws.mlflow_dir.joinpath("mlflow.db").exists()


def test_register_promote_refuse_and_score_wavs(flow_ws, demo_small, realdata, capsys):
    import mlflow

    ws, report = flow_ws
    c = client(ws, TrackingConfig())
    v1 = report["registered"]["version"]
    mv = c.get_model_version("asd-encoder", v1)
    student_knn = report["registered"]["run_id"]
    assert float(mv.tags["official_score"]) == pytest.approx(_official_by_sklearn(ws, student_knn), abs=1e-9)
    assert mv.tags["encoder"] == "student-retain" and json.loads(mv.tags["loss_config"])["objective"] == "retain"
    for key in ("data_snapshot", "git_commit", "teacher"):
        assert mv.tags[key] and mv.tags[key] != "unknown"
    assert aliases(ws, TrackingConfig()) == {"challenger": v1}

    assert main(["promote", "--workspace", str(ws.root)]) == 0  # no champion yet
    assert aliases(ws, TrackingConfig())["champion"] == v1

    with connect(ws, read_only=True) as con:
        runs = query_rows(con, "SELECT run_id FROM runs WHERE encoder IN ('teacher', 'student-retain')")
    scored = sorted((_official_by_sklearn(ws, r["run_id"]), r["run_id"]) for r in runs)
    (worst_score, worst), (best_score, best) = scored[0], scored[-1]
    assert worst_score < best_score

    def register(run_id):
        assert main(["register", "--workspace", str(ws.root), "--run", run_id]) == 0
        version = str(max(int(m.version) for m in c.search_model_versions("name = 'asd-encoder'")))
        assert aliases(ws, TrackingConfig())["challenger"] == version
        return version

    v2 = register(best)  # at least as good as v1 (v1's run is among the scored ones): promoted
    assert main(["promote", "--workspace", str(ws.root)]) == 0
    assert aliases(ws, TrackingConfig())["champion"] == v2
    capsys.readouterr()
    v3 = register(worst)  # worse than the champion: refused, both numbers printed
    assert main(["promote", "--workspace", str(ws.root)]) == 1
    err = capsys.readouterr()
    assert f"{worst_score:.4f}" in err.out and f"{best_score:.4f}" in err.out
    assert "refused" in err.err
    assert aliases(ws, TrackingConfig())["champion"] == v2
    tags = c.get_model_version("asd-encoder", v3).tags
    assert tags["promotion_decision"] == "refused" and float(tags["promotion_champion_score"]) == pytest.approx(best_score, abs=1e-9)
    assert c.get_model_version("asd-encoder", v2).tags["promotion_decision"] == "promoted"
    assert main(["models", "--workspace", str(ws.root)]) == 0
    listing = capsys.readouterr().out
    assert "challenger" in listing and "champion" in listing and "student-retain" in listing

    # a registered version scores WAV files on its own, as the pipeline did
    model = mlflow.pyfunc.load_model("models:/asd-encoder@champion")
    with connect(ws, read_only=True) as con:
        want = query_rows(con, "SELECT c.root, c.relative_path, c.machine_type, c.section, s.score, s.decision FROM scores s "
                               "JOIN clips c USING (clip_id) WHERE s.run_id = ? ORDER BY c.relative_path LIMIT 12", [best])
    files = pd.DataFrame({"path": [f"{w['root']}/{w['relative_path']}" for w in want],
                          "machine_type": [w["machine_type"] for w in want], "section": [w["section"] for w in want]})
    got = model.predict(files)
    np.testing.assert_allclose(got["score"], [w["score"] for w in want], rtol=1e-4, atol=1e-5)
    assert got["decision"].tolist() == [w["decision"] for w in want]
    real = sorted((realdata / "dcase2023_dev_mini" / "dev_data" / "raw" / "fan" / "test").glob("*.wav"))
    out = model.predict(pd.DataFrame({"path": [str(p) for p in real], "machine_type": "fan", "section": "00"}))
    assert len(out) == len(real) > 0 and np.isfinite(out["score"]).all() and set(out["decision"]) <= {0, 1}
    with pytest.raises(ValueError, match="no index for pump/section_00"):
        model.predict(pd.DataFrame({"path": [str(real[0])], "machine_type": "pump", "section": "00"}))


def test_oracle_runs_cannot_be_registered(flow_ws):
    from asd_core.tracking.registry import RegistryError, register_run

    ws, _ = flow_ws
    with connect(ws, read_only=True) as con:
        oracle = con.execute("SELECT run_id FROM runs WHERE encoder = 'oracle' LIMIT 1").fetchone()[0]
    with pytest.raises(RegistryError, match="oracle encoder needs the clean and noise parts"):
        register_run(ws, oracle)
