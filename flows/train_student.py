"""Student flow: train on mixtures (resumable), evaluate teacher / student / oracle on clean and
noisy test sets (runs in DuckDB), log everything to MLflow, register the student."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from asd_core.config import DEFAULT_WORKSPACE_NAME, Workspace
from asd_core.encoders.spec import EncoderSpec
from asd_core.evaluation.noise import noise_comparison
from asd_core.mixing.artifacts import read_mixtures
from asd_core.runtime import configure_threads
from asd_core.storage.models import read_card
from asd_core.textable import format_table
from asd_core.tracking.registry import register_run
from asd_core.tracking.store import TrackingConfig, training_run
from asd_core.training.student import StudentTrainConfig, train_student
from flows.embed import embed_flow
from flows.score import score_flow

EVAL_NORMALIZATIONS = ("none", "knn")
# pydantic notes that the flow parameter ``register`` shadows a BaseModel attribute; harmless, and the name is public API
warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)


@task(cache_policy=NO_CACHE)
def train(ws: Workspace, teacher: str, cfg: StudentTrainConfig, device: str | None, on_epoch_end=None):
    return train_student(ws, teacher, cfg, device=device, on_epoch_end=on_epoch_end)


def evaluation_encoders(teacher: str, cfg: StudentTrainConfig, student_dir) -> dict[str, EncoderSpec]:
    """Frozen teacher, oracle and student to score. The oracle mixes the teacher's embeddings of the
    parts with the mixtures' lambda (methods.md section 3: 0.5), whatever the student's objective:
    ``denoise`` trains towards lambda = 1, but its report must compare against the same oracle."""
    return {**EncoderSpec.of_teacher(teacher, cfg.objective.lam, cfg.layer, cfg.pooling),
            "student": EncoderSpec.student(student_dir)}


def evaluate_encoders(workspace: str, encoders: dict[str, EncoderSpec], threads: int | None) -> dict[tuple[str, str], str]:
    """Embed clean + noisy test clips with each encoder and score them with each normalisation;
    (encoder given, normalization) -> run id."""
    run_ids = {}
    for name, spec in encoders.items():
        report = embed_flow(workspace=workspace, encoder=spec.name, encoder_options=spec.options, threads=threads, noisy=True)
        for normalization in EVAL_NORMALIZATIONS:
            run_ids[(name, normalization)] = score_flow(
                workspace=workspace, encoder=report["encoder"], normalization=normalization,
                encoder_version=report["encoder_version"], threads=threads, noisy=True)["run_id"]
    return run_ids


@flow(name="asd-train-student")
def train_student_flow(workspace: str = DEFAULT_WORKSPACE_NAME, teacher: str | None = None, config: dict | None = None,
                       device: str | None = None, threads: int | None = None, tracking_uri: str | None = None,
                       model_name: str = "asd-encoder", evaluate: bool = True, register: bool = True) -> dict:
    """Train a student of ``teacher`` (a teacher folder or a BEATs checkpoint); re-running the
    same config resumes or returns the finished model. With ``evaluate`` the teacher, the
    student and the oracle are scored (none, knn) on clean and noisy test clips; with
    ``register`` the student's knn run becomes a new ``challenger`` version in MLflow."""
    log = get_run_logger()
    configure_threads(threads)
    ws = Workspace(Path(workspace))
    if teacher is None:
        raise ValueError("--teacher is required: a folder written by `asd train-teacher` or a BEATs checkpoint")
    config = dict(config or {})
    objective = dict(config.get("objective") or {})
    if "lam" not in objective:  # default: the lambda `asd mix` stored with the mixtures
        lams = {r["lam"] for r in read_mixtures(ws)}
        objective["lam"] = lams.pop() if len(lams) == 1 else 0.5
    config["objective"] = objective
    cfg = StudentTrainConfig.from_dict(config)
    tracking = TrackingConfig(uri=tracking_uri, model_name=model_name)
    with training_run(ws, tracking, run_name=f"student-{cfg.objective.objective}",
                      tags={"kind": "student", "objective": cfg.objective.objective}) as mlog:
        mlog.log_params({"teacher": teacher, **cfg.to_dict()})
        mlog.log_dict(cfg.to_dict(), "config.json")
        result = train(ws, teacher, cfg, device, on_epoch_end=mlog.log_epoch)
        card = read_card(result.model_dir, "student")
        mlog.log_dict(dict(card), "student_card.json")
        mlog.log_loss_curves(result.history, ["train_loss", "train_tag_loss", "train_align_loss", "val_loss"])
        report = {"model_dir": str(result.model_dir), "model_hash": result.model_hash, "best_epoch": result.best_epoch,
                  "epochs_run": result.epochs_run, "resumed_from": result.resumed_from, "history": result.history,
                  "steps_per_s": result.steps_per_s, "objective": cfg.objective.objective, "mlflow_run_id": mlog.run_id}
        create_table_artifact(key="student-training", table=result.history,
                              description=f"student {result.model_hash} ({cfg.objective.objective}): per-epoch losses")
        if evaluate:
            encoders = evaluation_encoders(teacher, cfg, result.model_dir)
            runs = evaluate_encoders(workspace, encoders, threads)
            report["run_ids"] = list(runs.values())
            table = noise_comparison(ws, report["run_ids"])
            report["evaluation"] = table
            mlog.log_table(table, "evaluation.json")
            create_markdown_artifact(key="student-evaluation", markdown="```\n" + format_table(table) + "\n```",
                                     description="official score per noise subset / SNR bin")
    if evaluate and register:
        reg = register_run(ws, runs[("student", "knn")], tracking, tags={
            "teacher": f"{Path(teacher).name} ({card['teacher']['source_hash']})",
            "loss_config": json.dumps(cfg.objective.to_dict(), sort_keys=True), "training_mlflow_run": report["mlflow_run_id"]})
        report["registered"] = {k: v for k, v in reg.items() if k != "tags"}
        log.info("registered %s version %s (alias challenger), official score %s", reg["name"], reg["version"], reg["official_score"])
    return report

