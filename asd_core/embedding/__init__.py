"""Embedding stage: ``audio`` Parquet -> ``embeddings`` Parquet, per encoder version."""

from asd_core.embedding.embed import EmbedResult, EmbeddingError, embed_partition, embedding_files, read_vectors

__all__ = ["EmbedResult", "EmbeddingError", "embed_partition", "embedding_files", "read_vectors"]
