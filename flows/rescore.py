"""Re-score flow: when new data lands, ingest it and score it with the encoders the workspace
already has (no training), one run per encoder x normalization, with reports."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from asd_core.config import DEFAULT_WORKSPACE_NAME, Workspace
from asd_core.encoders.spec import EncoderSpec
from asd_core.storage.lock import workspace_lock
from asd_core.pipeline.results import results_table
from asd_core.storage.embeddings import newest_encoder_cards
from flows.embed import embed_flow
from flows.ingest import ingest_flow
from flows.report import report_flow
from flows.score import score_flow


def current_encoders(ws: Workspace) -> list[dict]:
    """The newest ``encoder.json`` card of each encoder with embeddings in the workspace."""
    return newest_encoder_cards(ws)


@flow(name="asd-rescore")
def rescore_flow(data_root: str, workspace: str = DEFAULT_WORKSPACE_NAME, dataset_name: str | None = None,
                 normalizations: list[str] | None = None, reports: bool = True, threads: int | None = None) -> dict:
    """Ingest ``data_root`` (idempotent: unchanged files cost nothing) and score its test clips with
    every encoder in the workspace. Training is the nightly pipeline's job; this only re-scores."""
    log = get_run_logger()
    ws = Workspace(Path(workspace))
    encoders = current_encoders(ws)
    if not encoders:
        raise FileNotFoundError(f"no encoders in {ws.root}: run `asd pipeline` (or `asd embed`) once before re-scoring")
    with workspace_lock(ws, owner="asd-rescore"):
        ingest = ingest_flow(roots=[str(Path(data_root).expanduser().resolve())], workspace=str(ws.root), dataset_name=dataset_name)
        run_ids = []
        for card in encoders:
            spec = EncoderSpec.from_card(card)
            rep = embed_flow(workspace=str(ws.root), encoder=spec.name, encoder_options=spec.options, threads=threads)
            for norm in normalizations or ["knn"]:
                r = score_flow(workspace=str(ws.root), encoder=rep["encoder"], encoder_version=rep["encoder_version"],
                               normalization=norm, threads=threads)
                run_ids.append(r["run_id"])
                if reports:
                    report_flow(workspace=str(ws.root), run_id=r["run_id"], mlflow=False)
    results = results_table(ws, run_ids)
    create_table_artifact(key="rescore-results", table=results, description=f"re-scoring after new data in {data_root}")
    log.info("re-scored %d runs after ingesting %d clips (%d new) from %s", len(run_ids), ingest["clips"], ingest["decoded"], data_root)
    return {"run_ids": run_ids, "results": results, "clips": ingest["clips"], "decoded": ingest["decoded"]}
