"""Every `asd` sub-command has --help with --workspace; bad arguments are clear errors."""

import pytest

from flows.cli import build_parser, main

COMMANDS = ["make-demo-data", "ingest", "mix", "embed", "train-teacher", "train-student", "register", "promote", "models", "score", "evaluate", "export-dcase", "sql", "pipeline", "report", "demo"]


def test_all_commands_are_listed():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_mentions_workspace(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "--workspace" in capsys.readouterr().out


def test_sql_without_database_is_a_clear_error(tmp_path, capsys):
    assert main(["sql", "--workspace", str(tmp_path / "none"), "SELECT 1"]) == 2
    assert "no database yet; run `asd ingest` first" in capsys.readouterr().err


def test_checkpoint_only_for_beats(tmp_path, capsys):
    assert main(["embed", "--workspace", str(tmp_path), "--encoder", "stft-mean", "--checkpoint", "x.pt"]) == 2
    assert "--checkpoint is for --encoder beats" in capsys.readouterr().err
