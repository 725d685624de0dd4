"""Embeddings and scores per channel, fused, and conditioned on the far microphone (issue 20 part 2),
through the real embed and score flows (Prefect), FAISS indexes and DuckDB; every number is compared
with an independent computation on the stored embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from asd_core.config import Workspace
from asd_core.encoders import get_encoder
from asd_core.scoring.config import ScoringConfig
from asd_core.scoring.detector import make_detector
from asd_core.storage.embeddings import read_vectors
from asd_core.storage.paths import all_files, embedding_file

SR = 16000
ENCODER = "logmel-stats"
METRIC = "euclidean"  # the encoder's distance, which the score flow uses


def _write(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, SR, subtype="PCM_16")


def make_tree(root: Path, far_of=None, seed: int = 0) -> Path:
    """A DCASE 2026-style two-channel tree, one machine type and section: near = tone + noise,
    far = the tone 14 dB weaker + stronger noise; anomalies add a harmonic. ``far_of(i, near)``
    replaces the far channel of clip ``i``."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR // 2) / SR
    clips = [("train", "source", "normal", i) for i in range(12)] + [("train", "target", "normal", i) for i in range(3)]
    clips += [("test", d, lab, i) for d in ("source", "target") for lab in ("normal", "anomaly") for i in range(3)]
    for n, (split, domain, label, i) in enumerate(clips):
        f0 = (120 if domain == "source" else 150) * (1 + 0.02 * rng.standard_normal())
        machine = 0.3 * np.sin(2 * np.pi * f0 * t) + (0.15 * np.sin(2 * np.pi * 7.3 * f0 * t) if label == "anomaly" else 0)
        noise = rng.standard_normal(t.size)
        near = machine + 0.03 * noise
        far = 0.2 * machine + 0.1 * (0.6 * noise + 0.8 * rng.standard_normal(t.size))
        if far_of is not None:
            far = far_of(n, near)
        name = f"section_00_{domain}_{split}_{label}_{i:04d}_noAttribute.wav"
        _write(root / "fan" / split / name, np.stack([near, far], 1).astype(np.float32))
    return root


def _ingest(ws_root: Path, tree: Path) -> Workspace:
    """The library's ingest (the ingest flow is tested elsewhere), published to DuckDB."""
    from asd_core.ingest import ingest_roots

    ws = Workspace(ws_root)
    ingest_roots(ws, [tree], "d26")
    return ws


def _vectors(ws: Workspace, channel: str | None = None) -> dict[str, np.ndarray]:
    enc = get_encoder(ENCODER)
    ids, vecs = read_vectors([embedding_file(ws, enc.name, enc.version, "fan", "d26", channel)])
    return dict(zip(ids, vecs))


def _split(ws: Workspace) -> tuple[list[str], list[str]]:
    rows = [r for p in all_files(ws, "clips") for r in pq.read_table(p).to_pylist()]
    refs = [r["clip_id"] for r in rows if r["split"] == "train"]
    tests = [r["clip_id"] for r in rows if r["split"] == "test"]
    return refs, tests


def _run(ws: Workspace, run_id: str) -> tuple[dict, dict[str, float], float]:
    con = duckdb.connect(str(ws.duckdb_path), read_only=True)
    try:
        params = json.loads(con.execute("SELECT params FROM runs WHERE run_id = ?", [run_id]).fetchone()[0])
        scores = dict(con.execute("SELECT clip_id, score FROM scores WHERE run_id = ?", [run_id]).fetchall())
        threshold = con.execute("SELECT threshold FROM thresholds WHERE run_id = ?", [run_id]).fetchone()[0]
        assert con.execute("SELECT count(*) FROM section_metrics WHERE run_id = ?", [run_id]).fetchone()[0] == 1
    finally:
        con.close()
    return params, scores, threshold


def _detector(vectors: dict[str, np.ndarray], refs: list[str], cfg: ScoringConfig):
    return make_detector(cfg).fit(np.stack([vectors[c] for c in refs]), ids=refs)


@pytest.fixture(scope="module")
def stereo_ws(tmp_path_factory, prefect_harness) -> Workspace:
    from flows.embed import embed_flow

    base = tmp_path_factory.mktemp("channels")
    ws = _ingest(base / "ws", make_tree(base / "tree"))
    assert embed_flow(workspace=str(ws.root), encoder=ENCODER)["embedded"] == 27
    report = embed_flow(workspace=str(ws.root), encoder=ENCODER, channel="far")
    assert (report["embedded"], report["channels"]) == (27, ["far"])
    return ws


def test_far_embeddings_equal_the_far_signals_ingested_as_mono(stereo_ws, tmp_path):
    from flows.embed import embed_flow

    mono = tmp_path / "mono"
    for wav in (stereo_ws.root.parent / "tree").rglob("*.wav"):
        data, _ = sf.read(wav, dtype="int16")
        out = mono / wav.relative_to(stereo_ws.root.parent / "tree")
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, data[:, 1], SR, subtype="PCM_16")
    ws = _ingest(tmp_path / "ws", mono)
    embed_flow(workspace=str(ws.root), encoder=ENCODER)
    far, alone = _vectors(stereo_ws, "far"), _vectors(ws)
    assert sorted(far) == sorted(alone) and len(far) == 27
    for cid in far:
        np.testing.assert_array_equal(far[cid], alone[cid])
    near = _vectors(stereo_ws)
    assert not np.allclose(near[cid], far[cid])  # the primary file still holds the near channel
    table = pq.read_table(embedding_file(stereo_ws, ENCODER, get_encoder(ENCODER).version, "fan", "d26", "far"))
    assert set(table.column("channel").to_pylist()) == {"far"}
    # re-running is a no-op for both channels
    again = embed_flow(workspace=str(stereo_ws.root), encoder=ENCODER, channel=1)  # channel index 1 = far
    assert (again["embedded"], again["reused"], again["channels"]) == (0, 27, ["far"])


def test_single_channel_and_fused_runs_equal_an_independent_computation(stereo_ws):
    from flows.score import score_flow

    cfg = ScoringConfig(normalization="knn", k=2, metric=METRIC)
    refs, tests = _split(stereo_ws)
    runs = {name: score_flow(workspace=str(stereo_ws.root), encoder=ENCODER, normalization="knn", k=2, **kw)
            for name, kw in {"near": {}, "far": {"channel": "far"},
                             "mean": {"channels": ["near", "far"], "fusion": "mean"},
                             "max": {"channels": ["near", "far"], "fusion": "max"}}.items()}
    assert len({r["run_id"] for r in runs.values()}) == 4
    dets = {c: _detector(_vectors(stereo_ws, None if c == "near" else c), refs, cfg) for c in ("near", "far")}
    per = {c: dets[c].score(np.stack([_vectors(stereo_ws, None if c == "near" else c)[t] for t in tests])) for c in dets}
    ref_scores = {c: dets[c].reference_scores() for c in dets}
    for name, combine in (("near", None), ("far", None), ("mean", np.mean), ("max", np.max)):
        params, scores, threshold = _run(stereo_ws, runs[name]["run_id"])
        got = np.array([scores[t] for t in tests])
        if combine is None:
            want, want_thr = per[name], float(np.quantile(ref_scores[name], 0.9))
        else:
            want = combine(np.stack([per["near"], per["far"]]), axis=0)
            want_thr = float(np.quantile(combine(np.stack([ref_scores["near"], ref_scores["far"]]), axis=0), 0.9))
        np.testing.assert_allclose(got, want, rtol=1e-9)
        assert threshold == pytest.approx(want_thr, rel=1e-9)
    assert "channel" not in _run(stereo_ws, runs["near"]["run_id"])[0]
    assert _run(stereo_ws, runs["far"]["run_id"])[0]["channel"] == "far"
    params = _run(stereo_ws, runs["max"]["run_id"])[0]
    assert (params["channels"], params["fusion"]) == (["near", "far"], "max")
    from asd_core.evaluation.compare import compare_runs

    labels = {r["run_id"]: r["channels"] for r in compare_runs(stereo_ws, [r["run_id"] for r in runs.values()])}
    assert [labels[runs[n]["run_id"]] for n in ("near", "far", "mean", "max")] == ["", "far", "near+far mean", "near+far max"]


def test_noise_reference_run_records_its_fit_and_scores_the_residual(stereo_ws):
    from flows.score import score_flow

    run = score_flow(workspace=str(stereo_ws.root), encoder=ENCODER, normalization="knn", k=2, channel="near",
                     noise_reference="far")
    params, scores, _ = _run(stereo_ws, run["run_id"])
    assert params["channel"] == "near" and params["noise_reference"] == "far"
    fit = params["noise_reference_fit"]["d26/fan/section_00"]
    assert fit["alpha"] > 0 and 1 <= fit["effective_dof"] <= fit["n"] == 15


@pytest.mark.slow  # its own ingest and two embeddings: ~9 s
def test_identical_channels_fuse_to_the_single_channel_score(tmp_path, prefect_harness):
    from flows.embed import embed_flow
    from flows.score import score_flow

    ws = _ingest(tmp_path / "ws", make_tree(tmp_path / "tree", far_of=lambda i, near: near, seed=1))
    embed_flow(workspace=str(ws.root), encoder=ENCODER)
    embed_flow(workspace=str(ws.root), encoder=ENCODER, channel="far")
    single = _run(ws, score_flow(workspace=str(ws.root), encoder=ENCODER, normalization="gwrp")["run_id"])
    for fusion in ("mean", "max"):
        fused = _run(ws, score_flow(workspace=str(ws.root), encoder=ENCODER, normalization="gwrp",
                                    channels=["near", "far"], fusion=fusion)["run_id"])
        assert fused[1] == single[1] and fused[2] == single[2]


@pytest.mark.slow  # its own ingest and two embeddings: ~6 s
def test_constant_far_channel_leaves_the_centred_near_embeddings(tmp_path, prefect_harness):
    """Every clip's far channel is the same recording: the ridge explains nothing, the residual is
    the near embedding minus its training mean, and its scores those of the centred embeddings."""
    from flows.embed import embed_flow
    from flows.score import score_flow

    hum = 0.1 * np.random.default_rng(9).standard_normal(SR // 2)
    ws = _ingest(tmp_path / "ws", make_tree(tmp_path / "tree", far_of=lambda i, near: hum, seed=2))
    embed_flow(workspace=str(ws.root), encoder=ENCODER)
    embed_flow(workspace=str(ws.root), encoder=ENCODER, channel="far")
    far = _vectors(ws, "far")
    assert len({v.tobytes() for v in far.values()}) == 1
    run = score_flow(workspace=str(ws.root), encoder=ENCODER, normalization="knn", k=2, noise_reference="far")
    _, scores, threshold = _run(ws, run["run_id"])
    refs, tests = _split(ws)
    near = {c: v.astype(np.float64) for c, v in _vectors(ws).items()}
    mean = np.stack([near[c] for c in refs]).mean(axis=0)
    centred = {c: (v - mean).astype(np.float32) for c, v in near.items()}
    det = _detector(centred, refs, ScoringConfig(normalization="knn", k=2, metric=METRIC))
    np.testing.assert_allclose([scores[t] for t in tests], det.score(np.stack([centred[t] for t in tests])), rtol=1e-9)
    assert threshold == pytest.approx(det.threshold_, rel=1e-9)


def test_channel_options_fail_in_one_line(tmp_path, stereo_ws):
    import subprocess
    import sys

    from asd_core.scoring.channels import ChannelSpec
    from asd_core.scoring.distances import ScoringInputError

    with pytest.raises(ScoringInputError, match="--fusion must be one of mean, max"):
        ChannelSpec(("near", "far"))
    with pytest.raises(ScoringInputError, match="--fusion combines several channels"):
        ChannelSpec(("near",), "max")
    with pytest.raises(ScoringInputError, match="is the scored channel itself"):
        ChannelSpec(("far",), None, "far")
    # a channel no dataset stores: one line naming it, before any work
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "embed", "--workspace", str(stereo_ws.root),
                           "--channel", "ch5"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "no ingested dataset has a ch5 channel (d26)" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "score", "--workspace", str(stereo_ws.root),
                           "--channels", "near,far"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "--fusion must be one of mean, max" in proc.stderr
    assert "Traceback" not in proc.stderr
    # a channel that was never embedded: the command that would embed it, before the flow starts
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "score", "--workspace", str(stereo_ws.root),
                           "--channel", "mean"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert f"run `asd embed --encoder {ENCODER} --channel mean` first" in proc.stderr
    assert "Traceback" not in proc.stderr and "asd-score" not in proc.stderr  # no flow run began


@pytest.mark.slow  # three MLflow registrations and pyfunc loads: ~40 s
def test_registered_channel_models_score_two_channel_wavs_as_the_runs_did(stereo_ws, tmp_path):
    import base64

    import mlflow
    import pandas as pd

    from asd_core.monitor.model import load_model
    from asd_core.tracking.pyfunc_model import ScoringRequestError
    from asd_core.tracking.registry import register_run
    from asd_core.tracking.store import TrackingConfig
    from flows.score import score_flow

    mlflow.set_tracking_uri(TrackingConfig().resolved_uri(stereo_ws))
    con = duckdb.connect(str(stereo_ws.duckdb_path), read_only=True)
    clips = con.execute("SELECT clip_id, root || '/' || relative_path, machine_type, section FROM clips "
                        "WHERE split = 'test' ORDER BY clip_id").fetchall()
    con.close()
    files = pd.DataFrame({"path": [c[1] for c in clips], "machine_type": "fan", "section": "00"})
    for kw in ({"channel": "far"}, {"channels": ["near", "far"], "fusion": "max"}, {"noise_reference": "far"}):
        run = score_flow(workspace=str(stereo_ws.root), encoder=ENCODER, normalization="knn", k=2, **kw)
        _, scores, threshold = _run(stereo_ws, run["run_id"])
        reg = register_run(stereo_ws, run["run_id"])
        model = mlflow.pyfunc.load_model(reg["model_uri"])
        got = model.predict(files)
        np.testing.assert_allclose(got["score"], [scores[c[0]] for c in clips], rtol=1e-9)
        assert np.allclose(got["threshold"], threshold, rtol=1e-12)
        one = model.predict(pd.DataFrame({"audio_b64": [base64.b64encode(Path(clips[0][1]).read_bytes()).decode()],
                                          "machine_type": ["fan"], "section": ["00"]}))
        assert one["score"][0] == got["score"][0]
        # asd monitor / asd enroll load it with its channels (tests/test_channel_operating_loop.py)
        assert load_model(stereo_ws, f"asd-encoder/{reg['version']}").roles == model.unwrap_python_model().channels.roles
    mono = tmp_path / "mono.wav"
    sf.write(mono, sf.read(clips[0][1])[0][:, 0], SR, subtype="PCM_16")
    with pytest.raises(ScoringRequestError, match="mono audio has no far channel; this model scores primary and far"):
        model.predict(pd.DataFrame({"path": [str(mono)], "machine_type": ["fan"], "section": ["00"]}))


@pytest.mark.slow  # five scoring runs: ~15 s
def test_channel_comparison_flow_scores_every_variant(stereo_ws):
    from flows.channels import VARIANTS, channel_comparison_flow

    rows = channel_comparison_flow(workspace=str(stereo_ws.root), encoders=[ENCODER])
    assert [r["channels"] for r in rows] == list(VARIANTS) and len({r["run_id"] for r in rows}) == len(VARIANTS)
    for r in rows:
        params, scores, _ = _run(stereo_ws, r["run_id"])
        assert 0.0 < r["official_score"] <= 1.0 and len(scores) == 12
