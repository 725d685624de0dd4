"""Embedding stage: a source of (clip id, waveform) batches -> ``embeddings`` Parquet, per encoder version."""

from asd_core.embedding.embed import (ClipSource, EmbeddingError, EmbedResult, SampleRateError, check_sample_rate,
                                      embed_partition, embed_source, stored_clips)

__all__ = ["ClipSource", "EmbedResult", "EmbeddingError", "SampleRateError", "check_sample_rate", "embed_partition",
           "embed_source", "stored_clips"]
