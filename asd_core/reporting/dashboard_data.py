"""What the workspace dashboard shows of the scoring runs, read from DuckDB (read-only): one row
per ``runs`` row with its clean metrics, and the official score per noise subset and SNR bin."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from asd_core.config import Workspace
from asd_core.evaluation.compare import channel_label
from asd_core.storage.catalog import connect, query_rows
from asd_core.storage.paths import report_dir

# runs.params keys the parameters column leaves out (shown elsewhere, or bookkeeping)
HIDDEN_PARAMS = ("data_snapshot", "skipped_sections", "test_set", "choices", "channel", "channels", "fusion",
                 "noise_reference", "noise_reference_fit")

# One scan of section_metrics: official score and harmonic means per run and condition, over every
# section of every dataset (as the registry's official score and noise_comparison compute it).
CONDITION_METRICS = """
WITH parts AS (
    SELECT run_id, noise_subset, snr_bin, unnest(['auc_source', 'auc_target', 'pauc']) AS part,
           unnest([auc_source, auc_target, pauc]) AS v
    FROM section_metrics)
SELECT run_id, noise_subset, snr_bin, count(*) FILTER (WHERE part = 'pauc') AS sections,
       hmean(v) AS official_score,
       hmean(CASE WHEN part = 'auc_source' THEN v END) AS hmean_auc_source,
       hmean(CASE WHEN part = 'auc_target' THEN v END) AS hmean_auc_target,
       hmean(CASE WHEN part = 'pauc' THEN v END) AS hmean_pauc
FROM parts GROUP BY ALL"""


@dataclass
class RunsData:
    runs: list[dict]  # one per runs row, newest first
    noisy: list[dict] = field(default_factory=list)  # run x noise subset x SNR bin (clean rows of noisy runs included)


def runs_data(ws: Workspace) -> RunsData:
    """Every scoring run with its clean metrics and report link, and the noisy-test scores."""
    with connect(ws, read_only=True) as con:
        runs = query_rows(con, """SELECT run_id, created_at, encoder, encoder_version, normalization, params, transductive
                                  FROM runs ORDER BY created_at DESC, run_id""")
        metrics = query_rows(con, CONDITION_METRICS)
        datasets = {r["run_id"]: r["datasets"] for r in query_rows(con, """
            SELECT run_id, string_agg(DISTINCT dataset, ', ' ORDER BY dataset) AS datasets FROM thresholds GROUP BY run_id""")}
    clean = {m["run_id"]: m for m in metrics if m["noise_subset"] == "clean"}
    out = []
    for run in runs:
        params = json.loads(run["params"]) if isinstance(run["params"], str) else dict(run["params"])
        m = clean.get(run["run_id"], {})
        report = report_dir(ws, run["run_id"]) / "index.html"
        out.append({
            "run_id": run["run_id"], "created": run["created_at"], "encoder": run["encoder"],
            "encoder_version": run["encoder_version"], "normalization": run["normalization"],
            "parameters": params_label(params), "channels": channel_label(params),
            "test_set": params.get("test_set", "clean"), "datasets": datasets.get(run["run_id"], ""),
            "sections": m.get("sections"), "official_score": m.get("official_score"),
            "hmean_auc_source": m.get("hmean_auc_source"), "hmean_auc_target": m.get("hmean_auc_target"),
            "hmean_pauc": m.get("hmean_pauc"),
            "report": f"{run['run_id']}/index.html" if report.is_file() else None})
    by_id = {r["run_id"]: r for r in out}
    noisy_ids = {m["run_id"] for m in metrics if m["noise_subset"] != "clean"}
    noisy = [{"run_id": m["run_id"], "encoder": by_id[m["run_id"]]["encoder"],
              "normalization": by_id[m["run_id"]]["normalization"], "noise_subset": m["noise_subset"],
              "snr_bin": m["snr_bin"], "official_score": m["official_score"]}
             for m in metrics if m["run_id"] in noisy_ids and m["run_id"] in by_id]
    noisy.sort(key=lambda r: (r["noise_subset"] != "clean", r["noise_subset"], snr_order(r["snr_bin"]), r["encoder"],
                              r["normalization"], r["run_id"]))
    return RunsData(out, noisy)


def params_label(params: dict) -> str:
    """``k=4 metric=cosine threshold_quantile=0.9``: the scoring parameters of a run, short."""
    parts = [f"{k}={_short(v)}" for k, v in sorted(params.items()) if k not in HIDDEN_PARAMS]
    chosen = sorted({f"{key}={value}" for c in (params.get("choices") or {}).values() for key, value in c.items()
                     if key in ("k", "r")})
    if chosen:
        parts.append("chosen: " + ", ".join(chosen))
    if params.get("skipped_sections"):
        parts.append(f"{len(params['skipped_sections'])} sections skipped")
    return " ".join(parts)


def _short(v) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def snr_order(snr_bin: str) -> float:
    """SNR bins by their lower edge, ``clean`` last (no noise: the highest SNR)."""
    if ".." in snr_bin:
        try:
            return float(snr_bin.split("..")[0])
        except ValueError:
            pass
    return float("inf")
