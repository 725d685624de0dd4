"""Storage-layer guarantees of the architecture change: the CURRENT model pointer and the
sample-rate refusal of embedding (issue 14, part 1)."""

from __future__ import annotations

import json
import os

import pytest

from asd_core.config import IngestConfig, AudioConfig, Workspace
from asd_core.storage.models import current_model, set_current


def _model(ws: Workspace, model_kind: str, name: str, mtime: int, **card) -> object:
    folder = ws.root / "models" / model_kind / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(card))
    os.utime(folder / "config.json", (mtime, mtime))
    return folder


def test_current_pointer_wins_over_the_newest_folder(tmp_path):
    ws = Workspace(tmp_path)
    old = _model(ws, "teacher", "aaa", 1_000)
    new = _model(ws, "teacher", "bbb", 2_000)
    assert current_model(ws, "teacher") == new  # no pointer: newest card (workspaces written before it)
    set_current(ws, "teacher", old)
    assert current_model(ws, "teacher") == old  # an explicit choice, not whichever folder was touched last
    os.utime(new / "config.json", (3_000, 3_000))
    assert current_model(ws, "teacher") == old
    (ws.root / "models" / "teacher" / "CURRENT").write_text("../../etc\n")  # not a folder of models/teacher
    assert current_model(ws, "teacher") == new
    with pytest.raises(ValueError, match="is not a teacher folder"):
        set_current(ws, "teacher", tmp_path)


def test_student_pointer_per_objective(tmp_path):
    ws = Workspace(tmp_path)
    retain = _model(ws, "student", "r", 1_000, kind="student", objective="retain")
    denoise = _model(ws, "student", "d", 2_000, kind="student", objective="denoise")
    set_current(ws, "student", retain, objective="retain")
    set_current(ws, "student", denoise, objective="denoise")
    assert current_model(ws, "student") == denoise
    assert current_model(ws, "student", "retain") == retain
    with pytest.raises(FileNotFoundError, match="no trained teacher"):
        current_model(ws, "teacher")


def test_embedding_refuses_audio_at_another_rate(tmp_path, demo_small):
    from asd_core.embedding import embed_partition
    from asd_core.encoders import get_encoder
    from asd_core.ingest import ingest_group, plan_ingest
    from asd_core.storage.paths import audio_partitions

    ws = Workspace(tmp_path / "ws").ensure()
    cfg = IngestConfig(audio=AudioConfig(sample_rate=8_000))
    plan = plan_ingest(ws, [demo_small], "demo", cfg)
    (ds, mt), cands = next(iter(plan.groups.items()))
    ingest_group(ws, ds, mt, cands[:3], plan.roots[ds], cfg)
    mt, ds, path = audio_partitions(ws)[0]
    with pytest.raises(ValueError, match=r"stored at 8000 Hz but the logmel-stats encoder expects 16000 Hz"):
        embed_partition(ws, get_encoder("logmel-stats"), mt, ds, path)
