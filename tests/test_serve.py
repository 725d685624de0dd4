"""The champion behind the real `mlflow models serve` (issue 16, part 2): WAV bytes posted as
base64 score exactly as the pipeline scored the same clips in DuckDB, and bad requests get a 4xx
that names the row and the problem. Real DuckDB, MLflow sqlite store, HTTP server; no mocks."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from asd_core.storage.catalog import connect, query_rows
from asd_core.tracking.registry import aliases, promote, register_run
from asd_core.tracking.store import TrackingConfig

# Building the workspace (Prefect harness, embed, score, register) and the server start take ~40 s.
pytestmark = pytest.mark.slow

MLFLOW = Path(sys.executable).with_name("mlflow")  # the venv's executable
START_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url + "/invocations", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _split(rows: list[dict]) -> dict:
    columns = sorted({k for r in rows for k in r})
    return {"dataframe_split": {"columns": columns, "data": [[r.get(c) for c in columns] for r in rows]}}


def _b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


@pytest.fixture(scope="module")
def served(tmp_path_factory, demo_small, prefect_harness, ingest_tree):
    """(workspace, run_id, base URL): a knn run of logmel-stats registered as champion, served."""
    from flows.embed import embed_flow
    from flows.score import score_flow

    root = tmp_path_factory.mktemp("ws-serve")
    ws = ingest_tree(root / "ws", demo_small)
    embed_flow(workspace=str(ws.root), encoder="logmel-stats")
    run = score_flow(workspace=str(ws.root), encoder="logmel-stats", normalization="knn")
    version = register_run(ws, run["run_id"])["version"]
    assert promote(ws)["promoted"] and aliases(ws, TrackingConfig())["champion"] == version

    with _serve(ws, root) as url:
        yield ws, run["run_id"], url


@contextmanager
def _serve(ws, root: Path, tries: int = 3):
    """The real `mlflow models serve` of the champion on a free port; yields its URL once /ping
    answers, and always kills its process group (the CLI and its uvicorn) afterwards."""
    # the server execs `uvicorn` found on PATH: the venv's bin first, as an activated venv has it
    env = {**os.environ, "MLFLOW_TRACKING_URI": TrackingConfig().resolved_uri(ws),
           "PATH": f"{MLFLOW.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for attempt in range(tries):
        port, log = _free_port(), root / f"serve-{attempt}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen([str(MLFLOW), "models", "serve", "-m", "models:/asd-encoder@champion",
                                     "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                                    cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _pings(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text()
                    if "address already in use" in text.lower() and attempt + 1 < tries:
                        break  # another process took the free port meanwhile: try another
                    pytest.fail(f"mlflow models serve did not answer /ping (exit code {proc.poll()}):\n{text[-4000:]}")
                time.sleep(0.5)
            else:
                yield url
                return
        finally:
            _kill_group(proc)


def _pings(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, then SIGKILL to whatever is left of it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            pass


def test_posted_wav_bytes_score_as_the_pipeline_did(served):
    ws, run_id, url = served
    with connect(ws, read_only=True) as con:
        want = query_rows(con, """
            SELECT c.root || '/' || c.relative_path AS path, c.machine_type, c.section, s.score, s.decision, t.threshold
            FROM scores s JOIN clips c USING (clip_id)
            JOIN thresholds t ON t.run_id = s.run_id AND t.machine_type = c.machine_type AND t.section = c.section
            WHERE s.run_id = ?
            QUALIFY row_number() OVER (PARTITION BY c.machine_type, c.label ORDER BY c.relative_path) <= 2
            ORDER BY c.machine_type, c.relative_path""", [run_id])
    assert len(want) == 12 and {w["decision"] for w in want} == {0, 1}
    # every clip as WAV bytes; the first two also by server-side path (`path` keeps working, rows may mix)
    rows = [{"audio_b64": _b64(w["path"]), "machine_type": w["machine_type"], "section": w["section"]} for w in want]
    rows += [{"path": w["path"], "machine_type": w["machine_type"], "section": w["section"]} for w in want[:2]]
    status, body = _post(url, _split(rows))
    assert status == 200, body
    got = body["predictions"]
    assert len(got) == len(rows) and "audio_b64" not in got[0]
    expected = want + want[:2]
    np.testing.assert_allclose([g["score"] for g in got], [w["score"] for w in expected], rtol=1e-9, atol=0)
    np.testing.assert_allclose([g["threshold"] for g in got], [w["threshold"] for w in expected], rtol=1e-9, atol=0)
    assert [g["decision"] for g in got] == [w["decision"] for w in expected]
    assert [g["path"] for g in got[-2:]] == [w["path"] for w in want[:2]]


def test_bad_requests_get_400_naming_the_problem(served):
    ws, _, url = served
    with connect(ws, read_only=True) as con:
        clip = query_rows(con, "SELECT root || '/' || relative_path AS path FROM clips WHERE machine_type = 'fan' LIMIT 1")[0]["path"]
    wav = _b64(clip)
    garbage = base64.b64encode(b"these bytes are not a WAV file").decode()

    def message(rows):
        status, body = _post(url, _split(rows))
        assert status == 400, (status, body)
        assert body["error_code"] == "INVALID_PARAMETER_VALUE" and "stack_trace" not in body
        return body["message"]

    msg = message([{"audio_b64": wav, "machine_type": "fan", "section": "00"},
                   {"audio_b64": garbage, "machine_type": "fan", "section": "00"},
                   {"audio_b64": "%%% not base64 %%%", "machine_type": "fan", "section": "00"},
                   {"path": "/nonexistent/clip.wav", "machine_type": "fan", "section": "00"}])
    assert "row 1: undecodable audio in audio_b64: not a WAV file (no RIFF/WAVE header)" in msg
    assert "row 2: undecodable audio in audio_b64: audio_b64 is not valid base64" in msg
    assert "row 3: undecodable audio in path /nonexistent/clip.wav: no such file" in msg
    assert "row 0" not in msg

    msg = message([{"audio_b64": wav, "machine_type": "fan", "section": "00"},
                   {"audio_b64": wav, "machine_type": "fan", "section": "07"}])
    assert "row 1: unknown section: no index for fan/section_07" in msg and "fan/section_00" in msg  # lists what it covers

    msg = message([{"audio_b64": wav, "path": clip, "machine_type": "fan", "section": "00"},
                   {"machine_type": "fan", "section": "00"}])
    assert "row 0: give exactly one of path or audio_b64 (got path and audio_b64)" in msg
    assert "row 1: give exactly one of path or audio_b64 (got neither)" in msg

    # a column the signature requires: MLflow's own schema check answers 400 before the model runs
    status, body = _post(url, _split([{"audio_b64": wav, "section": "00"}]))
    assert status == 400 and "machine_type" in body["message"], (status, body)
