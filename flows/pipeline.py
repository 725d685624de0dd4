"""The parent flow: ingest -> mixtures -> teacher -> student -> embeddings -> scores (+ reports)
-> evaluation -> MLflow registration, from one PipelineConfig.

Each stage is a Prefect task whose cache key is the content of its inputs plus the version of
its code (asd_core/pipeline/fingerprint.py); results persist as JSON under ``<workspace>/cache/stages``, so a
re-run recomputes only the stages whose inputs or code changed. A cached stage whose outputs
have since disappeared from the workspace runs again. One pipeline run per workspace at a time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import get_run_context
from prefect.states import Completed

from asd_core.config import CHANNEL_ROLES, AudioConfig, Workspace
from asd_core.encoders.spec import EncoderSpec
from asd_core.pipeline.config import SPECTRAL_ENCODERS, PipelineConfig, PipelineConfigError, load_config
from asd_core.hashing import file_sha256
from asd_core.pipeline.code_graph import ImportGraph, build_graph
from asd_core.pipeline.fingerprint import (clips_fingerprint, mixtures_fingerprint, stage_key,
                                           tree_fingerprint)
from asd_core.storage.lock import workspace_lock
from asd_core.evaluation.noise import noise_comparison
from asd_core.pipeline.results import results_table
from asd_core.reporting.dashboard import build_dashboard
from asd_core.storage.catalog import connect
from asd_core.storage.paths import all_files, encoder_card_file, mixtures_file, noisy_clips_file, run_dir
from asd_core.storage.stage_results import as_plain, read_stage_result, write_stage_result
from asd_core.textable import format_table
from asd_core.tracking.store import TrackingConfig
from flows.embed import embed_flow
from flows.ingest import ingest_flow
from flows.mix import mix_flow
from flows.report import report_flow
from flows.runners import process_threads, shard_task_runner
from flows.register import register_scoring_run
from flows.score import score_flow
from flows.train_student import train_student_flow
from flows.train_teacher import train_teacher_flow

# The module each stage runs; its code version covers everything that module imports (code_graph.py).
STAGE_ENTRY = {"ingest": "flows.ingest", "mix": "flows.mix", "teacher": "flows.train_teacher",
               "student": "flows.train_student", "embed": "flows.embed", "score": "flows.score", "report": "flows.report",
               "register": "flows.register"}


def stage_code_versions(graph: ImportGraph | None = None) -> dict[str, str]:
    """The code version of every stage, from one reading of the import graph."""
    graph = graph or build_graph()
    return {name: graph.code_version(entry) for name, entry in STAGE_ENTRY.items()}


@task
def stage(name: str, key: str, fn: Callable, kwargs: dict):
    """One pipeline stage: ``fn(**kwargs)``."""
    return fn(**kwargs)


@task
def cached_stage(name: str, key: str):
    """A stage whose result was found under its key: shown as Cached in the Prefect UI."""
    return Completed(name="Cached", message=f"result of {key} found in the workspace cache")


@dataclass
class StageRunner:
    """Runs stages, skipping those whose key has a stored result (storage/stage_results.py: plain
    JSON, never a pickle), and records what each one did."""

    ws: Workspace
    refresh: bool = False
    log: list[dict] = field(default_factory=list)

    def __call__(self, name: str, key: str, fn: Callable, present: Callable[[object], bool] = lambda r: True, **kwargs):
        t0, started = time.perf_counter(), time.time()
        result = None if self.refresh else read_stage_result(self.ws, key)
        cached = result is not None and present(result)
        if result is not None and not cached:  # cached, but its outputs left the workspace
            get_run_logger().warning("stage %s: cached result found but its outputs are gone; recomputing", name)
        if cached:
            cached_stage.with_options(name=f"stage-{name.split('-')[0]}", task_run_name=name)(name, key)
        else:
            task_ = stage.with_options(name=f"stage-{name.split('-')[0]}", task_run_name=name)
            result = as_plain(task_(name, key, fn, kwargs))  # the same types a later cache hit reads back
            write_stage_result(self.ws, key, result)
        self.log.append({"stage": name, "status": "cached" if cached else "computed",
                         "seconds": round(time.perf_counter() - t0, 2), "started": started, "key": key})
        return result


@flow(name="asd-pipeline")
def pipeline_flow(config_file: str | None = None, overrides: list[str] | None = None, config: dict | None = None,
                  refresh: bool = False) -> dict:
    """Run every configured stage; ``config`` (a PipelineConfig dict) or ``config_file`` + ``overrides``
    (``section.key=value``) describe the run; ``refresh`` ignores cached stages."""
    if config is not None and config_file is not None:
        raise PipelineConfigError("give config or config_file, not both")
    cfg = PipelineConfig.from_dict(config).with_overrides(overrides or []) if config is not None else load_config(config_file, overrides)
    if not cfg.data.roots:
        raise PipelineConfigError("data.roots is empty: list the dataset roots in the config or pass --data-root")
    ws = Workspace(Path(cfg.workspace)).ensure()
    ctx = get_run_context()
    with workspace_lock(ws, owner=f"flow run {ctx.flow_run.name} ({ctx.flow_run.id})"):
        runner = StageRunner(ws, refresh)
        with shard_task_runner(cfg.runner) as shard_runner:
            return _run(cfg, ws, runner, shard_runner)


def _run(cfg: PipelineConfig, ws: Workspace, run: StageRunner, shard_runner) -> dict:
    log = get_run_logger()
    t_start = time.perf_counter()
    threads = process_threads(cfg.runner)
    device = cfg.runner.device or None
    tracking_uri = cfg.register.tracking_uri or None
    root = str(ws.root)
    code = stage_code_versions()

    # --- ingest -------------------------------------------------------------------------------
    roots = [str(Path(r).expanduser().resolve()) for r in cfg.data.roots]
    ing = cfg.data.ingest
    # channel as a string, as ingest_flow and the stage keys of earlier versions have it
    ingest_kwargs = dict(roots=roots, workspace=root, dataset_name=cfg.data.dataset_name or None,
                         channel=ing.audio.channel_label, sample_rate=ing.audio.sample_rate,
                         storage_dtype=ing.audio.storage_dtype, ground_truth=cfg.data.ground_truth or None,
                         min_relative_duration=ing.min_relative_duration)
    if ing.audio.channels != AudioConfig.channels:  # only when set: the stage keys of earlier versions stay
        ingest_kwargs["channels"] = ing.audio.channels
    if ing.audio.channel_roles != CHANNEL_ROLES:
        ingest_kwargs["channel_roles"] = ",".join(ing.audio.channel_roles)
    gt = cfg.data.ground_truth
    ingest = run("ingest", stage_key("ingest", code["ingest"], roots=[tree_fingerprint(r) for r in roots],
                                     ground_truth=tree_fingerprint(gt) if gt else None, params=ingest_kwargs),
                 ingest_flow, present=lambda r: bool(all_files(ws, "clips")), **ingest_kwargs)
    if not ingest["clips"]:
        raise FileNotFoundError("no usable clips found in " + ", ".join(roots))
    clips_fp = clips_fingerprint(ws)

    # --- mixtures -----------------------------------------------------------------------------
    mixtures_fp = None
    if cfg.mix.enabled:
        m, p = cfg.mix, cfg.mix.params
        mix_kwargs = dict(workspace=root, noise=str(Path(m.noise).expanduser().resolve()) if m.noise else None,
                          supplemental=m.supplemental, mismatched=m.mismatched or None, seed=p.seed, snr_min=p.snr_min,
                          snr_max=p.snr_max, mixtures_per_clip=p.mixtures_per_clip, lam=p.lam)
        if m.noise_from_channel:  # only when set: the stage keys of earlier configs stay as they were
            mix_kwargs["noise_from_channel"] = m.noise_from_channel
        run("mix", stage_key("mix", code["mix"], clips=clips_fp,
                             noise=tree_fingerprint(mix_kwargs["noise"]) if m.noise else None, params=mix_kwargs),
            mix_flow, present=lambda r: mixtures_file(ws).exists() and noisy_clips_file(ws).exists(), **mix_kwargs)
        mixtures_fp = mixtures_fingerprint(ws)

    # --- teacher ------------------------------------------------------------------------------
    teacher_src = teacher_fp = None
    if cfg.teacher.checkpoint:
        teacher_src = str(Path(cfg.teacher.checkpoint).expanduser().resolve())
        teacher_fp = file_sha256(teacher_src, 16)
    elif cfg.teacher.enabled:
        tcfg = cfg.teacher.train.to_dict()
        t = run("teacher", stage_key("teacher", code["teacher"], clips=clips_fp, config=tcfg, device=device),
                train_teacher_flow, present=lambda r: Path(r["model_dir"]).is_dir(),
                workspace=root, config=tcfg, device=device, threads=threads, tracking_uri=tracking_uri)
        teacher_src, teacher_fp = t["model_dir"], t["model_hash"]

    # --- student ------------------------------------------------------------------------------
    student_dir = student_fp = None
    if cfg.student.enabled and mixtures_fp and teacher_src:
        scfg = cfg.student.train.to_dict()
        s = run("student", stage_key("student", code["student"], clips=clips_fp, mixtures=mixtures_fp,
                                     teacher=teacher_fp, config=scfg, device=device),
                train_student_flow, present=lambda r: Path(r["model_dir"]).is_dir(),
                workspace=root, teacher=teacher_src, config=scfg, device=device, threads=threads, tracking_uri=tracking_uri,
                model_name=cfg.register.model_name, evaluate=False, register=False)
        student_dir, student_fp = s["model_dir"], s["model_hash"]

    # --- embeddings ---------------------------------------------------------------------------
    layer = None if cfg.embed.beats_layer < 0 else cfg.embed.beats_layer
    specs = {name: EncoderSpec.spectral(name) for name in SPECTRAL_ENCODERS}
    if teacher_src:
        specs["beats"] = EncoderSpec.beats(teacher_src, layer, cfg.embed.beats_pooling)
        specs.update(EncoderSpec.of_teacher(teacher_src, cfg.mix.params.lam, layer, cfg.embed.beats_pooling))
    if student_dir:
        specs["student"] = EncoderSpec.student(student_dir)
    model_fp = {"teacher": teacher_fp, "beats": teacher_fp, "oracle": teacher_fp, "student": student_fp}
    embed_with_runner = embed_flow.with_options(task_runner=shard_runner)
    embeds, embed_keys = {}, {}
    for enc in cfg.embed.encoders:
        noisy = enc in cfg.embed.noisy_encoders and mixtures_fp is not None
        spec = specs[enc]
        kwargs = dict(workspace=root, encoder=spec.name, batch_size=cfg.embed.batch_size, threads=threads,
                      encoder_options=spec.options, workers=cfg.embed.workers, noisy=noisy)
        # paths are keyed by the content hash of what they point at
        embed_keys[enc] = stage_key(f"embed-{enc}", code["embed"], clips=clips_fp, model=model_fp.get(enc),
                                    options=spec.key_options(), noisy=noisy, mixtures=mixtures_fp if noisy else None,
                                    device=device)
        embeds[enc] = run(f"embed-{enc}", embed_keys[enc], embed_with_runner,
                          present=lambda r: encoder_card_file(ws, r["encoder"], r["encoder_version"]).exists(),
                          **kwargs)

    # --- scores and reports ---------------------------------------------------------------------
    score_with_runner = score_flow.with_options(task_runner=shard_runner)
    sc = cfg.score
    run_ids, score_keys, reports, normalization_of = {}, {}, {}, {}
    for enc, rep in embeds.items():
        noisy = enc in cfg.embed.noisy_encoders and mixtures_fp is not None
        for norm, spec in sc.runs():  # norm: the run's name, its normalization unless K or r are lists
            params = dict(encoder=rep["encoder"], encoder_version=rep["encoder_version"],
                          normalization=spec.config.normalization, k=spec.params().get("k", spec.config.k),
                          r=spec.params().get("r", spec.config.r), threshold_quantile=sc.scoring.threshold_quantile,
                          index_type=sc.scoring.index_type, strict=sc.strict, noisy=noisy)
            key = stage_key(f"score-{enc}-{norm}", code["score"], embed=embed_keys[enc], params=params)
            score_keys[(enc, norm)] = key
            r = run(f"score-{enc}-{norm}", key, score_with_runner, present=lambda r: _has_run(ws, r["run_id"]),
                    workspace=root, threads=threads, **params)
            run_ids[(enc, norm)] = r["run_id"]
            normalization_of[(enc, norm)] = spec.config.normalization
            if cfg.report.enabled:
                reports[(enc, norm)] = run(
                    f"report-{enc}-{norm}", stage_key(f"report-{enc}-{norm}", code["report"], score=key,
                                                      tracking=tracking_uri),
                    report_flow, present=lambda r: Path(r["index"]).exists(),
                    workspace=root, run_id=r["run_id"], tracking_uri=tracking_uri)

    # --- evaluation ---------------------------------------------------------------------------
    results = results_table(ws, list(run_ids.values()))
    noisy_ids = [run_ids[(e, n)] for (e, n) in run_ids if e in cfg.embed.noisy_encoders and mixtures_fp is not None]
    noisy = noise_comparison(ws, noisy_ids) if noisy_ids else []  # [] (not None, which means every run)
    create_table_artifact(key="pipeline-results", table=results,
                          description="official score and harmonic-mean AUCs per encoder x normalization (clean test clips)")
    if noisy:
        create_table_artifact(key="pipeline-noisy", table=noisy, description="official score per noise subset and SNR bin")

    # --- registration ---------------------------------------------------------------------------
    registered = None
    if cfg.register.enabled:
        # with K or r lists, register.normalization = "knn" means its run of the first listed value
        target = next(key for key in run_ids if key[0] == cfg.register.encoder and
                      cfg.register.normalization in (key[1], normalization_of[key]))
        reg_kwargs = dict(workspace=root, run_id=run_ids[target], tracking_uri=tracking_uri, model_name=cfg.register.model_name,
                          teacher=f"{Path(teacher_src).name} ({teacher_fp})" if teacher_src else "none",
                          loss_config=json.dumps(cfg.student.train.objective.to_dict(), sort_keys=True)
                          if cfg.register.encoder == "student" else "n/a")
        registered = run("register", stage_key("register", code["register"], score=score_keys[target],
                                               **{k: v for k, v in reg_kwargs.items() if k != "workspace"}),
                         register_scoring_run, **reg_kwargs)

    # --- the workspace dashboard: every run in the workspace, rebuilt each time (not a cached stage) --
    dashboard = None
    if cfg.report.enabled:
        dashboard = build_dashboard(ws, TrackingConfig(uri=tracking_uri)).index
        create_markdown_artifact(key="workspace-dashboard", description=f"every scoring run in {ws.root}",
                                 markdown=f"# Workspace dashboard\n\n[{dashboard}]({dashboard.as_uri()})")
        log.info("workspace dashboard: %s", dashboard)

    seconds = round(time.perf_counter() - t_start, 1)
    computed = sum(s["status"] == "computed" for s in run.log)
    log.info("pipeline done in %.1f s: %d stages computed, %d cached", seconds, computed, len(run.log) - computed)
    create_markdown_artifact(key="pipeline-summary", markdown=_summary_markdown(run.log, results, noisy, registered),
                             description=f"pipeline run on {ws.root}")
    return {"workspace": root, "stages": run.log, "seconds": seconds,
            "run_ids": {f"{e}/{n}": rid for (e, n), rid in run_ids.items()},
            "reports": {f"{e}/{n}": r["index"] for (e, n), r in reports.items()},
            "dashboard": str(dashboard) if dashboard else None,
            "results": results, "noisy": noisy, "registered": registered,
            "models": {"teacher": teacher_src, "student": student_dir}}


def _has_run(ws: Workspace, run_id: str) -> bool:
    if not (run_dir(ws, run_id) / "scores.parquet").exists() or not ws.duckdb_path.exists():
        return False
    with connect(ws, read_only=True) as con:
        return con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0] == 1


def _summary_markdown(stages: list[dict], results: list[dict], noisy: list[dict], registered: dict | None) -> str:
    parts = ["# Pipeline run", "## Stages", "```", format_table([{k: s[k] for k in ("stage", "status", "seconds")} for s in stages]), "```",
             "## Results (clean test clips)", "```", format_table(results), "```"]
    if noisy:
        parts += ["## Noisy test clips: official score per subset and SNR bin", "```", format_table(noisy), "```"]
    if registered:
        parts.append(f"Registered `{registered['name']}` version {registered['version']} (alias challenger), "
                     f"official score {registered['official_score']}.")
    return "\n".join(parts)
