"""Ingest one (dataset, machine type) group: probe, validate, decode, write Parquet atomically.

Idempotent: a file whose size, mtime and config match its existing row is not touched; a
file whose bytes hash to the stored sha256 is not decoded again; only changed or new files
are decoded. Audio rows of unchanged clips are copied row group by row group from the old
partition, so memory stays bounded by one row group whatever the dataset size.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from asd_core.config import IngestConfig, Workspace
from asd_core.datasets import audio_io
from asd_core.datasets.audio_io import AudioFileError, AudioInfo
from asd_core.datasets.scan import Candidate, QuarantineRecord
from asd_core.progress import Progress
from asd_core.schemas import CLIPS
from asd_core.storage.atomic import read_parquet_or_empty, write_parquet_atomic
from asd_core.storage.audio import audio_partition_writer, stored_audio_dtype
from asd_core.storage.paths import audio_file, clips_file

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


def _clip_row(cand: Candidate, info: AudioInfo, selection: str, cfg: IngestConfig, mtime_ns: int, sha: str) -> dict:
    p = cand.parsed
    return {
        "clip_id": cand.clip_id, "dataset": cand.dataset, "scheme": p.scheme, "split": p.split,
        "machine_type": p.machine_type, "section": p.section, "domain": p.domain, "label": p.label,
        "attributes": list(p.attributes.items()), "relative_path": cand.relative_path,
        "root": str(cand.root), "sample_rate": info.sample_rate, "channels": info.channels,
        "num_samples": info.num_samples, "duration_s": info.duration_s,
        "channel_selection": selection, "pipeline_sample_rate": cfg.audio.sample_rate,
        "file_size": info.file_size, "file_mtime_ns": mtime_ns, "sha256": sha,
    }


def _same_config(row: dict, cfg: IngestConfig) -> bool:
    expected = "mono" if row["channels"] == 1 else cfg.audio.channel_label
    return row["pipeline_sample_rate"] == cfg.audio.sample_rate and row["channel_selection"] == expected


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
    for cand in candidates:
        path = cand.path
        prev = old_rows.get(cand.clip_id)
        try:
            st = audio_io.stat_file(path)
            if prev and prev["file_size"] == st.st_size and prev["file_mtime_ns"] == st.st_mtime_ns and _same_config(prev, cfg):
                kept[cand.clip_id] = _refresh_parsed(prev, cand)
                continue
            info = audio_io.probe(path)
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

    reused_ids = {cid for cid in kept if cid in old_rows}
    result.reused = len(reused_ids)
    unchanged = not to_decode and reused_ids == set(old_rows) and all(kept[c] == old_rows[c] for c in kept)
    if unchanged:
        result.clips = len(kept)
        return result

    new_rows: dict[str, dict] = {}
    if kept or to_decode:
        progress = Progress(f"ingest {dataset}/{machine_type}", len(to_decode), "clips")
        with audio_partition_writer(apath, audio_dtype, cfg.audio.sample_rate, cfg.audio_rows_per_group,
                                    keep=reused_ids) as add_audio:
            for cand, info, selection, mtime_ns, sha in to_decode:
                try:
                    wave = audio_io.decode(cand.path, info, cfg.audio)
                    wave, warning = audio_io.limit_full_scale(wave, info)
                except AudioFileError as exc:
                    result.quarantined.append(QuarantineRecord(dataset, str(cand.root), cand.relative_path, "decode", str(exc), info.file_size))
                    continue
                if warning:
                    result.warnings.append(f"{cand.path}: {warning}")
                add_audio(cand.clip_id, wave)
                new_rows[cand.clip_id] = _clip_row(cand, info, selection, cfg, mtime_ns, sha)
                result.decoded += 1
                result.decoded_bytes += info.file_size
                progress.update()
        progress.close()
        result.decode_seconds = progress.elapsed
    rows = sorted([*kept.values(), *new_rows.values()], key=lambda r: (r["root"], r["relative_path"]))
    if rows:
        write_parquet_atomic(pa.Table.from_pylist(rows, schema=CLIPS), cpath, CLIPS)
    else:  # every clip of this machine type is gone or quarantined
        for p in (cpath, apath):
            p.unlink(missing_ok=True)
    result.clips = len(rows)
    result.removed = len(old_rows.keys() - {r["clip_id"] for r in rows})
    result.written = True
    return result


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


def _short_reason(duration: float, median: float) -> str:
    return f"clip is {duration:.2f} s, far shorter than the {median:.2f} s median of its machine type"


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
