"""``asd server start|stop|status``: a real resident Prefect server in the background, real ``asd``
processes whose flow runs land in it, and the fall-back to the temporary server when the
recorded one is dead or silent. No mocks: processes, ports and HTTP are real."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flows.prefect_server import RESIDENT_DIR, RESIDENT_RECORD, pid_alive, use_resident

ASD = [sys.executable, "-m", "flows.cli"]
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_UI_URL")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env


def asd(*argv, timeout=240, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*ASD, *map(str, argv)], capture_output=True, text=True, timeout=timeout, env=env or _env())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def record_path(ws: Path) -> Path:
    return ws / RESIDENT_DIR / RESIDENT_RECORD


def plant_record(ws: Path, pid: int, port: int) -> None:
    """The record a server would leave, for a process of our choosing."""
    path = record_path(ws)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "port": port, "api_url": f"http://127.0.0.1:{port}/api",
                                "ui_url": f"http://127.0.0.1:{port}", "started_at": time.time()}))


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def get_json(url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with OPENER.open(req, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


def flow_run_names(api_url: str) -> list[str]:
    _, flows = get_json(f"{api_url}/flows/filter", {})
    names = {f["id"]: f["name"] for f in flows}
    _, runs = get_json(f"{api_url}/flow_runs/filter", {})
    return [names.get(r["flow_id"], "?") for r in runs]


def group_gone(pgid: int) -> bool:
    """No process left in the server's process group (its session), zombies aside."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return not any(pid_alive(int(p)) for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == pgid)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


# --- fast: no server is started ----------------------------------------------------------------------


def test_status_and_stop_without_a_server(tmp_path):
    ws = tmp_path / "ws"
    r = asd("server", "status", "--workspace", ws)
    assert r.returncode == 3, r.stderr
    assert "not running" in r.stdout
    r = asd("server", "stop", "--workspace", ws)
    assert r.returncode == 0 and "no Prefect server runs" in r.stdout, r.stderr
    assert "3" in asd("server", "status", "--help").stdout  # the exit code is documented


def test_stale_record_of_a_dead_process(tmp_path):
    ws = tmp_path / "ws"
    pid = dead_pid()
    plant_record(ws, pid, free_port())
    r = asd("server", "status", "--workspace", ws)
    assert r.returncode == 3 and f"pid {pid} is gone" in r.stdout, (r.stdout, r.stderr)
    r = asd("server", "stop", "--workspace", ws)
    assert r.returncode == 0 and "removed the record" in r.stdout, (r.stdout, r.stderr)
    assert not record_path(ws).exists()


def test_a_reused_pid_is_never_killed(tmp_path):
    """A record whose pid now belongs to another process (not a Prefect server): stop leaves it alone."""
    ws = tmp_path / "ws"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        plant_record(ws, other.pid, free_port())
        assert asd("server", "status", "--workspace", ws).returncode == 3
        assert asd("server", "stop", "--workspace", ws).returncode == 0
        assert other.poll() is None and not record_path(ws).exists()
    finally:
        other.kill()
        other.wait()


def test_explicit_prefect_api_url_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    plant_record(tmp_path, os.getpid(), free_port())
    assert use_resident(tmp_path) is None
    assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:9/api"


def test_silent_server_is_given_up_fast(tmp_path, monkeypatch):
    """A recorded server whose port accepts connections but never answers: no long wait, not used."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        plant_record(tmp_path, os.getpid(), sock.getsockname()[1])  # a live pid, a silent port
        t0 = time.monotonic()
        assert use_resident(tmp_path) is None
        assert time.monotonic() - t0 < 3
    assert "PREFECT_API_URL" not in os.environ


def test_interrupted_start_leaves_no_server(tmp_path):
    ws = tmp_path / "ws"
    proc = subprocess.Popen([*ASD, "server", "start", "--workspace", str(ws), "--port", str(free_port())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 60
    while not record_path(ws).exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert record_path(ws).exists(), proc.communicate()
    pid = json.loads(record_path(ws).read_text())["pid"]
    proc.send_signal(signal.SIGINT)  # Ctrl-C while the server starts
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert err.strip().splitlines()[-1].startswith("error:"), err
    assert "Traceback" not in err
    assert not pid_alive(pid) and group_gone(pid)
    assert not record_path(ws).exists()


# --- slow: a real resident server and real flow runs -------------------------------------------------


@pytest.fixture
def server_ws(tmp_path):
    """A workspace; whatever server a test started there is stopped (and checked gone) afterwards."""
    ws = tmp_path / "ws"
    yield ws
    record = record_path(ws)
    if record.exists():
        pid = json.loads(record.read_text()).get("pid")
        asd("server", "stop", "--workspace", ws, timeout=60)
        if isinstance(pid, int) and pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.slow
def test_server_lifecycle_and_flow_runs_land_in_it(server_ws, demo_small):
    ws, port = server_ws, free_port()
    plant_record(ws, dead_pid(), port)  # a stale record: replaced by start
    r = asd("server", "start", "--workspace", ws, "--port", port)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "removed the record of a Prefect server that is gone" in r.stderr
    url = f"http://127.0.0.1:{port}"
    assert url in r.stdout
    record = json.loads(record_path(ws).read_text())
    pid, api = record["pid"], record["api_url"]
    assert api == f"{url}/api" and pid_alive(pid)

    r = asd("server", "status", "--workspace", ws)
    assert r.returncode == 0 and "running" in r.stdout and str(pid) in r.stdout and url in r.stdout, r.stdout
    assert get_json(f"{api}/health")[0] == 200
    with OPENER.open(f"{url}/", timeout=10) as ui:  # the UI is served too
        assert ui.status == 200
    assert (ws / RESIDENT_DIR / "prefect.db").exists()  # its database lives in the workspace

    # a flow command run through `asd` (PREFECT_API_URL unset) sends its flow run to this server
    before = flow_run_names(api)
    r = asd("ingest", demo_small, "--workspace", ws)
    assert r.returncode == 0, r.stderr[-2000:]
    after = flow_run_names(api)
    assert len(after) == len(before) + 1 and "asd-ingest" in after, after

    r = asd("server", "start", "--workspace", ws)  # idempotent: the same server
    assert r.returncode == 0 and "already running" in r.stdout and str(pid) in r.stdout, (r.stdout, r.stderr)
    assert json.loads(record_path(ws).read_text())["pid"] == pid

    r = asd("server", "stop", "--workspace", ws, timeout=60)
    assert r.returncode == 0 and f"pid {pid}" in r.stdout, (r.stdout, r.stderr)
    assert not record_path(ws).exists()
    assert asd("server", "status", "--workspace", ws).returncode == 3
    assert not pid_alive(pid) and group_gone(pid)  # no process left behind
    assert asd("server", "stop", "--workspace", ws).returncode == 0  # stopping again: nothing to do


@pytest.mark.slow
def test_dead_server_falls_back_to_temporary_one(tmp_path, demo_small):
    """A record of a dead server: the flow command still runs, on a temporary server, with one note."""
    ws = tmp_path / "ws"
    plant_record(ws, dead_pid(), free_port())
    r = asd("ingest", demo_small, "--workspace", ws)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "does not answer; using a temporary one" in r.stderr
    assert "clips in" in r.stdout
