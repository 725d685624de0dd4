"""Every `asd` sub-command has --help with --workspace; bad arguments are clear errors."""

import os

import pytest

from flows.cli import build_parser, main

COMMANDS = ["make-demo-data", "ingest", "mix", "embed", "train-teacher", "train-student", "register", "promote", "models", "monitor", "enroll", "server", "score", "evaluate", "export-dcase", "forget", "sql", "pipeline", "report", "demo"]


def test_all_commands_are_listed():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_mentions_workspace(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "start", "--help"] if command == "server" else [command, "--help"])  # server: per action
    assert exc.value.code == 0
    assert "--workspace" in capsys.readouterr().out


def test_sql_without_database_is_a_clear_error(tmp_path, capsys):
    assert main(["sql", "--workspace", str(tmp_path / "none"), "SELECT 1"]) == 2
    assert "no database yet; run `asd ingest` first" in capsys.readouterr().err


def test_checkpoint_only_for_beats(tmp_path, capsys):
    assert main(["embed", "--workspace", str(tmp_path), "--encoder", "stft-mean", "--checkpoint", "x.pt"]) == 2
    assert "--checkpoint is for --encoder beats" in capsys.readouterr().err


# --- one-line errors before anything starts (issue 18, part 6) ---

def _no_flow(monkeypatch, module: str, name: str) -> None:
    """Make the flow fail loudly if called: the error must come before Prefect starts."""
    import importlib

    def started(**_):
        raise AssertionError(f"{name} started")

    monkeypatch.setattr(importlib.import_module(module), name, started)


def _one_error_line(capsys, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


def test_workspace_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch, capsys):
    _no_flow(monkeypatch, "flows.ingest", "ingest_flow")
    afile = tmp_path / "ws.txt"
    afile.write_text("not a workspace")
    assert main(["ingest", str(tmp_path), "--workspace", str(afile)]) == 2
    _one_error_line(capsys, f"--workspace {afile} is a file, not a folder")
    assert main(["ingest", str(tmp_path), "--workspace", str(afile / "ws")]) == 2
    _one_error_line(capsys, f"lies under the file {afile}")
    assert main(["sql", "--workspace", str(afile), "SELECT 1"]) == 2  # read commands too
    _one_error_line(capsys, "is a file, not a folder")
    assert afile.read_text() == "not a workspace"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes whatever the permissions say")
def test_workspace_that_is_not_writable_is_a_clear_error(tmp_path, monkeypatch, capsys):
    _no_flow(monkeypatch, "flows.ingest", "ingest_flow")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["ingest", str(tmp_path), "--workspace", str(locked / "ws")]) == 2
        _one_error_line(capsys, "is not writable")
    finally:
        locked.chmod(0o755)


def test_not_writable_as_os_access_reports_it(tmp_path, monkeypatch, capsys):
    """The same check where the tests run as root: os.access is what the CLI asks."""
    _no_flow(monkeypatch, "flows.ingest", "ingest_flow")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert main(["ingest", str(tmp_path), "--workspace", str(tmp_path / "ws")]) == 2
    _one_error_line(capsys, f"--workspace {tmp_path / 'ws'} is not writable: no write permission on {tmp_path}")
    assert main(["sql", "--workspace", str(tmp_path / "ws"), "SELECT 1"]) == 2  # reading needs no write permission
    _one_error_line(capsys, "no database yet")


def test_export_dcase_to_a_file_is_a_clear_error(tmp_path, demo_small, ingest_tree, capsys):
    from asd_core.storage.catalog import transaction

    ws = ingest_tree(tmp_path / "ws", demo_small / "dev_data")
    with transaction(ws) as con:
        con.execute("INSERT INTO runs VALUES ('r1', now()::TIMESTAMP, 'stft-mean', 'v1', 'none', '{}', false)")
        con.execute("INSERT INTO scores SELECT 'r1', clip_id, 0.5, 0 FROM clips WHERE split = 'test'")
    out = tmp_path / "submission"
    out.write_text("keep me")
    capsys.readouterr()  # the ingest's log lines
    assert main(["export-dcase", "--workspace", str(ws.root), "--run", "r1", str(out)]) == 2
    _one_error_line(capsys, f"OUT {out} is a file, not a folder")
    assert out.read_text() == "keep me"
    assert main(["export-dcase", "--workspace", str(ws.root), "--run", "r1", str(tmp_path / "ok")]) == 0
    assert list((tmp_path / "ok").rglob("anomaly_score_*.csv"))


# --- asd forget: dropping a dataset is explicit (issue 18, part 4) ---

def _clip_count(ws) -> int:
    from asd_core.storage.catalog import connect

    with connect(ws, read_only=True) as con:
        return con.execute("SELECT count(*) FROM clips").fetchone()[0]


def test_forget_lists_first_and_removes_only_with_yes(tmp_path, demo_small, ingest_tree, capsys):
    ws = ingest_tree(tmp_path / "ws", demo_small / "dev_data")
    clips = _clip_count(ws)
    capsys.readouterr()
    assert main(["forget", "--workspace", str(ws.root), "--dataset", "nosuch"]) == 2
    assert "known datasets: demo" in _one_error_line(capsys)
    assert main(["forget", "--workspace", str(ws.root), "--dataset", "demo"]) == 1
    out, err = capsys.readouterr()
    assert "would remove" in out and f"{clips} clips" in out and "--yes" in err
    assert _clip_count(ws) == clips and list(ws.artifact_dir("audio").rglob("*.parquet"))
    assert main(["forget", "--workspace", str(ws.root), "--dataset", "demo", "--yes"]) == 0
    assert "removed" in capsys.readouterr().out
    assert _clip_count(ws) == 0 and not list(ws.artifact_dir("audio").rglob("*.parquet"))


def test_command_line_choices_match_the_implementations():
    """asd_core/choices.py names what the CLI offers without importing it; the registries must agree."""
    from asd_core.choices import ENCODER_NAMES, NORMALIZATIONS
    from asd_core.encoders import list_encoders
    from asd_core.scoring.detectors import DETECTORS

    assert sorted(ENCODER_NAMES) == list_encoders()
    assert set(NORMALIZATIONS) == set(DETECTORS)
