"""Training-time views of the teacher (speed classes, random crops) and its learning-rate schedule."""

import math

import numpy as np
import pytest
import torch

from asd_core.training.config import check_factors
from asd_core.training.speed import apply_speeds, change_speed
from asd_core.training.teacher import TeacherTrainConfig


def test_factor_one_is_identity_and_length_is_kept():
    w = torch.randn(2, 1000)
    assert torch.equal(change_speed(w, 1.0), w)
    for f in (0.9, 1.1, 2.0, 0.5):
        out = change_speed(w, f)
        assert out.shape == w.shape and out.dtype == w.dtype


def test_speed_changes_the_frequency_of_a_tone():
    sr, n = 16_000, 16_000
    tone = torch.sin(2 * math.pi * 1000 * torch.arange(n) / sr)[None]
    for f in (0.9, 1.25):
        out = change_speed(tone, f)[0, : int(n / max(f, 1.0)) - 10].numpy()  # the part before any padding
        spec = np.abs(np.fft.rfft(out * np.hanning(out.size)))
        peak = np.argmax(spec) * sr / out.size
        assert abs(peak - 1000 * f) < 5, (f, peak)


def test_faster_clip_is_padded_slower_clip_cropped():
    w = torch.ones(1, 100)
    fast = change_speed(w, 2.0)
    assert torch.all(fast[0, :50] == 1) and torch.all(fast[0, 50:] == 0)
    assert torch.all(change_speed(w, 0.5) == 1)


def test_apply_speeds_per_row():
    w = torch.randn(4, 800)
    before = w.clone()
    which = torch.tensor([0, 1, 0, 2])
    out = apply_speeds(w, which, (1.0, 0.8, 1.25))
    assert torch.equal(out[0], w[0]) and torch.equal(out[2], w[2])
    assert torch.allclose(out[1], change_speed(w[1:2], 0.8)[0])
    assert torch.allclose(out[3], change_speed(w[3:4], 1.25)[0])
    assert torch.equal(w, before)  # the input is not modified in place


@pytest.mark.parametrize("given, expected", [((0.96, 1.0, 1.04), (1.0, 0.96, 1.04)), ((1.1,), (1.0, 1.1)), ((1.0,), (1.0,))])
def test_factor_one_first(given, expected):
    assert check_factors(given) == expected


@pytest.mark.parametrize("bad, message", [((1.0, 3.0), r"\[0.5, 2.0\], got \[3.0\]"), ((1.0, 1.1, 1.1), "repeat")])
def test_bad_factors_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        TeacherTrainConfig(speed_factors=bad)


def test_cosine_schedule_and_config_round_trip():
    cfg = TeacherTrainConfig(epochs=10, lr=0.01)
    lrs = [cfg.epoch_lr(e) for e in range(1, 11)]
    assert lrs[0] == pytest.approx(0.01) and all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] > 0
    assert lrs[5] == pytest.approx(0.005)  # halfway
    flat = TeacherTrainConfig(epochs=10, lr=0.01, lr_schedule="constant")
    assert {flat.epoch_lr(e) for e in range(1, 11)} == {0.01}
    back = TeacherTrainConfig.from_dict(cfg.to_dict())
    assert back == cfg and back.key() == cfg.key() and isinstance(back.speed_factors, tuple)
    with pytest.raises(ValueError, match="unknown lr_schedule 'step'"):
        TeacherTrainConfig(lr_schedule="step")


def test_random_crops_are_windows_of_each_row():
    from asd_core.training.speed import random_crops

    w = torch.arange(3 * 50, dtype=torch.float32).reshape(3, 50)
    out = random_crops(w, 20, np.random.default_rng(0))
    assert out.shape == (3, 20)
    for row, src in zip(out, w):
        start = int(row[0] - src[0])
        assert 0 <= start <= 30 and torch.equal(row, src[start : start + 20])
    again = random_crops(w, 20, np.random.default_rng(0))
    assert torch.equal(out, again)  # offsets come from the generator only
    assert torch.equal(random_crops(w, 50, np.random.default_rng(1)), w)
    assert torch.equal(random_crops(w, 80, np.random.default_rng(1)), w)  # shorter clips stay whole


@pytest.mark.parametrize("crop", [0.0, -1.0])
def test_bad_crop_is_named(crop):
    with pytest.raises(ValueError, match="crop_seconds must be positive"):
        TeacherTrainConfig(crop_seconds=crop)
