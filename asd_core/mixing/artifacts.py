"""Writing the artifacts of ``asd mix`` (paths: storage/paths.py), and readers for later stages."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from asd_core.config import Workspace
from asd_core.mixing.noise_library import NoiseLibrary, noise_table
from asd_core.mixing.plan import MixPlan
from asd_core.schemas import MIXTURES, NOISE, NOISY_CLIPS
from asd_core.storage.atomic import write_parquet_atomic
from asd_core.storage.paths import mixtures_file, noise_file, noisy_clips_file


def write_mix_outputs(ws: Workspace, lib: NoiseLibrary, plan: MixPlan) -> list[Path]:
    """Noise library, mixtures and noisy clips, each written atomically."""
    return [write_parquet_atomic(noise_table(lib), noise_file(ws), NOISE),
            write_parquet_atomic(plan.mixtures, mixtures_file(ws), MIXTURES),
            write_parquet_atomic(plan.noisy_clips, noisy_clips_file(ws), NOISY_CLIPS)]


def read_mixtures(ws: Workspace) -> list[dict]:
    path = mixtures_file(ws)
    if not path.exists():
        raise FileNotFoundError(f"no training mixtures in {ws.root}; run `asd mix` first")
    return pq.read_table(path, schema=MIXTURES).to_pylist()


def noisy_rows_by_partition(ws: Workspace, machine_type: str | None = None) -> dict[tuple[str, str], list[dict]]:
    """Noisy test clips grouped by the (machine_type, dataset) audio partition of their clean clip
    (only those of ``machine_type`` when given)."""
    path = noisy_clips_file(ws)
    if not path.exists():
        return {}
    filters = [("machine_type", "=", machine_type)] if machine_type else None
    out: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in pq.read_table(path, schema=NOISY_CLIPS, filters=filters).to_pylist():
        out[(r["machine_type"], r["dataset"])].append(r)
    return dict(out)


class StalePlanError(ValueError):
    """Mixture provenance planned on audio that has changed since (or by a version that did not record it)."""


def check_planned_on(rows: list[dict], audio_keys: dict[str, str], what: str) -> None:
    """Refuse provenance rows whose clean clip's audio changed after ``asd mix`` measured their gains.

    Rendering them would silently give other SNRs than recorded; re-planning is cheap."""
    for r in rows:
        planned, now = r.get("clean_key"), audio_keys.get(r["clip_id"])
        if planned is None:
            raise StalePlanError(f"the {what} in the workspace were planned by an older version that did not record "
                                 "which audio they were measured on; run `asd mix` again")
        if now is None:
            raise StalePlanError(f"clip {r['clip_id']} of the {what} is no longer ingested; run `asd mix` again")
        if planned != now:
            raise StalePlanError(f"clip {r['clip_id']} changed since `asd mix` planned the {what} on it "
                                 "(its recording was replaced); run `asd mix` again")
