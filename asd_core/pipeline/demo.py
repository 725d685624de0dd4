"""``asd demo``: the whole pipeline on generated demo data, sized to finish well inside 20 minutes
on 2 CPU cores (``benchmarks/pipeline.py`` measures it); its configuration and the lock it holds
from writing the data to the end of the run."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from asd_core.config import Workspace
from asd_core.pipeline.config import PipelineConfig
from asd_core.storage.lock import workspace_lock


def demo_data_dir(workspace: Path) -> Path:
    return Path(workspace) / "demo-data"


@contextmanager
def demo_session(workspace: Path, seed: int = 0, size: str = "small", channels: int = 1) -> Iterator[dict]:
    """Hold the workspace, then write the demo data; yields make_demo_data's counts.

    A second ``asd demo`` on a busy workspace is refused (``WorkspaceBusyError``) before it
    rewrites the running demo's input files; the pipeline run inside the block takes the lent
    lock again, so no other run can slip in between the data and the pipeline.
    """
    from asd_core.demo import make_demo_data

    with workspace_lock(Workspace(Path(workspace)), owner="asd demo", lend=True):
        # with the held-out operating condition (skipped by ingest): what the operating loop's
        # `asd monitor` and `asd enroll` are tried on (README "The operating loop")
        # channels=2: near and far microphones (DCASE 2026-style; README "Two microphones")
        yield make_demo_data(demo_data_dir(workspace), seed=seed, size=size, held_out=True, channels=channels)


def demo_config(workspace: Path, data_root: Path, overrides: list[str] | None = None) -> PipelineConfig:
    """Every stage on: spectral baselines, a teacher from scratch and its retain-not-denoise student."""
    cfg = PipelineConfig.from_dict({
        "workspace": str(workspace),
        "data": {"roots": [str(data_root)], "dataset_name": "demo"},
        "mix": {"noise": str(Path(data_root) / "noise"), "seed": 0},
        "teacher": {"epochs": 10, "patience": 5},
        "student": {"epochs": 5, "patience": 2},
        "embed": {"encoders": ["stft-mean", "logmel-stats", "teacher", "student"], "noisy_encoders": ["teacher", "student"]},
        "score": {"normalizations": ["none", "knn", "gwrp"]},
        "register": {"encoder": "student", "normalization": "knn"},
    })
    return cfg.with_overrides(overrides or [])
