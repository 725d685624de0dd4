"""Drop one whole dataset from a workspace: the explicit counterpart of a root that went missing.

Removed: the dataset's ``clips``, ``audio`` and ``quarantine`` Parquet partitions, its embeddings
(clean and noisy, every encoder and version) and its FAISS index folders; ``asd.duckdb`` is then
republished without it. Kept, and said so: the scores of earlier runs (``scores`` rows are the
record of what a run produced; the metric views join ``clips``, so they drop out of every metric
and come back if the dataset is ingested again under the same name, clip ids being stable),
training mixtures and noisy test clips planned on its clips (the next ``asd mix`` plans without
them) and registered model bundles (MLflow history).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from asd_core.config import Workspace
from asd_core.storage.paths import hive_value, quarantine_file


class UnknownDatasetError(ValueError):
    """The dataset is not in the workspace; ``str(exc)`` lists the known ones."""


@dataclass
class ForgetReport:
    """What :func:`forget_dataset` removed (or, in a dry run, would remove)."""

    dataset: str
    workspace: Path
    dry_run: bool
    clips: int = 0  # clip rows in the clips partitions
    quarantined: int = 0  # quarantine rows
    clip_partitions: list[Path] = field(default_factory=list)
    audio_partitions: list[Path] = field(default_factory=list)
    quarantine_files: list[Path] = field(default_factory=list)
    embedding_files: list[Path] = field(default_factory=list)  # embeddings.parquet / noisy.parquet
    index_folders: list[Path] = field(default_factory=list)
    catalog_rows: int = 0  # clips + quarantine rows of the dataset in asd.duckdb before the republish
    # Kept (see the module docstring), reported so nobody is surprised.
    scores: int = 0
    runs: int = 0
    mixtures: int = 0
    noisy_clips: int = 0

    @property
    def nothing(self) -> bool:
        """True when there is nothing of the dataset to remove."""
        return not (self.clip_partitions or self.audio_partitions or self.quarantine_files
                    or self.embedding_files or self.index_folders or self.catalog_rows)

    def lines(self) -> list[str]:
        """One line per kind of thing removed (or that would be), then what is kept."""
        verb = "would remove" if self.dry_run else "removed"
        if self.nothing:
            return [f"dataset {self.dataset!r}: nothing to remove in {self.workspace}"]
        out = [f"dataset {self.dataset!r} in {self.workspace}: {verb}"]
        listing = [
            (f"{self.clips} clips in {len(self.clip_partitions)} clips partition(s)", self.clip_partitions),
            (f"{len(self.audio_partitions)} audio partition(s)", self.audio_partitions),
            (f"{self.quarantined} quarantine row(s)", self.quarantine_files),
            (f"{len(self.embedding_files)} embedding file(s)", self.embedding_files),
            (f"{len(self.index_folders)} index folder(s)", self.index_folders),
        ]
        for text, paths in listing:
            if paths:
                out.append(f"  {text}: " + ", ".join(str(p.relative_to(self.workspace)) for p in paths))
        if self.catalog_rows:
            out.append(f"  its {self.catalog_rows} rows of the clips and quarantine tables in {self.workspace / 'asd.duckdb'}")
        if self.scores:
            out.append(f"kept: {self.scores} scores of {self.runs} run(s) (they drop out of the metric views)")
        if self.mixtures or self.noisy_clips:
            out.append(f"kept until the next `asd mix`: {self.mixtures} training mixtures and "
                       f"{self.noisy_clips} noisy test clips planned on its clips")
        return out


def known_datasets(ws: Workspace) -> list[str]:
    """Every dataset name with a partition, embeddings or indexes in the workspace."""
    names: set[str] = set()
    for artifact, pattern in (("clips", "dataset=*"), ("quarantine", "dataset=*"), ("audio", "machine_type=*/dataset=*"),
                              ("embeddings", "encoder=*/version=*/machine_type=*/dataset=*")):
        names.update(hive_value(p) for p in ws.artifact_dir(artifact).glob(pattern) if p.is_dir())
    if ws.indexes.is_dir():
        names.update(p.name for enc in ws.indexes.iterdir() if enc.is_dir() for p in enc.iterdir() if p.is_dir())
    names.update(_catalog_datasets(ws))
    return sorted(names)


def forget_dataset(ws: Workspace, dataset: str, dry_run: bool = False) -> ForgetReport:
    """Remove everything ingested or derived from ``dataset`` (nothing in a dry run), then republish DuckDB.

    Holds the workspace lock, so it refuses while a pipeline run uses the workspace.
    """
    known = known_datasets(ws)
    if dataset not in known or "/" in dataset or dataset in (".", ".."):
        listed = ", ".join(known) if known else "none"
        raise UnknownDatasetError(f"dataset {dataset!r} is not in workspace {ws.root}; known datasets: {listed}")
    report = _survey(ws, dataset, dry_run)
    if dry_run or report.nothing:
        return report
    from asd_core.storage.lock import workspace_lock
    from asd_core.storage.catalog import publish_ingest

    with workspace_lock(ws, owner=f"asd forget --dataset {dataset}"):
        # Derived artifacts first, the clips last: an interrupted run leaves the dataset known, and
        # running forget again finishes the job.
        for folder in report.index_folders:
            shutil.rmtree(folder)
            if not any(folder.parent.iterdir()):
                folder.parent.rmdir()
        for path in report.embedding_files:
            path.unlink(missing_ok=True)
        _remove_dataset_folders(ws.artifact_dir("embeddings"), dataset)
        for path in report.audio_partitions + report.quarantine_files + report.clip_partitions:
            path.unlink(missing_ok=True)
        _remove_dataset_folders(ws.artifact_dir("audio"), dataset)
        _remove_dataset_folders(ws.artifact_dir("audio_channels"), dataset)
        _remove_dataset_folders(ws.artifact_dir("quarantine"), dataset)
        _remove_dataset_folders(ws.artifact_dir("clips"), dataset)
        publish_ingest(ws)
    return report


def _survey(ws: Workspace, dataset: str, dry_run: bool) -> ForgetReport:
    report = ForgetReport(dataset, ws.root, dry_run)
    report.clip_partitions = sorted(_dataset_folder_files(ws.artifact_dir("clips"), dataset, "clips.parquet"))
    report.clips = sum(pq.ParquetFile(p).metadata.num_rows for p in report.clip_partitions)
    report.audio_partitions = sorted(_dataset_folder_files(ws.artifact_dir("audio"), dataset, "audio.parquet")
                                     + _dataset_folder_files(ws.artifact_dir("audio_channels"), dataset, "audio_channels.parquet"))
    qfile = quarantine_file(ws, dataset)
    if qfile.exists():
        report.quarantine_files = [qfile]
        report.quarantined = pq.ParquetFile(qfile).metadata.num_rows
    report.embedding_files = sorted(_dataset_folder_files(ws.artifact_dir("embeddings"), dataset, "*.parquet"))
    if ws.indexes.is_dir():
        report.index_folders = sorted(enc / dataset for enc in ws.indexes.iterdir()
                                      if enc.is_dir() and (enc / dataset).is_dir())
    _count_catalog_rows(ws, report)
    return report


def _dataset_folders(base: Path, dataset: str) -> list[Path]:
    """Every ``dataset=<name>`` folder under ``base`` (compared by name, so no glob metacharacters apply)."""
    if not base.is_dir():
        return []
    return [p for p in base.rglob("dataset=*") if p.is_dir() and hive_value(p) == dataset]


def _dataset_folder_files(base: Path, dataset: str, pattern: str) -> list[Path]:
    return [f for folder in _dataset_folders(base, dataset) for f in folder.rglob(pattern) if f.is_file()]


def _remove_dataset_folders(base: Path, dataset: str) -> None:
    """Remove the dataset's folders (leftover temporaries included) and parents left empty."""
    for folder in _dataset_folders(base, dataset):
        shutil.rmtree(folder)
        parent = folder.parent
        while parent != base and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


def _catalog_datasets(ws: Workspace) -> set[str]:
    """Datasets still in asd.duckdb (a forget interrupted before its republish leaves some)."""
    if not ws.duckdb_path.exists():
        return set()
    from asd_core.storage.catalog import connect

    with connect(ws) as con:
        rows = con.execute("SELECT dataset FROM clips UNION SELECT dataset FROM quarantine").fetchall()
    return {r[0] for r in rows}


def _count_catalog_rows(ws: Workspace, report: ForgetReport) -> None:
    if not ws.duckdb_path.exists():
        return
    from asd_core.storage.catalog import connect

    ds = [report.dataset]
    with connect(ws) as con:
        report.catalog_rows = con.execute(
            "SELECT (SELECT count(*) FROM clips WHERE dataset = ?) + (SELECT count(*) FROM quarantine WHERE dataset = ?)",
            ds * 2).fetchone()[0]
        report.scores, report.runs = con.execute(
            "SELECT count(*), count(DISTINCT s.run_id) FROM scores s LEFT JOIN noisy_clips n ON n.noisy_clip_id = s.clip_id "
            "JOIN clips c ON c.clip_id = coalesce(n.clip_id, s.clip_id) WHERE c.dataset = ?", ds).fetchone()
        report.mixtures = con.execute("SELECT count(*) FROM mixtures WHERE dataset = ?", ds).fetchone()[0]
        report.noisy_clips = con.execute("SELECT count(*) FROM noisy_clips WHERE dataset = ?", ds).fetchone()[0]
