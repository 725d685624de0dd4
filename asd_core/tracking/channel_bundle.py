"""Registered models of channel runs (issue 20): which channels a bundle scores and how.

A run of the primary waveform bundles as before and has no ``channels.json``. Other runs add:

- ``channels.json``: ``channels`` (roles; ``primary`` for the clip's primary waveform), ``fusion``,
  ``noise_reference`` and the run's per-section ``thresholds`` (a fused run's threshold is not any
  one channel's);
- ``indexes/`` holds the first channel's section indexes (or, with a noise reference, those of the
  residuals, with the section's fitted ridge as ``noise_reference.npz``); a fused run's other channels
  sit in ``channels/<role>/indexes/``.

:func:`channel_waves` reads the channels a bundle needs from a WAV file (the pyfunc, ``asd monitor``
and ``asd enroll`` alike). :class:`ChannelScorer` scores a batch of decoded channels with them, as the
scoring run did (scoring/channels.py): per-channel detectors fused by mean / max, or the residual of
the ridge; ``inputs`` gives what each channel's detector scores, so enrollment adds the same vectors
to the references.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asd_core.scoring.channels import fuse_scores  # noqa: F401  (one fusion rule for runs, pyfunc, monitor, enroll)

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

    def index_root(self, bundle: Path, role: str) -> Path:
        """The folder whose ``indexes/`` holds ``role``'s section indexes: the bundle itself for the
        first channel, ``channels/<role>`` for the others."""
        return bundle if role == self.channels[0] else bundle / "channels" / role

    def describe(self) -> str:
        if self.noise_reference:
            return f"{self.channels[0]} channel conditioned on the {self.noise_reference} channel"
        if len(self.channels) > 1:
            return f"channels {' and '.join(self.channels)} fused by {self.fusion}"
        return f"the {self.channels[0]} channel"


def channel_waves(path: Path, info, audio_cfg, roles: list[str] | None = None) -> dict[str, np.ndarray]:
    """role -> waveform (float32 at ``audio_cfg.sample_rate``, before any full-scale limit) of each of
    ``roles`` of the WAV file ``path`` (``info``: its ``audio_io.probe``); ``primary`` is the clip's
    primary waveform, ``roles`` None that alone. An ``AudioFileError`` names the channels a file lacks
    (a mono file sent to a two-channel model)."""
    from dataclasses import replace

    from asd_core.datasets import audio_io

    if roles is None:
        return {PRIMARY: audio_io.decode(path, info, audio_cfg)}
    wide = replace(audio_cfg, channels="all") if any(r.startswith("ch") for r in roles) else audio_cfg
    decoded = audio_io.decode_channels(path, info, wide)
    found = {role: wave for _, role, wave in decoded}
    found[PRIMARY] = decoded[0][2]
    if "mean" in roles and "mean" not in found:
        found["mean"] = audio_io.decode(path, info, replace(audio_cfg, channel="mean"))
    missing = [r for r in roles if r not in found]
    if missing:
        kind = "mono" if info.channels == 1 else f"{info.channels}-channel"
        raise audio_io.AudioFileError(f"{kind} audio has no {' or '.join(missing)} channel; this model scores "
                                      f"{' and '.join(roles)}: send the {len(roles)}-channel recording")
    return {r: found[r] for r in roles}


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
            self.detectors[role] = load_section_detectors(spec.index_root(bundle, role))
        self.ridges = {}
        if spec.noise_reference:
            for ridge in sorted((bundle / "indexes").glob(f"*/*/section_*/{RIDGE_FILE}")):
                folder = ridge.parent
                key = (folder.parent.parent.name, folder.parent.name, folder.name.removeprefix("section_"))
                self.ridges[key] = load_noise_reference(ridge)

    def inputs(self, key: tuple[str, str, str], vectors: dict[str, np.ndarray]) -> list[np.ndarray]:
        """What each channel's detector of section ``key`` scores (and holds as references), in the
        bundle's channel order: the channel's embeddings, for the first channel under a noise
        reference the ridge residual given the reference channel's embeddings (float32)."""
        spec = self.spec
        out = [vectors[c] for c in spec.channels]
        if spec.noise_reference:
            out[0] = self.ridges[key].residual(vectors[spec.noise_reference], out[0]).astype(np.float32)
        return out

    def threshold(self, key: tuple[str, str, str]) -> float:
        """The section's decision threshold: the run's (``channels.json``), else the first channel's."""
        return self.spec.thresholds.get(section_key(*key), self.detectors[self.spec.channels[0]][key][1])

    def score(self, keys: list[tuple[str, str, str]], vectors: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(scores, thresholds) of rows in the sections ``keys``; ``vectors``: role -> [rows, dim]."""
        spec = self.spec
        scores, thresholds = np.empty(len(keys)), np.empty(len(keys))
        for i, key in enumerate(keys):
            xs = self.inputs(key, {r: v[i : i + 1] for r, v in vectors.items()})
            per = [self.detectors[c][key][0].score(x)[0] for c, x in zip(spec.channels, xs)]
            scores[i] = float(fuse_scores(per, spec.fusion))
            thresholds[i] = self.threshold(key)
        return scores, thresholds
