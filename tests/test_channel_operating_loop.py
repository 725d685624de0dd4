"""`asd monitor` and `asd enroll` with models of channel runs (issue 20): a fused (near + far, max) and a
noise-reference (near conditioned on far) model registered from real scoring runs of a two-channel
tree, in the workspace's real MLflow registry, driven through the real Prefect flows. Monitor
detections are compared with the registered pyfunc's predictions on the same WAV files; enrolled
versions with an independent computation (detectors fitted with make_detector on the enlarged
per-channel references, the ridge residuals of the new clips)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from asd_core.config import AudioConfig, Workspace
from asd_core.scoring.config import ScoringConfig
from asd_core.scoring.detector import make_detector
from tests.test_channel_scoring import ENCODER, METRIC, SR, _ingest, _split, _vectors, make_tree

SECTION = "d26/fan/section_00"
CFG = ScoringConfig(normalization="knn", k=2, metric=METRIC)


def _new_condition(folder: Path, n: int = 4, seed: int = 5) -> list[Path]:
    """Two-channel normal clips of an operating condition no training clip has (another speed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR // 2) / SR
    paths = []
    for i in range(n):
        machine = 0.3 * np.sin(2 * np.pi * 185 * (1 + 0.02 * rng.standard_normal()) * t)
        noise = rng.standard_normal(t.size)
        near = machine + 0.03 * noise
        far = 0.2 * machine + 0.1 * (0.6 * noise + 0.8 * rng.standard_normal(t.size))
        path = folder / f"line2_{i:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.stack([near, far], 1).astype(np.float32), SR, subtype="PCM_16")
        paths.append(path)
    return paths


def _mono_copy(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dest, sf.read(src, dtype="int16")[0][:, 0], SR, subtype="PCM_16")
    return dest


def _embed(paths: list[Path]) -> dict[str, np.ndarray]:
    """role -> embeddings of the files' channels, decoded as the pyfunc decodes them."""
    from asd_core.encoders import get_encoder
    from asd_core.tracking.pyfunc_model import decode_wav

    enc = get_encoder(ENCODER)
    waves = [decode_wav(p, AudioConfig(sample_rate=SR), ["primary", "far"]) for p in paths]
    return {r: np.asarray(enc.embed([w[r] for w in waves]), np.float32) for r in ("primary", "far")}


def _predict(ws: Workspace, version: str, paths: list[Path]) -> pd.DataFrame:
    import mlflow

    from asd_core.tracking.store import TrackingConfig

    mlflow.set_tracking_uri(TrackingConfig().resolved_uri(ws))
    model = mlflow.pyfunc.load_model(f"models:/asd-encoder/{version}")
    return model.predict(pd.DataFrame({"path": [str(p) for p in paths], "machine_type": "fan", "section": "00"}))


def _bundle(ws: Workspace, version: str) -> Path:
    from asd_core.monitor.model import bundle_dir, load_model

    return bundle_dir(load_model(ws, f"asd-encoder/{version}").folder)


# --- fast: refitting a channel bundle's section (no registry) ----------------------------------------

def _digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", ["far", "mean", "max", "noise"])
def test_refit_model_section_refits_every_channel_and_the_model_threshold(tmp_path, kind):
    """A bundle of one non-primary channel, of two fused channels, or of a residual given a ridge:
    the refitted section equals detectors fitted from scratch on references + new clips (the fused
    threshold: the quantile of the fused leave-one-out scores); the parent is never written."""
    from asd_core.enrollment import refit_model_section
    from asd_core.scoring import index_store
    from asd_core.scoring.channels import save_noise_reference
    from asd_core.scoring.noise_reference import NoiseReference
    from asd_core.tracking.channel_bundle import BundleChannels, ChannelScorer, load_section_detectors

    rng = np.random.default_rng(11)
    key, rel = ("d26", "fan", "00"), Path("indexes/d26/fan/section_00")
    shift = rng.normal(size=(1, 8))
    refs = {"near": rng.normal(size=(30, 8)), "far": rng.normal(size=(30, 8))}
    refs["near"] += 0.5 * refs["far"]
    new = {"near": rng.normal(size=(5, 8)) + shift, "far": rng.normal(size=(5, 8))}
    queries = {"near": rng.normal(size=(6, 8)) + shift * np.arange(6)[:, None] / 5, "far": rng.normal(size=(6, 8))}
    refs, new, queries = ({r: v.astype(np.float32) for r, v in d.items()} for d in (refs, new, queries))
    cfg = ScoringConfig(normalization="knn", k=2, metric="euclidean")
    parent = tmp_path / "parent"
    fusion = kind if kind in ("mean", "max") else None
    combine = np.max if kind == "max" else np.mean
    if kind == "noise":
        ridge = NoiseReference().fit(refs["far"], refs["near"])
        spec = BundleChannels(["primary"], None, "far", {})
        stored = {"primary": ridge.residual(refs["far"], refs["near"]).astype(np.float32)}
    else:
        spec = BundleChannels(["far"] if kind == "far" else ["near", "far"], fusion, None, {})
        stored = {r: refs[r] for r in spec.channels}
    dets = {r: make_detector(cfg).fit(v) for r, v in stored.items()}
    for role, det in dets.items():
        index_store.save(spec.index_root(parent, role) / rel, det, det.threshold_, "h", {"references": 30})
    if kind == "noise":
        save_noise_reference(parent / rel / "noise_reference.npz", ridge)
    spec.thresholds[SECTION] = float(np.quantile(combine(np.stack([d.reference_scores() for d in dets.values()]), 0),
                                                 cfg.threshold_quantile)) if fusion else dets[spec.channels[0]].threshold_
    spec.write(parent)
    before = _digest(parent)

    out = tmp_path / "child"
    shutil.copytree(parent, out)
    scorer = ChannelScorer(parent, spec, load_section_detectors(parent))
    vectors = {"primary": new["near"], **new}
    refit = refit_model_section(parent, out, key, BundleChannels.read(parent), scorer.inputs(key, vectors),
                                [f"n{i}" for i in range(5)], "line2")
    assert _digest(parent) == before
    assert (refit.references_before, refit.references_after) == (30, 35) and len(refit.channels) == len(dets)

    # from scratch: each channel's references + its new vectors (the residuals under the parent's ridge)
    added = {"primary": ridge.residual(new["far"], new["near"]).astype(np.float32)} if kind == "noise" else new
    fresh = {r: make_detector(cfg).fit(np.vstack([stored[r], added[r]])) for r in stored}
    want_thr = float(np.quantile(combine(np.stack([d.reference_scores() for d in fresh.values()]), 0),
                                 cfg.threshold_quantile)) if fusion else fresh[spec.channels[0]].threshold_
    child = BundleChannels.read(out)
    assert child.thresholds[SECTION] == pytest.approx(want_thr, rel=1e-12) == refit.threshold_after
    assert refit.threshold_before == spec.thresholds[SECTION]
    child_scorer = ChannelScorer(out, child, load_section_detectors(out))
    got, thresholds = child_scorer.score([key] * 6, {"primary": queries["near"], **queries})
    xs = {"primary": ridge.residual(queries["far"], queries["near"]).astype(np.float32)} if kind == "noise" else queries
    want = combine(np.stack([fresh[r].score(xs[r]) for r in fresh]), 0)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)
    assert (thresholds == child.thresholds[SECTION]).all()
    if kind == "noise":  # the ridge stays beside the refitted residual index, unchanged
        assert (out / rel / "noise_reference.npz").read_bytes() == (parent / rel / "noise_reference.npz").read_bytes()


# --- slow: registered models, the monitor and enroll flows ------------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory, prefect_harness):
    """A two-channel workspace (near and far embedded) with a fused-max and a noise-reference knn run
    registered: {"max": version, "noise": version}, and the tree's test clips."""
    from asd_core.tracking.registry import register_run
    from flows.embed import embed_flow
    from flows.score import score_flow

    base = tmp_path_factory.mktemp("channel-loop")
    tree = make_tree(base / "tree")
    ws = _ingest(base / "ws", tree)
    embed_flow(workspace=str(ws.root), encoder=ENCODER)
    embed_flow(workspace=str(ws.root), encoder=ENCODER, channel="far")
    versions, runs = {}, {}
    for name, kw in {"max": {"channels": ["near", "far"], "fusion": "max"}, "noise": {"noise_reference": "far"}}.items():
        run = score_flow(workspace=str(ws.root), encoder=ENCODER, normalization="knn", k=2, **kw)
        versions[name], runs[name] = register_run(ws, run["run_id"])["version"], run["run_id"]
    tests = sorted((tree / "fan" / "test").glob("*.wav"))
    return ws, versions, runs, tests


@pytest.mark.slow  # two monitor flow runs and two pyfunc loads on top of the module's registrations: ~40 s
def test_monitor_scores_channel_models_as_their_pyfuncs_and_quarantines_mono_files(models, tmp_path):
    from asd_core.storage.catalog import connect
    from flows.monitor import monitor_flow

    ws, versions, _, tests = models
    incoming = tmp_path / "INCOMING" / "fan" / "section_00"
    incoming.mkdir(parents=True)
    files = [Path(shutil.copy2(p, incoming / p.name)) for p in tests[::2]]
    mono = _mono_copy(tests[0], incoming / "mono_20261201_080000.wav")
    lacking = {"max": "no near or far channel; this model scores near and far",  # --channels near,far: both roles
               "noise": "no far channel; this model scores primary and far"}
    for name in ("max", "noise"):
        v = versions[name]
        report = monitor_flow(incoming=str(tmp_path / "INCOMING"), workspace=str(ws.root), model=f"asd-encoder/{v}",
                              rescore=True)
        assert report["scored"] == len(files) and report["found"] == len(files) + 1
        want = _predict(ws, v, files).set_index("path")
        got = {d["path"]: d for d in report["detections"]}
        assert sorted(got) == sorted(want.index)
        for path, row in want.iterrows():
            assert got[path]["score"] == row["score"]  # exact: logmel-stats embeds a clip alone as in a batch
            assert got[path]["threshold"] == row["threshold"] and got[path]["decision"] == row["decision"]
        with connect(ws, read_only=True) as con:
            table = dict(con.execute("SELECT path, score FROM detections WHERE model_version = ?", [v]).fetchall())
            q = con.execute("SELECT stage, reason, scored FROM monitor_quarantine WHERE path = ? AND model_version = ?",
                            [str(mono), v]).fetchall()
        np.testing.assert_allclose([table[p] for p in want.index], want["score"], rtol=1e-9, atol=0)
        assert q == [("decode", f"mono audio has {lacking[name]}: send the 2-channel recording", False)]
        # once per file and version: the same folder again scores nothing, quarantines nothing new
        again = monitor_flow(incoming=str(tmp_path / "INCOMING"), workspace=str(ws.root), model=f"asd-encoder/{v}",
                             rescore=True)
        assert (again["scored"], again["already_scored"], again["quarantined"], again["already_quarantined"]) == \
            (0, len(files), 0, 1)
    fused = _predict(ws, versions["max"], files)
    assert fused["decision"].sum() > 0 and (fused["decision"] == 0).sum() > 0  # both outcomes are compared


@pytest.mark.slow  # two enrollments (registrations), an embed and a scoring run: ~40 s
def test_enrolled_fused_model_equals_an_independent_refit(models, tmp_path):
    from asd_core.enrollment import EnrollmentError, enroll
    from flows.embed import embed_flow
    from flows.enroll import enroll_flow
    from flows.score import score_flow
    from tests.test_channel_scoring import _run

    ws, versions, _, tests = models
    parent = versions["max"]
    refs, _ = _split(ws)
    near, far = _vectors(ws), _vectors(ws, "far")
    clips = _new_condition(tmp_path / "line2")

    # a mono clip among them: refused naming the file and the channel, nothing registered
    bad = tmp_path / "with-mono"
    shutil.copytree(tmp_path / "line2", bad)
    _mono_copy(tests[0], bad / "mono.wav")
    with pytest.raises(EnrollmentError, match=r"mono.wav: mono audio has no near or far channel; this model scores near"):
        enroll(ws, bad, "fan", "00", "line2", f"asd-encoder/{parent}", log=lambda *_: None)

    r = enroll_flow(clips_dir=str(tmp_path / "line2"), machine_type="fan", section="00", domain="line2",
                    workspace=str(ws.root), model=f"asd-encoder/{parent}")
    child = r["version"]
    assert child != parent and r["parent_version"] == parent and (r["references_before"], r["references_after"]) == (15, 19)
    assert r["channels"] == "channels near and far fused by max"

    new = _embed(clips)
    dets = {"near": make_detector(CFG).fit(np.vstack([np.stack([near[c] for c in refs]), new["primary"]])),
            "far": make_detector(CFG).fit(np.vstack([np.stack([far[c] for c in refs]), new["far"]]))}
    want_thr = float(np.quantile(np.max(np.stack([dets["near"].reference_scores(), dets["far"].reference_scores()]), 0),
                                 CFG.threshold_quantile))
    channels = json.loads((_bundle(ws, child) / "channels.json").read_text())
    assert channels["thresholds"][SECTION] == pytest.approx(want_thr, rel=1e-9)
    assert r["threshold_after"] == channels["thresholds"][SECTION]
    assert r["threshold_before"] == json.loads((_bundle(ws, parent) / "channels.json").read_text())["thresholds"][SECTION]
    assert (channels["channels"], channels["fusion"]) == (["near", "far"], "max")

    got = _predict(ws, child, tests)
    test = _embed(tests)
    want = np.maximum(dets["near"].score(test["primary"]), dets["far"].score(test["far"]))
    np.testing.assert_allclose(got["score"], want, rtol=1e-9, atol=0)
    assert (got["threshold"] == channels["thresholds"][SECTION]).all()
    np.testing.assert_array_equal(got["decision"], (want > got["threshold"]).astype(int))

    # the clips are stored like ingested two-channel clips: the next embed covers both channels and a
    # fresh fused run over the enlarged training set sets the same threshold
    assert embed_flow(workspace=str(ws.root), encoder=ENCODER)["embedded"] == len(clips)
    assert embed_flow(workspace=str(ws.root), encoder=ENCODER, channel="far")["embedded"] == len(clips)
    run = score_flow(workspace=str(ws.root), encoder=ENCODER, normalization="knn", k=2, channels=["near", "far"],
                     fusion="max")
    assert _run(ws, run["run_id"])[2] == pytest.approx(want_thr, rel=1e-9)


@pytest.mark.slow  # one enrollment (a registration) and a pyfunc load: ~20 s
def test_enrolled_noise_reference_model_adds_the_ridge_residuals_of_the_new_clips(models, tmp_path):
    from asd_core.enrollment import enroll
    from asd_core.scoring.channels import load_noise_reference
    from asd_core.scoring.index_store import load_saved

    ws, versions, _, tests = models
    parent = versions["noise"]
    clips = _new_condition(tmp_path / "line3", seed=6)
    r = enroll(ws, tmp_path / "line3", "fan", "00", "line3", f"asd-encoder/{parent}", log=lambda *_: None)
    folder = Path("indexes/d26/fan/section_00")
    before, after = _bundle(ws, parent) / folder, _bundle(ws, r.version) / folder
    # the ridge is the parent's, byte for byte
    assert (after / "noise_reference.npz").read_bytes() == (before / "noise_reference.npz").read_bytes()
    ridge = load_noise_reference(before / "noise_reference.npz")
    new = _embed(clips)
    residuals = ridge.residual(new["far"], new["primary"]).astype(np.float32)
    parent_refs = np.load(before / "references.npy")
    np.testing.assert_array_equal(np.load(after / "references.npy"), np.vstack([parent_refs, residuals]))

    det = make_detector(CFG).fit(np.vstack([parent_refs, residuals]))
    channels = json.loads((_bundle(ws, r.version) / "channels.json").read_text())
    assert channels["noise_reference"] == "far" and channels["thresholds"][SECTION] == pytest.approx(det.threshold_, rel=1e-9)
    assert load_saved(after)[1] == channels["thresholds"][SECTION] == r.threshold_after
    got = _predict(ws, r.version, tests)
    test = _embed(tests)
    x = np.vstack([ridge.residual(test["far"][i : i + 1], test["primary"][i : i + 1]) for i in range(len(tests))])
    np.testing.assert_allclose(got["score"], det.score(x.astype(np.float32)), rtol=1e-9, atol=0)
    assert (got["threshold"] == r.threshold_after).all()
