"""Plan training mixtures and noisy test sets: every choice drawn from a seeded generator and
stored as provenance, so the audio is regenerated exactly (render.py) instead of stored.

Training mixtures: each normal training clip x ``mixtures_per_clip``, a noise recording of the
training split of a seen class (subset stationary or non-stationary), SNR uniform in
``[snr_min, snr_max]``. Noisy test sets: each test clip x evaluation subset x SNR bin, a held-out
recording (eval split, or a held-out class for ``mismatched``), SNR uniform within the bin.
A recording taken from a clip's own channel (its far microphone, channel_noise.py) is never that
clip's noise: the pools of each clip leave it out, so its mixtures pair near-channel machine sound
with noise recorded at other clips (methods.md sections 3 and 7). Libraries without channel
recordings draw exactly as before.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from asd_core.config import Workspace
from asd_core.hashing import json_id
from asd_core.mixing.config import DEFAULT_BINS, EVAL_SUBSETS, KINDS, MixConfig, MixingError  # noqa: F401 (re-exported)
from asd_core.mixing.noise_library import NoiseLibrary, NoiseLibraryConfig  # noqa: F401
from asd_core.mixing.snr import gains_for_snr, noise_segment
from asd_core.progress import Progress
from asd_core.schemas import MIXTURES, NOISY_CLIPS
from asd_core.storage.audio import partition_waves
from asd_core.storage.content import clip_audio_keys
from asd_core.storage.paths import all_files, audio_partitions

def bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}..{hi:g}"


def _rng(seed: int, *parts) -> np.random.Generator:
    return np.random.default_rng([seed] + [zlib.crc32(str(p).encode()) for p in parts])


def _row_id(*parts) -> str:
    return json_id(parts, 16, sort_keys=False, algorithm="sha1")


@dataclass
class MixPlan:
    mixtures: pa.Table
    noisy_clips: pa.Table
    skipped: list[str]  # clips that could not be mixed, with the reason


def _draw(rng, lib: NoiseLibrary, pool: list[int], clean: np.ndarray, lo: float, hi: float) -> dict:
    i = pool[int(rng.integers(len(pool)))]
    snr = float(rng.uniform(lo, hi))
    offset = int(rng.integers(len(lib.waves[i])))
    gains = gains_for_snr(clean, noise_segment(lib.waves[i], len(clean), offset), snr)
    return {"noise_id": lib.ids[i], "noise_class": lib.classes[i], "subset": lib.kinds[i] if not lib.held_out[i] else "mismatched",
            "snr_db": snr, "clean_gain": gains.clean, "noise_gain": gains.noise, "noise_offset": offset,
            "num_samples": len(clean)}


def _without(pools: dict[str, list[int]], excluded: set[int]) -> dict[str, list[int]]:
    """``pools`` less the ``excluded`` recordings, keeping order; pools left empty are dropped."""
    if not excluded:
        return pools
    kept = {s: [i for i in p if i not in excluded] for s, p in pools.items()}
    return {s: p for s, p in kept.items() if p}


def plan_mixtures(ws: Workspace, lib: NoiseLibrary, cfg: MixConfig) -> MixPlan:
    """Provenance rows of every training mixture and noisy test clip (reads each clean clip once)."""
    train_pools = {s: lib.pool(s, "train") for s in cfg.train_subsets}
    train_pools = {s: p for s, p in train_pools.items() if p}
    eval_pools = {s: lib.pool(s, "eval") for s in cfg.eval_subsets}
    missing = [s for s, p in eval_pools.items() if not p]
    if missing:
        raise MixingError(f"no held-out noise recordings for evaluation subset(s) {', '.join(missing)}; "
                          "add recordings to those classes or leave the subsets out")
    if cfg.mixtures_per_clip and not train_pools:
        raise MixingError("no training noise recordings (every class is held out or has a single recording in eval)")
    meta = {}
    for path in all_files(ws, "clips"):
        for r in pq.read_table(path, columns=["clip_id", "dataset", "machine_type", "split", "label"]).to_pylist():
            if r["split"] == "test" or (r["split"] == "train" and r["label"] != "anomaly"):
                meta[r["clip_id"]] = r
    if not meta:
        raise FileNotFoundError(f"no ingested train/test clips in {ws.root}; run `asd ingest` first")
    audio_keys = clip_audio_keys(ws)
    mixtures, noisy, skipped = [], [], []
    progress = Progress("mix: plan", len(meta), "clips")
    for _, _, path in audio_partitions(ws):
        for cid, clean in partition_waves(path, meta):
            r = meta[cid]
            base = {"clip_id": cid, "dataset": r["dataset"], "machine_type": r["machine_type"], "seed": cfg.seed,
                    "clean_key": audio_keys[cid]}
            try:
                own = lib.own(cid)
                if r["split"] == "train":
                    pools = _without(train_pools, own)
                    names = sorted(pools)  # = subsets unless its own recording emptied one
                    if cfg.mixtures_per_clip and not names:
                        raise MixingError("its own far channel is the only training noise recording")
                    for j in range(cfg.mixtures_per_clip):
                        rng = _rng(cfg.seed, "train", cid, j)
                        subset = names[int(rng.integers(len(names)))]
                        row = {**base, **_draw(rng, lib, pools[subset], clean, *cfg.snr_range), "lam": cfg.lam}
                        row["mixture_id"] = _row_id(cid, row["noise_id"], repr(row["snr_db"]), row["noise_offset"], cfg.lam)
                        mixtures.append(row)
                else:
                    pools = _without(eval_pools, own)
                    for subset in cfg.eval_subsets:
                        if subset not in pools:
                            raise MixingError(f"its own far channel is the only {subset} evaluation noise recording")
                        for lo, hi in cfg.eval_bins:
                            rng = _rng(cfg.seed, "eval", cid, subset, lo, hi)
                            row = {**base, **_draw(rng, lib, pools[subset], clean, lo, hi), "snr_bin": bin_label(lo, hi)}
                            row["noisy_clip_id"] = _row_id(cid, subset, row["noise_id"], repr(row["snr_db"]), row["noise_offset"])
                            noisy.append(row)
            except MixingError as exc:
                skipped.append(f"{r['dataset']}/{r['machine_type']} clip {cid}: {exc}")
            progress.update()
    progress.close()
    return MixPlan(pa.Table.from_pylist(mixtures, schema=MIXTURES), pa.Table.from_pylist(noisy, schema=NOISY_CLIPS), skipped)
