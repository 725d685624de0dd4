"""Ids and versions that stored results are filed under must not change between releases: a new
value would orphan every workspace written before (issue 14, part 3). The pinned values are what
the code produced before the hashing idioms were gathered into asd_core/hashing.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asd_core.datasets.scan import clip_id_for
from asd_core.encoders import get_encoder
from asd_core.mixing.plan import _row_id
from asd_core.pipeline.fingerprint import digest
from asd_core.scoring.config import ScoringConfig
from asd_core.scoring.index_store import config_hash, content_hash
from asd_core.scoring.run import run_id_for
from asd_core.storage.content import audio_key, mixture_key, set_key
from asd_core.training.student import _hash as student_key
from asd_core.training.teacher import TeacherTrainConfig


def test_run_ids_and_index_keys():
    assert run_id_for("teacher", "abc", ScoringConfig("knn")) == "1bf0fe03911a"
    assert run_id_for("stft-mean", "v1", ScoringConfig("gwrp", r=0.5), noisy=True) == "d174429152e3"
    assert config_hash(ScoringConfig("knn", k=2)) == "ae00f958ed42"
    assert content_hash(["a", "b"], np.arange(6, dtype=np.float32).reshape(2, 3)) == \
        "fddd64754a0a3c66a8a68e946f166d05ddcb76feda17c9c8b78ae5c740276d5d"


def test_clip_mixture_and_model_ids():
    assert clip_id_for("demo", "dev_data/raw/fan/train/x.wav") == "7fc13ba67f6b4bf7"
    assert _row_id("c1", "n1", repr(0.5), 3, 0.5) == "e6f20e96e4f56d82"
    assert TeacherTrainConfig().key() == "8aa79df56ec1"
    assert student_key({"cfg": {"a": 1}, "mixtures": ["m1"]}) == "7eab53c47400"
    assert (get_encoder("stft-mean").version, get_encoder("logmel-stats").version) == ("5f00696d1e7e", "e1facdbfd93d")


def test_content_keys_and_stage_digests():
    assert digest({"a": 1, "p": Path("/x")}) == "e351858ccbc96fe1"
    assert audio_key({"sha256": "s", "channel_selection": "0", "pipeline_sample_rate": 16000}) == "29df454c1cb50247"
    row = {"noise_id": "n", "clean_gain": 0.5, "noise_gain": 0.25, "noise_offset": 3, "num_samples": 10}
    assert mixture_key(row, "k") == "28b7eafe1f954ba8"
    assert set_key([("b", "2"), ("a", "1")]) == "1a04f75bd0704a1e"
