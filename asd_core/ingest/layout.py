"""Where the ingest artifacts live inside a workspace (one schema per artifact, see schemas.py)."""

from __future__ import annotations

from pathlib import Path

from asd_core.config import Workspace


def clips_file(ws: Workspace, dataset: str, machine_type: str) -> Path:
    return ws.artifact_dir("clips") / f"dataset={dataset}" / f"machine_type={machine_type}" / "clips.parquet"


def audio_file(ws: Workspace, dataset: str, machine_type: str) -> Path:
    # Partitioned by machine type first: embedding one machine type reads one folder.
    return ws.artifact_dir("audio") / f"machine_type={machine_type}" / f"dataset={dataset}" / "audio.parquet"


def quarantine_file(ws: Workspace, dataset: str) -> Path:
    return ws.artifact_dir("quarantine") / f"dataset={dataset}" / "quarantine.parquet"


def hive_value(folder: Path) -> str:
    """``machine_type=fan`` -> ``fan`` (the value of a Hive-style partition folder)."""
    return folder.name.split("=", 1)[1]


def existing_machine_types(ws: Workspace, dataset: str) -> list[str]:
    folder = ws.artifact_dir("clips") / f"dataset={dataset}"
    if not folder.is_dir():
        return []
    return sorted(hive_value(p) for p in folder.glob("machine_type=*") if (p / "clips.parquet").exists())


def all_files(ws: Workspace, artifact: str) -> list[Path]:
    return sorted(ws.artifact_dir(artifact).glob(f"**/{artifact}.parquet"))
