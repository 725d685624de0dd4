"""Score flow: one task per shard (machine type) fits or re-uses its section indexes and scores
its test clips on the flow's task runner (threads, or Dask workers via ``with_options``);
the flow writes the run's Parquet and publishes it to DuckDB once."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from asd_core.config import DEFAULT_WORKSPACE_NAME, Workspace
from asd_core.runtime import configure_threads
from asd_core.scoring.config import ScoringConfig
from asd_core.scoring.density import shared_scales
from asd_core.scoring.distances import ScoringInputError
from asd_core.scoring.channels import ChannelSpec, load_channel_sections, machine_types_with_channels, score_channel_section
from asd_core.scoring.run import data_snapshot, run_id_for, write_run
from asd_core.scoring.sweep import RunSpec, expand, parse_values
from asd_core.storage.catalog import publish_run
from asd_core.storage.embeddings import read_encoder_card


@task(cache_policy=NO_CACHE, task_run_name="score-{machine_type}")
def score_machine_type(ws: Workspace, encoder: str, version: str, machine_type: str, specs: list[RunSpec], strict: bool,
                       noisy: bool = False, threads: int | None = None, channels: ChannelSpec = ChannelSpec()
                       ) -> tuple[list[tuple[list, list]], dict]:
    """(results, skipped) per spec, and the noise-reference fits; the sections' embeddings are read
    once for all specs (once per channel)."""
    configure_threads(threads)  # this task may run in another process (a Dask worker)
    out = [([], []) for _ in specs]
    loaded = load_channel_sections(ws, encoder, version, machine_type, channels, noisy)
    for group in zip(*loaded.per_channel):  # one section, as each channel has it
        with shared_scales():  # one rho fit per K or r of the section, whatever the normalizations
            for spec, (results, skipped) in zip(specs, out):
                try:
                    results.append(score_channel_section(ws, encoder, version, list(group), spec, channels))
                except ScoringInputError as exc:
                    if strict:
                        raise
                    skipped.append(str(exc))
    return out, loaded.fits


def _score_specs(ws: Workspace, encoder: str, encoder_version: str | None, specs_of, strict: bool, noisy: bool,
                 threads: int | None, channels: ChannelSpec = ChannelSpec()) -> tuple[list[dict], list[str]]:
    """Score every run of ``specs_of(metric)`` (one read of the embeddings per machine type) and
    publish each run; returns their reports in order, and why the runs left out could not be scored."""
    log = get_run_logger()
    configure_threads(threads)
    card = read_encoder_card(ws, encoder, encoder_version)
    name, version = card["name"], card["version"]
    specs = specs_of(card["distance"])
    machine_types = machine_types_with_channels(ws, name, version, channels)
    futures = [score_machine_type.submit(ws, name, version, mt, specs, strict, noisy, threads, channels)
               for mt in machine_types]
    per_spec = [([], []) for _ in specs]
    fits = {}
    for f in futures:
        outs, mt_fits = f.result()
        fits.update(mt_fits)
        for (results, skipped), (res, skip) in zip(per_spec, outs):
            results += res
            skipped += skip
    reports, unscorable = [], []
    for spec, (results, skipped) in zip(specs, per_spec):
        for reason in skipped:
            log.warning("section skipped: %s", reason)
        if not results:
            if len(specs) == 1:
                raise ScoringInputError("no section could be scored:\n  " + "\n  ".join(skipped))
            # a grid keeps the runs it could score (e.g. K = 8 with 5 references per section)
            unscorable.append(f"{spec.label()}: no section could be scored ({skipped[0] if skipped else 'no sections'})")
            log.warning("run %s not written: no section could be scored", spec.label())
            continue
        reports.append(_publish(ws, name, version, spec, results, skipped, noisy, channels, fits))
        r = reports[-1]
        log.info("run %s (%s): %d test clips in %d sections scored (%d indexes re-used), %d sections skipped",
                 r["run_id"], spec.label(), r["scored"], r["sections"], r["indexes_reused"], len(skipped))
    if not reports:
        raise ScoringInputError("no run of the grid could score a section:\n  " + "\n  ".join(unscorable))
    return reports, unscorable


def _publish(ws: Workspace, name: str, version: str, spec: RunSpec, results: list, skipped: list, noisy: bool,
             channels: ChannelSpec = ChannelSpec(), fits: dict | None = None) -> dict:
    run_id = run_id_for(name, version, spec, noisy, channels.run_params())
    scored = {r.name for r in results}
    channel_params = {**channels.run_params(),
                      **({"noise_reference_fit": {k: v for k, v in sorted((fits or {}).items()) if k in scored}}
                         if channels.noise_reference else {})}
    scores_path, thr_path = write_run(ws, run_id, results)
    used = [cid for r in results for cid in r.test_ids]
    choices = {r.name: r.choice for r in results if r.choice is not None}
    run = {"run_id": run_id, "encoder": name, "encoder_version": version, "normalization": spec.config.normalization,
           "params": {**spec.params(), "data_snapshot": data_snapshot(ws, used), "skipped_sections": skipped,
                      **({"choices": choices} if spec.auto else {}), **({"test_set": "clean+noisy"} if noisy else {}),
                      **channel_params},
           "transductive": spec.config.transductive}
    publish_run(ws, run, scores_path, thr_path)
    return {**run, "label": spec.label(), "sections": len(results), "scored": len(used), "skipped": skipped,
            "indexes_reused": sum(r.index_reused for r in results)}


@flow(name="asd-score", task_runner=ThreadPoolTaskRunner(max_workers=2))
def score_flow(workspace: str = DEFAULT_WORKSPACE_NAME, encoder: str = "logmel-stats", normalization: str = "knn",
               k: int | str = ScoringConfig.k, r: float | str = ScoringConfig.r, metric: str | None = None,
               threshold_quantile: float = ScoringConfig.threshold_quantile,
               index_type: str = "exact", strict: bool = False, threads: int | None = None,
               encoder_version: str | None = None, noisy: bool = False, channel: str | None = None,
               channels: list[str] | None = None, fusion: str | None = None, noise_reference: str | None = None) -> dict:
    """Score every section's test clips; one run per configuration (re-running replaces its rows).

    Channels (two-microphone data, scoring/channels.py): ``channel`` scores one stored channel
    (default: each clip's primary waveform); ``channels`` + ``fusion`` (mean | max) fuse several, each
    against its own references; ``noise_reference`` scores ``channel``'s residual after a ridge from
    that channel's embeddings (alpha by GCV, recorded in ``runs.params``).

    ``k`` / ``r`` may be ``"auto"``: chosen per section without labels (asd_core/scoring/sweep.py).
    A section that cannot be scored (no references, fewer than K + 1, ...) is skipped with its
    reason, or fails the run with ``strict``; nothing published changes when the run fails.
    ``noisy`` also scores the noisy test clips of ``asd mix`` (metrics per noise subset and SNR bin).
    """
    def specs_of(distance: str) -> list[RunSpec]:
        specs = expand([normalization], parse_values([k], "k"), parse_values([r], "r"), metric=metric or distance,
                       index_type=index_type, threshold_quantile=threshold_quantile)
        return specs[:1]

    return _score_specs(Workspace(Path(workspace)), encoder, encoder_version, specs_of, strict, noisy, threads,
                        ChannelSpec.from_options(channel, channels, fusion, noise_reference))[0][0]


@flow(name="asd-score-grid", task_runner=ThreadPoolTaskRunner(max_workers=2))
def score_grid_flow(workspace: str = DEFAULT_WORKSPACE_NAME, encoder: str = "logmel-stats",
                    normalizations: list[str] | None = None, k: list[int | str] | None = None,
                    r: list[float | str] | None = None, metric: str | None = None,
                    threshold_quantile: float = ScoringConfig.threshold_quantile,
                    index_type: str = "exact", strict: bool = False, threads: int | None = None,
                    encoder_version: str | None = None, noisy: bool = False, channel: str | None = None,
                    channels: list[str] | None = None, fusion: str | None = None,
                    noise_reference: str | None = None) -> dict:
    """Every combination of normalizations x K x r as its own run (a run keeps only the parameters
    its normalization uses), from one read of the embeddings; ``auto`` values choose per section."""
    def specs_of(distance: str) -> list[RunSpec]:
        return expand(normalizations or ["knn"], parse_values(k or [ScoringConfig.k], "k"),
                      parse_values(r or [ScoringConfig.r], "r"),
                      metric=metric or distance, index_type=index_type, threshold_quantile=threshold_quantile)

    reports, unscorable = _score_specs(Workspace(Path(workspace)), encoder, encoder_version, specs_of, strict, noisy, threads,
                                       ChannelSpec.from_options(channel, channels, fusion, noise_reference))
    return {"runs": reports, "unscorable": unscorable}
