"""Teacher training on the small demo data: loss goes down, embeddings detect anomalies, seeds, resume."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from asd_core.config import Workspace
from asd_core.models.teacher import TeacherConfig
from asd_core.training.teacher import TeacherTrainConfig, load_teacher, teacher_dir, train_teacher

TINY = TeacherConfig(n_mels=32, channels=(8, 16, 32), embedding_dim=32)
TINY_DIM = 32 + 8 * 16 + 16 * 8 + 32 * 4  # multi-level: the input's mel bins, then channels x mel bins after each block


@pytest.fixture(scope="module")
def ws(tmp_path_factory, demo_small, ingest_tree):
    return ingest_tree(tmp_path_factory.mktemp("ws-teacher"), demo_small)


def _cfg(**kw):
    return TeacherTrainConfig(model=TINY, epochs=kw.pop("epochs", 8), batch_size=32, patience=100, **kw)


@pytest.fixture(scope="module")
def trained(ws):
    return train_teacher(ws, _cfg(), device="cpu")


def test_loss_decreases_and_model_saved(trained):
    hist = trained.history
    assert len(hist) == 8
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"]
    card = json.loads((trained.model_dir / "config.json").read_text())
    assert card["model_hash"] == trained.model_hash and len(card["classes"]) == 13  # fan 5, valve 4, slider 4
    net, _ = load_teacher(trained.model_dir)
    out = net(torch.zeros(2, 32000))
    assert out.shape == (2, TINY_DIM) and out.dtype == torch.float32


def test_embeddings_separate_anomalies(ws, trained, demo_small):
    """Normal test clips of the demo data score lower than anomalous ones (nearest-reference cosine)."""
    import pyarrow.parquet as pq

    from asd_core.encoders import get_encoder
    from asd_core.datasets.audio_io import from_storage
    from asd_core.ingest.layout import all_files
    from asd_core.scoring import ScoringConfig, make_detector

    enc = get_encoder("teacher", model=str(trained.model_dir), device="cpu")
    meta = {r["clip_id"]: r for p in all_files(ws, "clips") for r in pq.read_table(p).to_pylist()}
    aucs = []
    for mt in ("fan", "valve", "slider"):
        rows = pq.read_table(ws.artifact_dir("audio") / f"machine_type={mt}").to_pylist()
        ids = [r["clip_id"] for r in rows]
        emb = enc.embed([from_storage(np.asarray(r["waveform"], np.int16)) for r in rows])
        train = [i for i, c in enumerate(ids) if meta[c]["split"] == "train"]
        test = [i for i, c in enumerate(ids) if meta[c]["split"] == "test"]
        det = make_detector(ScoringConfig("none", "cosine")).fit(emb[train])
        y = [meta[ids[i]]["label"] == "anomaly" for i in test]
        aucs.append(roc_auc_score(y, det.score(emb[test])))
    assert np.mean(aucs) > 0.6, aucs


def test_deterministic_for_a_seed(ws, trained, tmp_path):
    other = Workspace(tmp_path / "copy")
    import shutil
    shutil.copytree(ws.parquet, other.parquet)
    again = train_teacher(other, _cfg(), device="cpu")
    assert again.model_hash == trained.model_hash
    assert [h["train_loss"] for h in again.history] == [h["train_loss"] for h in trained.history]


def test_resume_after_interruption_gives_the_same_model(ws, trained, tmp_path):
    import shutil

    other = Workspace(tmp_path / "resume")
    shutil.copytree(ws.parquet, other.parquet)

    def crash(epoch, entry):
        if epoch == 3:
            raise KeyboardInterrupt("simulated interruption after epoch 3")

    with pytest.raises(KeyboardInterrupt):
        train_teacher(other, _cfg(), device="cpu", on_epoch_end=crash)
    assert (teacher_dir(other, _cfg()) / "checkpoint.pt").exists()
    assert not (teacher_dir(other, _cfg()) / "model.pt").exists()
    resumed = train_teacher(other, _cfg(), device="cpu")
    assert resumed.resumed_from == 3
    assert resumed.model_hash == trained.model_hash
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in trained.history]


def test_training_on_random_crops(ws):
    """Crops change what the net sees in training, not the embedding's shape (time pooling)."""
    r = train_teacher(ws, _cfg(epochs=2, crop_seconds=0.5, speed_factors=(1.0,)), device="cpu")
    assert len(r.history) == 2 and all(np.isfinite(h["val_loss"]) for h in r.history)
    net, card = load_teacher(r.model_dir)
    assert card["train"]["crop_seconds"] == 0.5 and card["train"]["speed_factors"] == [1.0]
    with torch.inference_mode():
        assert net(torch.randn(2, 40_000)).shape == (2, TINY_DIM)


def test_early_stopping(ws):
    r = train_teacher(ws, TeacherTrainConfig(model=TINY, epochs=40, patience=1, lr=5e-2, seed=1), device="cpu")
    assert r.epochs_run < 40 and r.best_epoch <= r.epochs_run


@pytest.mark.parametrize("pooling, width", [("mean", 16), ("time-mean", 16 * 8), ("time-mean-max", 2 * 16 * 8)])
def test_pooling_options_shapes(pooling, width):
    from asd_core.models.teacher import TeacherNet

    cfg = TeacherConfig.from_dict({"n_mels": 32, "channels": [8, 16], "embedding_dim": 24, "pooling": pooling})
    net = TeacherNet(cfg).eval()
    assert net.project.in_features == width
    with torch.inference_mode():
        out = net.class_embedding(torch.randn(3, 16_000))
    assert out.shape == (3, 24) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_multi_level_embedding_is_each_levels_time_mean_normalised():
    """The default embedding, recomputed layer by layer: the time means of the normalised input
    and of both blocks, each of unit norm, scaled to unit RMS per element."""
    from asd_core.models.teacher import TeacherNet

    cfg = TeacherConfig(n_mels=32, channels=(8, 16), embedding_dim=24)
    net = TeacherNet(cfg).eval()
    x = torch.randn(3, 16_000)
    with torch.inference_mode():
        out = net(x)
        logmel = net.input_norm(net.features(x))
        first = net.blocks[:7](logmel)  # conv-bn-relu x2 + pool
        second = net.blocks[7:](first)
    widths = [32, 8 * 16, 16 * 8]
    assert net.dim == sum(widths) and out.shape == (3, net.dim) and out.dtype == torch.float32
    level = [torch.nn.functional.normalize(m.mean(dim=3).flatten(1), dim=1) for m in (logmel, first, second)]
    scale = (sum(widths) / 3) ** 0.5
    torch.testing.assert_close(out, scale * torch.cat(level, dim=1))
    for part in torch.split(out, widths, dim=1):
        torch.testing.assert_close(part.norm(dim=1), torch.full((3,), scale))
    torch.testing.assert_close(out.pow(2).mean(dim=1), torch.ones(3))

    projection = TeacherNet(TeacherConfig(n_mels=32, channels=(8, 16), embedding_dim=24, embedding="projection")).eval()
    projection.load_state_dict(net.state_dict())  # same weights: only what forward returns differs
    with torch.inference_mode():
        assert projection.dim == 24
        torch.testing.assert_close(projection(x), net.class_embedding(x))


def test_saved_card_loads_legacy_pooling_and_embedding_and_bad_options_are_named():
    assert TeacherConfig.from_card({"n_mels": 32}).pooling == "mean"  # saved before the option existed
    assert TeacherConfig.from_card({"n_mels": 32}).embedding == "projection"
    assert TeacherConfig.from_dict({"n_mels": 32}).embedding == "multi-level"
    assert TeacherConfig.from_card({"n_mels": 32, "pooling": "time-mean-max"}).pooling == "time-mean-max"
    partial = TeacherConfig.from_dict({"n_mels": 32})  # a user's partial config keeps today's defaults
    assert partial.pooling == TeacherConfig().pooling == "time-mean" and partial.channels == TeacherConfig().channels
    from asd_core.models.teacher import TeacherNet

    with pytest.raises(ValueError, match="unknown teacher pooling 'max'"):
        TeacherNet(TeacherConfig(pooling="max"))
    with pytest.raises(ValueError, match="unknown teacher embedding 'last'"):
        TeacherNet(TeacherConfig(embedding="last"))
