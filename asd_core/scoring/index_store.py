"""Per-section FAISS indexes on disk with a JSON manifest, re-used while their inputs are unchanged.

Layout: ``<workspace>/indexes/<encoder>-<version>/<dataset>/<machine_type>/section_<ss>/<config-hash>/``
holding ``index.faiss`` (absent for the Euclidean subtractive variant, searched by brute force),
``references.npy`` (the stored float32 references, read by the exact float64 re-ranking),
``rho.npy`` and ``manifest.json`` (counts, dim, metric, normalisation parameters, the threshold,
and the content hash of the reference embeddings). The approximate mode (``index_type="ivf"``,
version 3) has no ``index.faiss``: its IVF partition is ``ivf_centroids.npy`` and ``ivf_lists.npy``
(nprobe in the manifest), the augmented vectors are rebuilt from references and rho, so a loaded
index scores identically. Version 1 folders (before re-ranking) have no references: ``load``
rebuilds them, ``load_saved`` (a registered model's bundle) scores them as they were scored when
saved; version 2 folders (exact, or a FAISS IVF index) load as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import faiss
import numpy as np

from asd_core.config import Workspace
from asd_core.hashing import json_id
from asd_core.scoring.config import ScoringConfig
from asd_core.scoring.detectors import NearestReference
from asd_core.scoring.search import IVFPartition, NormalizedIndex
from asd_core.storage.paths import index_section_root

MANIFEST_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
REUSABLE_VERSIONS = (2, 3)  # exact indexes are written alike by both; an approximate one has another config hash


def content_hash(ids: list[str], vectors: np.ndarray) -> str:
    h = hashlib.sha256()
    for cid in ids:
        h.update(cid.encode() + b"\0")
    h.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    return h.hexdigest()


def config_hash(cfg: ScoringConfig) -> str:
    return json_id({"normalization": cfg.normalization, **cfg.params()}, 12)


def section_dir(ws: Workspace, encoder: str, version: str, dataset: str, machine_type: str, section: str, cfg: ScoringConfig,
                variant: str | None = None) -> Path:
    """The index folder of one section and configuration; ``variant`` names vectors other than the
    clips' primary waveform (another channel, a noise-reference residual: scoring/channels.py)."""
    name = config_hash(cfg) if variant is None else f"{config_hash(cfg)}-{variant}"
    return index_section_root(ws, encoder, version, dataset, machine_type, section) / name


def load(folder: Path, cfg: ScoringConfig, input_hash: str) -> tuple[NearestReference, float] | None:
    """The saved detector and threshold, or None when missing or built from other inputs."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    expected = {"normalization": cfg.normalization, **cfg.params()}
    if manifest.get("input_hash") != input_hash or manifest.get("config") != expected or manifest.get("version") not in REUSABLE_VERSIONS:
        return None
    return _restore(folder, cfg, manifest)


def load_saved(folder: Path) -> tuple[NearestReference, float]:
    """The detector and threshold of an index folder, trusting its manifest (a bundled copy)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"{folder}: index manifest version {manifest.get('version')}, expected one of {READABLE_VERSIONS}")
    return _restore(folder, ScoringConfig(**manifest["config"]), manifest)


def _restore(folder: Path, cfg: ScoringConfig, manifest: dict) -> tuple[NearestReference, float]:
    faiss_file, refs_file = folder / "index.faiss", folder / "references.npy"
    partition = None
    if "ivf" in manifest:
        partition = IVFPartition(load_array(folder / "ivf_centroids.npy"), load_array(folder / "ivf_lists.npy"),
                                 manifest["ivf"]["nprobe"])
    index = NormalizedIndex(cfg.metric, manifest["mode"], faiss.read_index(str(faiss_file)) if faiss_file.exists() else None,
                            load_array(refs_file) if refs_file.exists() else None, load_array(folder / "rho.npy"),
                            partition=partition)
    det = NearestReference.restore(cfg, index, manifest["dim"], manifest["n_references"], manifest["threshold"])
    return det, manifest["threshold"]


def load_array(path: Path) -> np.ndarray:
    """A plain numeric ``.npy`` of an index folder (never a pickle: bundles may come from elsewhere);
    anything else is a ValueError naming the file. Every reader of index arrays goes through here."""
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a plain numeric array ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def save(folder: Path, det: NearestReference, threshold: float, input_hash: str, counts: dict) -> None:
    """Write index, rho and manifest into a temporary folder, then swap it in."""
    cfg = det.config
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        if det.index_.index is not None:
            faiss.write_index(det.index_.index, str(tmp / "index.faiss"))
        part = det.index_.partition
        if part is not None:
            np.save(tmp / "ivf_centroids.npy", part.centroids)
            np.save(tmp / "ivf_lists.npy", part.lists)
        np.save(tmp / "references.npy", det.index_.refs)
        np.save(tmp / "rho.npy", det.rho_)
        manifest = {
            "version": MANIFEST_VERSION, "config": {"normalization": cfg.normalization, **cfg.params()},
            "mode": det.index_.mode, "metric": cfg.metric, "dim": det.dim_, "n_references": det.n_references_,
            "threshold": threshold, "input_hash": input_hash, "counts": counts,
            "rho": {"min": float(det.rho_.min()), "median": float(np.median(det.rho_)), "max": float(det.rho_.max())},
            "search": "approximate" if det.index_.approximate else "exhaustive",
        }
        if part is not None:
            manifest["ivf"] = {"nlist": len(part.centroids), "nprobe": part.nprobe}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if folder.exists():
            old = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
