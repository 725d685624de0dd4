"""What an enrollment stores in the workspace: its clips like ingested clips (the ``clips`` and
``audio`` partitions of the section's dataset and machine type, split ``train``, the enrolled
domain) and one ``enrollments`` row per clip, each written atomically, then published into DuckDB."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from asd_core.config import AudioConfig, IngestConfig, Workspace
from asd_core.datasets import audio_io
from asd_core.enrollment.clips import EnrollmentClip, EnrollmentError
from asd_core.hashing import text_id
from asd_core.schemas import CLIPS, ENROLLMENTS
from asd_core.storage.atomic import read_parquet_or_empty, write_parquet_atomic
from asd_core.storage.audio import audio_partition_writer, stored_audio_dtype
from asd_core.storage.catalog import publish_batches, publish_ingest, transaction
from asd_core.storage.paths import all_files, audio_file, clips_file

SCHEME = "enrollment"  # clips.scheme of enrolled clips (the others name a DCASE / MIMII naming scheme)


def enrolled_clip_id(dataset: str, machine_type: str, section: str, domain: str, sha256: str) -> str:
    """Content-keyed: the same recording enrolled into the same section and domain is one clip, whatever
    its file name (enrollment folders need not follow a naming scheme, so names could collide)."""
    return text_id("\0".join((dataset, SCHEME, machine_type, section, domain, sha256)), 16, "sha1")


def store_clips(ws: Workspace, dataset: str, machine_type: str, section: str, domain: str, folder: Path,
                clips: list[EnrollmentClip], sample_rate: int, ids: list[str]) -> None:
    """Add the clips to the ``(dataset, machine_type)`` partitions (rows of the same ids are replaced,
    every other row kept), then refresh ``clips`` / ``audio`` in DuckDB."""
    cpath, apath = clips_file(ws, dataset, machine_type), audio_file(ws, dataset, machine_type)
    old = read_parquet_or_empty(cpath, CLIPS).to_pylist()
    rates = {r["pipeline_sample_rate"] for r in old}
    if rates and rates != {sample_rate}:
        raise EnrollmentError(f"{cpath}: the workspace stores {dataset}/{machine_type} at {sorted(rates)} Hz, the model "
                              f"embeds at {sample_rate} Hz; enroll into a workspace ingested at the model's rate")
    new_ids = set(ids)
    kept = [r for r in old if r["clip_id"] not in new_ids]
    audio_cfg = AudioConfig(sample_rate=sample_rate)
    rows = []
    with audio_partition_writer(apath, stored_audio_dtype(apath) or audio_cfg.storage_dtype, sample_rate,
                                IngestConfig().audio_rows_per_group, keep={r["clip_id"] for r in kept}) as add:
        for cid, c in zip(ids, clips):
            add(cid, c.wave)
            rows.append({
                "clip_id": cid, "dataset": dataset, "scheme": SCHEME, "split": "train", "machine_type": machine_type,
                "section": section, "domain": domain, "label": "normal", "attributes": [("enrolled_domain", domain)],
                "relative_path": c.relative_path, "root": str(folder), "sample_rate": c.info.sample_rate,
                "channels": c.info.channels, "num_samples": c.info.num_samples, "duration_s": c.info.duration_s,
                "channel_selection": audio_io.channel_selection(c.info, audio_cfg), "pipeline_sample_rate": sample_rate,
                "file_size": c.info.file_size, "file_mtime_ns": c.path.stat().st_mtime_ns, "sha256": c.sha256,
            })
    rows = sorted([*kept, *rows], key=lambda r: (r["root"], r["relative_path"]))
    write_parquet_atomic(pa.Table.from_pylist(rows, schema=CLIPS), cpath, CLIPS)
    publish_ingest(ws)


def enrollment_file(ws: Workspace, enrollment_id: str) -> Path:
    return ws.artifact_dir("enrollments") / f"enrollment={enrollment_id}" / "enrollments.parquet"


def write_enrollment(ws: Workspace, enrollment_id: str, rows: list[dict]) -> None:
    """One immutable Parquet file per enrollment, then every file DuckDB lacks is inserted."""
    write_parquet_atomic(pa.Table.from_pylist(rows, schema=ENROLLMENTS), enrollment_file(ws, enrollment_id), ENROLLMENTS)
    publish(ws)


def publish(ws: Workspace) -> int:
    """Insert the enrollments DuckDB does not hold yet (a run killed after its Parquet is completed here)."""
    with transaction(ws) as con:
        return publish_batches(con, "enrollments", all_files(ws, "enrollments"), "enrollment_id")


def registered_version(ws: Workspace, enrollment_id: str) -> str | None:
    """The version an earlier run of this very enrollment registered, if its Parquet exists."""
    path = enrollment_file(ws, enrollment_id)
    if not path.exists():
        return None
    import pyarrow.parquet as pq

    versions = set(pq.read_table(path, columns=["model_version"]).column(0).to_pylist())
    return versions.pop() if len(versions) == 1 else None
