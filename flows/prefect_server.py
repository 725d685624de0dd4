"""The temporary Prefect API server of an ``asd`` command, tied to the command's life.

Prefect starts a temporary server when ``PREFECT_API_URL`` is unset, but a killed command leaves
it running (~230 MB each), and the terminal's Ctrl-C kills it before the command can record the
interruption (then minutes of connection retries). Here the command starts the server itself:
in its own session, so Ctrl-C reaches only the command; with a watchdog, so it stops when the
command is gone however it ended; and stopped at exit. ``PREFECT_API_URL`` points Prefect at it.
Run as a script (``python prefect_server.py --serve PORT --parent PID``) it is that server.

A workspace may instead keep a resident server (``asd server start``, flows/cli/server.py): its
record ``<workspace>/prefect-server/server.json`` names its pid and URL. When ``PREFECT_API_URL`` is
unset and that server answers its health check (a dead pid is not even asked; an answer must come
within ``HEALTH_TIMEOUT_S``), a command points Prefect at it instead of starting its own (~15 s less).
An explicitly set ``PREFECT_API_URL`` always wins; a dead or silent resident server means the
temporary one, as before.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from importlib.abc import MetaPathFinder
from pathlib import Path

# what Prefect's own temporary server runs with (prefect/server/api/server.py, SubprocessASGIServer)
SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
WATCH_INTERVAL_S = 0.25  # how often the server checks that its command is still alive
STOP_GRACE_S = 5.0  # SIGTERM first (uvicorn shuts down cleanly), SIGKILL after this
RESIDENT_DIR = "prefect-server"  # <workspace>/prefect-server/: the resident server's record, log and database
RESIDENT_RECORD = "server.json"  # its pid file: {"pid", "port", "api_url", "ui_url", "started_at", ...}
HEALTH_TIMEOUT_S = 1.0  # a resident server that does not answer within this is not used

_server: subprocess.Popen | None = None
_workspace = None  # the command's workspace (a path, or a callable returning one): whose resident server to use


def install(workspace=None) -> None:
    """For the ``asd`` entry point, before anything imports prefect: SIGTERM unwinds like Ctrl-C
    (``KeyboardInterrupt``), and on the first import of prefect, which only commands that run flows
    do, Prefect is pointed at ``workspace``'s resident server if it answers, else a temporary server
    starts. ``workspace``: a path, or a callable returning one (or None), asked only then. Nothing to
    do when ``PREFECT_API_URL`` names a server already."""
    global _workspace
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    _workspace = workspace
    if os.environ.get("PREFECT_API_URL") or "prefect" in sys.modules:
        return  # a configured server, or prefect already loaded its settings: nothing to point
    if not any(isinstance(f, _StartOnPrefectImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _StartOnPrefectImport())


def _raise_terminated(signum, frame) -> None:
    raise KeyboardInterrupt("terminated (SIGTERM)")


class _StartOnPrefectImport(MetaPathFinder):
    """Starts the server when ``import prefect`` is first attempted, before prefect reads its settings."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "prefect":
            sys.meta_path.remove(self)
            if not use_resident():
                start()
        return None  # the usual finders import prefect itself


def use_resident(workspace=None) -> str | None:
    """Point ``PREFECT_API_URL`` at the workspace's resident server (``asd server start``) if it answers
    its health check; returns its API URL, or None (nothing changed). Never raises, never waits long."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    try:
        ws = workspace if workspace is not None else _workspace
        ws = ws() if callable(ws) else ws
        if ws is None:
            return None
        record = read_record(ws)
        if record is None:
            return None
        url = record.get("api_url")
        if not (isinstance(url, str) and pid_alive(record.get("pid")) and healthy(url)):
            print(f"note: the Prefect server recorded in {Path(ws) / RESIDENT_DIR} does not answer; "
                  f"using a temporary one (asd server status --workspace {ws})", file=sys.stderr)
            return None
    except Exception:  # noqa: BLE001 - a broken record must never fail a command: the temporary server it is
        return None
    os.environ["PREFECT_API_URL"] = url
    return url


def resident_dir(workspace) -> Path:
    return Path(workspace).expanduser() / RESIDENT_DIR


def read_record(workspace) -> dict | None:
    """The resident server's record of ``workspace``; None when there is none or it is unreadable."""
    try:
        record = json.loads((resident_dir(workspace) / RESIDENT_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def pid_alive(pid) -> bool:
    """Whether process ``pid`` exists and is not a zombie (an unreaped dead server)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def healthy(url: str, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
    """Whether the Prefect API at ``url`` (``http://host:port/api``) answers ``/health`` with 200 in time."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: never through a proxy
    try:
        with opener.open(f"{url.rstrip('/')}/health", timeout=timeout_s) as response:
            return response.status == 200
    except Exception:  # noqa: BLE001 - refused, timed out, not HTTP, a bad URL: not a usable server
        return False


def start(timeout_s: float | None = None) -> str:
    """Start the server once per process and set ``PREFECT_API_URL``; returns that URL.

    Must run before prefect is imported: prefect reads the variable when it loads its settings.
    """
    global _server
    if _server is not None and _server.poll() is None:
        return os.environ["PREFECT_API_URL"]
    timeout_s = timeout_s or float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") or 120)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | SERVER_ENV
    for _ in range(3):  # a port taken between choosing and binding: choose again
        port = _free_port()
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", str(port), "--parent", str(os.getpid())],
                                env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{port}/api"
        if _wait_healthy(proc, url, timeout_s):
            _server = proc
            os.environ["PREFECT_API_URL"] = url
            os.environ.setdefault("PREFECT_UI_URL", "")  # the server serves no UI: no "View at" links to it
            atexit.register(stop)  # registered before prefect's own exit hooks, so it runs after them
            return url
        if proc.poll() is None:
            _terminate(proc)
            raise RuntimeError(f"the temporary Prefect server did not answer within {timeout_s:.0f} s "
                               f"(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)")
    raise RuntimeError(f"the temporary Prefect server exited at start-up (exit code {proc.returncode})")


def stop() -> None:
    """Stop the server this process started (a no-op otherwise)."""
    global _server
    if _server is not None:
        _terminate(_server)
        _server = None


def server_pid() -> int | None:
    return _server.pid if _server is not None else None


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(proc: subprocess.Popen, url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if healthy(url, timeout_s=2):
            return True
        time.sleep(0.1)
    return False


# --- the server side ------------------------------------------------------------------------------


def _watch_parent(parent: int) -> None:
    """Stop this server once the command that started it is gone (reparented: any way it ended)."""
    while os.getppid() == parent:
        time.sleep(WATCH_INTERVAL_S)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's clean shutdown
    time.sleep(2 * STOP_GRACE_S)
    os._exit(0)


def serve(port: int, parent: int) -> None:
    """Run Prefect's API server on 127.0.0.1:``port`` while process ``parent`` lives."""
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="asd-parent-watch").start()
    import uvicorn

    uvicorn.run("prefect.server.api.server:create_app", factory=True, host="127.0.0.1", port=port,
                log_level="error", lifespan="on")


if __name__ == "__main__":
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)  # run as a script: the flows folder must not shadow installed modules
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    serve(int(args["--serve"]), int(args["--parent"]))
