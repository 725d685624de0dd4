"""The configuration ``asd demo`` runs: the whole pipeline on the generated demo data, sized
to finish well inside 20 minutes on 2 CPU cores (``benchmarks/pipeline.py`` measures it)."""

from __future__ import annotations

from pathlib import Path

from asd_core.pipeline.config import PipelineConfig


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
