"""The noisy-test-set comparison: official score per noise subset and SNR bin, side by side
for several runs (teacher, students, oracle; with and without normalisation)."""

from __future__ import annotations

from asd_core.config import Workspace
from asd_core.storage.catalog import connect, query_rows

def _bin_key(b: str) -> float:
    """Order of SNR bins by their lower edge ('clean' rows sort first anyway)."""
    return float(b.split("..")[0]) if ".." in b else float("-inf")


def noise_comparison(ws: Workspace, run_ids: list[str] | None = None) -> list[dict]:
    """Rows = (noise subset, SNR bin), one column per run ``<encoder>/<normalization>``.

    Without ``run_ids``: every run that scored noisy test clips. The official score is the
    harmonic mean over all sections of all datasets in the condition.
    """
    with connect(ws, read_only=True) as con:
        if run_ids is None:
            run_ids = [r[0] for r in con.execute(
                "SELECT run_id FROM runs WHERE json_extract_string(params, '$.test_set') = 'clean+noisy' ORDER BY encoder, normalization"
            ).fetchall()]
        if not run_ids:
            return []
        marks = ", ".join("?" * len(run_ids))
        rows = query_rows(con, f"""
            WITH parts AS (
                SELECT run_id, noise_subset, snr_bin, unnest([auc_source, auc_target, pauc]) AS v
                FROM section_metrics WHERE run_id IN ({marks}))
            SELECT p.run_id, r.encoder, r.normalization, noise_subset, snr_bin, hmean(v) AS official_score
            FROM parts p JOIN runs r USING (run_id) GROUP BY ALL""", run_ids)
    columns = {}
    for r in sorted(rows, key=lambda r: (r["encoder"], r["normalization"])):
        columns.setdefault(r["run_id"], f"{r['encoder']}/{r['normalization']}")
    table: dict[tuple[str, str], dict] = {}
    for r in rows:
        row = table.setdefault((r["noise_subset"], r["snr_bin"]), {"noise_subset": r["noise_subset"], "snr_bin": r["snr_bin"]})
        row[columns[r["run_id"]]] = r["official_score"]
    ordered = sorted(table.values(), key=lambda r: (r["noise_subset"] != "clean", r["noise_subset"], _bin_key(r["snr_bin"])))
    names = list(dict.fromkeys(columns.values()))
    return [{"noise_subset": r["noise_subset"], "snr_bin": r["snr_bin"], **{n: r.get(n) for n in names}} for r in ordered]
