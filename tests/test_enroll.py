"""`asd enroll` (issue 16 part 3): the refitted section equals a float64 brute force of methods.md's
formulas on parent references + enrolled clips; bad enrollments are refused before anything is
stored or registered; end to end against a real MLflow registry, DuckDB file and Prefect flow run."""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asd_core.enrollment import EnrollmentError, read_enrollment_clips, refit_section
from asd_core.scoring import ScoringConfig, index_store, make_detector
from tests.test_exact_scores import _oracle, _rho64


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("norm, k", [("knn", 2), ("gwrp", 1), ("none", 1), ("knn-diff", 1)])
def test_refit_equals_float64_brute_force_and_leaves_the_parent_untouched(tmp_path, metric, norm, k):
    rng = np.random.default_rng(3)
    refs = (rng.normal(size=(60, 16)) + 2).astype(np.float32)
    new = (rng.normal(size=(8, 16)) * 0.3 - 2).astype(np.float32)  # a new operating condition: its own cluster
    queries = np.vstack([rng.normal(size=(5, 16)) + 2, rng.normal(size=(5, 16)) * 0.3 - 2]).astype(np.float32)
    cfg = ScoringConfig(normalization=norm, metric=metric, k=k, r=0.5)
    det = make_detector(cfg).fit(refs)
    parent = tmp_path / "parent"
    index_store.save(parent, det, det.threshold_, "h", {"references": len(refs)})
    before = _digest(parent)

    refit = refit_section(parent, tmp_path / "child", new, [f"n{i}" for i in range(len(new))], "line2")
    assert _digest(parent) == before
    child, threshold = index_store.load_saved(tmp_path / "child")
    both = np.vstack([refs, new])
    np.testing.assert_allclose(child.score(queries), _oracle(both, queries, metric, norm, k, 0.5), rtol=1e-9, atol=1e-12)
    loo = _oracle(both, both, metric, norm, k, 0.5, exclude_self=True)
    assert threshold == pytest.approx(float(np.quantile(loo, cfg.threshold_quantile)), rel=1e-9)
    if norm != "none":
        np.testing.assert_allclose(child.rho_, _rho64(both, metric, norm.split("-")[0], k, 0.5), rtol=1e-9)
    assert (refit.references_before, refit.references_after) == (60, 68)
    assert refit.threshold_before == det.threshold_ and refit.threshold_after == threshold
    if norm in ("knn", "gwrp"):
        # the point of the method: the new cluster's clips score like the old cluster's (ratio to their own scale)
        scores = child.score(queries)
        assert scores[5:].mean() < 3 * scores[:5].mean()


def test_refit_refuses_references_that_are_not_a_plain_array(tmp_path):
    """The parent's references are read by index_store.load_array: a pickled .npy is refused naming the file."""
    rng = np.random.default_rng(4)
    refs = rng.normal(size=(20, 8)).astype(np.float32)
    det = make_detector(ScoringConfig(normalization="knn", k=2)).fit(refs)
    parent = tmp_path / "parent"
    index_store.save(parent, det, det.threshold_, "h", {"references": len(refs)})
    np.save(parent / "references.npy", np.array([{"not": "numbers"}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"references.npy: not a plain numeric array"):
        refit_section(parent, tmp_path / "child", refs[:3], ["a", "b", "c"], "line2")
    assert not (tmp_path / "child").exists()


def _wav(path: Path, seconds: float = 1.0, rate: int = 16000, seed: int = 0, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate)).astype(np.float32), rate,
             subtype=subtype)
    return path


def test_clip_checks_name_every_bad_file(tmp_path):
    d = tmp_path / "few"
    _wav(d / "a.wav")
    with pytest.raises(EnrollmentError, match=r"few: 1 WAV file\(s\), but the section's detector needs at least 3"):
        read_enrollment_clips(d, 16000, 3)

    d = tmp_path / "bad"
    for i in range(4):
        _wav(d / "day1" / f"ok{i}.wav", seed=i)
    _wav(d / "rate.wav", rate=22050, seed=9)
    _wav(d / "short.wav", seconds=0.2, seed=10)
    (d / "broken.wav").write_bytes(b"not audio" * 20)
    (d / "notes.txt").write_text("not a wav")
    with pytest.raises(EnrollmentError) as err:
        read_enrollment_clips(d, 16000, 3, median_duration_s=1.0)
    msg = str(err.value)
    assert "3 of the 7 clips" in msg and "nothing was stored or registered" in msg
    assert f"{d / 'rate.wav'}: sample rate 22050 Hz, but the model's is 16000 Hz" in msg
    assert f"{d / 'short.wav'}: 0.20 s long, far from the 1.00 s median" in msg
    assert f"{d / 'broken.wav'}:" in msg and "ok0.wav" not in msg

    d = tmp_path / "dupes"
    for i in range(3):
        _wav(d / f"c{i}.wav", seed=i)
    shutil.copyfile(d / "c0.wav", d / "copy.wav")
    with pytest.raises(EnrollmentError, match=r"copy.wav: the same audio as .*c0.wav"):
        read_enrollment_clips(d, 16000, 3)

    good = read_enrollment_clips(tmp_path / "bad" / "day1", 16000, 3, median_duration_s=1.0)
    assert [c.relative_path for c in good] == [f"ok{i}.wav" for i in range(4)]
    assert all(c.wave.dtype == np.float32 and c.wave.shape == (16000,) for c in good)


def test_the_section_training_clips_are_read_in_one_query(tmp_path, monkeypatch):
    """What enrollment checks clips against (training clips' paths and median duration) comes from one
    connection: the section's training clips only, never enrolled clips, test clips or other sections."""
    import statistics

    import pyarrow as pa

    from asd_core.config import Workspace
    enroll_module = importlib.import_module("asd_core.enrollment.enroll")  # the package's `enroll` is the function
    from asd_core.enrollment.enroll import TrainingClips, training_clips
    from asd_core.schemas import CLIPS
    from asd_core.storage.atomic import write_parquet_atomic
    from asd_core.storage.catalog import connect, publish_ingest
    from asd_core.storage.paths import clips_file

    ws = Workspace(tmp_path / "ws")
    assert training_clips(ws, "demo", "fan", "00") == TrainingClips()  # no database yet

    def row(name: str, seconds: float, section="00", split="train", scheme="dcase2021+") -> dict:
        return {"clip_id": name, "dataset": "demo", "scheme": scheme, "split": split, "machine_type": "fan",
                "section": section, "domain": "source", "label": "normal", "attributes": [], "relative_path": f"{name}.wav",
                "root": "/data", "sample_rate": 16000, "channels": 1, "num_samples": int(seconds * 16000),
                "duration_s": seconds, "channel_selection": "mono", "pipeline_sample_rate": 16000, "file_size": 1,
                "file_mtime_ns": 1, "sha256": f"sha-{name}"}

    train = {"a": 10.0, "b": 9.7, "c": 10.3, "d": 0.1 + 0.2}  # an even count: the median is a mean of two
    rows = [row(n, d) for n, d in train.items()]
    rows += [row("t", 50.0, split="test"), row("o", 50.0, section="01"), row("e", 50.0, scheme="enrollment")]
    write_parquet_atomic(pa.Table.from_pylist(rows, schema=CLIPS), clips_file(ws, "demo", "fan"), CLIPS)
    publish_ingest(ws)

    opened = []
    real_connect = enroll_module.connect
    monkeypatch.setattr(enroll_module, "connect", lambda *a, **k: opened.append(1) or real_connect(*a, **k))
    got = training_clips(ws, "demo", "fan", "00")
    assert len(opened) == 1
    assert got.paths == {f"sha-{n}": f"/data/{n}.wav" for n in train}
    with connect(ws, read_only=True) as con:  # what the aggregate gave before
        agg = con.execute("SELECT median(duration_s) FROM clips WHERE section = '00' AND split = 'train' "
                          "AND scheme <> 'enrollment'").fetchone()[0]
    assert got.median_duration_s == agg == pytest.approx(statistics.median(train.values()))
    assert training_clips(ws, "demo", "fan", "07") == TrainingClips()


def test_an_enrollment_written_but_not_published_is_published_once(tmp_path):
    """Parquet first, DuckDB after: an enrollment killed in between is completed by the next publish."""
    from datetime import datetime

    import pyarrow as pa

    from asd_core.config import Workspace
    from asd_core.enrollment import tables
    from asd_core.schemas import ENROLLMENTS
    from asd_core.storage.atomic import write_parquet_atomic
    from asd_core.storage.catalog import connect

    def rows(eid: str, n: int) -> list[dict]:
        return [{"enrollment_id": eid, "model_name": "m", "model_version": "2", "parent_version": "1", "dataset": "demo",
                 "machine_type": "fan", "section": "00", "domain": "line2", "clip_id": f"{eid}{i}", "sha256": f"{eid}{i}",
                 "path": f"/x/{i}.wav", "threshold_before": 1.0, "threshold_after": 1.1,
                 "enrolled_at": datetime(2026, 12, 1)} for i in range(n)]

    ws = Workspace(tmp_path / "ws")
    write_parquet_atomic(pa.Table.from_pylist(rows("e1", 3), schema=ENROLLMENTS), tables.enrollment_file(ws, "e1"),
                         ENROLLMENTS)
    assert tables.publish(ws) == 3
    assert tables.publish(ws) == 0
    tables.write_enrollment(ws, "e2", rows("e2", 2))  # writes and publishes
    assert tables.publish(ws) == 0
    with connect(ws, read_only=True) as con:
        assert con.execute("SELECT enrollment_id, count(*) FROM enrollments GROUP BY ALL ORDER BY ALL").fetchall() == \
            [("e1", 3), ("e2", 2)]


@pytest.mark.parametrize("version, origin", [("2", "by an earlier enrollment in its lineage"),
                                             ("3", "enrolled into version 2")])
def test_cli_prints_an_already_enrolled_result_without_placeholders(tmp_path, monkeypatch, capsys, version, origin):
    """The no-op results carry None where nothing was refitted; the CLI says what holds the clips, no numbers."""
    import flows.enroll
    from flows.cli import main

    for i in range(3):
        _wav(tmp_path / "clips" / f"c{i}.wav", seed=i)
    result = {"name": "asd-encoder", "version": version, "parent_version": "2", "dataset": "demo", "machine_type": "fan",
              "section": "00", "domain": "line2", "enrollment_id": "e", "clips": 3, "references_before": None,
              "references_after": None, "threshold_before": None if version == "2" else 1.5,
              "threshold_after": None if version == "2" else 1.25, "refit_seconds": 0.0, "already_enrolled": True,
              "sha256": [], "timings": {}}
    monkeypatch.setattr(flows.enroll, "enroll_flow", lambda **_: result)
    assert main(["enroll", str(tmp_path / "clips"), "--machine-type", "fan", "--section", "00", "--domain", "line2",
                 "--workspace", str(tmp_path / "ws")]) == 0
    out = capsys.readouterr().out
    assert out == (f"asd-encoder version {version} already holds these 3 clips of fan/section_00 ({origin}); "
                   "nothing new registered\n")


# --- slow: a registered model, real WAV files, the CLI ------------------------------------------------

@pytest.fixture(scope="module")
def registered(tmp_path_factory, demo_small, prefect_harness, ingest_tree):
    """logmel-stats embeddings of the small demo, a knn run registered as version 1 and promoted."""
    from asd_core.tracking.registry import promote, register_run
    from flows.embed import embed_flow
    from flows.score import score_flow

    ws = ingest_tree(tmp_path_factory.mktemp("ws-enroll"), demo_small)
    embed_flow(workspace=str(ws.root), encoder="logmel-stats")
    run = score_flow(workspace=str(ws.root), encoder="logmel-stats", normalization="knn")
    register_run(ws, run["run_id"])
    promote(ws)
    return ws


def _clips_of(ws, where: str) -> list[dict]:
    from asd_core.storage.catalog import connect, query_rows

    with connect(ws, read_only=True) as con:
        return query_rows(con, f"SELECT c.root || '/' || c.relative_path AS path, c.* FROM clips c WHERE {where} "
                               "ORDER BY relative_path")


def _versions(ws) -> dict[str, dict]:
    from asd_core.tracking.registry import list_models

    return {str(r["version"]): r for r in list_models(ws)}


@pytest.mark.slow
def test_enroll_end_to_end(registered, tmp_path, capsys, monkeypatch):
    from asd_core.monitor import load_model
    from asd_core.storage.catalog import connect, query_rows
    from asd_core.tracking.store import TrackingConfig, client
    from flows.cli import main

    ws = registered
    # the "new operating condition": the fan's target-domain test normals (never references), copied
    # under free names; its anomalies stay out to check that they still score above the threshold
    normals = _clips_of(ws, "machine_type = 'fan' AND split = 'test' AND label = 'normal' AND domain = 'target'")
    anomalies = _clips_of(ws, "machine_type = 'fan' AND split = 'test' AND label = 'anomaly' AND domain = 'target'")
    enroll_dir = tmp_path / "line2"
    for i, row in enumerate(normals[:6]):
        dest = enroll_dir / f"2026-12-0{1 + i % 2}" / f"rec{i}.wav"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(row["path"], dest)
    queries = [r["path"] for r in normals[6:]] + [r["path"] for r in anomalies]

    parent = load_model(ws, "asd-encoder@champion")
    assert parent.version == "1"
    dataset, det1, thr1 = parent.detector("fan", "00")
    refs1 = np.load(next((parent.folder).rglob("indexes/*/fan/section_00/references.npy")))

    argv = ["enroll", str(enroll_dir), "--machine-type", "fan", "--section", "0", "--domain", "line2", "--workspace", str(ws.root)]
    enroll_module = importlib.import_module("asd_core.enrollment.enroll")  # the package's `enroll` is the function

    opened = []
    real_connect = enroll_module.connect
    monkeypatch.setattr(enroll_module, "connect", lambda *a, **k: opened.append(1) or real_connect(*a, **k))
    assert main(argv) == 0
    assert len(opened) == 1  # the section's training clips: one read for durations and known references
    monkeypatch.undo()
    out = capsys.readouterr().out
    assert "enrolled 6 clips as domain line2 of fan/section_00" in out and "registered asd-encoder version 2" in out

    versions = _versions(ws)
    assert set(versions) == {"1", "2"} and versions["2"]["aliases"] == "challenger" and "champion" in versions["1"]["aliases"]
    c = client(ws, TrackingConfig())
    tags = c.get_model_version("asd-encoder", "2").tags
    assert tags["parent_version"] == "1" and tags["enrolled_domain"] == "line2" and tags["enrolled_clips"] == "6"
    assert tags["enrolled_section"] == f"{dataset}/fan/section_00" and tags["normalization"] == "knn"
    # the sha256 list artifact of the registration run
    import csv

    import mlflow
    local = mlflow.artifacts.download_artifacts(run_id=c.get_model_version("asd-encoder", "2").run_id,
                                                artifact_path="enrollment/enrolled_clips.csv", dst_path=str(tmp_path / "art"))
    listed = sorted(r["sha256"] for r in csv.DictReader(open(local)))
    assert listed == sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in enroll_dir.rglob("*.wav"))

    # the enrolled version: the fan section refitted on parent references + the clips' embeddings
    child = load_model(ws, "asd-encoder/2")
    _, det2, thr2 = child.detector("fan", "00")
    from asd_core.config import AudioConfig
    from asd_core.tracking.pyfunc_model import decode_wav

    cfg = AudioConfig(sample_rate=child.sample_rate)
    new = np.asarray(child.encoder.embed([decode_wav(p, cfg) for p in sorted(enroll_dir.rglob("*.wav"))]), np.float32)
    q = np.asarray(child.encoder.embed([decode_wav(Path(p), cfg) for p in queries]), np.float32)
    both = np.vstack([refs1, new])
    k, metric = det1.config.k, det1.config.metric
    np.testing.assert_allclose(det2.score(q), _oracle(both, q, metric, "knn", k, 0.5), rtol=1e-9, atol=1e-12)
    loo = _oracle(both, both, metric, "knn", k, 0.5, exclude_self=True)
    assert thr2 == pytest.approx(float(np.quantile(loo, det1.config.threshold_quantile)), rel=1e-9)
    # every other section is the parent's, bit for bit
    for key, (d, t) in parent.detectors.items():
        if key[1:] != ("fan", "00"):
            d2, t2 = child.detectors[key]
            assert t2 == t and np.array_equal(d2.score(q), d.score(q))

    # the workspace: the clips like ingested clips, and which version they were enrolled with
    stored = _clips_of(ws, "domain = 'line2'")
    assert len(stored) == 6 and {r["split"] for r in stored} == {"train"} and {r["scheme"] for r in stored} == {"enrollment"}
    with connect(ws, read_only=True) as con:
        rows = query_rows(con, "SELECT model_version, parent_version, domain, sha256 FROM enrollments ORDER BY sha256")
    assert [(r["model_version"], r["parent_version"], r["domain"]) for r in rows] == [("2", "1", "line2")] * 6
    assert sorted(r["sha256"] for r in rows) == listed == sorted(r["sha256"] for r in stored)

    # the same enrollment again: nothing new
    assert main(argv) == 0
    assert "already holds these 6 clips" in capsys.readouterr().out
    assert set(_versions(ws)) == {"1", "2"} and len(_clips_of(ws, "domain = 'line2'")) == 6
    from asd_core.enrollment import enroll

    again = enroll(ws, enroll_dir, "fan", "0", "line2", log=lambda *_: None)  # its rows know the thresholds, not the counts
    assert again.already_enrolled and (again.version, again.parent_version) == ("2", "1")
    assert (again.references_before, again.references_after, again.threshold_before, again.threshold_after) == \
        (None, None, thr1, thr2)

    # refused, nothing registered or stored: too few clips, unknown section, another sample rate
    few = tmp_path / "few"
    few.mkdir()
    shutil.copyfile(normals[0]["path"], few / "one.wav")
    assert main(["enroll", str(few), "--machine-type", "fan", "--section", "00", "--domain", "x", "--workspace", str(ws.root)]) == 2
    assert f"{few}: 1 WAV file(s), but the section's detector needs at least {k + 1}" in capsys.readouterr().err
    assert main(["enroll", str(enroll_dir), "--machine-type", "fan", "--section", "07", "--domain", "x",
                 "--workspace", str(ws.root)]) == 2
    assert "has no detector for fan/section_07" in capsys.readouterr().err
    odd = tmp_path / "odd"
    shutil.copytree(enroll_dir, odd)
    x, sr = sf.read(normals[7]["path"], dtype="float32")
    sf.write(odd / "at8k.wav", x[::2], sr // 2)
    assert main(["enroll", str(odd), "--machine-type", "fan", "--section", "00", "--domain", "x", "--workspace", str(ws.root)]) == 2
    assert f"{odd / 'at8k.wav'}: sample rate {sr // 2} Hz, but the model's is {sr} Hz" in capsys.readouterr().err
    assert set(_versions(ws)) == {"1", "2"} and not _clips_of(ws, "domain = 'x'")

    # the loop goes on: promote (equal official score) and monitor with the enrolled champion
    assert main(["promote", "--workspace", str(ws.root)]) == 0
    assert load_model(ws, "asd-encoder@champion").version == "2"
    # the same clips into the champion, now version 2 (their own child): nothing new, not references twice
    capsys.readouterr()
    assert main(argv) == 0
    assert "version 2 already holds these 6 clips of fan/section_00 (by an earlier enrollment in its lineage)" in \
        capsys.readouterr().out
    lineage = enroll(ws, enroll_dir, "fan", "00", "line2", log=lambda *_: None)  # nothing refitted, nothing known
    assert lineage.already_enrolled and lineage.version == lineage.parent_version == "2"
    assert (lineage.references_before, lineage.references_after, lineage.threshold_before, lineage.threshold_after) == \
        (None, None, None, None)
    json.dumps(lineage.as_dict(), allow_nan=False)  # no NaN placeholders
    mixed = tmp_path / "mixed"
    shutil.copytree(enroll_dir, mixed)
    for i, row in enumerate(normals[6:8]):
        shutil.copyfile(row["path"], mixed / f"new{i}.wav")
    training = _clips_of(ws, "machine_type = 'fan' AND split = 'train' AND section = '00' AND scheme <> 'enrollment'")[0]["path"]
    shutil.copyfile(training, mixed / "a_training_clip.wav")
    assert main(["enroll", str(mixed), "--machine-type", "fan", "--section", "00", "--domain", "line3",
                 "--workspace", str(ws.root)]) == 2
    err = capsys.readouterr().err
    assert "7 of the 9 clips" in err and "are already references of the section" in err
    assert f"{mixed / 'a_training_clip.wav'}: already a reference of fan/section_00 in version 2 (the training clip" in err
    assert "enrolled as domain line2 into version 1" in err
    assert set(_versions(ws)) == {"1", "2"}
    assert main(["enroll", str(enroll_dir), "--machine-type", "fan", "--section", "00", "--domain", "bad name!",
                 "--workspace", str(ws.root)]) == 2
    assert "--domain 'bad name!': use 1-64 letters" in capsys.readouterr().err


def test_sql_readme_enrollment_queries_run(tmp_path):
    import re

    from asd_core.config import Workspace
    from asd_core.storage.catalog import connect
    from tests.conftest import REPO

    text = (REPO / "sql" / "README.md").read_text().split("## Enrolled operating conditions")[1]
    statements = [q.strip() for q in re.search(r"```sql\n(.*?)```", text, re.S).group(1).split(";") if q.strip()]
    assert len(statements) == 3
    with connect(Workspace(tmp_path / "ws")) as con:
        for q in statements:
            con.execute(q).fetchall()
