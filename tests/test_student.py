"""Student training on mixtures: objectives, loss goes down, seeds and resume, BEATs teachers,
and the flow that evaluates teacher / student / oracle on noisy test sets and registers."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from asd_core.config import Workspace
from asd_core.training.objectives import ObjectiveConfig, alignment_target, student_loss
from asd_core.training.student import StudentTrainConfig, train_student


def _losses(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    s, tc, tn = (torch.randn(6, 8, generator=g) for _ in range(3))
    logits, tags = torch.randn(6, 5, generator=g), (torch.rand(6, 5, generator=g) > 0.5).float()
    return student_loss(s, logits, tags, tc, tn, cfg)


def test_lambda_one_without_tagging_is_the_denoising_objective():
    retain = ObjectiveConfig("retain", lam=1.0, tag_weight=0.0)
    denoise = ObjectiveConfig("denoise", lam=0.5)  # denoise ignores lambda: its target is teacher(clean)
    assert retain.effective()[0] == denoise.effective()[0] == 1.0
    tc, tn = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.equal(alignment_target(tc, tn, 1.0), tc)
    assert torch.equal(_losses(retain)[0], _losses(denoise)[0])
    assert not torch.equal(_losses(ObjectiveConfig("retain"))[0], _losses(denoise)[0])


def test_objective_parts_and_weights():
    tot, parts = _losses(ObjectiveConfig("retain", tag_weight=2.0, align_weight=3.0))
    assert np.isclose(float(tot), 2 * parts["tag_loss"] + 3 * parts["align_loss"], rtol=1e-6)
    assert _losses(ObjectiveConfig("tagging"))[1]["align_loss"] == 0.0
    assert _losses(ObjectiveConfig("alignment"))[1]["tag_loss"] == 0.0
    cos = _losses(ObjectiveConfig("alignment", distance="cosine"))[1]["align_loss"]
    assert 0.0 < cos < 2.0
    with pytest.raises(ValueError, match="unknown objective 'denoize'"):
        ObjectiveConfig("denoize")


@pytest.fixture(scope="module")
def ws(tmp_path_factory, demo_small, prefect_harness, ingest_tree):
    from flows.mix import mix_flow

    ws = ingest_tree(tmp_path_factory.mktemp("ws-student"), demo_small)
    mix_flow(workspace=str(ws.root), noise=str(demo_small / "noise"), seed=0,
             eval_subsets=["stationary", "mismatched"], eval_bins=[[-10, 0], [0, 10]])
    return ws


@pytest.fixture(scope="module")
def teacher(trained_teacher):
    """The session's shared tiny teacher (conftest.py), trained on the same demo clips."""
    return trained_teacher[1].model_dir


def _cfg(**kw):
    return StudentTrainConfig(epochs=kw.pop("epochs", 4), batch_size=16, lr=3e-3, patience=100, **kw)


@pytest.mark.slow  # two student trainings (whole and interrupted + resumed): over 30 s with the module's setup
def test_student_loss_decreases_and_is_deterministic_across_resume(ws, teacher):
    full = train_student(ws, teacher, _cfg(), device="cpu")
    hist = full.history
    assert len(hist) == 4 and hist[-1]["train_loss"] < 0.95 * hist[0]["train_loss"]
    assert hist[-1]["train_align_loss"] < 0.8 * hist[0]["train_align_loss"]
    assert all(h["train_tag_loss"] > 0 and h["train_align_loss"] > 0 for h in hist)
    card = json.loads((full.model_dir / "config.json").read_text())
    assert card["objective"] == "retain" and card["tags"][:3] == ["machine:fan", "machine:slider", "machine:valve"]
    assert all(t.startswith("noise:") for t in card["tags"][3:]) and "noise:pink" not in card["tags"]  # held out

    shutil.rmtree(full.model_dir)

    class Stop(Exception):
        pass

    def interrupt(epoch, entry):
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train_student(ws, teacher, _cfg(), device="cpu", on_epoch_end=interrupt)
    resumed = train_student(ws, teacher, _cfg(), device="cpu")
    assert resumed.resumed_from == 2
    assert resumed.model_hash == full.model_hash
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in hist]


@pytest.mark.slow  # the module's mixtures and the session's teacher: ~45 s of setup
def test_student_encoder_and_oracle(ws, teacher):
    from asd_core.encoders import get_encoder
    from asd_core.mixing.noise_library import read_noise_library
    from asd_core.mixing.render import render
    from asd_core.storage.audio import read_waves

    result = train_student(ws, teacher, _cfg(epochs=1, objective=ObjectiveConfig("denoise")), device="cpu")
    student = get_encoder("student", model=str(result.model_dir), device="cpu")
    assert student.name == "student-denoise" and student.dim == 32 + 8 * 16 + 16 * 8 + 32 * 4  # the teacher's multi-level width
    x = [np.random.default_rng(0).standard_normal(32000).astype(np.float32)]
    assert student.embed(x).shape == (1, student.dim)

    oracle = get_encoder("oracle", teacher=str(teacher), lam=0.3, device="cpu")
    t = get_encoder("teacher", model=str(teacher), device="cpu")
    rows = pq.read_table(ws.artifact_dir("noisy_clips") / "noisy_clips.parquet").to_pylist()[:3]
    clean, lib = read_waves(ws, {r["clip_id"] for r in rows}), read_noise_library(ws)
    parts = [render(r, clean[r["clip_id"]], lib) for r in rows]
    got = oracle.embed_parts([p[1] for p in parts], [p[2] for p in parts])
    want = 0.3 * t.embed([p[1] for p in parts]) + 0.7 * t.embed([p[2] for p in parts])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(oracle.embed(x), t.embed(x))


@pytest.mark.slow  # needs the module's mixed workspace
def test_beats_teacher_gives_a_beats_checkpoint_student(ws, tmp_path):
    from asd_core.encoders import get_encoder
    from asd_core.models.beats import BEATs, BEATsConfig
    from asd_core.models.beats_checkpoint import load_beats, save_beats

    torch.manual_seed(0)
    cfg = BEATsConfig(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=4,
                      embed_dim=16, conv_pos=8, conv_pos_groups=4, num_buckets=32, max_distance=64)
    save_beats(BEATs(cfg), tmp_path / "tiny.pt")
    result = train_student(ws, tmp_path / "tiny.pt", _cfg(epochs=2, layer=1), device="cpu")
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    model, _ = load_beats(result.model_dir / "model.pt")  # official layout: loads as a BEATs checkpoint
    assert model.cfg.encoder_layers == 2
    teacher_model, _ = load_beats(tmp_path / "tiny.pt")
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, teacher_model.state_dict()[k])]
    assert changed  # the student moved away from the frozen teacher
    student = get_encoder("student", model=str(result.model_dir), device="cpu")
    assert student.dim == 32 and student.embed([np.zeros(16000, np.float32) + 0.01]).shape == (1, 32)


@pytest.mark.slow  # needs the module's mixed workspace
def test_missing_inputs_are_clear_errors(ws, tmp_path):
    with pytest.raises(FileNotFoundError, match="teacher not found"):
        train_student(ws, tmp_path / "nope", _cfg())
    empty = Workspace(tmp_path / "empty").ensure()
    with pytest.raises(FileNotFoundError, match="run `asd mix` first"):
        from asd_core.mixing.artifacts import read_mixtures

        read_mixtures(empty)


def test_oracle_uses_the_mixture_lambda_for_every_objective():
    """A denoise student trains towards lambda = 1; its report still compares against the 0.5 oracle."""
    from asd_core.encoders import EncoderSpec
    from asd_core.training.student import StudentTrainConfig
    from flows.train_student import evaluation_encoders

    for objective in ("retain", "denoise", "tagging", "alignment"):
        cfg = StudentTrainConfig.from_dict({"objective": {"objective": objective}})
        enc = evaluation_encoders("teacher-dir", cfg, "student-dir")
        assert enc["oracle"].options["lam"] == 0.5 and enc["student"] == EncoderSpec.student("student-dir"), objective
    assert StudentTrainConfig.from_dict({"objective": {"objective": "denoise"}}).objective.effective()[0] == 1.0
