"""``asd server start|stop|status``: one resident Prefect server per workspace, in the background.

Without it every command that runs flows starts a temporary Prefect server (~15 s on 2 cores,
flows/prefect_server.py). ``asd server start`` launches ``prefect server start`` (API, UI and the
scheduler's services) in its own session, so it outlives the command, with its SQLite database,
log and record (pid, port, URL: ``server.json``, written atomically) under
``<workspace>/prefect-server/``. Later commands on that workspace find the record and, when the
server answers its health check and ``PREFECT_API_URL`` is unset, send their flow runs to it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from flows.cli.common import add_workspace

DEFAULT_PORT = 4200  # Prefect's own default; another free port when it is taken
HOST = "127.0.0.1"
STOP_GRACE_S = 10.0  # SIGTERM, then SIGKILL after this
START_TIMEOUT_S = 120.0
LOG_NAME = "server.log"
DB_NAME = "prefect.db"
EXIT_NOT_RUNNING = 3


def _paths(workspace):
    from flows.prefect_server import RESIDENT_RECORD, resident_dir

    d = resident_dir(workspace)
    return d, d / RESIDENT_RECORD, d / LOG_NAME


def _write_record(path: Path, record: dict) -> None:
    from asd_core.storage.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _is_server_process(pid: int) -> bool:
    """Whether ``pid`` still runs a Prefect server (not a process that reused a dead server's pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the record
    return b"prefect" in b" ".join(cmdline) and b"server" in cmdline


def _running(record: dict | None) -> int | None:
    """The pid of the recorded server while its process lives, else None."""
    from flows.prefect_server import pid_alive

    pid = (record or {}).get("pid")
    return pid if pid_alive(pid) and _is_server_process(pid) else None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _choose_port(requested: int | None) -> int:
    if requested is not None:
        if not 0 < requested < 65536:
            raise ValueError(f"--port {requested} is not a TCP port (1-65535)")
        if not _port_free(requested):
            raise RuntimeError(f"port {requested} on {HOST} is already in use: choose another with --port")
        return requested
    if _port_free(DEFAULT_PORT):
        return DEFAULT_PORT
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _kill_group(pid: int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the server's process group (its session: the server and any child), SIGKILL after ``grace_s``."""
    from flows.prefect_server import pid_alive

    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)  # stragglers (or a server that ignored SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _server_env(d: Path, port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT__SERVER_")}  # no ephemeral-mode flags
    home = d / "home"
    return env | {
        "PREFECT_HOME": str(home),  # UI build, profiles: the server's own, under the workspace
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{(d / DB_NAME).resolve()}",
        "PREFECT_API_URL": f"http://{HOST}:{port}/api",
        "PREFECT_SERVER_API_HOST": HOST,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_ENABLED": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no network here: telemetry fails and can lock SQLite
        "PYTHONUNBUFFERED": "1",
    }


def _uptime(started_at) -> str:
    if not isinstance(started_at, (int, float)):
        return "unknown"
    s = max(0, int(time.time() - started_at))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d} d " if d else "") + (f"{h} h " if d or h else "") + (f"{m} min " if d or h or m else "") + f"{s} s"


def cmd_start(args) -> int:
    import fcntl

    from flows.prefect_server import healthy

    d, record_path, log_path = _paths(args.workspace)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".start.lock", "a") as lock:  # one start at a time per workspace
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = _read(record_path)
        pid = _running(record)
        if pid is not None:
            url = record.get("api_url", "")
            deadline = time.monotonic() + 10  # a server may be busy for a moment: give it a chance to answer
            while not healthy(url, timeout_s=2) and time.monotonic() < deadline and _running(record):
                time.sleep(0.2)
            if healthy(url, timeout_s=2):
                print(f"Prefect server already running for {args.workspace}: {record.get('ui_url')} (pid {pid})")
                return 0
            raise RuntimeError(f"the Prefect server recorded for {args.workspace} (pid {pid}) runs but does not answer "
                               f"at {url}: stop it with asd server stop --workspace {args.workspace}")
        if record is not None:
            print(f"removed the record of a Prefect server that is gone (pid {record.get('pid')})", file=sys.stderr)
            _remove(record_path)
        return _launch(args, d, record_path, log_path)


def _launch(args, d: Path, record_path: Path, log_path: Path) -> int:
    from flows.prefect_server import healthy

    port = _choose_port(args.port)
    api_url, ui_url = f"http://{HOST}:{port}/api", f"http://{HOST}:{port}"
    (d / "home").mkdir(exist_ok=True)
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)]
    proc = None
    try:
        with open(log_path, "ab") as log:
            log.write(f"\n--- asd server start {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(argv, env=_server_env(d, port), cwd=d, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)  # its own session: outlives us
        record = {"pid": proc.pid, "port": port, "api_url": api_url, "ui_url": ui_url, "started_at": time.time(),
                  "workspace": str(Path(args.workspace).resolve()), "log": str(log_path.resolve()),
                  "database": str((d / DB_NAME).resolve())}
        _write_record(record_path, record)  # at once: a later stop finds even a server still starting
        deadline = time.monotonic() + args.timeout
        while not healthy(api_url, timeout_s=2):
            if proc.poll() is not None:
                raise RuntimeError(f"the Prefect server exited at start-up (exit code {proc.returncode}); see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server did not answer at {api_url} within {args.timeout:.0f} s; see {log_path}")
            time.sleep(0.2)
    except BaseException:  # failed or interrupted (Ctrl-C, SIGTERM): no half-started server stays behind
        if proc is not None:
            _kill_group(proc.pid, grace_s=3)
            proc.wait()
        _remove(record_path)
        raise
    print(f"Prefect server running for {args.workspace}: {ui_url} (API {api_url}, pid {proc.pid}, log {log_path})")
    return 0


def _read(record_path: Path) -> dict | None:
    try:
        record = json.loads(record_path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: treated as the record of a server that is gone
    return record if isinstance(record, dict) else {}


def cmd_stop(args) -> int:
    d, record_path, _ = _paths(args.workspace)
    record = _read(record_path)
    if record is None:
        print(f"no Prefect server runs for {args.workspace}")
        return 0
    pid = _running(record)
    if pid is None:
        _remove(record_path)
        print(f"no Prefect server runs for {args.workspace} (removed the record of pid {record.get('pid')}, which is gone)")
        return 0
    _kill_group(pid)
    _remove(record_path)
    print(f"stopped the Prefect server for {args.workspace} (pid {pid})")
    return 0


def cmd_status(args) -> int:
    from flows.prefect_server import healthy

    d, record_path, log_path = _paths(args.workspace)
    record = _read(record_path)
    if record is None:
        print(f"Prefect server for {args.workspace}: not running")
        return EXIT_NOT_RUNNING
    pid = _running(record)
    if pid is None:
        print(f"Prefect server for {args.workspace}: not running (the recorded pid {record.get('pid')} is gone; "
              f"asd server start replaces it)")
        return EXIT_NOT_RUNNING
    answers = healthy(record.get("api_url", ""), timeout_s=2)
    print(f"Prefect server for {args.workspace}: {'running' if answers else 'not answering (starting, or hung)'}\n"
          f"  url:     {record.get('ui_url')}  (API {record.get('api_url')})\n"
          f"  pid:     {pid}\n"
          f"  uptime:  {_uptime(record.get('started_at'))}\n"
          f"  log:     {log_path}")
    return 0 if answers else EXIT_NOT_RUNNING


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("server", help="keep one Prefect server (API + UI) per workspace in the background (start|stop|status)",
                       description="A resident Prefect server for the workspace: every later command on that workspace "
                                   "sends its flow runs to it (visible in its UI) instead of starting a temporary server "
                                   "(~15 s each). Used only while PREFECT_API_URL is unset and the server answers; "
                                   "otherwise commands start a temporary server as before. Files: "
                                   "<workspace>/prefect-server/ (server.json: pid and URL; server.log; prefect.db).")
    actions = p.add_subparsers(dest="server_action", required=True, metavar="ACTION")

    s = actions.add_parser("start", help="start the workspace's Prefect server (does nothing when it runs already)",
                           description="Start `prefect server start` for the workspace in the background, wait until "
                                       "its health endpoint answers and print its URL. Succeeds when one already runs; "
                                       "a record left by a dead server is replaced.")
    s.add_argument("--port", type=int, default=None,
                   help=f"TCP port on {HOST} (default: {DEFAULT_PORT}, or a free port when it is taken)")
    s.add_argument("--timeout", type=float, default=START_TIMEOUT_S, metavar="S",
                   help="seconds to wait for the server to answer (default: %(default)s)")
    add_workspace(s)
    s.set_defaults(func=cmd_start)

    s = actions.add_parser("stop", help="stop the workspace's Prefect server (SIGTERM, SIGKILL after 10 s)",
                           description="Stop the workspace's Prefect server and remove its record. Succeeds when none runs.")
    add_workspace(s)
    s.set_defaults(func=cmd_stop)

    s = actions.add_parser("status", help="is the workspace's Prefect server running: URL, pid, uptime",
                           description="Print whether the workspace's Prefect server runs and answers, its URL, pid "
                                       f"and uptime. Exit code 0 when it runs and answers, {EXIT_NOT_RUNNING} when not.",
                           epilog=f"exit status: 0 running, {EXIT_NOT_RUNNING} not running (or not answering)")
    add_workspace(s, reads_only=True)
    s.set_defaults(func=cmd_status)
