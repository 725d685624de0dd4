"""The dashboard page: runs table (sortable by a click on a header; a few lines of inline JS),
charts and the registry's versions. Static: no server, no external resources."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass

from asd_core.reporting.dashboard_data import RunsData
from asd_core.reporting.registry_view import RegistryView

# (key, header, numeric) of the runs table
RUN_COLUMNS = (("run_id", "run", False), ("created", "created", False), ("encoder", "encoder", False),
               ("encoder_version", "version", False), ("normalization", "normalization", False),
               ("parameters", "parameters", False), ("channels", "channels", False), ("test_set", "test set", False),
               ("datasets", "datasets", False), ("sections", "sections", True), ("official_score", "official score", True),
               ("hmean_auc_source", "AUC source", True), ("hmean_auc_target", "AUC target", True),
               ("hmean_pauc", "pAUC", True), ("report", "report", False))
REGISTRY_COLUMNS = ("model", "version", "aliases", "official_score", "encoder", "normalization", "run_id",
                    "data_snapshot", "teacher", "git_commit", "promotion", "parent", "enrolled", "created")
REGISTRY_NUMERIC = ("version", "official_score")

# Sorting: a click on a header sorts by its cells' data-v (numbers numerically, empty cells last);
# a second click reverses. On load, <body> records what the page shows (read by the browser test).
SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex, num = th.dataset.type === 'num';
    var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
    function key(row) {
      var v = row.cells[col].dataset.v;
      if (v === undefined || v === '') { return null; }
      return num ? (isNaN(parseFloat(v)) ? null : parseFloat(v)) : v;
    }
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === null || y === null) { return (x === null) - (y === null); }
      return dir * (num ? x - y : x.localeCompare(y));
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
window.addEventListener('load', function () {
  var broken = Array.prototype.filter.call(document.images, function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.body.dataset.brokenImages = broken.map(function (i) { return i.getAttribute('src'); }).join(' ');
  document.body.dataset.images = String(document.images.length);
  document.body.dataset.runRows = String(document.querySelectorAll('#runs tbody tr').length);
  document.body.dataset.ready = '1';
});
"""

STYLE = """body{font-family:sans-serif;margin:2em;max-width:1600px} table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top} th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums} table.sortable th{cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"} th[aria-sort=descending]::after{content:" \\25BC"}
img{margin:4px;border:1px solid #eee;max-width:100%} .note{color:#666} details{margin:0.5em 0}"""


@dataclass
class Figures:
    official: str  # relative path of the PNG
    noisy: dict[str, str]  # noise subset -> relative path


def render_dashboard(workspace: str, data: RunsData, registry: RegistryView, figures: Figures) -> str:
    """The whole page as one string."""
    e = html.escape
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>asd workspace dashboard</title>
<style>{STYLE}</style></head>
<body><h1>Workspace dashboard</h1>
<p class="note">{e(workspace)}: {len(data.runs)} scoring runs. Official score = harmonic mean of AUC_source,
AUC_target and pAUC (FPR &le; 0.1) over every section (clean test clips); AUC columns are their harmonic means.</p>
<h2>Scoring runs</h2><p class="note">Click a column header to sort.</p>
{runs_table(data.runs)}
<h2>Official score per encoder and normalization</h2>
<p class="note">Best run of each encoder x normalization on the clean test clips; the dotted line is chance (0.5).</p>
<img src="{e(figures.official)}" alt="official score per encoder and normalization">
<h2>Noisy test sets: official score per SNR bin</h2>
{noisy_section(data.noisy, figures.noisy)}
<h2>Model registry</h2>
{registry_section(registry)}
<p class="note">generated {time.strftime('%Y-%m-%d %H:%M:%S')} by asd report --dashboard</p>
<script>{SCRIPT}</script>
</body></html>
"""


def fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    if hasattr(v, "strftime"):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return str(v)


def _sort_value(v) -> str:
    if v is None:
        return ""
    return repr(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else fmt(v)


def runs_table(runs: list[dict]) -> str:
    if not runs:
        return '<p id="runs">No scoring runs in this workspace yet (asd score, or asd pipeline).</p>'
    columns = [c for c in RUN_COLUMNS if c[0] != "channels" or any(r["channels"] for r in runs)]
    head = "".join(f'<th data-type="{"num" if num else "text"}">{html.escape(title)}</th>' for _, title, num in columns)
    body = []
    for r in runs:
        cells = []
        for key, _, num in columns:
            v = r[key]
            if key == "report":
                text = f'<a href="{html.escape(v)}">report</a>' if v else ""
            elif key == "run_id":
                text = f'<a href="{html.escape(r["report"])}">{html.escape(v)}</a>' if r["report"] else html.escape(v)
            else:
                text = html.escape(fmt(v))
            cls = ' class="num"' if num else ""
            cells.append(f'<td{cls} data-v="{html.escape(_sort_value(v) if num else fmt(v))}">{text}</td>')
        body.append(f'<tr id="run-{html.escape(r["run_id"])}" data-run-id="{html.escape(r["run_id"])}">{"".join(cells)}</tr>')
    return (f'<table id="runs" class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def noisy_section(noisy: list[dict], images: dict[str, str]) -> str:
    if not noisy:
        return ('<p class="note">No run scored noisy test clips (asd mix, asd embed --noisy, asd score --noisy; '
                'in the pipeline: embed.noisy_encoders).</p>')
    parts = ['<p class="note">Per noise subset, one panel per normalization and one line per encoder (teacher, '
             'students, oracle, ...); the rightmost point is the clean test set.</p>']
    for subset, src in images.items():
        parts.append(f'<h3>{html.escape(subset)}</h3><img src="{html.escape(src)}" alt="official score against SNR bin, '
                     f'{html.escape(subset)}">')
    rows = "".join(f'<tr data-run-id="{html.escape(r["run_id"])}"><td>{html.escape(r["noise_subset"])}</td>'
                   f'<td>{html.escape(r["snr_bin"])}</td><td>{html.escape(r["encoder"])}</td>'
                   f'<td>{html.escape(r["normalization"])}</td><td>{html.escape(r["run_id"])}</td>'
                   f'<td class="num" data-v="{_sort_value(r["official_score"])}">{fmt(r["official_score"])}</td></tr>'
                   for r in noisy)
    parts.append('<details><summary>the numbers</summary><table id="noisy" class="sortable"><thead><tr>'
                 '<th>noise subset</th><th>SNR bin</th><th>encoder</th><th>normalization</th><th>run</th>'
                 f'<th data-type="num">official score</th></tr></thead><tbody>{rows}</tbody></table></details>')
    return "\n".join(parts)


def registry_section(reg: RegistryView) -> str:
    where = f'<p class="note">Registry: {html.escape(reg.uri)}</p>'
    if not reg.versions:
        return f'<p id="registry-note">{html.escape(reg.note)}</p>{where}'
    columns = [c for c in REGISTRY_COLUMNS if any(v.get(c) not in (None, "") for v in reg.versions)]
    head = "".join(f'<th data-type="{"num" if c in REGISTRY_NUMERIC else "text"}">{html.escape(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f'<td data-v="{html.escape(fmt(v.get(c)))}">{html.escape(fmt(v.get(c)))}</td>'
                                    for c in columns) + "</tr>" for v in reg.versions)
    return f'<table id="registry" class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{where}'
