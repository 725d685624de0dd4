"""Teacher training on the small demo data: loss goes down, embeddings detect anomalies, seeds, resume."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from asd_core.config import Workspace
from asd_core.models.teacher import TeacherConfig
from asd_core.training.teacher import TeacherTrainConfig, load_teacher, teacher_dir, train_teacher

TINY_DIM = 32 + 8 * 16 + 16 * 8 + 32 * 4  # multi-level: the input's mel bins, then channels x mel bins after each block


@pytest.fixture(scope="module")
def ws(trained_teacher):
    return trained_teacher[0]


@pytest.fixture(scope="module")
def trained(trained_teacher):
    """The session's shared teacher (conftest.py): the tiny config, 8 epochs, seed 0."""
    return trained_teacher[1]


def _copy(ws, folder):
    """A workspace with ``ws``'s Parquet, for tests that train (the shared workspace stays as it is)."""
    import shutil

    other = Workspace(folder)
    shutil.copytree(ws.parquet, other.parquet)
    return other


def test_loss_decreases_and_model_saved(trained):
    hist = trained.history
    assert len(hist) == 8
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"]
    card = json.loads((trained.model_dir / "config.json").read_text())
    assert card["model_hash"] == trained.model_hash and len(card["classes"]) == 13  # fan 5, valve 4, slider 4
    net, _ = load_teacher(trained.model_dir)
    out = net(torch.zeros(2, 32000))
    assert out.shape == (2, TINY_DIM) and out.dtype == torch.float32


def _class_separation(emb: np.ndarray, labels: np.ndarray, reference: np.ndarray, held_out: np.ndarray) -> float:
    """Mean cosine distance from each held-out clip to the reference clips of other classes, over the
    mean distance to those of its own class (a Fisher-like ratio; larger = classes further apart)."""
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    dist = 1.0 - unit[held_out] @ unit[reference].T
    same = labels[held_out][:, None] == labels[reference][None, :]
    return float(dist[~same].mean() / dist[same].mean())


@pytest.mark.slow  # trains and embeds: ~15 s
def test_embeddings_separate_anomalies_and_training_separates_classes(ws, trained, teacher_config):
    """The trained teacher against an untrained net of the same seed (what ``train_teacher`` starts
    from), both read out the same ways. Anomaly AUC alone cannot tell them apart on the demo data
    (the untrained multi-level net scores about as well), so the property training must win is the
    one it optimises: how far apart the (machine, section, attributes) classes lie, measured on the
    held-out normal test clips against the training clips.

    Measured on the small demo data (seed 0; seeds 1 and 2 in brackets):
      read-out                      trained            untrained          BN statistics only (lr 1e-9)
      anomaly AUC (multi-level)     0.838 (.854 .857)  0.845 (.835 .838)  0.864
      separation, AdaCos embedding  90.9  (93.1 96.0)  31.1  (36.1 45.2)  24.4
      separation, multi-level       96.5  (79.6 69.1)  58.8  (64.4 53.4)  61.1
    1-NN and nearest-centroid class accuracy were within +-0.1 of each other for both nets.
    """
    import pyarrow.parquet as pq

    from asd_core.encoders import get_encoder
    from asd_core.models.teacher import TeacherNet
    from asd_core.scoring import ScoringConfig, make_detector
    from asd_core.storage.audio import from_storage
    from asd_core.storage.paths import all_files
    from asd_core.training.data import class_name

    cfg = teacher_config()
    enc = get_encoder("teacher", model=str(trained.model_dir), device="cpu")
    torch.manual_seed(cfg.seed)  # as train_teacher does right before it builds the net
    untrained = TeacherNet(cfg.model).eval()
    nets = {"trained": enc.net.eval(), "untrained": untrained}

    meta = {r["clip_id"]: r for p in all_files(ws, "clips") for r in pq.read_table(p).to_pylist()}
    rows = [r for mt in ("fan", "valve", "slider")
            for r in pq.read_table(ws.artifact_dir("audio") / f"machine_type={mt}").to_pylist()]
    ids = [r["clip_id"] for r in rows]
    waves = torch.from_numpy(np.stack([from_storage(np.asarray(r["waveform"], np.int16)) for r in rows]))
    machine = np.array([meta[c]["machine_type"] for c in ids])
    split = np.array([meta[c]["split"] for c in ids])
    anomaly = np.array([meta[c]["label"] == "anomaly" for c in ids])
    labels = np.array([class_name(meta[c]) for c in ids])  # the teacher's training classes
    train, test_normal = split == "train", (split == "test") & ~anomaly

    def read_out(net, how):
        with torch.inference_mode():
            return np.concatenate([(net(x) if how == "multi-level" else net.class_embedding(x)).numpy()
                                   for x in torch.split(waves, 64)])

    np.testing.assert_allclose(read_out(nets["trained"], "multi-level")[:4], enc.embed(list(waves[:4].numpy())),
                               rtol=1e-5, atol=1e-6)  # the read-out below is the one that is scored
    auc, separation = {}, {}
    for name, net in nets.items():
        scored = read_out(net, "multi-level")
        aucs = []
        for mt in ("fan", "valve", "slider"):
            ref, test = train & (machine == mt), (split == "test") & (machine == mt)
            det = make_detector(ScoringConfig("none", "cosine")).fit(scored[ref])
            aucs.append(roc_auc_score(anomaly[test], det.score(scored[test])))
        auc[name] = float(np.mean(aucs))
        separation[name, "multi-level"] = _class_separation(scored, labels, train, test_normal)
        separation[name, "adacos"] = _class_separation(read_out(net, "adacos"), labels, train, test_normal)

    # Normal test clips of the demo data score lower than anomalous ones (nearest-reference cosine).
    assert auc["trained"] > 0.6, auc
    # Training pulls its classes apart on held-out clips: in the embedding its AdaCos head sees ...
    assert separation["trained", "adacos"] > 2.0 * separation["untrained", "adacos"], separation
    # ... and in the multi-level embedding that is scored (BN statistics alone do not get there).
    assert separation["trained", "multi-level"] > 1.15 * separation["untrained", "multi-level"], separation


@pytest.mark.slow  # trains the 8-epoch teacher again: 25-30 s on two busy cores
def test_deterministic_for_a_seed(ws, trained, teacher_config, tmp_path):
    other = _copy(ws, tmp_path / "copy")
    again = train_teacher(other, teacher_config(), device="cpu")
    assert again.model_hash == trained.model_hash
    assert [h["train_loss"] for h in again.history] == [h["train_loss"] for h in trained.history]


@pytest.mark.slow  # trains the 8-epoch teacher again, interrupted and resumed: over 30 s
def test_resume_after_interruption_gives_the_same_model(ws, trained, teacher_config, tmp_path):
    other = _copy(ws, tmp_path / "resume")

    def crash(epoch, entry):
        if epoch == 3:
            raise KeyboardInterrupt("simulated interruption after epoch 3")

    with pytest.raises(KeyboardInterrupt):
        train_teacher(other, teacher_config(), device="cpu", on_epoch_end=crash)
    assert (teacher_dir(other, teacher_config()) / "checkpoint.pt").exists()
    assert not (teacher_dir(other, teacher_config()) / "model.pt").exists()
    resumed = train_teacher(other, teacher_config(), device="cpu")
    assert resumed.resumed_from == 3
    assert resumed.model_hash == trained.model_hash
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in trained.history]


def test_training_on_random_crops(ws, teacher_config, tmp_path):
    """Crops change what the net sees in training, not the embedding's shape (time pooling)."""
    r = train_teacher(_copy(ws, tmp_path / "crops"), teacher_config(epochs=2, crop_seconds=0.5, speed_factors=(1.0,)),
                      device="cpu")
    assert len(r.history) == 2 and all(np.isfinite(h["val_loss"]) for h in r.history)
    net, card = load_teacher(r.model_dir)
    assert card["train"]["crop_seconds"] == 0.5 and card["train"]["speed_factors"] == [1.0]
    with torch.inference_mode():
        assert net(torch.randn(2, 40_000)).shape == (2, TINY_DIM)


def test_early_stopping(ws, teacher_config, tmp_path):
    tiny = teacher_config().model
    r = train_teacher(_copy(ws, tmp_path / "early"), TeacherTrainConfig(model=tiny, epochs=40, patience=1, lr=5e-2, seed=1),
                      device="cpu")
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
