"""Runs side by side (``asd evaluate --compare``): official score and its parts per run, with the
K / r each used and, for ``auto`` runs, what was chosen per section."""

from __future__ import annotations

import json
from collections import Counter

from asd_core.config import Workspace
from asd_core.storage.catalog import connect, query_rows


def compare_runs(ws: Workspace, run_ids: list[str] | None = None, noise_subset: str = "clean") -> list[dict]:
    """One row per run (all runs, or ``run_ids``), best official score first within an encoder."""
    where, args = ("AND m.run_id IN (SELECT unnest(?))", [run_ids]) if run_ids else ("", [])
    with connect(ws, read_only=True) as con:
        rows = query_rows(con, f"""
            SELECT m.run_id, m.dataset, m.encoder, m.normalization, r.params, m.sections, m.official_score,
                   m.hmean_auc_source, m.hmean_auc_target, m.hmean_pauc
            FROM run_metrics m JOIN runs r USING (run_id)
            WHERE m.noise_subset = ? AND m.snr_bin = 'clean' {where}
            ORDER BY m.encoder, m.dataset, m.official_score DESC NULLS LAST, m.run_id""", [noise_subset, *args])
        if run_ids:
            missing = set(run_ids) - {r["run_id"] for r in rows}
            if missing:
                raise ValueError(f"no metrics for run(s) {', '.join(sorted(missing))} (unknown, or no labelled test clips)")
    out = []
    for r in rows:
        params = json.loads(r["params"]) if isinstance(r["params"], str) else dict(r["params"])
        out.append({"run_id": r["run_id"], "dataset": r["dataset"], "encoder": r["encoder"], "normalization": r["normalization"],
                    "k": params.get("k", ""), "r": params.get("r", ""), "chosen": _chosen(params),
                    "channels": channel_label(params),
                    "sections": r["sections"], "official_score": _f(r["official_score"]),
                    "auc_source": _f(r["hmean_auc_source"]), "auc_target": _f(r["hmean_auc_target"]), "pauc": _f(r["hmean_pauc"])})
    if not any(row["channels"] for row in out):  # data of one channel: the table as it always was
        for row in out:
            del row["channels"]
    return out


def channel_label(params: dict) -> str:
    """``far``, ``near+far max``, ``near | far``: which channels a run scored ("" for the primary waveform)."""
    if params.get("channels"):
        return f"{'+'.join(params['channels'])} {params.get('fusion')}"
    label = params.get("channel") or ""
    if params.get("noise_reference"):
        label = f"{label or 'primary'} | {params['noise_reference']}"
    return label


def _chosen(params: dict) -> str:
    """``k=1 x3, k=4 x2``: the values an auto run chose, with how many sections chose each."""
    choices = params.get("choices") or {}
    counts = Counter(f"{key}={value}" for c in choices.values() for key, value in c.items() if key in ("k", "r"))
    return ", ".join(f"{v} x{n}" for v, n in sorted(counts.items()))


def _f(x) -> str:
    return "" if x is None else f"{x:.4f}"
