"""Spectral encoders: shapes, dtypes, versions, and values against an independent numpy computation."""

import numpy as np
import pytest

from asd_core.encoders import get_encoder


@pytest.mark.parametrize("name", ["stft-mean", "logmel-stats"])
def test_shapes_dtypes_and_versions(name):
    enc = get_encoder(name)
    rng = np.random.default_rng(0)
    batch = [rng.normal(size=16000).astype(np.float32) * 0.1, rng.normal(size=23456).astype(np.float32) * 0.1]
    out = enc.embed(batch)
    assert out.shape == (2, enc.dim) and out.dtype == np.float32 and np.isfinite(out).all()
    assert enc.version == get_encoder(name).version and len(enc.version) == 12
    assert enc.distance in ("cosine", "euclidean")


def test_stft_mean_matches_numpy():
    enc = get_encoder("stft-mean")
    x = np.random.default_rng(1).normal(size=8000).astype(np.float32)
    pad = np.pad(x, 512, mode="reflect")  # torch.stft center=True pads n_fft/2 by reflection
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)  # periodic Hann
    frames = np.stack([pad[i : i + 1024] * win for i in range(0, len(pad) - 1024 + 1, 512)])
    want = np.abs(np.fft.rfft(frames, axis=1)).mean(0)
    np.testing.assert_allclose(enc.embed([x])[0], want, rtol=1e-4, atol=1e-4)


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown encoder 'beatz'; choose one of beats, logmel-stats, oracle, stft-mean, student, teacher"):
        get_encoder("beatz")


def test_nan_embedding_names_the_clip(tmp_path):
    """An encoder that yields NaN stops the embed stage with the clip named."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from asd_core.config import Workspace
    from asd_core.embedding import EmbeddingError, embed_partition
    from asd_core.encoders.spectral import StftMean
    from asd_core.schemas import audio_schema

    class Broken(StftMean):
        name = "broken"

        def embed(self, batch):
            out = super().embed(batch)
            out[-1, 3] = np.nan
            return out

    ws = Workspace(tmp_path)
    audio = tmp_path / "audio.parquet"
    pq.write_table(pa.table({"clip_id": ["a", "b"], "sample_rate": pa.array([16000, 16000], pa.int32()),
                             "waveform": pa.array([[1, 2, 3] * 400, [4, 5, 6] * 400], pa.list_(pa.int16())),
                             "channel": pa.array([0, 0], pa.int16()), "role": ["mono", "mono"]},
                            schema=audio_schema("int16")), audio)
    with pytest.raises(EmbeddingError, match="NaN/inf for clip b"):
        embed_partition(ws, Broken(), "fan", "demo", audio)
    assert not list(ws.parquet.rglob("*.parquet"))  # nothing half-written


def test_embedding_with_dataloader_workers_equals_in_process(tmp_path):
    """Worker processes deal out row groups; the embeddings are the same as reading in-process."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from asd_core.config import Workspace
    from asd_core.embedding import embed_partition
    from asd_core.schemas import audio_schema

    rng = np.random.default_rng(0)
    ids = [f"c{i:02d}" for i in range(20)]
    waves = [rng.integers(-3000, 3000, 8000).astype(np.int16) for _ in ids]
    audio = tmp_path / "audio.parquet"
    pq.write_table(pa.table({"clip_id": ids, "sample_rate": pa.array([16000] * 20, pa.int32()),
                             "waveform": pa.array(waves, pa.list_(pa.int16())),
                             "channel": pa.nulls(20, pa.int16()), "role": pa.nulls(20, pa.string())},
                            schema=audio_schema("int16")),
                   audio, row_group_size=4)
    enc = get_encoder("stft-mean")
    out = {}
    for workers in (0, 2):
        ws = Workspace(tmp_path / f"ws{workers}")
        r = embed_partition(ws, enc, "fan", "d", audio, batch_size=3, workers=workers)
        assert r.embedded == 20
        t = pq.read_table(next(ws.parquet.rglob("embeddings.parquet")))
        out[workers] = dict(zip(t.column("clip_id").to_pylist(), t.column("vector").to_pylist()))
    assert out[0].keys() == out[2].keys() == set(ids)
    for cid in ids:
        np.testing.assert_array_equal(out[0][cid], out[2][cid])
