"""``asd ingest`` / ``asd embed`` with nothing to do answer without torch, Prefect or a flow run, and
anything that changes their output makes them run the flow again (issue 16, part 5).

Whether a flow ran is read from the real Prefect server of the test harness (its flow runs); the
no-op runs go through a fresh interpreter to see which modules it loaded."""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = pytest.mark.usefixtures("prefect_harness")


def flow_runs(name: str) -> int:
    """How many runs of the flow ``name`` the test harness's Prefect server holds."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        return len(client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[name]))))


def _asd(capsys, *argv) -> str:
    from flows.cli import main

    assert main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


@pytest.fixture()
def embedded(tmp_path, demo_small, capsys):
    """A workspace with the small demo ingested and embedded by stft-mean through the CLI."""
    tree = tmp_path / "tree"
    shutil.copytree(demo_small, tree)
    ws = tmp_path / "ws"
    first_ingest = _asd(capsys, "ingest", tree, "--workspace", ws)
    first_embed = _asd(capsys, "embed", "--encoder", "stft-mean", "--workspace", ws)
    return tree, ws, first_ingest, first_embed


def test_noop_commands_load_no_torch_or_prefect_and_report_like_the_flow(embedded, capsys, fresh_asd):
    tree, ws, first_ingest, first_embed = embedded
    n = int(first_ingest.split(" clips in ")[0].rsplit("\n", 1)[-1])
    assert f"{n} clips embedded, 0 already done" in first_embed
    runs = flow_runs("asd-embed"), flow_runs("asd-ingest")

    out, heavy = fresh_asd("embed", "--encoder", "stft-mean", "--workspace", ws)
    assert heavy == []
    assert out.strip() == out_embed_noop(first_embed, n)
    out, heavy = fresh_asd("ingest", tree, "--workspace", ws)
    assert heavy == []
    assert f"{n} clips in {ws} (0 decoded, {n} unchanged, 0 removed); 0 quarantined" in out
    assert out.split("\n\n")[0] == first_ingest.split("\n\n")[0]  # the same summary table
    assert (flow_runs("asd-embed"), flow_runs("asd-ingest")) == runs  # no flow ran

    # the flow's own no-op answer agrees with the stored one
    from asd_core.config import Workspace
    from asd_core.storage.paths import stage_cache_dir

    shutil.rmtree(stage_cache_dir(Workspace(ws)))
    assert _asd(capsys, "embed", "--encoder", "stft-mean", "--workspace", ws).strip() == out_embed_noop(first_embed, n)
    assert flow_runs("asd-embed") == runs[0] + 1


def out_embed_noop(first: str, n: int) -> str:
    return first.strip().replace(f"{n} clips embedded, 0 already done", f"0 clips embedded, {n} already done")


def test_changed_outputs_or_inputs_run_the_flow(embedded, capsys):
    from asd_core.config import Workspace
    from asd_core.storage.paths import embedding_files, encoder_root

    tree, ws, first_ingest, first_embed = embedded
    n = int(first_ingest.split(" clips in ")[0].rsplit("\n", 1)[-1])
    embed = ("embed", "--encoder", "stft-mean", "--workspace", ws)

    # an embeddings file removed behind the command's back: embedded again
    version_dir = next(encoder_root(Workspace(ws), "stft-mean").glob("version=*"))
    files = embedding_files(Workspace(ws), "stft-mean", version_dir.name.split("=", 1)[1])
    gone = files[0]
    import pyarrow.parquet as pq

    rows = pq.read_metadata(gone).num_rows
    gone.unlink()
    before = flow_runs("asd-embed")
    assert f"{rows} clips embedded, {n - rows} already done" in _asd(capsys, *embed)
    assert flow_runs("asd-embed") == before + 1
    assert f"0 clips embedded, {n} already done" in _asd(capsys, *embed)
    assert flow_runs("asd-embed") == before + 1  # up to date again: no flow

    # a clip removed from the dataset root: ingest runs (the tree changed) and so does embed (the clips did)
    wav = sorted(tree.rglob("*.wav"))[0]
    wav.unlink()
    before_ingest = flow_runs("asd-ingest")
    assert f"{n - 1} clips in" in _asd(capsys, "ingest", tree, "--workspace", ws)
    assert flow_runs("asd-ingest") == before_ingest + 1
    assert f"0 clips embedded, {n - 1} already done" in _asd(capsys, *embed)
    assert flow_runs("asd-embed") == before + 2

    # the DuckDB catalogue deleted: ingest publishes it again
    Workspace(ws).duckdb_path.unlink()
    _asd(capsys, "ingest", tree, "--workspace", ws)
    assert flow_runs("asd-ingest") == before_ingest + 2
    assert Workspace(ws).duckdb_path.is_file()
    # a touched root file (same content, new mtime): ingest runs, finds the content unchanged
    os.utime(sorted(tree.rglob("*.wav"))[0], ns=(1, 1))
    assert f"{n - 1} clips in {ws} (0 decoded, {n - 1} unchanged" in _asd(capsys, "ingest", tree, "--workspace", ws)
    assert flow_runs("asd-ingest") == before_ingest + 3


def test_keys_follow_model_content_code_and_arguments(embedded, tmp_path, monkeypatch):
    from asd_core.config import Workspace
    from asd_core.encoders import EncoderSpec
    from asd_core.pipeline import uptodate

    _, ws, _, _ = embedded
    ws = Workspace(ws)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.pt").write_bytes(b"weights-1")
    (model / "config.json").write_text("{}")
    key = uptodate.embed_cache(ws, EncoderSpec.teacher(model), False, None).key
    moved = tmp_path / "moved"
    shutil.copytree(model, moved)
    assert uptodate.embed_cache(ws, EncoderSpec.teacher(moved), False, None).key == key  # content, not path
    (model / "model.pt").write_bytes(b"weights-2")
    assert uptodate.embed_cache(ws, EncoderSpec.teacher(model), False, None).key != key
    assert uptodate.embed_cache(ws, EncoderSpec.teacher(moved), False, "far").key != key
    assert uptodate.embed_cache(ws, EncoderSpec.oracle(moved, 0.3), False, None).key != \
        uptodate.embed_cache(ws, EncoderSpec.oracle(moved, 0.5), False, None).key

    spectral = uptodate.embed_cache(ws, EncoderSpec.spectral("stft-mean"), False, None)
    assert spectral.lookup() is not None
    monkeypatch.setattr(uptodate, "code_version", lambda entry: "other code")  # as after editing the flow's code
    changed = uptodate.embed_cache(ws, EncoderSpec.spectral("stft-mean"), False, None)
    assert changed.key != spectral.key and changed.lookup() is None
