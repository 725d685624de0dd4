"""Embed the ``audio`` partitions with an encoder, streaming row groups (memory stays flat).

Output: ``parquet/embeddings/encoder=<name>/version=<v>/machine_type=<mt>/dataset=<ds>/embeddings.parquet``.
Idempotent per (clip, content, encoder version): a stored vector is reused only while its
``content_key`` equals the clip's current audio key (storage/content.py), so a recording
replaced under the same name is embedded again and an unchanged one is copied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from asd_core.config import Workspace
from asd_core.datasets.audio_io import from_storage
from asd_core.encoders.base import Encoder
from asd_core.ingest.layout import hive_value
from asd_core.progress import Progress
from asd_core.schemas import embeddings_schema
from asd_core.storage.atomic import atomic_path
from asd_core.storage.content import clip_audio_keys, mixture_key


class EmbeddingError(ValueError):
    """An embedding that cannot be used (NaN/inf), naming the clip."""


@dataclass
class EmbedResult:
    machine_type: str
    dataset: str
    embedded: int = 0
    reused: int = 0
    seconds: float = 0.0


def embeddings_dir(ws: Workspace, encoder: str, version: str) -> Path:
    return ws.artifact_dir("embeddings") / f"encoder={encoder}" / f"version={version}"


def write_encoder_card(ws: Workspace, encoder: Encoder) -> Path:
    """``encoder.json`` beside the embeddings: what later stages need without loading the model."""
    path = embeddings_dir(ws, encoder.name, encoder.version) / "encoder.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    card = {"name": encoder.name, "version": encoder.version, "dim": encoder.dim, "distance": encoder.distance,
            "sample_rate": encoder.sample_rate, "params": encoder.params(),
            "registry_name": type(encoder).name, "options": getattr(encoder, "options", {})}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(card, indent=2, sort_keys=True))
    return path


def read_encoder_card(ws: Workspace, encoder: str, version: str | None = None) -> dict:
    """The card of ``encoder`` (the only version in the workspace unless ``version`` is given)."""
    base = ws.artifact_dir("embeddings") / f"encoder={encoder}"
    versions = sorted(hive_value(p.parent) for p in base.glob("version=*/encoder.json"))
    if version is None:
        if not versions:
            raise FileNotFoundError(f"no {encoder} embeddings in {ws.root}; run `asd embed --encoder {encoder}` first")
        if len(versions) > 1:
            raise ValueError(f"{encoder} has embeddings of several versions ({', '.join(versions)}); pick one with --encoder-version")
        version = versions[0]
    elif version not in versions:
        raise FileNotFoundError(f"no {encoder} embeddings of version {version} in {ws.root} (found: {', '.join(versions) or 'none'})")
    return json.loads((base / f"version={version}" / "encoder.json").read_text())


def embedding_file(ws: Workspace, encoder: Encoder, machine_type: str, dataset: str) -> Path:
    return embeddings_dir(ws, encoder.name, encoder.version) / f"machine_type={machine_type}" / f"dataset={dataset}" / "embeddings.parquet"


def embedding_files(ws: Workspace, encoder: str, version: str) -> list[Path]:
    return sorted(embeddings_dir(ws, encoder, version).glob("**/embeddings.parquet"))


def audio_partitions(ws: Workspace) -> list[tuple[str, str, Path]]:
    """(machine_type, dataset, path) of every audio partition."""
    return [(hive_value(p.parent.parent), hive_value(p.parent), p)
            for p in sorted(ws.artifact_dir("audio").glob("machine_type=*/dataset=*/audio.parquet"))]


def partition_waves(audio_path: Path, wanted=None):
    """(clip_id, float32 waveform) of one audio partition, streamed (only ``wanted`` ids when given)."""
    for batch in pq.ParquetFile(audio_path).iter_batches(batch_size=64, columns=["clip_id", "waveform"]):
        for cid, wave in zip(batch.column("clip_id").to_pylist(), batch.column("waveform")):
            if wanted is None or cid in wanted:
                yield cid, from_storage(wave.values.to_numpy(zero_copy_only=False))


class AudioBatches(torch.utils.data.IterableDataset):
    """(clip ids, float32 waveforms) batches of one audio partition, skipping ``done`` clips.

    Row groups are dealt out to DataLoader workers, so reading and decoding Parquet overlaps
    with the encoder; each worker holds one row group at a time.
    """

    def __init__(self, audio_path: Path, done: set[str], batch_size: int):
        self.audio_path, self.done, self.batch_size = audio_path, done, batch_size

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        pf = pq.ParquetFile(self.audio_path)
        groups = range(pf.num_row_groups)
        if info is not None:
            groups = groups[info.id :: info.num_workers]
        for g in groups:
            table = pf.read_row_group(g, columns=["clip_id", "waveform"])
            for batch in table.to_batches(max_chunksize=self.batch_size):
                ids = batch.column("clip_id").to_pylist()
                sel = [i for i, c in enumerate(ids) if c not in self.done]
                if sel:
                    waves = batch.column("waveform")
                    yield [ids[i] for i in sel], [from_storage(waves[i].values.to_numpy(zero_copy_only=False)) for i in sel]


def _as_is(item):
    return item


def embed_partition(ws: Workspace, encoder: Encoder, machine_type: str, dataset: str, audio_path: Path,
                    batch_size: int = 16, workers: int = 0) -> EmbedResult:
    """Embed every clip of one audio partition that has no embedding for this encoder version yet.

    ``workers`` > 0 reads the audio in DataLoader worker processes; 0 reads in this process
    (the better choice on 2 cores, where the encoder already uses both).
    """
    out_path = embedding_file(ws, encoder, machine_type, dataset)
    keys = clip_audio_keys(ws, machine_type, dataset)
    audio_ids = pq.read_table(audio_path, columns=["clip_id"]).column("clip_id").to_pylist()
    wanted = {cid: keys.get(cid) for cid in audio_ids}
    return _embed_into(out_path, encoder, wanted, lambda done: AudioBatches(audio_path, done, batch_size),
                       encoder.embed, workers, EmbedResult(machine_type, dataset), f"embed {encoder.name} {dataset}/{machine_type}")


def noisy_embedding_file(ws: Workspace, encoder: Encoder, machine_type: str, dataset: str) -> Path:
    return embedding_file(ws, encoder, machine_type, dataset).with_name("noisy.parquet")


def embed_noisy_partition(ws: Workspace, encoder: Encoder, machine_type: str, dataset: str, audio_path: Path,
                          rows: list[dict], lib, batch_size: int = 16) -> EmbedResult:
    """Embed the noisy test clips (``noisy_clips`` rows) whose clean clip is in this partition.

    The audio is regenerated from provenance; an encoder with ``embed_parts`` (the oracle)
    gets the scaled clean and noise parts instead of the mixture. Each vector is keyed by the
    mixture key (clean audio + provenance), so a changed clean clip or re-planned gain re-embeds.
    """
    from asd_core.mixing.render import MixtureBatches

    parts = hasattr(encoder, "embed_parts")
    embed = (lambda p: encoder.embed_parts(*p)) if parts else encoder.embed
    keys = clip_audio_keys(ws, machine_type, dataset)
    wanted = {r["noisy_clip_id"]: mixture_key(r, keys[r["clip_id"]]) if r["clip_id"] in keys else None for r in rows}
    return _embed_into(noisy_embedding_file(ws, encoder, machine_type, dataset), encoder, wanted,
                       lambda done: MixtureBatches(audio_path, rows, lib, "noisy_clip_id", done, batch_size, parts=parts),
                       embed, 0, EmbedResult(machine_type, dataset), f"embed {encoder.name} noisy {dataset}/{machine_type}")


def _stored_keys(path: Path) -> dict[str, str | None]:
    """clip_id -> content_key of an embeddings file (None for files written before the column existed)."""
    if not path.exists():
        return {}
    table = pq.read_table(path)
    ids = table.column("clip_id").to_pylist()
    keys = table.column("content_key").to_pylist() if "content_key" in table.column_names else [None] * len(ids)
    return dict(zip(ids, keys))


def _embed_into(out_path: Path, encoder: Encoder, wanted: dict[str, str | None], make_dataset, embed, workers: int,
                result: EmbedResult, label: str) -> EmbedResult:
    """Write embeddings of the ``wanted`` ids (id -> content key) to ``out_path`` (atomic), keeping
    stored rows whose content key still matches; rows of other ids or other content are dropped."""
    schema = embeddings_schema(encoder.dim)
    stored = _stored_keys(out_path)
    keep = {cid for cid, key in stored.items() if key is not None and wanted.get(cid) == key}
    if keep == set(wanted) and len(stored) == len(keep):
        result.reused = len(keep)
        return result
    progress = Progress(label, len(wanted) - len(keep), "clips")
    with atomic_path(out_path) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            if keep:
                old = pq.read_table(out_path)
                writer.write_table(old.filter(pa.compute.is_in(old.column("clip_id"), pa.array(sorted(keep)))).cast(schema))
            # spawn, not fork: a fork of a process running Prefect's threads and event loop is not safe
            loader = torch.utils.data.DataLoader(make_dataset(keep), batch_size=None, num_workers=workers, collate_fn=_as_is,
                                                 multiprocessing_context="spawn" if workers else None)
            for ids, payload in loader:
                vectors = np.asarray(embed(payload), dtype=np.float32)
                if vectors.shape != (len(ids), encoder.dim):
                    raise EmbeddingError(f"encoder {encoder.name} returned shape {vectors.shape}, expected ({len(ids)}, {encoder.dim})")
                bad = ~np.isfinite(vectors).all(axis=1)
                if bad.any():
                    raise EmbeddingError(f"encoder {encoder.name} produced NaN/inf for clip {ids[int(np.flatnonzero(bad)[0])]} ({label})")
                writer.write_table(pa.Table.from_arrays([
                    pa.array(ids, pa.string()),
                    pa.array([encoder.name] * len(ids), pa.string()),
                    pa.array([encoder.version] * len(ids), pa.string()),
                    pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), encoder.dim),
                    pa.array([wanted[c] for c in ids], pa.string()),
                ], schema=schema))
                progress.update(len(ids))
    progress.close()
    result.embedded, result.reused = progress.done, len(keep)
    result.seconds = progress.elapsed
    return result


def read_vectors(files: list[Path]) -> tuple[list[str], np.ndarray]:
    """Clip ids and vectors [N, dim] of embedding files (all of one encoder version)."""
    ids, vectors, _ = read_keyed_vectors(files)
    return ids, vectors


def read_keyed_vectors(files: list[Path]) -> tuple[list[str], np.ndarray, list[str | None]]:
    """Clip ids, vectors [N, dim] and content keys (None where a file predates them)."""
    tables = []
    for p in files:
        t = pq.read_table(p)
        if "content_key" not in t.column_names:
            t = t.append_column("content_key", pa.nulls(t.num_rows, pa.string()))
        tables.append(t.select(["clip_id", "vector", "content_key"]))
    table = pa.concat_tables(tables)
    vec = table.column("vector").combine_chunks()
    return (table.column("clip_id").to_pylist(), vec.flatten().to_numpy().reshape(-1, vec.type.list_size),
            table.column("content_key").to_pylist())
