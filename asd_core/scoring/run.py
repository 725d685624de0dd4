"""A scoring run: per-section detectors over stored embeddings -> ``scores`` + ``thresholds`` Parquet.

The reference set of a section is its normal training clips, both domains (methods.md
section 1); every test clip of the section is scored; one threshold per section from the
leave-one-out reference scores decides (no domain-specific thresholds).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from asd_core.config import Workspace
from asd_core.hashing import json_id
from asd_core.mixing.artifacts import noisy_rows_by_partition
from asd_core.schemas import CLIPS, SCORES, THRESHOLDS
from asd_core.scoring import index_store
from asd_core.scoring.detector import ScoringConfig, make_detector
from asd_core.scoring.distances import ScoringInputError
from asd_core.scoring.sweep import AUTO, RunSpec, choose, domain_gap
from asd_core.storage.atomic import write_parquet_atomic
from asd_core.storage.content import AUDIO_KEY_COLUMNS, audio_key, channel_key, mixture_key
from asd_core.storage.audio import partition_roles
from asd_core.storage.embeddings import file_channel, read_keyed_vectors
from asd_core.storage.paths import all_files, audio_file, embeddings_dir, hive_value, run_dir

logger = logging.getLogger("asd.scoring")


@dataclass
class SectionInput:
    dataset: str
    machine_type: str
    section: str
    ref_ids: list[str] = field(default_factory=list)
    ref_domains: list[str | None] = field(default_factory=list)
    test_ids: list[str] = field(default_factory=list)
    refs: np.ndarray | None = None
    tests: np.ndarray | None = None
    variant: str | None = None  # which channel(s) the vectors come from (channels.py); None: primary
    keep_reference_scores: bool = False  # results carry the leave-one-out reference scores (fusion)
    conditioner: object | None = None  # a noise-reference run: the fitted NoiseReference (channels.py)

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.machine_type}/section_{self.section}"


@dataclass
class SectionResult:
    dataset: str
    machine_type: str
    section: str
    test_ids: list[str]
    scores: np.ndarray
    threshold: float
    n_references: int
    index_reused: bool
    choice: dict | None = None  # an ``auto`` run: the value chosen and the criterion (sweep.py)
    reference_scores: np.ndarray | None = None  # leave-one-out, in ref order (kept for channel fusion)

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.machine_type}/section_{self.section}"


def run_id_for(encoder: str, version: str, cfg: ScoringConfig | RunSpec, noisy: bool = False,
               channels: dict | None = None) -> str:
    """Hash of what defines a run; a run over clean + noisy test clips is another run, and so is one
    of another channel, a fusion of channels or a noise-reference run (``channels``: channels.py
    ``ChannelSpec.run_params``, empty for the primary waveform: run ids of mono data are unchanged)."""
    extra = {"test_set": "clean+noisy"} if noisy else {}
    extra.update(channels or {})
    normalization = cfg.config.normalization if isinstance(cfg, RunSpec) else cfg.normalization
    return json_id({"encoder": encoder, "version": version, "normalization": normalization, **cfg.params(), **extra}, 12)


def machine_types_with_embeddings(ws: Workspace, encoder: str, version: str) -> list[str]:
    base = embeddings_dir(ws, encoder, version)
    return sorted(hive_value(p) for p in base.glob("machine_type=*") if p.is_dir())


def load_sections(ws: Workspace, encoder: str, version: str, machine_type: str, noisy: bool = False,
                  channel: str | None = None) -> list[SectionInput]:
    """Reference and test embeddings of every section of one machine type; with ``noisy`` the
    noisy versions of the test clips (``asd mix``) join their clean clip's section as test clips;
    with ``channel`` the vectors of that stored channel (``asd embed --channel``), datasets without
    it left out."""
    files = channel_embedding_files(ws, encoder, version, machine_type, channel)
    if not files:
        of = "" if channel is None else f" of the {channel} channel"
        raise FileNotFoundError(f"no {encoder} embeddings{of} (version {version}) for machine type {machine_type}; "
                                f"run `asd embed{'' if channel is None else ' --channel ' + channel}` first")
    folder = embeddings_dir(ws, encoder, version) / f"machine_type={machine_type}"
    if noisy:
        if channel is not None and any(f.name != "embeddings.parquet" for f in files):
            raise ScoringInputError(f"noisy test clips are rendered from each clip's primary waveform, not the {channel} channel; "
                                    "score them without --channel")
        noisy_files = sorted(folder.glob("*/noisy.parquet"))
        if not noisy_files:
            raise FileNotFoundError(f"no {encoder} embeddings of noisy test clips for machine type {machine_type}; "
                                    f"run `asd mix`, then `asd embed --noisy`")
        files += noisy_files
    clip_ids, vectors, stored_keys = read_keyed_vectors(files)
    row_of = {cid: i for i, cid in enumerate(clip_ids)}
    audio_keys: dict[str, str] = {}
    sections: dict[tuple[str, str], SectionInput] = {}
    ref_rows, test_rows = defaultdict(list), defaultdict(list)
    section_of = {}
    for path in all_files(ws, "clips"):
        if path.parent.name != f"machine_type={machine_type}":
            continue
        columns = ["dataset", "section", "split", "domain", "label", *AUDIO_KEY_COLUMNS]
        for c in pq.read_table(path, columns=columns, schema=CLIPS).to_pylist():
            if c["clip_id"] not in row_of:
                continue
            audio_keys[c["clip_id"]] = audio_key(c)
            key = (c["dataset"], c["section"])
            sec = sections.setdefault(key, SectionInput(c["dataset"], machine_type, c["section"]))
            if c["split"] == "train" and c["label"] != "anomaly":
                sec.ref_ids.append(c["clip_id"])
                sec.ref_domains.append(c["domain"])
                ref_rows[key].append(row_of[c["clip_id"]])
            elif c["split"] == "test":
                sec.test_ids.append(c["clip_id"])
                test_rows[key].append(row_of[c["clip_id"]])
                section_of[c["clip_id"]] = key
    expected = dict(audio_keys)
    own_files = [f for f in files if f.name not in ("embeddings.parquet", "noisy.parquet")]  # another channel's
    for f in own_files:  # vectors of another channel than the primary carry that channel's key
        for cid in pq.read_table(f, columns=["clip_id"]).column("clip_id").to_pylist():
            if cid in expected:
                expected[cid] = channel_key(audio_keys[cid], channel)
    if noisy:
        for rows in noisy_rows_by_partition(ws, machine_type).values():
            for r in rows:
                key = section_of.get(r["clip_id"])
                if key is not None and r["noisy_clip_id"] in row_of:
                    sections[key].test_ids.append(r["noisy_clip_id"])
                    test_rows[key].append(row_of[r["noisy_clip_id"]])
                    expected[r["noisy_clip_id"]] = mixture_key(r, audio_keys[r["clip_id"]])
    _refuse_stale(encoder, machine_type, [(cid, stored_keys[row_of[cid]], expected[cid])
                                          for sec in sections.values() for cid in sec.ref_ids + sec.test_ids])
    own_datasets = {hive_value(f.parent) for f in own_files}
    for key, sec in sections.items():
        sec.variant = channel if sec.dataset in own_datasets else None  # a primary waveform shares the default indexes
        sec.refs = vectors[ref_rows[key]] if ref_rows[key] else np.empty((0, vectors.shape[1]), np.float32)
        sec.tests = vectors[test_rows[key]] if test_rows[key] else np.empty((0, vectors.shape[1]), np.float32)
    return [sections[k] for k in sorted(sections)]


def channel_embedding_files(ws: Workspace, encoder: str, version: str, machine_type: str, channel: str | None) -> list[Path]:
    """The embeddings files of one machine type holding ``channel``: ``embeddings.<role>.parquet``, or
    ``embeddings.parquet`` where the role is the dataset's primary waveform (None: every primary file)."""
    folder = embeddings_dir(ws, encoder, version) / f"machine_type={machine_type}"
    files = []
    for primary in sorted(folder.glob("*/embeddings.parquet")):
        if channel is None:
            files.append(primary)
        elif (own := primary.with_name(f"embeddings.{channel}.parquet")).exists():
            files.append(own)
        else:
            audio = audio_file(ws, hive_value(primary.parent), machine_type)
            if channel in ({file_channel(primary)} | (set(partition_roles(audio)[0]) if audio.exists() else set())):
                files.append(primary)
    return files


class StaleEmbeddingsError(ValueError):
    """Embeddings computed from audio that has changed since (a recording replaced under its name)."""


def _refuse_stale(encoder: str, machine_type: str, triples: list[tuple[str, str | None, str]]) -> None:
    """Scores must come from the clips as they are now: refuse vectors of other content."""
    stale = [cid for cid, stored, now in triples if stored != now]
    if stale:
        raise StaleEmbeddingsError(
            f"{len(stale)} {machine_type} clip(s) changed since they were embedded with {encoder} (e.g. {stale[0]}), "
            f"or were embedded by a version without content keys; run `asd embed --encoder {encoder}` again")


def score_section(ws: Workspace, encoder: str, version: str, sec: SectionInput, cfg: ScoringConfig | RunSpec) -> SectionResult:
    """Fit (or re-use the stored index of) one section and score its test clips; a RunSpec with
    ``auto`` first chooses K or r for the section (sweep.py)."""
    if isinstance(cfg, RunSpec):
        if not cfg.auto:
            return score_section(ws, encoder, version, sec, cfg.config)
        return _score_auto(ws, encoder, version, sec, cfg)
    return _score_fixed(ws, encoder, version, sec, cfg)


def _score_auto(ws: Workspace, encoder: str, version: str, sec: SectionInput, spec: RunSpec) -> SectionResult:
    """Fit every candidate, keep the one whose source and target reference scores are most alike."""
    domains = np.asarray(sec.ref_domains, dtype=object)
    candidates, fitted, gaps = spec.candidates(), [], []
    for cand in candidates:
        try:
            det = make_detector(cand).fit(sec.refs, domains, ids=sec.ref_ids)
        except ScoringInputError:  # e.g. K >= the number of references
            fitted.append(None)
            gaps.append(None)
            continue
        fitted.append(det)
        gaps.append(domain_gap(det.reference_scores(), domains, cand.threshold_quantile))
    best = choose(gaps)
    if best is None:  # one domain only (or no candidate fits): the default value, as a fixed run would
        cfg, det, reason = spec.config, None, "references of one domain only: default kept"
    else:
        cfg, det, reason = candidates[best], fitted[best], None
    result = _score_fixed(ws, encoder, version, sec, cfg, fitted=det)
    result.choice = {spec.auto: getattr(cfg, spec.auto), "criterion": None if best is None else gaps[best],
                     "candidates": {str(getattr(c, spec.auto)): g for c, g in zip(candidates, gaps)},
                     **({"note": reason} if reason else {})}
    return result


def _score_fixed(ws: Workspace, encoder: str, version: str, sec: SectionInput, cfg: ScoringConfig,
                 fitted=None) -> SectionResult:
    try:
        folder = index_store.section_dir(ws, encoder, version, sec.dataset, sec.machine_type, sec.section, cfg, sec.variant)
        input_hash = index_store.content_hash(sec.ref_ids, sec.refs)
        # fusion needs the leave-one-out reference scores, which a loaded index cannot give
        reuse = not (cfg.transductive or fitted is not None or sec.keep_reference_scores)
        cached = index_store.load(folder, cfg, input_hash) if reuse else None
        if cached:
            det, threshold = cached
        else:
            det = fitted or make_detector(cfg).fit(sec.refs, np.asarray(sec.ref_domains, dtype=object), ids=sec.ref_ids,
                                                   test=sec.tests if cfg.transductive else None)
            threshold = det.threshold_
            if det.persistable:
                counts = {"references": len(sec.ref_ids), "source": sec.ref_domains.count("source"),
                          "target": sec.ref_domains.count("target")}
                index_store.save(folder, det, threshold, input_hash, counts)
        scores = det.score(sec.tests, ids=sec.test_ids) if sec.test_ids else np.empty(0)
        ref_scores = det.reference_scores() if sec.keep_reference_scores else None
    except ScoringInputError as exc:
        raise ScoringInputError(f"{sec.name}: {exc}") from None
    return SectionResult(sec.dataset, sec.machine_type, sec.section, sec.test_ids, scores, threshold,
                         len(sec.ref_ids), cached is not None, reference_scores=ref_scores)


def write_run(ws: Workspace, run_id: str, results: list[SectionResult]) -> tuple[Path, Path]:
    """Scores and thresholds of a run as Parquet (atomic; replaces an earlier run of the same id)."""
    ids = [cid for r in results for cid in r.test_ids]
    scores = np.concatenate([r.scores for r in results]) if results else np.empty(0)
    decisions = np.concatenate([(r.scores > r.threshold).astype(np.int8) for r in results]) if results else np.empty(0, np.int8)
    scores_table = pa.table({"run_id": [run_id] * len(ids), "clip_id": ids, "score": scores, "decision": decisions})
    thr_table = pa.Table.from_pylist([
        {"run_id": run_id, "dataset": r.dataset, "machine_type": r.machine_type, "section": r.section,
         "threshold": r.threshold, "n_references": r.n_references} for r in results], schema=THRESHOLDS)
    folder = run_dir(ws, run_id)
    return (write_parquet_atomic(scores_table, folder / "scores.parquet", SCORES),
            write_parquet_atomic(thr_table, folder / "thresholds.parquet", THRESHOLDS))


def data_snapshot(ws: Workspace, clip_ids: list[str]) -> str:
    """Hash of the audio content (sha256 per clip) behind a run."""
    wanted = set(clip_ids)
    pairs = sorted((r["clip_id"], r["sha256"]) for p in all_files(ws, "clips")
                   for r in pq.read_table(p, columns=["clip_id", "sha256"]).to_pylist() if r["clip_id"] in wanted)
    return json_id(pairs, 16, sort_keys=False)


def run_params(run: dict) -> dict:
    """``runs.params`` (JSON text from DuckDB) as a dict."""
    return json.loads(run["params"]) if isinstance(run["params"], str) else dict(run["params"])


def scoring_config(run: dict, section: dict | None = None) -> ScoringConfig:
    """The ScoringConfig a ``runs`` row was scored with; for an ``auto`` run, the one chosen for
    ``section`` (a row with dataset, machine_type, section), else the default value in its place."""
    params = run_params(run)
    names = {f.name for f in fields(ScoringConfig)}
    values = {k: v for k, v in params.items() if k in names and v != AUTO}
    if section is not None:
        name = f"{section['dataset']}/{section['machine_type']}/section_{section['section']}"
        choice = (params.get("choices") or {}).get(name) or {}
        values.update({k: v for k, v in choice.items() if k in ("k", "r")})
    return ScoringConfig(normalization=run["normalization"], **values)
