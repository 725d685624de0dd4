"""Planted or damaged files in a workspace are refused with one line naming the file; nothing runs.

Every place a model, checkpoint or index is read gets a pickle whose ``__reduce__`` would create
a marker file: the load must fail with a ValueError ``<file>: ...`` and the marker must not exist.
"""

from __future__ import annotations

import builtins
import io
import json
import pickle

from pathlib import Path

import numpy as np
import pytest
import torch

from asd_core.models.beats import BEATs, BEATsConfig
from asd_core.models.beats_checkpoint import BEATsCheckpointError, load_beats, save_beats
from asd_core.models.card import ModelCardError
from asd_core.models.teacher import AdaCos, TeacherConfig, TeacherNet
from asd_core.storage.weights import WeightsFileError, load_weights
from asd_core.training import checkpoint

TINY = TeacherConfig(n_mels=32, channels=(8, 16), embedding_dim=16)
TINY_BEATS = dict(encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=128, encoder_attention_heads=4,
                  embed_dim=32, conv_pos=16, conv_pos_groups=4, num_buckets=32, max_distance=64)


class Payload:
    """Unpickling this creates ``marker``: the attack a weights-only loader must refuse."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').close()",)


def plant(path, marker, fmt="torch"):
    """Write a payload file at ``path``: a torch archive (``torch.save``) or a raw pickle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torch":
        torch.save({"model": Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(Payload(marker)))
    return path


def assert_refused(excinfo, path, marker):
    msg = str(excinfo.value)
    assert msg.startswith(f"{path}:"), msg
    assert "\n" not in msg, msg
    assert not marker.exists(), "the planted pickle ran"


def test_the_payload_is_live(tmp_path):
    """Control: an ordinary unpickler runs it (so the refusals below are real)."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("fmt", ["torch", "pickle"])
def test_load_weights_refuses_a_pickled_callable(tmp_path, fmt):
    path, marker = tmp_path / "model.pt", tmp_path / "ran"
    plant(path, marker, fmt)
    with pytest.raises(WeightsFileError) as exc:
        load_weights(path)
    assert_refused(exc, path, marker)
    assert "refused: unsafe pickle global 'builtins.exec'" in str(exc.value)


def test_load_weights_names_each_kind_of_damage(tmp_path):
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(100)}, buf)
    cases = {"empty.pt": b"", "truncated.pt": buf.getvalue()[:-40], "notes.pt": b"hello, not weights"}
    expected = {"empty.pt": "empty file (0 bytes)", "truncated.pt": "damaged or truncated archive",
                "notes.pt": "not a weights file (not a torch archive or a pickle"}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(WeightsFileError) as exc:
            load_weights(tmp_path / name)
        assert str(exc.value).startswith(f"{tmp_path / name}: ") and expected[name] in str(exc.value)
        assert "\n" not in str(exc.value)
    with pytest.raises(WeightsFileError, match="is a folder, not a weights file"):
        load_weights(tmp_path)
    assert load_weights(_save(tmp_path / "ok.pt", {"w": torch.ones(2)}))["w"].tolist() == [1.0, 1.0]


def _save(path, obj):
    torch.save(obj, path)
    return path


# --- resume checkpoints (models/teacher/<key>/checkpoint.pt, models/student/<key>/checkpoint.pt) ---------


def _modules():
    torch.manual_seed(0)
    net, head = TeacherNet(TINY), AdaCos(TINY.embedding_dim, 4)
    opt = torch.optim.AdamW(list(net.parameters()) + list(head.parameters()), lr=1e-3)
    return {"net": net, "head": head, "opt": opt}


@pytest.mark.parametrize("label,folder", [("teacher", "models/teacher/0123456789ab"), ("student", "models/student/0123456789ab")])
def test_planted_resume_checkpoint_is_refused(tmp_path, label, folder):
    path, marker = tmp_path / folder / "checkpoint.pt", tmp_path / "ran"
    plant(path, marker)
    with pytest.raises(WeightsFileError) as exc:
        checkpoint.resume(path, "cpu", {"config_key": "x"}, _modules(), label)
    assert_refused(exc, path, marker)
    assert "unsafe pickle global 'builtins.exec'" in str(exc.value) and "delete it to train from scratch" in str(exc.value)


def test_damaged_or_foreign_checkpoint_is_an_error_naming_it(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"")
    with pytest.raises(WeightsFileError, match=r"checkpoint.pt: empty file \(0 bytes\); delete it"):
        checkpoint.resume(path, "cpu", {}, _modules(), "teacher")
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(WeightsFileError, match="checkpoint.pt: not a teacher training checkpoint"):
        checkpoint.resume(path, "cpu", {}, _modules(), "teacher")
    other = _modules()
    other["net"] = TeacherNet(TeacherConfig(n_mels=32, channels=(8,), embedding_dim=16))
    checkpoint.save(path, {"config_key": "x"}, other, checkpoint.new_state())
    with pytest.raises(WeightsFileError, match="checkpoint.pt: checkpoint does not fit the teacher"):
        checkpoint.resume(path, "cpu", {"config_key": "x"}, _modules(), "teacher")


def test_a_real_checkpoint_round_trips_with_weights_only(tmp_path):
    """Modules, optimiser moments, best weights, history and counters survive ``weights_only=True``."""
    mods = _modules()
    x = torch.randn(3, 16000)
    loss = mods["head"](mods["net"].class_embedding(x), torch.eye(4)[:3]).sum()
    loss.backward()
    mods["opt"].step()
    state = checkpoint.new_state()
    checkpoint.end_epoch(state, 1, {"epoch": 1, "train_loss": np.float64(1.5), "val_loss": 1.25}, np.float32(1.25),
                         mods["net"], 1e-6)
    path = tmp_path / "checkpoint.pt"
    checkpoint.save(path, {"config_key": "k", "classes": ["a", "b"]}, mods, state)
    raw = torch.load(path, weights_only=True)  # what the loader does: must not need weights_only=False
    assert raw["state"]["history"][0]["train_loss"] == 1.5 and isinstance(raw["state"]["best_val"], float)

    fresh = _modules()
    fresh["net"].load_state_dict({k: torch.zeros_like(v) for k, v in fresh["net"].state_dict().items()})
    got, resumed = checkpoint.resume(path, "cpu", {"config_key": "k", "classes": ["a", "b"]}, fresh, "teacher")
    assert resumed == 1 and got["best_epoch"] == 1 and got["best_val"] == 1.25
    for name in ("net", "head"):
        for (k, a), b in zip(mods[name].state_dict().items(), fresh[name].state_dict().values()):
            assert torch.equal(a, b), k
    a, b = mods["opt"].state_dict(), fresh["opt"].state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert all(torch.equal(a["state"][i]["exp_avg"], b["state"][i]["exp_avg"]) for i in a["state"])
    # another identity (config or data changed): a fresh start, not an error
    assert checkpoint.resume(path, "cpu", {"config_key": "other"}, _modules(), "teacher") == (checkpoint.new_state(), None)


# --- model folders and BEATs checkpoints ---------------------------------------------------------------


def _teacher_folder(root, marker=None):
    folder = root / "models" / "teacher" / "abc"
    folder.mkdir(parents=True)
    card = {"model": TINY.to_dict(), "train": {"clip_seconds": None}, "classes": ["a", "b"], "model_hash": "0" * 16}
    (folder / "config.json").write_text(json.dumps(card))
    if marker is None:
        torch.save(TeacherNet(TINY).state_dict(), folder / "model.pt")
    else:
        plant(folder / "model.pt", marker)
    return folder


def _student_folder(root, marker, teacher_kind="teacher"):
    folder = root / "models" / "student" / "def"
    folder.mkdir(parents=True)
    teacher = {"kind": teacher_kind, "source": "x", "source_hash": "1" * 16}
    card = {"kind": "student", "objective": "retain", "teacher": teacher, "model_hash": "2" * 16,
            "teacher_model": TINY.to_dict() if teacher_kind == "teacher" else None, "embedding_dim": 16}
    (folder / "config.json").write_text(json.dumps(card))
    plant(folder / "model.pt", marker)
    return folder


@pytest.mark.parametrize("via", ["encoder", "backbone"])
def test_planted_teacher_model_is_refused(tmp_path, via):
    from asd_core.encoders.registry import get_encoder
    from asd_core.training.backbone import load_backbone

    marker = tmp_path / "ran"
    folder = _teacher_folder(tmp_path, marker)
    with pytest.raises(WeightsFileError) as exc:
        get_encoder("teacher", model=str(folder), device="cpu") if via == "encoder" else load_backbone(folder)
    assert_refused(exc, folder / "model.pt", marker)


def test_load_teacher_refuses_planted_weights_in_one_line(tmp_path):
    from asd_core.training.teacher import load_teacher

    marker = tmp_path / "ran"
    folder = _teacher_folder(tmp_path, marker)
    with pytest.raises(WeightsFileError) as exc:
        load_teacher(folder)
    assert_refused(exc, folder / "model.pt", marker)


def test_planted_student_model_is_refused(tmp_path):
    from asd_core.encoders.registry import get_encoder

    marker = tmp_path / "ran"
    folder = _student_folder(tmp_path, marker)
    with pytest.raises(WeightsFileError) as exc:
        get_encoder("student", model=str(folder), device="cpu")
    assert_refused(exc, folder / "model.pt", marker)


def test_planted_beats_student_model_is_refused(tmp_path):
    from asd_core.encoders.registry import get_encoder

    marker = tmp_path / "ran"
    folder = _student_folder(tmp_path, marker, teacher_kind="beats")
    with pytest.raises(BEATsCheckpointError) as exc:
        get_encoder("student", model=str(folder), device="cpu")
    assert_refused(exc, folder / "model.pt", marker)


@pytest.mark.parametrize("via", ["load_beats", "encoder", "backbone", "oracle"])
def test_planted_beats_checkpoint_is_refused(tmp_path, via):
    from asd_core.encoders.registry import get_encoder
    from asd_core.training.backbone import load_backbone

    path, marker = tmp_path / "BEATs_iter3.pt", tmp_path / "ran"
    plant(path, marker)
    load = {"load_beats": lambda: load_beats(path), "backbone": lambda: load_backbone(path),
            "encoder": lambda: get_encoder("beats", checkpoint=str(path), device="cpu"),
            "oracle": lambda: get_encoder("oracle", teacher=str(path), device="cpu")}[via]
    with pytest.raises(BEATsCheckpointError) as exc:
        load()
    assert_refused(exc, path, marker)
    assert "not a BEATs checkpoint (torch.load failed: refused: unsafe pickle global 'builtins.exec')" in str(exc.value)


def test_empty_beats_checkpoint_is_a_one_line_error(tmp_path):
    path = tmp_path / "BEATs.pt"
    path.write_bytes(b"")
    with pytest.raises(BEATsCheckpointError, match=r"BEATs.pt: not a BEATs checkpoint \(torch.load failed: empty file \(0 bytes\)\)$"):
        load_beats(path)


def test_a_real_beats_checkpoint_still_loads(tmp_path):
    torch.manual_seed(0)
    model = BEATs(BEATsConfig(**TINY_BEATS))
    save_beats(model, tmp_path / "t.pt")
    loaded, _ = load_beats(tmp_path / "t.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


# --- cards: the wrong kind of folder, a damaged config.json ------------------------------------------------


def test_teacher_folder_as_student_is_a_one_line_error(tmp_path):
    from asd_core.encoders.registry import get_encoder

    folder = _teacher_folder(tmp_path)
    with pytest.raises(ModelCardError, match=r"is a teacher model, not a student \(config.json has no 'kind': 'student'\)$"):
        get_encoder("student", model=str(folder), device="cpu")


def test_student_folder_as_teacher_is_a_one_line_error(tmp_path):
    from asd_core.encoders.registry import get_encoder
    from asd_core.training.backbone import load_backbone

    folder = _student_folder(tmp_path, tmp_path / "ran")
    with pytest.raises(ModelCardError, match=r"is a student model, not a teacher \(config.json has 'kind': 'student'\)$"):
        get_encoder("teacher", model=str(folder), device="cpu")
    with pytest.raises(ModelCardError, match="is a student model, not a teacher"):
        load_backbone(folder)
    assert not (tmp_path / "ran").exists()


def test_damaged_card_names_the_file(tmp_path):
    from asd_core.encoders.registry import get_encoder

    folder = _teacher_folder(tmp_path)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelCardError, match=r"config.json: not a model card \(JSONDecodeError"):
        get_encoder("teacher", model=str(folder), device="cpu")
    (folder / "config.json").write_text(json.dumps({"kind": "student"}))
    with pytest.raises(ModelCardError, match="student model card lacks 'teacher'"):
        get_encoder("student", model=str(folder), device="cpu")


# --- FAISS index folders (rho.npy, references.npy) ---------------------------------------------------------


def _index_folder(tmp_path):
    from asd_core.scoring import index_store
    from asd_core.scoring.detectors import get_detector

    folder = tmp_path / "indexes" / "x" / "section_00" / "cfg"
    det = get_detector("knn").fit(np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32))
    index_store.save(folder, det, 0.5, "h", {})
    return folder


@pytest.mark.parametrize("name", ["rho.npy", "references.npy"])
def test_planted_index_array_never_runs(tmp_path, name):
    from asd_core.scoring import index_store

    folder, marker = _index_folder(tmp_path), tmp_path / "ran"
    np.save(folder / name, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        index_store.load_saved(folder)
    assert not marker.exists()


def test_planted_index_array_error_names_the_file(tmp_path):
    from asd_core.scoring import index_store

    folder, marker = _index_folder(tmp_path), tmp_path / "ran"
    np.save(folder / "rho.npy", np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError) as exc:
        index_store.load_saved(folder)
    assert_refused(exc, folder / "rho.npy", marker)


# --- one-line errors before a flow starts (issue 18 part 6) ------------------------------------------------


def _bad_model(tmp_path, case):
    """(encoder, option, path, the file named, what is wrong) of each model mistake the CLI must name in one line."""
    if case == "empty-beats":
        path = tmp_path / "BEATs_iter3.pt"
        path.write_bytes(b"")
        return "beats", "--checkpoint", path, path, "empty file (0 bytes)"
    if case == "junk-teacher-weights":
        folder = _teacher_folder(tmp_path)
        (folder / "model.pt").write_text("these are not weights")
        return "teacher", "--model", folder, folder / "model.pt", "not a weights file (not a torch archive or a pickle)"
    folder = _teacher_folder(tmp_path)
    return "student", "--model", folder, folder, "is a teacher model, not a student (config.json has no 'kind': 'student')"


CASES = ["empty-beats", "junk-teacher-weights", "teacher-as-student"]


@pytest.mark.parametrize("case", CASES)
def test_model_mistakes_are_caught_before_the_flow(tmp_path, case):
    """``check_encoder_options`` (for the CLI to call before Prefect starts) reads no tensors."""
    from asd_core.encoders.spec import check_encoder_options

    encoder, option, path, where, what = _bad_model(tmp_path, case)
    key = {"--checkpoint": "checkpoint", "--model": "model"}[option]
    with pytest.raises(ValueError) as exc:
        check_encoder_options(encoder, {key: str(path)})
    assert str(exc.value) == f"{where}: {what}"


def _cli_embed(tmp_path, case, capsys) -> tuple[int, str, Path, str]:
    from flows.cli import main

    encoder, option, path, where, what = _bad_model(tmp_path, case)
    rc = main(["embed", "--workspace", str(tmp_path / "ws"), "--encoder", encoder, option, str(path)])
    return rc, capsys.readouterr().err, where, what


@pytest.mark.parametrize("case", CASES)
def test_model_mistakes_are_one_line_cli_errors(tmp_path, case, capsys, prefect_harness):
    """Today's tracebacks (IndexError, UnpicklingError, KeyError) become ``error: <file>: <what>``, exit 2."""
    rc, err, where, what = _cli_embed(tmp_path, case, capsys)
    assert rc == 2
    line = next(line for line in err.splitlines() if line.startswith("error: "))
    assert line.startswith(f"error: {where}: ") and what in line, err


@pytest.mark.parametrize("case", CASES)
def test_model_mistakes_stop_before_the_flow_run(tmp_path, case, capsys, prefect_harness):
    rc, err, where, what = _cli_embed(tmp_path, case, capsys)
    assert rc == 2 and "Traceback" not in err and "Flow run" not in err, err
    assert err.strip().splitlines() == [f"error: {where}: {what}"]


def test_good_models_pass_the_checks(tmp_path):
    from asd_core.encoders.spec import check_encoder_options
    from asd_core.training.backbone import check_backbone_source

    folder = _teacher_folder(tmp_path)
    torch.manual_seed(0)
    save_beats(BEATs(BEATsConfig(**TINY_BEATS)), tmp_path / "b.pt")
    check_encoder_options("teacher", {"model": str(folder)})
    check_encoder_options("beats", {"checkpoint": str(tmp_path / "b.pt")})
    check_encoder_options("oracle", {"teacher": str(tmp_path / "b.pt")})
    check_backbone_source(folder)
    check_backbone_source(tmp_path / "b.pt")
    with pytest.raises(FileNotFoundError, match="teacher not found"):
        check_backbone_source(tmp_path / "nope")


def test_planted_stage_cache_record_is_never_unpickled(tmp_path):
    """The pipeline's stage cache reads JSON it wrote itself; a planted pickle (Prefect's result
    records could name the pickle serializer) is ignored, and the stage recomputes."""
    import pickle

    from asd_core.config import Workspace
    from asd_core.storage.stage_results import read_stage_result, stage_result_file, write_stage_result

    ws = Workspace(tmp_path / "ws")
    marker = tmp_path / "ran"
    path = stage_result_file(ws, "ingest-abc")
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(Payload(marker)))
    assert read_stage_result(ws, "ingest-abc") is None and not marker.exists()
    path.write_text('{"key": "other", "result": 1}')  # a record of another key is not this stage's result
    assert read_stage_result(ws, "ingest-abc") is None
    write_stage_result(ws, "ingest-abc", {"model_dir": tmp_path, "n": 3})
    assert read_stage_result(ws, "ingest-abc") == {"model_dir": str(tmp_path), "n": 3}
