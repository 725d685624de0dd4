"""A registered model version for monitoring: resolved through the MLflow registry
(``NAME@ALIAS``, ``NAME/VERSION`` or ``models:/...``), its artifacts fetched once into the workspace
cache (a version never changes), and its bundle's encoder and section detectors loaded with the
pyfunc's own helpers, so each file is scored, or quarantined, on its own.

A model of a channel run (``channels.json``: another channel, fused channels, a noise reference)
scores with the pyfunc's :class:`ChannelScorer`, so its scores and thresholds are the pyfunc's;
``asd enroll`` refits the same per-channel indexes (``inputs``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from asd_core.config import Workspace
from asd_core.hashing import text_id
from asd_core.storage.atomic import atomic_dir
from asd_core.tracking.bundle_audio import request_audio_config
from asd_core.tracking.pyfunc_model import (BUNDLE, PRIMARY, BundleChannels, ChannelScorer, load_bundle_encoder,
                                            load_section_detectors)
from asd_core.tracking.store import TrackingConfig, client

DEFAULT_MODEL = "asd-encoder@champion"
_SPEC = re.compile(r"^(?:models:/)?(?P<name>[^@/]+)(?:@(?P<alias>[^@/]+)|/(?P<version>\d+))?$")


class ModelError(ValueError):
    """A model that cannot be resolved or loaded; the message names it and says why."""


@dataclass(frozen=True)
class ModelRef:
    name: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name}/{self.version}" if self.version else f"{self.name}@{self.alias}"


def parse_model(spec: str) -> ModelRef:
    """``asd-encoder@champion``, ``asd-encoder/3``, ``models:/asd-encoder@champion``; a bare name means ``@champion``."""
    m = _SPEC.match(spec.strip())
    if m is None:
        raise ModelError(f"--model {spec!r}: expected NAME@ALIAS, NAME/VERSION or models:/NAME@ALIAS")
    if not m["alias"] and not m["version"]:
        return ModelRef(m["name"], alias="champion")
    return ModelRef(m["name"], m["alias"], m["version"])


SectionKey = tuple[str, str, str]  # (dataset, machine_type, section)


@dataclass
class MonitorModel:
    """One model version, ready to score: encoder, (dataset, machine_type, section) -> (detector, threshold)
    of its first (or only) channel and, for a channel model, its channels and their scorer."""

    name: str
    version: str
    encoder: object
    card: dict
    detectors: dict
    folder: Path
    scoring: dict = field(default_factory=dict)
    channels: BundleChannels | None = None
    channel_scorer: ChannelScorer | None = None

    @property
    def sample_rate(self) -> int:
        return int(self.card["sample_rate"])

    @cached_property
    def audio_config(self):
        """How recordings are decoded for this model: as its training clips were (bundle_audio.py)."""
        return request_audio_config(bundle_dir(self.folder), self.sample_rate)

    @property
    def roles(self) -> list[str] | None:
        """The channel roles each recording must carry (None: a model of the clips' primary waveform)."""
        return self.channels.roles if self.channels else None

    def sections(self) -> list[str]:
        return sorted({f"{mt}/section_{sec}" for _, mt, sec in self.detectors})

    def section(self, machine_type: str, section: str, dataset: str | None = None) -> SectionKey:
        """The key of a section; ``KeyError`` with the reason when there is none or several."""
        keys = [k for k in self.detectors if k[1] == machine_type and k[2] == section and (dataset is None or k[0] == dataset)]
        if not keys:
            where = f"{machine_type}/section_{section}" + (f" of dataset {dataset}" if dataset else "")
            raise KeyError(f"model {self.name} version {self.version} has no detector for {where} "
                           f"(it covers: {', '.join(self.sections())})")
        if len(keys) > 1:
            raise KeyError(f"{machine_type}/section_{section} exists in several datasets of the model "
                           f"({', '.join(sorted(k[0] for k in keys))}): name one in a manifest column 'dataset'")
        return keys[0]

    def detector(self, machine_type: str, section: str, dataset: str | None = None):
        """``(dataset, detector, threshold)`` of a section (its first channel's detector; the model's
        decision threshold, fused or not); ``KeyError`` with the reason when there is none or several."""
        key = self.section(machine_type, section, dataset)
        return key[0], self.detectors[key][0], self.threshold(key)

    def threshold(self, key: SectionKey) -> float:
        """The section's decision threshold (a fused model's is the run's, not any one channel's)."""
        return float(self.channel_scorer.threshold(key) if self.channel_scorer else self.detectors[key][1])

    def embed(self, waves: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """role -> [clips, dim] float32 embeddings of each role of ``waves`` (role -> waveform per clip,
        ``primary`` for a model of the primary waveform), every role embedded as the pyfunc does."""
        return {r: np.asarray(self.encoder.embed([w[r] for w in waves]), np.float32) for r in self.roles or [PRIMARY]}

    def inputs(self, key: SectionKey, vectors: dict[str, np.ndarray]) -> list[np.ndarray]:
        """What each channel's detector of the section scores, in the bundle's channel order (one
        entry for a single channel; the ridge residual under a noise reference): ChannelScorer.inputs."""
        return self.channel_scorer.inputs(key, vectors) if self.channel_scorer else [vectors[PRIMARY]]

    def score(self, keys: list[SectionKey], vectors: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(scores, thresholds) of embedded rows in the sections ``keys``, as the pyfunc scores them."""
        if self.channel_scorer is not None:
            return self.channel_scorer.score(keys, vectors)
        scores = np.array([float(self.detectors[k][0].score(vectors[PRIMARY][i : i + 1])[0]) for i, k in enumerate(keys)])
        return scores, np.array([self.threshold(k) for k in keys])


def resolve_version(ws: Workspace, ref: ModelRef, tracking_uri: str | None = None) -> str:
    """The version number an alias points at now (a version is checked to exist)."""
    from mlflow.exceptions import MlflowException

    c = client(ws, TrackingConfig(uri=tracking_uri, model_name=ref.name))
    uri = TrackingConfig(uri=tracking_uri).resolved_uri(ws)
    try:
        if ref.version:
            return str(c.get_model_version(ref.name, ref.version).version)
        return str(c.get_model_version_by_alias(ref.name, ref.alias).version)
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model {ref} not found in the registry {uri}: {first}") from None


def _cache_dir(ws: Workspace, tracking_uri: str | None, name: str, version: str) -> Path:
    uri = TrackingConfig(uri=tracking_uri).resolved_uri(ws)
    return ws.root / "cache" / "models" / text_id(uri, 8) / name / version


def fetch_version(ws: Workspace, name: str, version: str, tracking_uri: str | None = None) -> Path:
    """The MLflow model folder of ``models:/name/version``, downloaded once into ``cache/models`` (atomically)."""
    import mlflow

    folder = _cache_dir(ws, tracking_uri, name, version)
    if (folder / "MLmodel").exists():
        return folder
    client(ws, TrackingConfig(uri=tracking_uri, model_name=name))  # sets the tracking and registry URIs
    with atomic_dir(folder) as tmp:
        mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(tmp))
        if not (tmp / "MLmodel").exists():
            raise ModelError(f"models:/{name}/{version}: the downloaded artifacts hold no MLmodel file")
    return folder


def bundle_dir(model_folder: Path) -> Path:
    """The pyfunc's bundle folder, as the MLmodel file records it."""
    mlmodel = yaml.safe_load((model_folder / "MLmodel").read_text())
    artifacts = (mlmodel.get("flavors", {}).get("python_function", {}) or {}).get("artifacts") or {}
    rel = (artifacts.get(BUNDLE) or {}).get("path")
    if not rel:
        raise ModelError(f"{model_folder / 'MLmodel'}: no '{BUNDLE}' artifact: not an asd scoring model")
    return model_folder / rel


def load_model(ws: Workspace, spec: str = DEFAULT_MODEL, tracking_uri: str | None = None) -> MonitorModel:
    """Resolve ``spec`` in the registry, fetch that version and load its encoder and detectors."""
    ref = parse_model(spec)
    version = resolve_version(ws, ref, tracking_uri)
    folder = fetch_version(ws, ref.name, version, tracking_uri)
    bundle = bundle_dir(folder)
    try:
        channels = BundleChannels.read(bundle)
        encoder, card = load_bundle_encoder(bundle)
        detectors = load_section_detectors(bundle)
        scorer = ChannelScorer(bundle, channels, detectors) if channels else None
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"model {ref.name} version {version} ({bundle}): cannot load it: {exc}") from None
    if not detectors:
        raise ModelError(f"model {ref.name} version {version} ({bundle}): the bundle holds no section detectors")
    if scorer is not None:
        _check_channels(ref.name, version, channels, scorer)
    scoring_file = bundle / "scoring.json"
    scoring = json.loads(scoring_file.read_text()) if scoring_file.exists() else {}
    return MonitorModel(ref.name, version, encoder, card, detectors, folder, scoring, channels, scorer)


def _check_channels(name: str, version: str, channels: BundleChannels, scorer: ChannelScorer) -> None:
    """Every section of a channel bundle has each channel's index (and its ridge): a section that
    lacks one would fail on every file at scoring time, so the model is refused at load instead."""
    first = scorer.detectors[channels.channels[0]]
    for key in first:
        lacking = [r for r in channels.channels[1:] if key not in scorer.detectors[r]]
        lacking += [f"{channels.noise_reference} ridge"] if channels.noise_reference and key not in scorer.ridges else []
        if lacking:
            raise ModelError(f"model {name} version {version} ({channels.describe()}): {key[1]}/section_{key[2]} of "
                             f"{key[0]} has no {', '.join(lacking)} in its bundle")
