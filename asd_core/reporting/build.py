"""``<workspace>/reports/<run_id>/index.html``: one self-contained folder per scoring run
(HTML + PNGs), written atomically so a failed rebuild leaves the previous report."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from pathlib import Path

from asd_core.config import Workspace
from asd_core.reporting.data import ReportInputs, report_inputs
from asd_core.reporting.figures import histograms_png, roc_png
from asd_core.scoring.run import run_params
from asd_core.storage.atomic import atomic_dir
from asd_core.storage.paths import report_dir


@dataclass
class ReportResult:
    run: dict  # the runs row
    folder: Path
    index: Path
    figures: list[Path] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.run["run_id"]


def build_report(ws: Workspace, run_id: str | None = None) -> ReportResult:
    """Write the report of ``run_id`` (the newest run when None); replaces an earlier one."""
    data = report_inputs(ws, run_id)  # resolves the run id and reads its runs row
    final = report_dir(ws, data.run["run_id"])
    with atomic_dir(final) as tmp:
        figures = []
        for sec in data.sections:
            stem = f"{sec.dataset}_{sec.machine_type}_section_{sec.section}"
            figures.append(histograms_png(sec, tmp / f"hist_{stem}.png"))
            figures.append(roc_png(sec, tmp / f"roc_{stem}.png"))
        (tmp / "index.html").write_text(render_html(data, [f.name for f in figures]))
        names = [f.name for f in figures]
    return ReportResult(data.run, final, final / "index.html", [final / n for n in names], data.summary)


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>(no rows)</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def render_html(data: ReportInputs, figure_names: list[str]) -> str:
    run = data.run
    params = run_params(run)
    meta = [{"run_id": run["run_id"], "encoder": run["encoder"], "encoder_version": run["encoder_version"],
             "normalization": run["normalization"], **{k: v for k, v in params.items() if k != "skipped_sections"}}]
    sections = []
    for sec in data.sections:
        stem = f"{sec.dataset}_{sec.machine_type}_section_{sec.section}"
        imgs = "".join(f'<img src="{n}" alt="{html.escape(n)}">' for n in figure_names
                       if n in (f"hist_{stem}.png", f"roc_{stem}.png"))
        sections.append(f"<h3>{html.escape(sec.name)}</h3><div class='figs'>{imgs}</div>")
    explain = ("Left: the plain k-NN distance with its own threshold; the target domain (few training clips) "
               "sits on another scale, so one threshold cannot serve both domains. Right: after "
               f"{html.escape(run['normalization'])} normalization the domains share one scale and one threshold."
               if run["normalization"] != "none" else "Scores of an unnormalized run (plain k-NN distance).")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>asd run {html.escape(run['run_id'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}} th{{background:#f3f3f3}} img{{margin:4px;border:1px solid #eee}}
.figs{{display:flex;flex-wrap:wrap;align-items:flex-start}}</style></head>
<body><h1>Scoring run {html.escape(run['run_id'])}</h1>
{_table(meta)}
<h2>Metrics</h2><p>Official score = harmonic mean of AUC_source, AUC_target and pAUC (FPR &le; 0.1) over sections (clean test clips).</p>
{_table(data.summary)}
<h2>Per section</h2>
{_table(data.section_metrics)}
<h2>Score distributions and ROC curves</h2><p>{explain} ROC per domain: that domain's normal clips against all anomalous clips.</p>
{''.join(sections)}
<p style="color:#888">generated {time.strftime('%Y-%m-%d %H:%M:%S')} by asd report</p>
</body></html>
"""
