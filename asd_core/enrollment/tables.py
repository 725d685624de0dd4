"""What an enrollment stores in the workspace: its clips like ingested clips (the ``clips`` and
``audio`` partitions of the section's dataset and machine type, split ``train``, the enrolled
domain; a two-channel clip's far channel in ``audio_channels`` as ingest stores it, so a later
``asd embed --channel far`` and fused scoring runs cover the enrolled clips too) and one
``enrollments`` row per clip, each written atomically, then published into DuckDB."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa

from asd_core.config import AudioConfig, IngestConfig, Workspace
from asd_core.datasets import audio_io
from asd_core.enrollment.clips import EnrollmentClip, EnrollmentError
from asd_core.hashing import text_id
from asd_core.schemas import CLIPS, ENROLLMENTS
from asd_core.storage.atomic import read_parquet_or_empty, write_parquet_atomic
from asd_core.storage.audio import audio_partition_writer, partition_clip_ids, stored_audio_dtype
from asd_core.storage.catalog import publish_batches, publish_ingest, transaction
from asd_core.storage.paths import all_files, audio_channels_file, audio_file, clips_file

SCHEME = "enrollment"  # clips.scheme of enrolled clips (the others name a DCASE / MIMII naming scheme)


def enrolled_clip_id(dataset: str, machine_type: str, section: str, domain: str, sha256: str) -> str:
    """Content-keyed: the same recording enrolled into the same section and domain is one clip, whatever
    its file name (enrollment folders need not follow a naming scheme, so names could collide)."""
    return text_id("\0".join((dataset, SCHEME, machine_type, section, domain, sha256)), 16, "sha1")


def store_clips(ws: Workspace, dataset: str, machine_type: str, section: str, domain: str, folder: Path,
                clips: list[EnrollmentClip], sample_rate: int, ids: list[str], audio_cfg: AudioConfig | None = None) -> None:
    """Add the clips to the ``(dataset, machine_type)`` partitions (rows of the same ids are replaced,
    every other row kept), then refresh ``clips`` / ``audio`` in DuckDB. Channels beyond the primary
    one go to the ``audio_channels`` partition, whose other rows are kept."""
    cpath, apath, xpath = clips_file(ws, dataset, machine_type), audio_file(ws, dataset, machine_type), \
        audio_channels_file(ws, dataset, machine_type)
    old = read_parquet_or_empty(cpath, CLIPS).to_pylist()
    rates = {r["pipeline_sample_rate"] for r in old}
    if rates and rates != {sample_rate}:
        raise EnrollmentError(f"{cpath}: the workspace stores {dataset}/{machine_type} at {sorted(rates)} Hz, the model "
                              f"embeds at {sample_rate} Hz; enroll into a workspace ingested at the model's rate")
    new_ids = set(ids)
    kept = [r for r in old if r["clip_id"] not in new_ids]
    audio_cfg = audio_cfg or AudioConfig(sample_rate=sample_rate)  # the model's decoding: channel_selection as ingest's
    dtype = stored_audio_dtype(apath) or audio_cfg.storage_dtype
    rows_per_group = IngestConfig().audio_rows_per_group
    others = any(len(c.stored) > 1 for c in clips)
    rows = []
    with ExitStack() as stack:
        add = stack.enter_context(audio_partition_writer(apath, dtype, sample_rate, rows_per_group,
                                                         keep={r["clip_id"] for r in kept}))
        held = set(partition_clip_ids(xpath)) if xpath.exists() else set()
        add_other = None
        if others or held & new_ids and held - new_ids:  # it gains rows, or loses those of re-enrolled ids
            add_other = stack.enter_context(audio_partition_writer(xpath, dtype, sample_rate, rows_per_group,
                                                                   keep=held - new_ids))
        for cid, c in zip(ids, clips):
            stored = c.stored or ((None, None, c.wave),)
            flags = {}
            for i, (index, role, wave) in enumerate(stored):
                (add if i == 0 else add_other)(cid, wave, index, role)
                flag = audio_io.channel_flag(wave) if len(stored) > 1 else None
                if flag:
                    flags[role] = flag
            rows.append({
                "clip_id": cid, "dataset": dataset, "scheme": SCHEME, "split": "train", "machine_type": machine_type,
                "section": section, "domain": domain, "label": "normal", "attributes": [("enrolled_domain", domain)],
                "relative_path": c.relative_path, "root": str(folder), "sample_rate": c.info.sample_rate,
                "channels": c.info.channels, "num_samples": c.info.num_samples, "duration_s": c.info.duration_s,
                "channel_selection": audio_io.channel_selection(c.info, audio_cfg), "pipeline_sample_rate": sample_rate,
                "file_size": c.info.file_size, "file_mtime_ns": c.path.stat().st_mtime_ns, "sha256": c.sha256,
                "channel_roles": [role for _, role, _ in stored] if len(stored) > 1 else None,
                "channel_flags": list(flags.items()) if flags else None,
            })
    if held and held <= new_ids and not others:  # it held only re-enrolled clips' channels: none now
        xpath.unlink()
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
