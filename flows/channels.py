"""Channel comparison flow: on a workspace of two-microphone recordings, score each encoder's
near channel, far channel, their fusions and the near channel conditioned on the far one, side by
side (README "Two microphones"); ``asd demo --channels 2`` and benchmarks/two_channel.py run it."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from asd_core.config import DEFAULT_WORKSPACE_NAME, Workspace
from asd_core.storage.catalog import connect, query_rows
from asd_core.storage.embeddings import read_encoder_card
from flows.embed import embed_flow
from flows.score import score_flow

# label -> score_flow channel options; "near" is the primary waveform, today's behaviour
VARIANTS: dict[str, dict] = {
    "near": {},
    "far": {"channel": "far"},
    "fusion mean": {"channels": ["near", "far"], "fusion": "mean"},
    "fusion max": {"channels": ["near", "far"], "fusion": "max"},
    "near | far reference": {"channel": "near", "noise_reference": "far"},
}


@flow(name="asd-channels")
def channel_comparison_flow(workspace: str = DEFAULT_WORKSPACE_NAME, encoders: list[str] | None = None,
                            normalization: str = "knn", threads: int | None = None) -> list[dict]:
    """Embed the far channel with each encoder (already embedded near: the pipeline's) and score
    every variant of ``VARIANTS``; rows: encoder, channels, run_id, official score and AUCs."""
    log = get_run_logger()
    ws = Workspace(Path(workspace))
    rows = []
    for name in encoders or ["logmel-stats"]:
        card = read_encoder_card(ws, name)
        embed_flow(workspace=workspace, encoder=card["registry_name"], encoder_options=card.get("options") or {},
                   threads=threads, channel="far")
        for label, options in VARIANTS.items():
            run = score_flow(workspace=workspace, encoder=name, normalization=normalization, threads=threads, **options)
            rows.append({"encoder": name, "channels": label, "run_id": run["run_id"]})
    with connect(ws, read_only=True) as con:
        metrics = {r["run_id"]: r for r in query_rows(con, """
            SELECT run_id, official_score, hmean_auc_source, hmean_auc_target, hmean_pauc FROM run_metrics
            WHERE noise_subset = 'clean'""")}
    for row in rows:
        m = metrics.get(row["run_id"]) or {}
        row.update({k: m.get(k) for k in ("official_score", "hmean_auc_source", "hmean_auc_target", "hmean_pauc")})
        log.info("%s %s: official score %s", row["encoder"], row["channels"], row["official_score"])
    return rows
