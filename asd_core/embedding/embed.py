"""Embed a source of (clip id, waveform) batches with an encoder, streaming (memory stays flat).

What a source is, the caller decides: the stored clips of one audio partition
(:func:`stored_clips`) or, in the embed flow, noisy test clips rendered from their provenance
(mixing/render.py). This module reads and writes through ``storage/`` only.

Output: ``parquet/embeddings/encoder=<name>/version=<v>/machine_type=<mt>/dataset=<ds>/embeddings.parquet``
(storage/paths.py). Idempotent per (clip, content, encoder version): a stored vector is reused
only while its ``content_key`` equals the content key the source gives for the clip
(storage/content.py), so a recording replaced under the same name is embedded again and an
unchanged one is copied. Audio stored at another sample rate than the encoder's is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from asd_core.config import Workspace
from asd_core.encoders.base import Encoder
from asd_core.progress import Progress
from asd_core.storage.atomic import atomic_path
from asd_core.storage.audio import (StoredChannel, channel_clip_ids, channel_file, channel_wave_batches, choose_channel,
                                    num_row_groups, partition_sample_rate)
from asd_core.storage.content import channel_key, clip_audio_keys
from asd_core.storage.embeddings import EmbeddingsWriter, stored_keys
from asd_core.storage.paths import embedding_file


class EmbeddingError(ValueError):
    """An embedding that cannot be used (NaN/inf, wrong shape) or audio it cannot be made from."""


class SampleRateError(EmbeddingError):
    """Audio stored at another sample rate than the encoder expects."""


@dataclass
class EmbedResult:
    machine_type: str
    dataset: str
    embedded: int = 0
    reused: int = 0
    seconds: float = 0.0
    channel: str | None = None  # the channel role embedded (None: not recorded, e.g. noisy clips)


@dataclass
class ClipSource:
    """What to embed.

    ``keys``: every clip id to embed -> the content key its vector is stored with (None when
    unknown); ``batches(done)``: (ids, payload) batches of those clips minus the ``done`` ids, an
    iterable or a torch ``IterableDataset`` (needed for DataLoader workers), payload a list of
    float32 waveforms or, with ``parts``, (clean parts, noise parts) for ``encoder.embed_parts``;
    ``sample_rate``: the rate of that audio (None: no audio, nothing to check); ``what`` names it in errors.
    """

    keys: dict[str, str | None]
    batches: Callable[[set[str]], Iterable]
    sample_rate: int | None
    parts: bool = False
    what: str = "the audio"  # names the audio in errors
    channel: str | None = None  # the channel role of the audio, recorded with each vector


def check_sample_rate(encoder: Encoder, sample_rate: int | None, what: str) -> None:
    """Refuse audio stored at ``sample_rate`` when the encoder expects another rate."""
    if sample_rate is not None and sample_rate != encoder.sample_rate:
        raise SampleRateError(
            f"{what} is stored at {sample_rate} Hz but the {encoder.name} encoder expects {encoder.sample_rate} Hz; "
            f"ingest the data again with --sample-rate {encoder.sample_rate} (in a workspace of its own)")


class AudioBatches(torch.utils.data.IterableDataset):
    """(clip ids, float32 waveforms) batches of one stored channel of an audio partition, skipping
    ``done`` clips.

    Row groups are dealt out to DataLoader workers, so reading and decoding Parquet overlaps
    with the encoder; each worker holds one row group at a time.
    """

    def __init__(self, audio_path: Path, done: set[str], batch_size: int, channel: StoredChannel | None = None):
        self.audio_path, self.done, self.batch_size = audio_path, done, batch_size
        self.channel = channel or StoredChannel("primary", True)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        groups = range(num_row_groups(channel_file(self.audio_path, self.channel)))
        if info is not None:
            groups = groups[info.id :: info.num_workers]
        done = self.done
        yield from channel_wave_batches(self.audio_path, self.channel, self.batch_size, lambda c: c not in done, groups)


def stored_clips(ws: Workspace, machine_type: str, dataset: str, audio_path: Path, batch_size: int = 16,
                 channel: StoredChannel | None = None) -> ClipSource:
    """The ingested clips of one audio partition, each keyed by its audio key; with ``channel``
    (storage/audio.py ``choose_channel``) another stored channel than the primary, keyed by its channel key."""
    channel = channel or choose_channel(audio_path, None, f"{dataset}/{machine_type}")
    keys = clip_audio_keys(ws, machine_type, dataset)
    if not channel.primary:
        keys = {cid: channel_key(key, channel.role) for cid, key in keys.items()}
    what = f"the {'audio' if channel.primary else channel.role + ' channel'} of {dataset}/{machine_type} ({audio_path})"
    return ClipSource({cid: keys.get(cid) for cid in channel_clip_ids(audio_path, channel)},
                      lambda done: AudioBatches(audio_path, done, batch_size, channel), partition_sample_rate(audio_path),
                      what=what, channel=channel.role)


def _as_is(item):
    return item


def embed_partition(ws: Workspace, encoder: Encoder, machine_type: str, dataset: str, audio_path: Path,
                    batch_size: int = 16, workers: int = 0, channel: StoredChannel | None = None) -> EmbedResult:
    """Embed every clip of one audio partition that has no embedding for this encoder version yet.

    ``channel``: which stored channel (default: the primary waveform, written to ``embeddings.parquet``;
    another role goes to ``embeddings.<role>.parquet``). ``workers`` > 0 reads the audio in DataLoader
    worker processes; 0 reads in this process (the better choice on 2 cores, where the encoder already uses both).
    """
    source = stored_clips(ws, machine_type, dataset, audio_path, batch_size, channel)
    suffix = "" if channel is None or channel.primary else f" ({channel.role})"
    return embed_source(embedding_file(ws, encoder.name, encoder.version, machine_type, dataset,
                                       None if channel is None or channel.primary else channel.role),
                        encoder, source, EmbedResult(machine_type, dataset, channel=source.channel),
                        f"embed {encoder.name} {dataset}/{machine_type}{suffix}", workers)


def embed_source(out_path: Path, encoder: Encoder, source: ClipSource, result: EmbedResult, label: str,
                 workers: int = 0) -> EmbedResult:
    """Write embeddings of ``source`` to ``out_path`` (atomic), keeping stored rows whose content key
    still matches; rows of other ids or other content are dropped."""
    check_sample_rate(encoder, source.sample_rate, source.what)
    wanted = source.keys
    embed = (lambda p: encoder.embed_parts(*p)) if source.parts else encoder.embed
    stored = stored_keys(out_path)
    keep = {cid for cid, key in stored.items() if key is not None and wanted.get(cid) == key}
    if keep == set(wanted) and len(stored) == len(keep):
        result.reused = len(keep)
        return result
    progress = Progress(label, len(wanted) - len(keep), "clips")
    with atomic_path(out_path) as tmp, EmbeddingsWriter(tmp, out_path, encoder.name, encoder.version, encoder.dim, keep,
                                                                 source.channel) as writer:
        # spawn, not fork: a fork of a process running Prefect's threads and event loop is not safe
        loader = torch.utils.data.DataLoader(source.batches(keep), batch_size=None, num_workers=workers, collate_fn=_as_is,
                                             multiprocessing_context="spawn" if workers else None)
        for ids, payload in loader:
            vectors = np.asarray(embed(payload), dtype=np.float32)
            if vectors.shape != (len(ids), encoder.dim):
                raise EmbeddingError(f"encoder {encoder.name} returned shape {vectors.shape}, expected ({len(ids)}, {encoder.dim})")
            bad = ~np.isfinite(vectors).all(axis=1)
            if bad.any():
                raise EmbeddingError(f"encoder {encoder.name} produced NaN/inf for clip {ids[int(np.flatnonzero(bad)[0])]} ({label})")
            writer.write(ids, vectors, [wanted[c] for c in ids])
            progress.update(len(ids))
    progress.close()
    result.embedded, result.reused = progress.done, len(keep)
    result.seconds = progress.elapsed
    return result
