"""Leftovers after a kill (issue 18 part 7): temporaries and orphan score partitions of dead writers
are removed at the next start-up and nothing of a live one is; the temporary Prefect server dies
with its command; Ctrl-C / SIGTERM stop a command in seconds with one line; a second ``asd demo``
refuses before touching the running one's data. Writers, lock holders and kills are real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from asd_core.config import Workspace
from asd_core.storage.lock import WorkspaceBusyError, pipeline_running, workspace_in_use, workspace_lock
from asd_core.storage.atomic import atomic_dir, atomic_path, temp_owner, temp_sibling
from asd_core.storage.cleanup import remove_leftovers, workspace_session

REPO = Path(__file__).resolve().parents[1]


def _spawn(code: str, **kw) -> subprocess.Popen:
    """A Python process running ``code``; returns once it printed its first line (kept in .first)."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, stdout=subprocess.PIPE,
                            text=True, **kw)
    proc.first = proc.stdout.readline().strip()
    assert proc.first, f"child printed nothing (exit code {proc.poll()})"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def _wait_gone(pid: int, timeout_s: float) -> float | None:
    """Seconds until process ``pid`` no longer exists (reaped or a zombie of another parent), None if it stayed."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return time.monotonic() - t0
        if state == "Z":
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def _writer(final: Path) -> subprocess.Popen:
    """A process inside ``atomic_path(final)`` that has written its temporary (it waits there until killed)."""
    return _spawn(f"""
        import time
        from asd_core.storage.atomic import atomic_path
        with atomic_path({str(final)!r}) as tmp:
            tmp.write_text("partial")
            print(tmp, flush=True)
            time.sleep(600)
    """)


def _holder(ws: Workspace, lock: str) -> subprocess.Popen:
    """A process holding the pipeline lock or marking the workspace in use, until killed."""
    call = {"pipeline": "workspace_lock(ws, owner='test')", "users": "workspace_in_use(ws)"}[lock]
    return _spawn(f"""
        import time
        from asd_core.config import Workspace
        from asd_core.storage.lock import workspace_in_use, workspace_lock
        ws = Workspace({str(ws.root)!r})
        with {call}:
            print("held", flush=True)
            time.sleep(600)
    """)


# --- temporaries --------------------------------------------------------------------------------------


def test_temporaries_name_their_writer(tmp_path):
    with atomic_path(tmp_path / "a.parquet") as tmp:
        owner = temp_owner(tmp.name)
        assert tmp.name.startswith(".a.parquet.") and owner.pid == os.getpid() and owner.final == "a.parquet"
        tmp.write_text("x")
    with atomic_dir(tmp_path / "report") as tmp:
        assert temp_owner(tmp.name).pid == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "report"]


def test_dead_writers_temporaries_go_live_writers_stay(tmp_path):
    ws = Workspace(tmp_path / "ws")
    (ws.parquet / "scores").mkdir(parents=True)
    live = _writer(ws.parquet / "clips.parquet")
    dead = _writer(ws.parquet / "audio.parquet")
    live_tmp, dead_tmp = Path(live.first), Path(dead.first)
    _kill(dead)  # SIGKILL inside the block: its temporary stays behind
    assert dead_tmp.exists()
    mine = temp_sibling(ws.parquet / "mine.parquet")  # this (live) process
    mine.write_text("x")
    try:
        removed = remove_leftovers(ws)
        assert removed == [dead_tmp]
        assert live_tmp.exists() and mine.exists() and not dead_tmp.exists()
    finally:
        _kill(live)
    assert remove_leftovers(ws) == [live_tmp]  # its writer is gone now


def test_unnamed_temporaries_go_only_when_nobody_uses_the_workspace(tmp_path):
    ws = Workspace(tmp_path / "ws")
    section = ws.indexes / "enc-v1" / "demo" / "fan" / "section_00"
    section.mkdir(parents=True)
    unnamed = section / ".cfg.0123abcd.tmp"  # index_store.py's names carry no writer
    unnamed.mkdir()
    (unnamed / "index.faiss").write_text("partial")
    for lock in ("users", "pipeline"):
        holder = _holder(ws, lock)
        try:
            assert remove_leftovers(ws) == [] and unnamed.exists(), f"removed while another process held the {lock} lock"
        finally:
            _kill(holder)
    with workspace_in_use(ws):  # this process using it through another descriptor counts too
        assert remove_leftovers(ws) == []
    assert remove_leftovers(ws) == [unnamed] and not unnamed.exists()


def test_a_swap_killed_half_way_is_rolled_back_not_lost(tmp_path):
    ws = Workspace(tmp_path / "ws")
    final = ws.root / "reports" / "run1"
    old = temp_sibling(final, "old")
    old.mkdir(parents=True)
    (old / "index.html").write_text("published")
    other = temp_sibling(ws.root / "reports" / "run2", "old")  # its final exists: just garbage
    other.mkdir()
    (ws.root / "reports" / "run2").mkdir()
    dead_pid = _spawn("import os; print(os.getpid())")
    dead_pid.wait()
    for path in (old, other):  # make them a dead writer's
        path.rename(path.with_name(path.name.replace(f".{os.getpid()}-", f".{dead_pid.first}-")))
    removed = remove_leftovers(ws)
    assert (final / "index.html").read_text() == "published"
    assert len(removed) == 1 and removed[0].name.startswith(".run2.")


def test_other_files_are_never_touched(tmp_path):
    ws = Workspace(tmp_path / "ws")
    keep = [ws.root / "asd.duckdb.tmp" / "spill", ws.root / ".pipeline.lock", ws.parquet / "x.tmp",
            ws.root / "mlflow" / ".meta.0123abcd.tmp", ws.parquet / ".hidden"]
    for p in keep:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    assert remove_leftovers(ws) == []
    assert all(p.exists() for p in keep)


# --- orphan score partitions ----------------------------------------------------------------------------


def _run(run_id: str) -> dict:
    return {"run_id": run_id, "encoder": "stft-mean", "encoder_version": "v", "normalization": "knn",
            "params": {}, "transductive": False}


def test_orphan_score_partition_goes_published_one_stays(tmp_path):
    from asd_core.scoring.run import run_dir, write_run
    from asd_core.storage.catalog import publish_run

    ws = Workspace(tmp_path / "ws").ensure()
    publish_run(ws, _run("published"), *write_run(ws, "published", []))
    write_run(ws, "killed", [])  # a score run killed between its Parquet write and its publish
    holder = _holder(ws, "pipeline")
    try:
        assert remove_leftovers(ws) == [] and run_dir(ws, "killed").exists()  # a run may be about to publish it
    finally:
        _kill(holder)
    assert remove_leftovers(ws) == [run_dir(ws, "killed")]
    assert run_dir(ws, "published").exists() and not run_dir(ws, "killed").exists()


def test_without_a_catalog_no_partition_is_called_an_orphan(tmp_path):
    from asd_core.scoring.run import run_dir, write_run

    ws = Workspace(tmp_path / "ws").ensure()
    write_run(ws, "r1", [])
    assert remove_leftovers(ws) == [] and run_dir(ws, "r1").exists()


# --- the session every command runs in ---------------------------------------------------------------------


def test_workspace_session_cleans_then_marks_the_workspace_in_use(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with workspace_session(ws.root) as removed:  # a workspace that does not exist yet is left alone
        assert removed == [] and not ws.root.exists()
    dead = _writer(ws.parquet / "clips.parquet")
    dead_tmp = Path(dead.first)
    _kill(dead)
    (ws.parquet / ".old.0123abcd.tmp").write_text("unnamed")
    with workspace_session(ws.root) as removed:
        assert sorted(removed) == sorted([dead_tmp, ws.parquet / ".old.0123abcd.tmp"])
        other = _spawn(f"""
            from asd_core.config import Workspace
            from asd_core.storage.lock import sole_user
            with sole_user(Workspace({str(ws.root)!r})) as alone:
                print(alone, flush=True)
        """)
        assert other.first == "False"  # another command sees this one using the workspace
        other.wait()


def test_read_only_workspace_session_is_harmless(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    dead = _writer(ws.parquet / "clips.parquet")
    _kill(dead)
    with workspace_session(ws.root, clean=False) as removed:  # a command that only reads removes nothing
        assert removed == [] and Path(dead.first).exists()
    with workspace_session(None) as removed:  # commands without a workspace
        assert removed == []
    if os.geteuid() != 0:  # root may delete anyway
        ws.parquet.chmod(0o555)
        try:
            with workspace_session(ws.root) as removed:  # cannot remove: leaves it, no error
                assert removed == [] and Path(dead.first).exists()
        finally:
            ws.parquet.chmod(0o755)


# --- asd demo on a busy workspace ------------------------------------------------------------------------


def test_second_demo_refuses_before_writing_its_data(tmp_path):
    from asd_core.pipeline.demo import demo_data_dir, demo_session

    ws = Workspace(tmp_path / "ws")
    holder = _holder(ws, "pipeline")  # the running demo (or any pipeline run)
    try:
        with pytest.raises(WorkspaceBusyError, match="in use by another pipeline run"):
            with demo_session(ws.root):
                pytest.fail("demo data written while another run holds the workspace")
        assert not demo_data_dir(ws.root).exists()
    finally:
        _kill(holder)


def test_demo_holds_the_workspace_from_its_data_to_its_pipeline(tmp_path, monkeypatch):
    import asd_core.demo
    from asd_core.pipeline import demo

    monkeypatch.setattr(asd_core.demo, "make_demo_data", lambda out, seed, size, **kw: {"clips": 0, "out": str(out)})
    ws = Workspace(tmp_path / "ws")
    with demo.demo_session(ws.root) as counts:
        assert counts["out"] == str(demo.demo_data_dir(ws.root))
        assert pipeline_running(ws)
        with workspace_lock(ws, owner="the pipeline flow"):  # the run inside takes the lent lock again
            assert pipeline_running(ws)
        assert pipeline_running(ws)  # still held until the demo ends
        other = _spawn(f"""
            from asd_core.config import Workspace
            from asd_core.storage.lock import WorkspaceBusyError, workspace_lock
            try:
                with workspace_lock(Workspace({str(ws.root)!r})):
                    print("got it", flush=True)
            except WorkspaceBusyError as exc:
                print("refused", flush=True)
        """)
        assert other.first == "refused"
        other.wait()
    assert not pipeline_running(ws)


def test_an_unlent_lock_refuses_even_its_own_process(tmp_path):
    ws = Workspace(tmp_path / "ws")
    with workspace_lock(ws, owner="a pipeline run"):
        with pytest.raises(WorkspaceBusyError, match=f"pid {os.getpid()}"):
            with workspace_lock(ws):
                pass


# --- the temporary Prefect server ------------------------------------------------------------------------

COMMAND = """
import os, sys, time
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
os.environ["PREFECT_HOME"] = sys.argv[1]
from flows import prefect_server


def run():
    from prefect import flow, task  # the first import of prefect starts the server

    @task
    def work():
        print("running", prefect_server.server_pid(), flush=True)
        while True:
            sum(i * i for i in range(10000))

    @flow
    def busy():
        work()

    busy()


# what flows/cli.py main() does around a command
prefect_server.install()
try:
    run()
except KeyboardInterrupt as exc:
    print(f"error: {str(exc) or 'interrupted'}", file=sys.stderr)
    sys.exit(130)
"""


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prefect-home")  # shared: the server's database is set up once


@pytest.fixture
def command(tmp_path, prefect_home):
    script = tmp_path / "command.py"
    script.write_text(COMMAND)

    def start() -> tuple[subprocess.Popen, int]:
        # as from a terminal: its own process group, SIGINT not ignored (a background shell job ignores it)
        proc = subprocess.Popen([sys.executable, str(script), str(prefect_home)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        line = proc.stdout.readline().split()
        assert line and line[0] == "running", proc.stderr.read()
        server = int(line[1])
        assert os.getsid(server) != os.getsid(proc.pid)  # out of reach of the terminal's Ctrl-C
        time.sleep(1)
        return proc, server

    started = []
    yield lambda: started.append(start()) or started[-1]
    for proc, server in started:
        for pid in (proc.pid, server):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.slow  # starts a command and its Prefect server: ~30 s
def test_sigkill_of_a_command_takes_its_prefect_server_along(command):
    proc, server = command()
    proc.kill()
    proc.wait()
    gone = _wait_gone(server, 15)
    assert gone is not None, "the temporary Prefect server outlived its command"


@pytest.mark.slow  # a command and its Prefect server per signal: ~18 s each
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stops_a_command_in_seconds_in_one_line(command, sig):
    proc, server = command()
    t0 = time.monotonic()
    if sig == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C goes to the whole foreground group
    else:
        os.kill(proc.pid, signal.SIGTERM)
    rc = proc.wait(30)
    took = time.monotonic() - t0
    err = proc.stderr.read()
    assert rc == 130 and took < 15, (rc, took, err)
    assert "Traceback" not in err and "Connect" not in err, err
    assert err.strip().splitlines()[-1] == ("error: interrupted" if sig == "SIGINT" else "error: terminated (SIGTERM)")
    assert _wait_gone(server, 10) is not None, "the temporary Prefect server outlived its command"
