"""The noise library: noise recordings with a class, a kind and a train/eval split.

Sources: a folder with one sub-folder of WAV files per class (the demo generator's
``noise/``, or any such folder), the DCASE 2025 ``supplemental`` noise-only clips
already ingested into the workspace (class ``<machine_type>-noise``), and/or a stored channel of
the normal training clips, the far microphone of two-channel recordings (class
``<machine_type>-far``, channel_noise.py, methods.md section 7). Any of them combine.

``classes.csv`` beside the class folders (``class,kind[,held_out]``) names each class's kind
(``stationary`` | ``non-stationary``) and which classes are held out of training (the
``mismatched`` evaluation subset). Without it the kind is measured (spread of 50 ms frame
levels) and, per kind with at least two classes, the last class by name is held out; channel
classes are left out of that rule (a machine type's own recorded plant noise is meant for its
training mixtures), ``mismatched`` can still name them.
Recordings of the other classes are split by content hash: ``eval_fraction`` of each class
(at least one when it has two or more) is never mixed into training data.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from asd_core.config import PIPELINE_SAMPLE_RATE, AudioConfig, Workspace
from asd_core.datasets import audio_io
from asd_core.datasets.audio_io import AudioFileError
from asd_core.hashing import bytes_id
from asd_core.mixing.channel_noise import channel_noise_recordings
from asd_core.mixing.config import KINDS, NON_STATIONARY, STATIONARY, MixingError, NoiseLibraryConfig  # noqa: F401
from asd_core.mixing.recording import Recording
from asd_core.mixing.snr import power
from asd_core.schemas import NOISE
from asd_core.storage.audio import read_waves
from asd_core.storage.paths import all_files, noise_file

logger = logging.getLogger("asd.mixing")


@dataclass
class NoiseLibrary:
    ids: list[str]
    classes: list[str]
    kinds: list[str]
    held_out: list[bool]
    splits: list[str]
    sources: list[str]  # file path, clip:<clip_id> (supplemental clip) or clip:<clip_id>:<role> (stored channel)
    waves: list[np.ndarray] = field(repr=False)
    source_clip_ids: list[str | None] = field(default_factory=list)  # the ingested clip a recording comes from
    source_channels: list[str | None] = field(default_factory=list)  # its channel role (None: the primary waveform)
    # clip id -> noise id of a channel recording dropped as a duplicate of another clip's (same content):
    # that clip must not draw the kept one either. Only in a library just built (not stored).
    duplicate_of: dict[str, str] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def own(self, clip_id: str) -> set[int]:
        """Indices of the recordings taken from ``clip_id`` itself (its far channel): never its noise."""
        if not hasattr(self, "_by_clip"):
            self._by_clip: dict[str, set[int]] = {}
            for i, cid in enumerate(self.source_clip_ids):
                if cid is not None:
                    self._by_clip.setdefault(cid, set()).add(i)
            for cid, nid in self.duplicate_of.items():
                self._by_clip.setdefault(cid, set()).add(self.ids.index(nid))
        return self._by_clip.get(clip_id, set())

    def wave(self, noise_id: str) -> np.ndarray:
        if not hasattr(self, "_row"):
            self._row = {nid: i for i, nid in enumerate(self.ids)}
        return self.waves[self._row[noise_id]]

    def pool(self, subset: str, split: str) -> list[int]:
        """Indices of the recordings of an evaluation/training subset."""
        if subset == "mismatched":
            return [i for i in range(len(self)) if self.held_out[i]]
        return [i for i in range(len(self)) if not self.held_out[i] and self.kinds[i] == subset and self.splits[i] == split]


def level_spread_db(wave: np.ndarray, sr: int) -> float:
    """Standard deviation of 50 ms frame levels in dB: small for stationary noise."""
    frame = max(1, int(0.05 * sr))
    n = len(wave) // frame
    if n < 2:
        return 0.0
    levels = 10 * np.log10(np.mean(wave[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1) + 1e-10)
    return float(np.std(levels))


def _read_classes_csv(folder: Path) -> dict[str, dict]:
    path = folder / "classes.csv"
    if not path.exists():
        return {}
    out = {}
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh), start=2):
            name, kind = (row.get("class") or "").strip(), (row.get("kind") or "").strip()
            if not name:
                raise MixingError(f"{path}, line {i}: empty class name")
            if kind and kind not in KINDS:
                raise MixingError(f"{path}, line {i}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
            held = (row.get("held_out") or "").strip().lower()
            out[name] = {"kind": kind or None, "held_out": None if held == "" else held in ("1", "true", "yes")}
    return out


def _folder_recordings(folder: Path, sr: int) -> list[Recording]:
    if not folder.is_dir():
        raise MixingError(f"{folder}: noise folder does not exist")
    items = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(class_dir.glob("*.wav")):
            try:
                info = audio_io.probe(path)
                wave = audio_io.decode(path, info, AudioConfig(sample_rate=sr, channel="mean"))
            except AudioFileError as exc:
                raise MixingError(f"{path}: {exc}") from None
            items.append(Recording(class_dir.name, str(path), wave))
    if not items:
        raise MixingError(f"{folder}: no noise recordings (expected <class>/<file>.wav sub-folders)")
    return items


def _supplemental_recordings(ws: Workspace) -> list[Recording]:
    wanted = {}
    for path in all_files(ws, "clips"):
        for r in pq.read_table(path, columns=["clip_id", "machine_type", "split", "attributes"]).to_pylist():
            if r["split"] == "supplemental" and dict(r["attributes"] or {}).get("supplemental_kind") == "noise":
                wanted[r["clip_id"]] = f"{r['machine_type']}-noise"
    waves = read_waves(ws, set(wanted)) if wanted else {}
    items = [Recording(wanted[cid], f"clip:{cid}", waves[cid], cid) for cid in sorted(waves)]
    return items


def build_noise_library(ws: Workspace, cfg: NoiseLibraryConfig) -> NoiseLibrary:
    """Read every noise recording, decide kinds / held-out classes / splits (see module docstring)."""
    items = _folder_recordings(Path(cfg.folder), cfg.sample_rate) if cfg.folder else []
    if cfg.supplemental:
        items += _supplemental_recordings(ws)
    if cfg.noise_from_channel:
        items += channel_noise_recordings(ws, cfg.noise_from_channel)
    if not items:
        raise MixingError("no noise recordings: pass --noise FOLDER (class sub-folders of WAV files), "
                          "--noise-from-channel far (two-channel recordings) "
                          "or ingest DCASE 2025 data with supplemental noise clips")
    declared = _read_classes_csv(Path(cfg.folder)) if cfg.folder else {}
    for item in items:
        if power(item.wave) <= 0:
            raise MixingError(f"{item.source}: noise recording is silent")
    classes = sorted({item.cls for item in items})
    channel_classes = {item.cls for item in items if item.channel is not None}
    kind_of = {}
    for c in classes:
        if declared.get(c, {}).get("kind"):
            kind_of[c] = declared[c]["kind"]
        else:
            spread = np.median([level_spread_db(item.wave, cfg.sample_rate) for item in items if item.cls == c])
            kind_of[c] = STATIONARY if spread < cfg.stationarity_db else NON_STATIONARY
    if cfg.mismatched is not None:
        unknown = sorted(set(cfg.mismatched) - set(classes))
        if unknown:
            raise MixingError(f"mismatched classes not in the noise library: {', '.join(unknown)} (classes: {', '.join(classes)})")
        held = set(cfg.mismatched)
    elif any(d.get("held_out") is not None for d in declared.values()):
        held = {c for c in classes if declared.get(c, {}).get("held_out")}
    else:
        held = set()
        for kind in KINDS:
            of_kind = sorted(c for c in classes if kind_of[c] == kind and c not in channel_classes)
            if len(of_kind) >= 2:
                held.add(of_kind[-1])
    rows = [(bytes_id(np.ascontiguousarray(item.wave, np.float32).tobytes(), 16), item) for item in items]
    rows.sort(key=lambda r: (r[1].cls, r[0]))
    splits = {}
    for c in classes:
        members = [nid for nid, item in rows if item.cls == c]
        n_eval = len(members) if c in held else (max(1, round(cfg.eval_fraction * len(members))) if len(members) >= 2 else 0)
        for i, nid in enumerate(sorted(members)):
            splits[nid] = "eval" if i < n_eval else "train"
    seen_ids = set()
    lib = NoiseLibrary([], [], [], [], [], [], [])
    for nid, item in rows:
        if nid in seen_ids:
            logger.warning("noise %s duplicates an earlier recording; used once", item.source)
            if item.clip_id is not None:
                lib.duplicate_of[item.clip_id] = nid
            continue
        seen_ids.add(nid)
        lib.ids.append(nid)
        lib.classes.append(item.cls)
        lib.kinds.append(kind_of[item.cls])
        lib.held_out.append(item.cls in held)
        lib.splits.append(splits[nid])
        lib.sources.append(item.source)
        lib.waves.append(item.wave.astype(np.float32))
        lib.source_clip_ids.append(item.clip_id)
        lib.source_channels.append(item.channel)
    return lib


def noise_table(lib: NoiseLibrary) -> pa.Table:
    return pa.table({
        "noise_id": lib.ids, "noise_class": lib.classes, "kind": lib.kinds, "held_out": lib.held_out,
        "split": lib.splits, "source": lib.sources,
        "num_samples": [len(w) for w in lib.waves],
        "waveform": pa.array([w for w in lib.waves], pa.list_(pa.float32())),
        "source_clip_id": pa.array(lib.source_clip_ids or [None] * len(lib), pa.string()),
        "source_channel": pa.array(lib.source_channels or [None] * len(lib), pa.string()),
    }, schema=NOISE)


def read_noise_library(ws: Workspace) -> NoiseLibrary:
    path = noise_file(ws)
    if not path.exists():
        raise FileNotFoundError(f"no noise library in {ws.root}; run `asd mix` first")
    t = pq.read_table(path, schema=NOISE)  # files written before source_clip_id / source_channel: nulls there
    lib = NoiseLibrary(t.column("noise_id").to_pylist(), t.column("noise_class").to_pylist(), t.column("kind").to_pylist(),
                       t.column("held_out").to_pylist(), t.column("split").to_pylist(), t.column("source").to_pylist(),
                       [np.asarray(w.values.to_numpy(zero_copy_only=False), np.float32) for w in t.column("waveform")],
                       t.column("source_clip_id").to_pylist(), t.column("source_channel").to_pylist())
    return lib
