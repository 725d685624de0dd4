"""Registered models of channel runs (issue 20): which channels a bundle scores and how.

A run of the primary waveform bundles as before and has no ``channels.json``. Other runs add:

- ``channels.json``: ``channels`` (roles; ``primary`` for the clip's primary waveform), ``fusion``,
  ``noise_reference`` and the run's per-section ``thresholds`` (a fused run's threshold is not any
  one channel's);
- ``indexes/`` holds the first channel's section indexes (or, with a noise reference, those of the
  residuals, with the section's fitted ridge as ``noise_reference.npz``); a fused run's other channels
  sit in ``channels/<role>/indexes/``.

:class:`ChannelScorer` scores a batch of decoded channels with them, as the scoring run did
(scoring/channels.py): per-channel detectors fused by mean / max, or the residual of the ridge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHANNELS_FILE = "channels.json"
PRIMARY = "primary"
RIDGE_FILE = "noise_reference.npz"


def section_key(dataset: str, machine_type: str, section: str) -> str:
    return f"{dataset}/{machine_type}/section_{section}"


@dataclass
class BundleChannels:
    channels: list[str]
    fusion: str | None
    noise_reference: str | None
    thresholds: dict[str, float]

    @property
    def roles(self) -> list[str]:
        """Every channel role a request must carry."""
        return [*self.channels, *([self.noise_reference] if self.noise_reference else [])]

    def write(self, bundle: Path) -> None:
        (bundle / CHANNELS_FILE).write_text(json.dumps(
            {"channels": self.channels, "fusion": self.fusion, "noise_reference": self.noise_reference,
             "thresholds": self.thresholds}, indent=2, sort_keys=True))

    @classmethod
    def read(cls, bundle: Path) -> BundleChannels | None:
        """The bundle's channels, None for a model of the primary waveform."""
        path = bundle / CHANNELS_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(data["channels"], data.get("fusion"), data.get("noise_reference"), data.get("thresholds") or {})

    def describe(self) -> str:
        if self.noise_reference:
            return f"{self.channels[0]} channel conditioned on the {self.noise_reference} channel"
        if len(self.channels) > 1:
            return f"channels {' and '.join(self.channels)} fused by {self.fusion}"
        return f"the {self.channels[0]} channel"


def load_section_detectors(bundle: Path) -> dict[tuple[str, str, str], tuple]:
    """(dataset, machine_type, section) -> (detector, threshold) from the index folders under ``bundle/indexes``."""
    from asd_core.scoring.index_store import load_saved

    out = {}
    for manifest in sorted((bundle / "indexes").glob("*/*/section_*/manifest.json")):
        folder = manifest.parent
        dataset, machine_type, section = folder.parent.parent.name, folder.parent.name, folder.name.removeprefix("section_")
        out[(dataset, machine_type, section)] = load_saved(folder)
    return out


class ChannelScorer:
    """Scores rows of decoded channels with a channel bundle (see the module docstring)."""

    def __init__(self, bundle: Path, spec: BundleChannels, primary_detectors: dict):
        from asd_core.scoring.channels import load_noise_reference

        self.spec = spec
        self.detectors = {spec.channels[0]: primary_detectors}
        for role in spec.channels[1:]:
            self.detectors[role] = load_section_detectors(bundle / "channels" / role)
        self.ridges = {}
        if spec.noise_reference:
            for ridge in sorted((bundle / "indexes").glob(f"*/*/section_*/{RIDGE_FILE}")):
                folder = ridge.parent
                key = (folder.parent.parent.name, folder.parent.name, folder.name.removeprefix("section_"))
                self.ridges[key] = load_noise_reference(ridge)

    def score(self, keys: list[tuple[str, str, str]], vectors: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(scores, thresholds) of rows in the sections ``keys``; ``vectors``: role -> [rows, dim]."""
        spec = self.spec
        scores, thresholds = np.empty(len(keys)), np.empty(len(keys))
        for i, key in enumerate(keys):
            first = spec.channels[0]
            x = vectors[first][i : i + 1]
            if spec.noise_reference:
                x = self.ridges[key].residual(vectors[spec.noise_reference][i : i + 1], x).astype(np.float32)
            per = [self.detectors[first][key][0].score(x)[0]]
            per += [self.detectors[c][key][0].score(vectors[c][i : i + 1])[0] for c in spec.channels[1:]]
            scores[i] = float(np.max(per) if spec.fusion == "max" else np.mean(per))
            thresholds[i] = spec.thresholds.get(section_key(*key), self.detectors[first][key][1])
        return scores, thresholds
