"""Stored waveforms: the ``audio`` partitions, written by ingest and read by every later stage.

One partition per (machine type, dataset) (storage/paths.py ``audio_file``), one row per clip:
``clip_id``, ``sample_rate`` (the pipeline rate the clip was resampled to), ``waveform`` (int16
PCM counts or float32 in [-1, 1], schemas.py ``audio_schema``), and the ``channel`` / ``role`` it
comes from: the clip's primary waveform, the one every stage reads. The other stored channels of
multichannel clips (the far microphone of DCASE 2026 clips, ``--channels all``) sit in the
``audio_channels`` partition beside it, same schema (``channel_waves`` reads a role from both).
Readers get float32 in [-1, 1] either way and stream one row group at a time, so memory stays flat.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from asd_core.config import Workspace
from asd_core.schemas import audio_schema
from asd_core.storage.atomic import atomic_path
from asd_core.storage.paths import all_files, audio_channels_path, audio_partitions

__all__ = ["ChannelError", "StoredChannel", "audio_partition_writer", "audio_partitions", "channel_wave_batches",
           "channel_waves", "choose_channel", "choose_channels", "from_storage", "num_row_groups", "partition_clip_ids", "partition_roles",
           "partition_sample_rate", "partition_waves", "read_waves", "stored_audio_dtype", "stream_waves", "to_storage",
           "wave_batches"]

READ_BATCH = 64  # rows per chunk of partition_waves


def to_storage(wave: np.ndarray, storage_dtype: str) -> np.ndarray:
    """float32 [-1, 1] -> the stored dtype (int16 PCM counts are exact for PCM16 sources)."""
    if storage_dtype == "float32":
        return wave.astype(np.float32, copy=False)
    return np.clip(np.rint(wave * 32768.0), -32768, 32767).astype(np.int16)


def from_storage(values: np.ndarray) -> np.ndarray:
    """Stored waveform -> float32 in [-1, 1]."""
    if values.dtype == np.int16:
        return values.astype(np.float32) / 32768.0
    return values.astype(np.float32, copy=False)


def _wave(value) -> np.ndarray:
    """One ``waveform`` list value of a record batch -> float32 in [-1, 1]."""
    return from_storage(value.values.to_numpy(zero_copy_only=False))


# --- reading ---------------------------------------------------------------------------------------

def partition_sample_rate(audio_path: Path) -> int | None:
    """The sample rate the clips of one partition are stored at (the pipeline rate of their
    ingest); None for a partition without clips."""
    rates = sorted(set(pq.read_table(audio_path, columns=["sample_rate"]).column("sample_rate").to_pylist()))
    if len(rates) > 1:
        raise ValueError(f"{audio_path}: clips stored at several sample rates ({', '.join(map(str, rates))} Hz); "
                         "ingest the data again")
    return rates[0] if rates else None


def partition_clip_ids(audio_path: Path) -> list[str]:
    """The clip ids of one partition, in stored order (no audio read)."""
    return pq.read_table(audio_path, columns=["clip_id"]).column("clip_id").to_pylist()


def wave_batches(audio_path: Path, batch_size: int, keep: Callable[[str], bool] | None = None,
                 row_groups: Iterable[int] | None = None, role: str | None = None
                 ) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    """(clip ids, float32 waveforms) of one audio partition, one row group at a time: each row group
    cut into chunks of ``batch_size`` rows, of which only the ids ``keep`` accepts are decoded and
    yielded (chunks left empty are skipped). ``row_groups`` limits the reading to those groups
    (a DataLoader worker's share); ``role`` to the rows of that channel role (``audio_channels``)."""
    pf = pq.ParquetFile(audio_path)
    columns = ["clip_id", "waveform"] + (["role"] if role is not None else [])
    for g in range(pf.num_row_groups) if row_groups is None else row_groups:
        table = pf.read_row_group(g, columns=columns)
        if role is not None:
            table = table.filter(pc.fill_null(pc.equal(table.column("role"), role), False))
        for batch in table.to_batches(max_chunksize=batch_size):
            ids = batch.column("clip_id").to_pylist()
            sel = [i for i, c in enumerate(ids) if keep is None or keep(c)]
            if sel:
                waves = batch.column("waveform")
                yield [ids[i] for i in sel], [_wave(waves[i]) for i in sel]


def num_row_groups(audio_path: Path) -> int:
    return pq.ParquetFile(audio_path).num_row_groups


def partition_waves(audio_path: Path, wanted=None) -> Iterator[tuple[str, np.ndarray]]:
    """(clip_id, float32 waveform) of one audio partition, streamed (only ``wanted`` ids when given)."""
    for ids, waves in wave_batches(audio_path, READ_BATCH, None if wanted is None else wanted.__contains__):
        yield from zip(ids, waves)


def stream_waves(ws: Workspace, wanted: set[str]) -> Iterator[tuple[str, np.ndarray]]:
    """(clip_id, float32 waveform) of the ``wanted`` clip ids, streamed from every audio partition."""
    for _, _, path in audio_partitions(ws):
        yield from partition_waves(path, wanted)


def read_waves(ws: Workspace, wanted: set[str], transform: Callable[[np.ndarray], np.ndarray] | None = None
               ) -> dict[str, np.ndarray]:
    """float32 waveforms of the ``wanted`` clip ids, in memory (``storage.scratch`` holds large sets on disk)."""
    return {cid: transform(wave) if transform else wave for cid, wave in stream_waves(ws, wanted)}


def channel_waves(ws: Workspace, role: str, wanted: set[str] | None = None) -> dict[str, np.ndarray]:
    """float32 waveforms of one channel role (``near``, ``far``, ``ch3``, ``mono``, ...) of the
    ``wanted`` clips (all when None), from the primary partitions and the ``audio_channels`` ones."""
    out = {}
    for path in [p for _, _, p in audio_partitions(ws)] + all_files(ws, "audio_channels"):
        pf = pq.ParquetFile(path)
        if "role" not in pf.schema_arrow.names:  # written before channels had roles: primary rows only
            continue
        for g in range(pf.num_row_groups):
            table = pf.read_row_group(g, columns=["clip_id", "role", "waveform"])
            mask = pc.equal(table.column("role"), role)
            if wanted is not None:
                mask = pc.and_(mask, pc.is_in(table.column("clip_id"), value_set=pa.array(sorted(wanted), pa.string())))
            sel = table.filter(pc.fill_null(mask, False))
            for cid, value in zip(sel.column("clip_id").to_pylist(), sel.column("waveform")):
                out[cid] = _wave(value)
    return out


# --- choosing a channel -----------------------------------------------------------------------------

MEAN = "mean"


class ChannelError(ValueError):
    """A channel that a partition does not store (``--channel far`` on mono data, a bad index)."""


@dataclass(frozen=True)
class StoredChannel:
    """Which waveform of a partition's clips a stage reads: ``role`` (near, far, ch<N>, mono, mean)
    and whether it is the partition's primary waveform (the one every stage reads by default);
    ``mean`` that is not primary averages every stored channel of a clip."""

    role: str
    primary: bool


def partition_roles(audio_path: Path) -> tuple[dict[str, int | None], dict[str, int | None]]:
    """The channels one partition stores, as role -> channel index: those of its primary waveforms
    and those of its ``audio_channels`` file (partitions written before channels had roles:
    ``{"primary": None}``, nothing else)."""
    found = []
    for path in (audio_path, audio_channels_path(audio_path)):
        roles: dict[str, int | None] = {}
        if path.exists() and "role" in pq.read_schema(path).names:
            table = pq.read_table(path, columns=["channel", "role"]).group_by(["role", "channel"]).aggregate([])
            for role, channel in sorted(zip(table.column("role").to_pylist(), table.column("channel").to_pylist()),
                                        key=lambda rc: (rc[0] is None, str(rc[0]))):
                roles.setdefault(role or "primary", channel)
        found.append(roles)
    return found[0] or {"primary": None}, found[1]


def choose_channel(audio_path: Path, request: str | int | None, what: str) -> StoredChannel:
    """The stored channel ``request`` names in one partition: None (the primary), a role (``near``,
    ``far``, ``ch3``, ``mono``), a channel index of the file, or ``mean`` (of every stored channel).
    ``what`` names the partition in the error when it has no such channel."""
    primary, extra = partition_roles(audio_path)
    if request is None or request in primary:
        return StoredChannel(next(iter(primary)) if request is None and len(primary) == 1 else str(request or "primary"), True)
    if request == MEAN:
        return StoredChannel(MEAN, not extra)  # one stored channel: its mean is itself
    if isinstance(request, int) or str(request).isdigit():
        index = int(request)
        if any(c == index for c in primary.values()):
            return StoredChannel(next(r for r, c in primary.items() if c == index), True)
        found = [r for r, c in extra.items() if c == index]
        if not found:
            raise ChannelError(f"{what} stores no channel {index} (stored: {_describe(primary, extra)})")
        return StoredChannel(found[0], False)
    if request not in extra:
        hint = (" (two-channel recordings keep both channels unless ingested with --channel N|mean|near|far)"
                if request in ("near", "far") else "")
        raise ChannelError(f"{what} has no {request} channel (stored: {_describe(primary, extra)}){hint}")
    return StoredChannel(str(request), False)


def choose_channels(parts: list[tuple[str, str, Path]], channel: str | int | None
                    ) -> dict[tuple[str, str], StoredChannel]:
    """The stored channel ``channel`` names in each audio partition; partitions without it are left
    out, and a channel no partition has is an error naming the datasets."""
    chosen, missing = {}, []
    for mt, ds, path in parts:
        try:
            chosen[(mt, ds)] = choose_channel(path, channel, f"{ds}/{mt}")
        except ChannelError as exc:
            missing.append(str(exc))
    if not chosen:
        datasets = sorted({ds for _, ds, _ in parts})
        raise ChannelError(f"no ingested dataset has a {channel} channel ({', '.join(datasets)}): {missing[0]}")
    return chosen


def _describe(*role_maps: dict[str, int | None]) -> str:
    return ", ".join(r if c is None else f"{r} (channel {c})" for m in role_maps for r, c in m.items())


def channel_wave_batches(audio_path: Path, channel: StoredChannel, batch_size: int, keep: Callable[[str], bool] | None = None,
                         row_groups: Iterable[int] | None = None) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    """``wave_batches`` of one stored channel of a partition (``row_groups`` of the file it lives in:
    the partition itself for the primary and the mean, its ``audio_channels`` file otherwise)."""
    if channel.primary:
        yield from wave_batches(audio_path, batch_size, keep, row_groups)
    elif channel.role == MEAN:
        extra = audio_channels_path(audio_path)
        for ids, waves in wave_batches(audio_path, batch_size, keep, row_groups):
            others = _waves_of(extra, ids)
            yield ids, [_mean([w, *others.get(c, [])]) for c, w in zip(ids, waves)]
    else:
        yield from wave_batches(audio_channels_path(audio_path), batch_size, keep, row_groups, role=channel.role)


def channel_file(audio_path: Path, channel: StoredChannel) -> Path:
    """The file whose row groups ``channel_wave_batches`` reads for ``channel``."""
    return audio_path if channel.primary or channel.role == MEAN else audio_channels_path(audio_path)


def channel_clip_ids(audio_path: Path, channel: StoredChannel) -> list[str]:
    """The clip ids that have ``channel`` in one partition, in stored order."""
    if channel.primary or channel.role == MEAN:
        return partition_clip_ids(audio_path)
    table = pq.read_table(audio_channels_path(audio_path), columns=["clip_id", "role"])
    return table.filter(pc.fill_null(pc.equal(table.column("role"), channel.role), False)).column("clip_id").to_pylist()


def _waves_of(path: Path, ids: list[str]) -> dict[str, list[np.ndarray]]:
    """Every stored wave of ``ids`` in an ``audio_channels`` file (row groups outside the ids'
    range are skipped by their statistics)."""
    out: dict[str, list[np.ndarray]] = {}
    if not path.exists():
        return out
    table = pq.read_table(path, columns=["clip_id", "waveform"], filters=[("clip_id", "in", list(ids))])
    for cid, value in zip(table.column("clip_id").to_pylist(), table.column("waveform")):
        out.setdefault(cid, []).append(_wave(value))
    return out


def _mean(waves: list[np.ndarray]) -> np.ndarray:
    if len(waves) == 1:
        return waves[0]
    return (np.sum(waves, axis=0, dtype=np.float64) / len(waves)).astype(np.float32)


# --- writing ---------------------------------------------------------------------------------------

def stored_audio_dtype(audio_path: Path) -> str | None:
    """``int16`` or ``float32``: how an existing partition stores its samples (None if there is none)."""
    if not audio_path.exists():
        return None
    value_type = pq.read_schema(audio_path).field("waveform").type.value_type
    return "int16" if value_type == pa.int16() else "float32"


@contextmanager
def audio_partition_writer(audio_path: Path, storage_dtype: str, sample_rate: int, rows_per_group: int,
                           keep: Iterable[str] = ()) -> Iterator[Callable[..., None]]:
    """Rewrite one audio partition atomically; yields ``add(clip_id, float32 wave, channel=None, role=None)``.

    The rows of the partition as it is whose ids are in ``keep`` are copied first, then every
    added wave is converted to ``storage_dtype`` and written, ``rows_per_group`` clips per row
    group (bounds the memory of every reader). The new partition replaces the old one only if
    the block succeeds.
    """
    schema = audio_schema(storage_dtype)
    keep = set(keep)
    with atomic_path(audio_path) as tmp:
        writer = pq.ParquetWriter(tmp, schema, compression="zstd")
        try:
            _copy_rows(audio_path, writer, keep)
            buffer: list[tuple] = []

            def add(clip_id: str, wave: np.ndarray, channel: int | None = None, role: str | None = None) -> None:
                buffer.append((clip_id, to_storage(wave, storage_dtype), channel, role))
                if len(buffer) >= rows_per_group:
                    _write_rows(writer, schema, buffer, sample_rate)
                    buffer.clear()

            yield add
            if buffer:
                _write_rows(writer, schema, buffer, sample_rate)
        finally:
            writer.close()


def _copy_rows(audio_path: Path, writer: pq.ParquetWriter, ids: set[str]) -> None:
    if not ids or not audio_path.exists():
        return
    pf = pq.ParquetFile(audio_path)
    for i in range(pf.num_row_groups):
        rg = pf.read_row_group(i)
        sel = rg.filter(pc.is_in(rg.column("clip_id"), value_set=pa.array(sorted(ids))))
        if sel.num_rows:
            for name in writer.schema.names:  # rows written before a column existed: null there
                if name not in sel.column_names:
                    sel = sel.append_column(writer.schema.field(name), pa.nulls(sel.num_rows, writer.schema.field(name).type))
            writer.write_table(sel.select(writer.schema.names).cast(writer.schema))


def _write_rows(writer: pq.ParquetWriter, schema: pa.Schema, buffer: list[tuple], sr: int) -> None:
    value_type = schema.field("waveform").type.value_type
    offsets = np.concatenate([[0], np.cumsum([len(b[1]) for b in buffer])]).astype(np.int32)
    waves = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate([b[1] for b in buffer]), type=value_type))
    table = pa.Table.from_arrays(
        [pa.array([b[0] for b in buffer], pa.string()), pa.array([sr] * len(buffer), pa.int32()), waves,
         pa.array([b[2] for b in buffer], pa.int16()), pa.array([b[3] for b in buffer], pa.string())],
        schema=schema,
    )
    writer.write_table(table)
