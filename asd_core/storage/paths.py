"""Every path inside a workspace, in one place (the layout is described in ``config.Workspace``).

Parquet artifacts live under ``parquet/<artifact>/`` in Hive-style partition folders
(``machine_type=fan``); one schema per artifact (schemas.py). Models, indexes, reports and the
stage cache sit beside ``parquet/``. Nothing here reads or writes a file's content.
"""

from __future__ import annotations

from pathlib import Path

from asd_core.config import Workspace

MODEL_KINDS = ("teacher", "student")


def hive_value(folder: Path) -> str:
    """``machine_type=fan`` -> ``fan`` (the value of a Hive-style partition folder)."""
    return folder.name.split("=", 1)[1]


def all_files(ws: Workspace, artifact: str) -> list[Path]:
    """Every Parquet file of ``artifact`` (``clips``, ``audio``, ``quarantine``, ...), sorted."""
    return sorted(ws.artifact_dir(artifact).glob(f"**/{artifact}.parquet"))


# --- ingest: clips, audio, quarantine ------------------------------------------------------------

def clips_file(ws: Workspace, dataset: str, machine_type: str) -> Path:
    return ws.artifact_dir("clips") / f"dataset={dataset}" / f"machine_type={machine_type}" / "clips.parquet"


def audio_file(ws: Workspace, dataset: str, machine_type: str) -> Path:
    # Partitioned by machine type first: embedding one machine type reads one folder.
    return ws.artifact_dir("audio") / f"machine_type={machine_type}" / f"dataset={dataset}" / "audio.parquet"


def audio_channels_file(ws: Workspace, dataset: str, machine_type: str) -> Path:
    """The stored channels other than each clip's primary one (storage/audio.py)."""
    return ws.artifact_dir("audio_channels") / f"machine_type={machine_type}" / f"dataset={dataset}" / "audio_channels.parquet"


def audio_channels_path(audio_path: Path) -> Path:
    """The ``audio_channels`` file beside one ``audio`` partition file (it may not exist)."""
    mt, ds = audio_path.parent.parent.name, audio_path.parent.name  # machine_type=<mt>, dataset=<ds>
    return audio_path.parents[3] / "audio_channels" / mt / ds / "audio_channels.parquet"


def quarantine_file(ws: Workspace, dataset: str) -> Path:
    return ws.artifact_dir("quarantine") / f"dataset={dataset}" / "quarantine.parquet"


def existing_machine_types(ws: Workspace, dataset: str) -> list[str]:
    folder = ws.artifact_dir("clips") / f"dataset={dataset}"
    if not folder.is_dir():
        return []
    return sorted(hive_value(p) for p in folder.glob("machine_type=*") if (p / "clips.parquet").exists())


def audio_partitions(ws: Workspace) -> list[tuple[str, str, Path]]:
    """(machine_type, dataset, path) of every audio partition."""
    return [(hive_value(p.parent.parent), hive_value(p.parent), p)
            for p in sorted(ws.artifact_dir("audio").glob("machine_type=*/dataset=*/audio.parquet"))]


# --- mix: noise library, training mixtures, noisy test clips -------------------------------------

def noise_file(ws: Workspace) -> Path:
    return ws.artifact_dir("noise") / "noise.parquet"


def mixtures_file(ws: Workspace) -> Path:
    return ws.artifact_dir("mixtures") / "mixtures.parquet"


def noisy_clips_file(ws: Workspace) -> Path:
    return ws.artifact_dir("noisy_clips") / "noisy_clips.parquet"


# --- embeddings, per encoder version -------------------------------------------------------------

def encoder_root(ws: Workspace, encoder: str) -> Path:
    """The folder of every version of ``encoder``'s embeddings."""
    return ws.artifact_dir("embeddings") / f"encoder={encoder}"


def embeddings_dir(ws: Workspace, encoder: str, version: str) -> Path:
    return encoder_root(ws, encoder) / f"version={version}"


def encoder_card_file(ws: Workspace, encoder: str, version: str) -> Path:
    """``encoder.json`` beside the embeddings of one encoder version (storage/embeddings.py)."""
    return embeddings_dir(ws, encoder, version) / "encoder.json"


def encoder_card_files(ws: Workspace) -> list[Path]:
    """The ``encoder.json`` of every encoder version in the workspace (unsorted, as found)."""
    return list(ws.artifact_dir("embeddings").glob("encoder=*/version=*/encoder.json"))


def embedding_file(ws: Workspace, encoder: str, version: str, machine_type: str, dataset: str,
                   channel: str | None = None) -> Path:
    """Vectors of the clips of one audio partition: of their primary waveform (``embeddings.parquet``)
    or, with ``channel``, of another stored channel role (``embeddings.<role>.parquet``: far, mean, ch3)."""
    name = "embeddings.parquet" if channel is None else f"embeddings.{channel}.parquet"
    return embeddings_dir(ws, encoder, version) / f"machine_type={machine_type}" / f"dataset={dataset}" / name


def noisy_embedding_file(ws: Workspace, encoder: str, version: str, machine_type: str, dataset: str) -> Path:
    """Vectors of the noisy test clips whose clean clip lives in one audio partition."""
    return embedding_file(ws, encoder, version, machine_type, dataset).with_name("noisy.parquet")


def embedding_files(ws: Workspace, encoder: str, version: str) -> list[Path]:
    return sorted(embeddings_dir(ws, encoder, version).glob("**/embeddings.parquet"))


# --- scores, indexes, reports --------------------------------------------------------------------

def run_dir(ws: Workspace, run_id: str) -> Path:
    """``scores.parquet`` and ``thresholds.parquet`` of one scoring run."""
    return ws.artifact_dir("scores") / f"run_id={run_id}"


def index_root(ws: Workspace, encoder: str, version: str) -> Path:
    """The saved FAISS indexes of one encoder version (one folder per dataset below it)."""
    return ws.indexes / f"{encoder}-{version}"


def index_section_root(ws: Workspace, encoder: str, version: str, dataset: str, machine_type: str, section: str) -> Path:
    """The saved detectors of one section (one sub-folder per scoring configuration)."""
    return index_root(ws, encoder, version) / dataset / machine_type / f"section_{section}"


def report_dir(ws: Workspace, run_id: str) -> Path:
    return ws.root / "reports" / run_id


def stage_cache_dir(ws: Workspace) -> Path:
    """Where the pipeline keeps its stage results (delete the workspace, lose its cache)."""
    return ws.root / "cache" / "stages"


# --- trained models --------------------------------------------------------------------------------

def models_dir(ws: Workspace, kind: str) -> Path:
    """``models/teacher`` or ``models/student``: one folder per trained model, keyed by its config."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind must be one of {', '.join(MODEL_KINDS)}, got {kind!r}")
    return ws.root / "models" / kind


def model_dir(ws: Workspace, kind: str, key: str) -> Path:
    return models_dir(ws, kind) / key


def current_model_file(ws: Workspace, kind: str, objective: str | None = None) -> Path:
    """The pointer naming the current model folder of ``kind`` (``CURRENT``), or of a student
    objective (``CURRENT-retain``); written by storage/models.py when training finishes."""
    return models_dir(ws, kind) / (f"CURRENT-{objective}" if objective else "CURRENT")
