"""Ingest one (dataset, machine type) group: probe, validate, decode, write Parquet atomically.

Idempotent: a file whose size, mtime and config match its existing row is not touched; a
file whose bytes hash to the stored sha256 is not decoded again; only changed or new files
are decoded. Audio rows of unchanged clips are copied row group by row group from the old
partition, so memory stays bounded by one row group whatever the dataset size.
"""

from __future__ import annotations

import logging
import statistics
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa

from asd_core.config import IngestConfig, Workspace
from asd_core.datasets import audio_io
from asd_core.datasets.audio_io import AudioFileError, AudioInfo
from asd_core.datasets.scan import Candidate, QuarantineRecord
from asd_core.progress import Progress
from asd_core.schemas import CLIPS
from asd_core.storage.atomic import read_parquet_or_empty, write_parquet_atomic
from asd_core.storage.audio import audio_partition_writer, partition_clip_ids, stored_audio_dtype
from asd_core.storage.paths import audio_channels_file, audio_file, clips_file

logger = logging.getLogger("asd.ingest")


@dataclass
class GroupResult:
    dataset: str
    machine_type: str
    clips: int = 0  # rows in the partition after this run
    decoded: int = 0
    reused: int = 0
    removed: int = 0
    written: bool = False
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # "<path>: <what>" of clips kept with a caveat
    decode_seconds: float = 0.0
    decoded_bytes: int = 0


class ChannelRoleError(ValueError):
    """``--channel near|far`` on a dataset without two-channel files (one line naming it)."""


def _clip_row(cand: Candidate, info: AudioInfo, selection: str, cfg: IngestConfig, mtime_ns: int, sha: str,
              flags: dict[str, str] | None = None) -> dict:
    p = cand.parsed
    return {
        "clip_id": cand.clip_id, "dataset": cand.dataset, "scheme": p.scheme, "split": p.split,
        "machine_type": p.machine_type, "section": p.section, "domain": p.domain, "label": p.label,
        "attributes": list(p.attributes.items()), "relative_path": cand.relative_path,
        "root": str(cand.root), "sample_rate": info.sample_rate, "channels": info.channels,
        "num_samples": info.num_samples, "duration_s": info.duration_s,
        "channel_selection": selection, "pipeline_sample_rate": cfg.audio.sample_rate,
        "file_size": info.file_size, "file_mtime_ns": mtime_ns, "sha256": sha,
        "channel_roles": audio_io.stored_roles(info, cfg.audio), "channel_flags": list(flags.items()) if flags else None,
    }


def _row_info(row: dict) -> AudioInfo:
    return AudioInfo(row["sample_rate"], row["channels"], row["num_samples"], row["file_size"])


def _same_config(row: dict, cfg: IngestConfig) -> bool:
    """The row was stored with the channels (and rate) ``cfg`` keeps now."""
    try:
        plan = audio_io.channel_plan(_row_info(row), cfg.audio)
    except AudioFileError:  # e.g. --channel far on a mono file: probe it again, to quarantine it
        return False
    roles = [role for _, role in plan] if len(plan) > 1 else None
    return (row["pipeline_sample_rate"] == cfg.audio.sample_rate and row["channel_selection"] == plan[0][0]
            and row.get("channel_roles") == roles)


def _refresh_parsed(row: dict, cand: Candidate) -> dict:
    """Metadata from the name (and ground truth) may change without the audio changing."""
    p = cand.parsed
    return {**row, "scheme": p.scheme, "split": p.split, "section": p.section, "domain": p.domain,
            "label": p.label, "attributes": list(p.attributes.items()), "root": str(cand.root)}


def ingest_group(
    ws: Workspace, dataset: str, machine_type: str, candidates: list[Candidate],
    roots_now: list[str], cfg: IngestConfig, unlisted: list[tuple[str, str]] = (),
) -> GroupResult:
    """Bring the partition of ``(dataset, machine_type)`` in line with the files on disk.

    ``unlisted``: (root, sub-folder) pairs the scan could not list; their rows stay as they are.
    """
    result = GroupResult(dataset, machine_type)
    cpath, apath = clips_file(ws, dataset, machine_type), audio_file(ws, dataset, machine_type)
    old = read_parquet_or_empty(cpath, CLIPS).to_pylist()
    old_rows = {r["clip_id"]: r for r in old}
    audio_dtype = stored_audio_dtype(apath) or cfg.audio.storage_dtype

    # Rows of roots not ingested now stay as they are (several roots can feed one dataset).
    kept = {cid: r for cid, r in old_rows.items() if r["root"] not in roots_now or _under(r, unlisted)}
    to_decode: list[tuple[Candidate, AudioInfo, str, int, str]] = []
    no_role: list[QuarantineRecord] = []  # --channel near|far: mono files (an error if no file has two channels)
    for cand in candidates:
        path = cand.path
        prev = old_rows.get(cand.clip_id)
        try:
            st = audio_io.stat_file(path)
            if prev and prev["file_size"] == st.st_size and prev["file_mtime_ns"] == st.st_mtime_ns and _same_config(prev, cfg):
                kept[cand.clip_id] = _refresh_parsed(prev, cand)
                continue
            info = audio_io.probe(path)
            if info.channels == 1 and cfg.audio.channel in ("near", "far"):
                no_role.append(QuarantineRecord(dataset, str(cand.root), cand.relative_path, "probe",
                                                f"mono file: it has no {cfg.audio.channel} channel", info.file_size))
                continue
            selection = audio_io.channel_selection(info, cfg.audio)
            sha = audio_io.sha256_of(path)
        except AudioFileError as exc:  # stat, open, header, hash: broken links and loops included
            result.quarantined.append(QuarantineRecord(dataset, str(cand.root), cand.relative_path, "probe", str(exc), _size(path)))
            continue
        if prev and prev["sha256"] == sha and _same_config(prev, cfg):
            kept[cand.clip_id] = {**_refresh_parsed(prev, cand), "file_mtime_ns": st.st_mtime_ns}
            continue
        to_decode.append((cand, info, selection, st.st_mtime_ns, sha))

    kept, to_decode, short = _drop_short_clips(kept, to_decode, cfg.min_relative_duration, dataset)
    result.quarantined.extend(short)
    kept, to_decode, mono = _drop_mono_in_two_channel(kept, to_decode, no_role, cfg, dataset, machine_type)
    result.quarantined.extend(mono + no_role)

    reused_ids = {cid for cid in kept if cid in old_rows}
    result.reused = len(reused_ids)
    unchanged = not to_decode and reused_ids == set(old_rows) and all(kept[c] == old_rows[c] for c in kept)
    if unchanged:
        result.clips = len(kept)
        return result

    new_rows: dict[str, dict] = {}
    if kept or to_decode:
        progress = Progress(f"ingest {dataset}/{machine_type}", len(to_decode), "clips")
        xpath = audio_channels_file(ws, dataset, machine_type)
        with audio_partition_writer(apath, audio_dtype, cfg.audio.sample_rate, cfg.audio_rows_per_group,
                                    keep=reused_ids) as add_audio, \
                _written_if_any(xpath, audio_dtype, cfg.audio.sample_rate, cfg.audio_rows_per_group,
                                keep=reused_ids) as add_other_channel:
            for cand, info, selection, mtime_ns, sha in to_decode:
                try:
                    channels = [(index, role, *audio_io.limit_full_scale(wave, info))
                                for index, role, wave in audio_io.decode_channels(cand.path, info, cfg.audio)]
                except AudioFileError as exc:
                    result.quarantined.append(QuarantineRecord(dataset, str(cand.root), cand.relative_path, "decode", str(exc), info.file_size))
                    continue
                flags = {}
                for i, (index, role, wave, warning) in enumerate(channels):
                    if warning:
                        result.warnings.append(f"{cand.path}: {warning}" + (f" ({role} channel)" if len(channels) > 1 else ""))
                    flag = audio_io.channel_flag(wave) if len(channels) > 1 else None
                    if flag:
                        flags[role] = flag
                        result.warnings.append(f"{cand.path}: {role} channel is {flag} (flagged in clips.channel_flags)")
                    (add_audio if i == 0 else add_other_channel)(cand.clip_id, wave, index, role)
                new_rows[cand.clip_id] = _clip_row(cand, info, selection, cfg, mtime_ns, sha, flags)
                result.decoded += 1
                result.decoded_bytes += info.file_size
                progress.update()
        progress.close()
        result.decode_seconds = progress.elapsed
    rows = sorted([*kept.values(), *new_rows.values()], key=lambda r: (r["root"], r["relative_path"]))
    if rows:
        write_parquet_atomic(pa.Table.from_pylist(rows, schema=CLIPS), cpath, CLIPS)
    else:  # every clip of this machine type is gone or quarantined
        for p in (cpath, apath, audio_channels_file(ws, dataset, machine_type)):
            p.unlink(missing_ok=True)
    result.clips = len(rows)
    result.removed = len(old_rows.keys() - {r["clip_id"] for r in rows})
    result.written = True
    return result


@contextmanager
def _written_if_any(path: Path, storage_dtype: str, sample_rate: int, rows_per_group: int,
                    keep: set[str]) -> Iterator[Callable[..., None]]:
    """``audio_partition_writer`` for a partition most datasets leave empty (``audio_channels``): opened
    only once it has a row to hold, a kept one of ``path`` or a first added wave. When none comes, no
    file is written and one left by an earlier ingest (of clips that had other channels) is removed."""
    keep = (keep & set(partition_clip_ids(path))) if path.exists() else set()
    with ExitStack() as stack:
        add = None

        def open_writer() -> Callable[..., None]:
            return stack.enter_context(audio_partition_writer(path, storage_dtype, sample_rate, rows_per_group, keep=keep))

        if keep:
            add = open_writer()

        def add_lazily(*args, **kwargs) -> None:
            nonlocal add
            if add is None:
                add = open_writer()
            add(*args, **kwargs)

        yield add_lazily
        if add is None:
            path.unlink(missing_ok=True)


def _under(row: dict, folders: list[tuple[str, str]]) -> bool:
    return any(row["root"] == root and row["relative_path"].startswith(folder + "/") for root, folder in folders)


def _drop_short_clips(kept: dict, to_decode: list, ratio: float, dataset: str):
    """Quarantine clips far shorter than the median of their machine type (truncated recordings)."""
    durations = [r["duration_s"] for r in kept.values()] + [item[1].duration_s for item in to_decode]
    if len(durations) < 3 or ratio <= 0:
        return kept, to_decode, []
    median = statistics.median(durations)
    limit = ratio * median
    short = [
        QuarantineRecord(dataset, r["root"], r["relative_path"], "probe", _short_reason(r["duration_s"], median), r["file_size"])
        for r in kept.values() if r["duration_s"] < limit
    ] + [
        QuarantineRecord(dataset, str(c.root), c.relative_path, "probe", _short_reason(info.duration_s, median), info.file_size)
        for c, info, *_ in to_decode if info.duration_s < limit
    ]
    kept = {cid: r for cid, r in kept.items() if r["duration_s"] >= limit}
    to_decode = [item for item in to_decode if item[1].duration_s >= limit]
    return kept, to_decode, short


def _drop_mono_in_two_channel(kept: dict, to_decode: list, no_role: list, cfg: IngestConfig, dataset: str,
                              machine_type: str):
    """With near/far channels kept (``channel = "auto"``), a mono file among two-channel siblings is
    a recording without its far microphone: quarantined, never mixed in as if it were complete.
    ``channel = "near" | "far"`` on a group without any two-channel file is an error, before anything
    of the group is written."""
    channels = [r["channels"] for r in kept.values()] + [item[1].channels for item in to_decode]
    if cfg.audio.channel in ("near", "far") and (channels or no_role) and 2 not in channels:
        raise ChannelRoleError(f"--channel {cfg.audio.channel}: dataset {dataset} has no two-channel files "
                               f"({machine_type}: {len(channels) + len(no_role)} files, none with near and far channels); "
                               "nothing ingested")
    if not cfg.audio.keeps_several or 2 not in channels:
        return kept, to_decode, []
    reason = f"mono file in a two-channel dataset (other {machine_type} clips have near and far channels)"
    mono = [QuarantineRecord(dataset, r["root"], r["relative_path"], "probe", reason, r["file_size"])
            for r in kept.values() if r["channels"] == 1]
    mono += [QuarantineRecord(dataset, str(c.root), c.relative_path, "probe", reason, info.file_size)
             for c, info, *_ in to_decode if info.channels == 1]
    return ({cid: r for cid, r in kept.items() if r["channels"] != 1},
            [item for item in to_decode if item[1].channels != 1], mono)


def _short_reason(duration: float, median: float) -> str:
    return f"clip is {duration:.2f} s, far shorter than the {median:.2f} s median of its machine type"


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
