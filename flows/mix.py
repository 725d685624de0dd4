"""Mixture flow: noise library -> training mixtures + noisy test sets (provenance Parquet) -> DuckDB."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from asd_core.config import DEFAULT_WORKSPACE_NAME, Workspace
from asd_core.mixing.artifacts import write_mix_outputs
from asd_core.mixing.config import DEFAULT_BINS, EVAL_SUBSETS, MixConfig, NoiseLibraryConfig
from asd_core.mixing.noise_library import NoiseLibrary, build_noise_library
from asd_core.mixing.plan import plan_mixtures
from asd_core.storage.catalog import publish_mix


@task(cache_policy=NO_CACHE)
def build_library(ws: Workspace, cfg: NoiseLibraryConfig):
    return build_noise_library(ws, cfg)


@task(cache_policy=NO_CACHE)
def plan(ws: Workspace, lib, cfg: MixConfig):
    return plan_mixtures(ws, lib, cfg)


def usable_eval_subsets(lib: NoiseLibrary) -> tuple[tuple[str, ...], list[str]]:
    """The evaluation subsets the library has held-out recordings for, and those it has none for
    (a far-channel library of one kind has no other kind, and no held-out class unless named)."""
    usable = tuple(s for s in EVAL_SUBSETS if lib.pool(s, "eval"))
    return usable, [s for s in EVAL_SUBSETS if s not in usable]


@flow(name="asd-mix")
def mix_flow(workspace: str = DEFAULT_WORKSPACE_NAME, noise: str | None = None,
             supplemental: bool = NoiseLibraryConfig.supplemental, mismatched: list[str] | None = None,
             noise_from_channel: str | None = NoiseLibraryConfig.noise_from_channel,
             seed: int = MixConfig.seed, snr_min: float = MixConfig.snr_min, snr_max: float = MixConfig.snr_max,
             mixtures_per_clip: int = MixConfig.mixtures_per_clip, lam: float = MixConfig.lam,
             eval_subsets: list[str] | None = None, eval_bins: list[list[float]] | None = None) -> dict:
    """Build the noise library, plan training mixtures and noisy test clips, publish them.

    Deterministic for a seed: the same inputs give the same rows (ids are content hashes of
    the provenance), so a re-run replaces the tables with identical contents. ``noise_from_channel``
    (``far``) adds the far channels of the training clips to the library (methods.md section 7).
    Without ``eval_subsets`` the noisy test sets cover every subset the library has held-out
    recordings for (a warning names the others); subsets named explicitly must all be coverable.
    """
    log = get_run_logger()
    ws = Workspace(Path(workspace)).ensure()
    cfg = MixConfig(seed=seed, snr_min=snr_min, snr_max=snr_max, mixtures_per_clip=mixtures_per_clip, lam=lam,
                    eval_subsets=tuple(eval_subsets or EVAL_SUBSETS),
                    eval_bins=tuple(tuple(b) for b in (eval_bins or DEFAULT_BINS)),
                    noise=NoiseLibraryConfig(folder=Path(noise) if noise else None, supplemental=supplemental,
                                             mismatched=tuple(mismatched) if mismatched else None,
                                             noise_from_channel=noise_from_channel))
    lib = build_library(ws, cfg.noise)
    classes = sorted(set(zip(lib.classes, lib.kinds, lib.held_out)))
    log.info("noise library: %d recordings of %d classes (%s)", len(lib), len(classes),
             ", ".join(f"{c} [{k}{', held out' if h else ''}]" for c, k, h in classes))
    from_channel = sum(ch is not None for ch in lib.source_channels)
    if from_channel:
        log.info("noise library: %d recordings are %s channels of training clips (never mixed with their own clip)",
                 from_channel, noise_from_channel)
    dropped: list[str] = []
    if eval_subsets is None:
        usable, dropped = usable_eval_subsets(lib)
        cfg = replace(cfg, eval_subsets=usable)
        if dropped:
            log.warning("no noisy test clips for subset(s) %s: no held-out noise recordings of them "
                        "(add such recordings, or name held-out classes with --mismatched)", ", ".join(dropped))
    result = plan(ws, lib, cfg)
    for reason in result.skipped:
        log.warning("not mixed: %s", reason)
    noise_path, mixtures_path, noisy_path = write_mix_outputs(ws, lib, result)
    publish_mix(ws, noise_path, mixtures_path, noisy_path)
    counts = Counter((r["subset"], r["snr_bin"]) for r in result.noisy_clips.select(["subset", "snr_bin"]).to_pylist())
    table = [{"subset": s, "snr_bin": b, "noisy_test_clips": n} for (s, b), n in sorted(counts.items())]
    train_counts = Counter(result.mixtures.column("subset").to_pylist())
    table += [{"subset": s, "snr_bin": f"{snr_min:g}..{snr_max:g} (training)", "noisy_test_clips": n} for s, n in sorted(train_counts.items())]
    create_table_artifact(key="mixtures", table=table, description="training mixtures and noisy test clips per subset / SNR bin")
    log.info("%d training mixtures, %d noisy test clips, %d clips skipped", result.mixtures.num_rows,
             result.noisy_clips.num_rows, len(result.skipped))
    return {"noise_recordings": len(lib), "channel_noise_recordings": from_channel,
            "eval_subsets_dropped": dropped, "noise_classes": [{"class": c, "kind": k, "held_out": h} for c, k, h in classes],
            "mixtures": result.mixtures.num_rows, "noisy_clips": result.noisy_clips.num_rows, "skipped": result.skipped,
            "table": table}
