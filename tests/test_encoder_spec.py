"""EncoderSpec is the one way encoder options are built: what the CLI, the pipeline and the student
flow describe is what the stored card rebuilds, and keys ignore where model files lie."""

import json

import numpy as np

from asd_core.encoders import EncoderSpec
from asd_core.storage.embeddings import encoder_card


def test_card_round_trip_rebuilds_the_same_encoder():
    for name in ("stft-mean", "logmel-stats"):
        spec = EncoderSpec.spectral(name)
        enc = spec.build()
        card = json.loads(json.dumps(encoder_card(enc)))  # as stored in encoder.json
        again = EncoderSpec.from_card(card)
        assert again == spec
        wave = np.random.default_rng(0).normal(size=16000).astype(np.float32) * 0.1
        np.testing.assert_array_equal(again.build().embed([wave]), enc.embed([wave]))


def test_teacher_folder_and_beats_checkpoint_specs(tmp_path):
    folder = tmp_path / "teacher"
    folder.mkdir()
    specs = EncoderSpec.of_teacher(folder, 0.5, layer=3, pooling="time-mean")
    assert specs == {"teacher": EncoderSpec("teacher", {"model": str(folder)}),
                     "oracle": EncoderSpec("oracle", {"teacher": str(folder), "lam": 0.5})}  # layer/pooling: BEATs only
    ckpt = tmp_path / "beats.pt"
    specs = EncoderSpec.of_teacher(ckpt, 0.5, layer=3, pooling="time-mean")
    assert specs["beats"].options == {"checkpoint": str(ckpt), "layer": 3, "pooling": "time-mean"}
    assert specs["oracle"].options == {"teacher": str(ckpt), "lam": 0.5, "layer": 3, "pooling": "time-mean"}
    assert specs["oracle"].key_options() == {"lam": 0.5, "layer": 3, "pooling": "time-mean"}


def test_bundled_files_resolve_against_the_bundle(tmp_path):
    card = {"registry_name": "teacher", "options": {"model": "/elsewhere/teacher"}, "bundled_files": {"model": "encoder/model"}}
    assert EncoderSpec.from_card(card, tmp_path).options == {"model": str(tmp_path / "encoder/model")}
