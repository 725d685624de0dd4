"""Embed flow: one task per shard (audio partition = machine type x dataset), streaming batches.

The flow chooses what each task embeds: the stored clips of a partition or, with ``noisy``, the
noisy test clips of ``asd mix`` rendered from their provenance (asd_core/embedding embeds any
source of (clip id, waveform) batches it is given).

Shards run on the flow's task runner: one at a time by default (the encoder already uses
every core), on Dask workers with ``embed_flow.with_options(task_runner=...)`` (flows/runners.py).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from asd_core.config import DEFAULT_WORKSPACE_NAME, Workspace
from asd_core.embedding import ClipSource, EmbedResult, check_sample_rate, embed_partition, embed_source
from asd_core.encoders import EncoderSpec
from asd_core.mixing.artifacts import check_planned_on, noisy_rows_by_partition
from asd_core.mixing.noise_library import NoiseLibrary, read_noise_library
from asd_core.mixing.render import MixtureBatches
from asd_core.runtime import configure_threads
from asd_core.storage.audio import ChannelError, StoredChannel, choose_channels, partition_sample_rate
from asd_core.storage.content import clip_audio_keys, mixture_key
from asd_core.storage.embeddings import write_encoder_card
from asd_core.storage.paths import audio_partitions, noisy_embedding_file


@task(retries=1, cache_policy=NO_CACHE, task_run_name="embed-{machine_type}-{dataset}")
def embed_task(ws: Workspace, encoder, machine_type: str, dataset: str, audio_path: Path, batch_size: int, workers: int,
               threads: int | None = None, channel: StoredChannel | None = None):
    configure_threads(threads)  # this task may run in another process (a Dask worker)
    return embed_partition(ws, encoder, machine_type, dataset, audio_path, batch_size, workers, channel)


def noisy_clips(ws: Workspace, encoder, machine_type: str, dataset: str, audio_path: Path, rows: list[dict],
                lib: NoiseLibrary, batch_size: int) -> ClipSource:
    """The noisy test clips (``noisy_clips`` rows) whose clean clip is in one audio partition, rendered
    from provenance; an encoder with ``embed_parts`` (the oracle) gets the scaled clean and noise
    parts instead of the mixture. Each is keyed by its mixture key (clean audio + provenance), so a
    changed clean clip or a re-planned gain embeds it again."""
    parts = hasattr(encoder, "embed_parts")
    keys = clip_audio_keys(ws, machine_type, dataset)
    return ClipSource({r["noisy_clip_id"]: mixture_key(r, keys[r["clip_id"]]) if r["clip_id"] in keys else None for r in rows},
                      lambda done: MixtureBatches(audio_path, rows, lib, "noisy_clip_id", done, batch_size, parts=parts),
                      partition_sample_rate(audio_path), parts, what=f"the audio of {dataset}/{machine_type} ({audio_path})")


@task(retries=1, cache_policy=NO_CACHE, task_run_name="embed-noisy-{machine_type}-{dataset}")
def embed_noisy_task(ws: Workspace, encoder, machine_type: str, dataset: str, audio_path: Path, rows: list, lib,
                     batch_size: int, threads: int | None = None):
    configure_threads(threads)
    return embed_source(noisy_embedding_file(ws, encoder.name, encoder.version, machine_type, dataset), encoder,
                        noisy_clips(ws, encoder, machine_type, dataset, audio_path, rows, lib, batch_size),
                        EmbedResult(machine_type, dataset), f"embed {encoder.name} noisy {dataset}/{machine_type}")


@flow(name="asd-embed", task_runner=ThreadPoolTaskRunner(max_workers=1))
def embed_flow(workspace: str = DEFAULT_WORKSPACE_NAME, encoder: str = "logmel-stats", batch_size: int = 16,
               threads: int | None = None, encoder_options: dict | None = None, workers: int = 0,
               noisy: bool = False, channel: str | int | None = None) -> dict:
    """Embed every ingested clip with ``encoder``; clips already embedded by this version are skipped.

    ``encoder_options`` go to the encoder (``beats``: checkpoint, layer, pooling, clip_seconds, clip_mode;
    ``teacher`` / ``student``: model; ``oracle``: teacher, lam). ``noisy`` also embeds the noisy
    test clips planned by ``asd mix`` (audio regenerated from provenance). ``channel``: which stored
    channel to embed (``near``, ``far``, ``mean``, a channel index, ``ch<N>``; default: each clip's
    primary waveform, the near microphone of two-channel recordings); datasets that lack it are left out.
    """
    log = get_run_logger()
    configure_threads(threads)
    ws = Workspace(Path(workspace))
    enc = EncoderSpec(encoder, dict(encoder_options or {})).build()
    parts = audio_partitions(ws)
    if not parts:
        raise FileNotFoundError(f"no ingested audio in {ws.root}; run `asd ingest` first")
    groups = noisy_rows_by_partition(ws) if noisy else {}
    if noisy:  # checked before any work starts
        if not groups:
            raise FileNotFoundError(f"no noisy test clips in {ws.root}; run `asd mix` first")
        check_planned_on([r for rows in groups.values() for r in rows], clip_audio_keys(ws), "noisy test clips")
    for mt, ds, path in parts:  # checked before any work starts
        check_sample_rate(enc, partition_sample_rate(path), f"the audio of {ds}/{mt} ({path})")
    chosen = choose_channels(parts, channel)
    if noisy and any(not c.primary for c in chosen.values()):
        raise ChannelError(f"--noisy embeds the noisy test clips rendered from each clip's primary waveform; "
                           f"embed them without --channel (asked for {channel})")
    for mt, ds, _ in parts:
        if (mt, ds) not in chosen:
            log.warning("%s/%s left out: it has no %s channel", ds, mt, channel)
    write_encoder_card(ws, enc)
    futures = [embed_task.submit(ws, enc, mt, ds, path, batch_size, workers, threads, chosen[(mt, ds)])
               for mt, ds, path in parts if (mt, ds) in chosen]
    if noisy:
        lib = read_noise_library(ws)
        futures += [embed_noisy_task.submit(ws, enc, mt, ds, path, groups[(mt, ds)], lib, batch_size, threads)
                    for mt, ds, path in parts if (mt, ds) in groups]
    results = [f.result() for f in futures]
    report = {"encoder": enc.name, "encoder_version": enc.version, "dim": enc.dim,
              "channels": sorted({r.channel for r in results if r.channel}),
              "embedded": sum(r.embedded for r in results), "reused": sum(r.reused for r in results),
              "partitions": [asdict(r) for r in results]}
    log.info("embedded %d clips with %s (version %s, dim %d); %d already done",
             report["embedded"], enc.name, enc.version, enc.dim, report["reused"])
    return report
