"""The workspace dashboard (reports/index.html): the numbers it shows are what SQL computes, one
row per run, every image exists, the registry section, atomic rebuilds, ``asd report --dashboard``,
the pipeline; the page in a real headless Chromium. Also the histograms' log scale."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from asd_core.reporting.dashboard_data import RunsData, params_label, snr_order
from asd_core.reporting.dashboard_figures import line_labels
from asd_core.reporting.data import SectionScores
from asd_core.reporting.figures import hist_scale, histograms_figure
from asd_core.tracking.plots import plt

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install "
                                                             "chromium; .ci/run installs it when apt is available)")


# --- histogram scales (pure) ------------------------------------------------------------------------

def test_hist_scale_is_log_when_positive_scores_span_more_than_two_decades():
    rng = np.random.default_rng(0)
    normals = rng.lognormal(0.0, 0.2, 300)  # ~1
    scores = np.r_[normals, [150.0, 900.0, 4000.0]]  # a few anomalies three decades higher
    s = hist_scale(scores)
    assert s.name == "log"
    assert s.bins[0] == pytest.approx(scores.min()) and s.bins[-1] == pytest.approx(scores.max())
    ratios = s.bins[1:] / s.bins[:-1]
    assert np.allclose(ratios, ratios[0])  # equal widths on the log axis
    # the normal clips spread over several bins instead of collapsing into the first one
    assert len(np.unique(np.digitize(normals, s.bins))) >= 5
    assert len(np.unique(np.digitize(normals, np.linspace(scores.min(), scores.max(), 31)))) == 1


@pytest.mark.parametrize("scores", [
    np.linspace(0.5, 40.0, 50),  # under two decades
    np.r_[-3.0, np.geomspace(0.01, 100.0, 50)],  # negative somewhere: scores centred on 0 have no decades
    np.full(10, 2.0),  # flat
    np.r_[np.nan, np.inf, 1.0, 2.0],  # non-finite values ignored
])
def test_hist_scale_is_linear_otherwise(scores):
    s = hist_scale(scores)
    assert s.name == "linear"
    finite = scores[np.isfinite(scores)]
    assert s.bins[0] <= finite.min() and s.bins[-1] >= finite.max()
    assert np.allclose(np.diff(s.bins), np.diff(s.bins)[0])


def test_hist_scale_keeps_zeros_visible_with_symlog():
    scores = np.r_[0.0, 0.0, np.geomspace(0.01, 50.0, 40)]
    s = hist_scale(scores)
    assert s.name == "symlog" and s.linthresh == pytest.approx(0.01)
    assert s.bins[0] == 0.0 and s.bins[1] == pytest.approx(0.01)
    counts, _ = np.histogram(scores, s.bins)
    assert counts[0] == 2 and counts.sum() == scores.size  # the zeros have their own bin; nothing falls out


def _section(scores, raw=None):
    n = len(scores)
    return SectionScores("demo", "fan", "00", np.array(["source", "target"] * (n // 2)), np.array([0, 0, 0, 1] * (n // 4)),
                         np.asarray(scores, float), 1.5, None if raw is None else np.asarray(raw, float),
                         None if raw is None else 2.0)


def test_histogram_axes_take_the_chosen_scale():
    wide = np.r_[np.linspace(1.0, 2.0, 36), [300.0, 800.0, 2000.0, 5000.0]]  # after: > 2 decades
    narrow = np.linspace(1.0, 3.0, 40)  # before: linear
    fig = histograms_figure(_section(wide, raw=narrow))
    try:
        before, after = fig.axes
        assert before.get_xscale() == "linear" and after.get_xscale() == "log"
        assert "log scale" in after.get_title()
    finally:
        plt.close(fig)


# --- small pure helpers -------------------------------------------------------------------------------

def test_params_label_and_snr_order():
    label = params_label({"k": 4, "metric": "cosine", "data_snapshot": "ab", "test_set": "clean+noisy",
                          "skipped_sections": ["x"], "choices": {"a": {"k": 2}, "b": {"k": 2}}})
    assert label == "k=4 metric=cosine chosen: k=2 1 sections skipped"
    assert sorted(["clean", "5..10", "-10..-5", "-5..0"], key=snr_order) == ["-10..-5", "-5..0", "5..10", "clean"]


def test_line_labels_name_the_run_only_when_an_encoder_has_two_lines():
    noisy = [{"run_id": "a", "encoder": "teacher", "normalization": "knn"},
             {"run_id": "b", "encoder": "student", "normalization": "knn"},
             {"run_id": "c", "encoder": "student", "normalization": "knn"},
             {"run_id": "d", "encoder": "student", "normalization": "none"}]
    assert line_labels(noisy) == {"a": "teacher", "b": "student (b)", "c": "student (c)", "d": "student"}


# --- the page, parsed ---------------------------------------------------------------------------------

class Page(HTMLParser):
    """Rows of the runs table (data-run-id -> cells as (data-v, text)), images and links."""

    def __init__(self, text: str):
        super().__init__()
        self.rows: dict[str, list[tuple[str | None, str]]] = {}
        self.headers: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self._table = self._row = self._cell = None
        self._in_th = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id")
        elif tag == "img":
            self.images.append(a["src"])
        elif tag == "a":
            self.links.append(a["href"])
        elif self._table == "runs":
            if tag == "tr" and "data-run-id" in a:
                self._row = self.rows.setdefault(a["data-run-id"], [])
            elif tag == "td" and self._row is not None:
                self._cell = [a.get("data-v"), ""]
            elif tag == "th":
                self._in_th = True
                self.headers.append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = self._row = None
        elif tag == "td" and self._cell is not None:
            self._row.append(tuple(self._cell))
            self._cell = None
        elif tag == "th":
            self._in_th = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data
        elif self._in_th:
            self.headers[-1] += data

    def column(self, header: str) -> dict[str, tuple[str | None, str]]:
        i = self.headers.index(header)
        return {rid: cells[i] for rid, cells in self.rows.items()}


# --- a headless Chromium --------------------------------------------------------------------------------

def chromium_dom(url: str, profile: Path) -> tuple[str, list[str]]:
    """The DOM after the page's load handlers ran, and the console lines Chromium logged."""
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                           "--virtual-time-budget=10000", "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


def body_data(dom: str) -> dict[str, str]:
    tag = re.search(r"<body([^>]*)>", dom).group(1)
    return {k: v for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', tag)}


@needs_chromium
def test_table_sorts_on_a_header_click_in_chromium(tmp_path):
    """The page's own sorting script, on a page of made-up runs: numbers numerically, empty cells last."""
    from asd_core.reporting.dashboard_html import Figures, render_dashboard
    from asd_core.reporting.registry_view import RegistryView

    runs = [{"run_id": rid, "created": None, "encoder": enc, "encoder_version": "v1", "normalization": "knn",
             "parameters": "k=1", "channels": "", "test_set": "clean", "datasets": "demo", "sections": sections,
             "official_score": None if sections is None else 0.5, "hmean_auc_source": None, "hmean_auc_target": None,
             "hmean_pauc": None, "report": None}
            for rid, enc, sections in [("r1", "b", 12), ("r2", "a", None), ("r3", "c", 100), ("r4", "d", 3)]]
    page = render_dashboard("ws", RunsData(runs), RegistryView("sqlite:///x", note="none"), Figures("official.png", {}))
    plt.imsave(tmp_path / "official.png", np.zeros((4, 4)))
    click = """<script>window.addEventListener('load', function () {
      var th = Array.prototype.find.call(document.querySelectorAll('#runs th'), function (h) { return h.textContent === '%s'; });
      var order = function () { return Array.prototype.map.call(document.querySelectorAll('#runs tbody tr'),
                                                                function (r) { return r.dataset.runId; }).join(','); };
      th.click(); document.body.dataset.first = order(); th.click(); document.body.dataset.second = order();
    });</script></body>"""
    for header, first, second in [("sections", "r4,r1,r3,r2", "r3,r1,r4,r2"), ("encoder", "r2,r1,r3,r4", "r4,r3,r1,r2")]:
        (tmp_path / "index.html").write_text(page.replace("</body>", click % header))
        dom, console = chromium_dom((tmp_path / "index.html").as_uri(), tmp_path / "profile")
        data = body_data(dom)
        assert console == [] and data["ready"] == "1" and data["broken-images"] == ""
        assert (data["first"], data["second"]) == (first, second), header


# --- a real scored workspace ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dash_ws(tmp_path_factory, demo_small, prefect_harness, ingest_tree):
    """Clean and noisy runs of two encoders (mix, noisy embeddings, 4 scoring runs), one with a report."""
    from asd_core.reporting import build_report
    from flows.embed import embed_flow
    from flows.mix import mix_flow
    from flows.score import score_flow

    ws = ingest_tree(tmp_path_factory.mktemp("ws-dashboard"), demo_small)
    mix_flow(workspace=str(ws.root), noise=str(demo_small / "noise"), eval_subsets=["non-stationary", "mismatched"],
             eval_bins=[[-10, 0], [0, 10]])
    runs = {}
    for enc in ("logmel-stats", "stft-mean"):
        embed_flow(workspace=str(ws.root), encoder=enc, noisy=True)
        for norm in ("none", "knn"):
            noisy = (enc, norm) != ("stft-mean", "none")  # one run of the clean test set only
            runs[(enc, norm)] = score_flow(workspace=str(ws.root), encoder=enc, normalization=norm, noisy=noisy)["run_id"]
    build_report(ws, runs[("logmel-stats", "knn")])
    return ws, runs


def _sql(ws, sql, params=()):
    from asd_core.storage.catalog import connect, query_rows

    with connect(ws, read_only=True) as con:
        return query_rows(con, sql, list(params))


@pytest.mark.slow  # the module's workspace: mix, two encoders with noisy test clips, 4 runs (~30 s)
def test_one_row_per_run_with_the_official_scores_sql_computes(dash_ws):
    from asd_core.reporting.dashboard import build_dashboard
    from asd_core.storage.catalog import connect
    from asd_core.tracking.registry import official_score

    ws, runs = dash_ws
    result = build_dashboard(ws)
    page = Page(result.index.read_text())
    ids = [r["run_id"] for r in _sql(ws, "SELECT run_id FROM runs")]
    assert sorted(page.rows) == sorted(ids) and len(page.rows) == len(ids) == 4
    metrics = {m["run_id"]: m for m in _sql(ws, "SELECT * FROM run_metrics WHERE noise_subset = 'clean'")}
    shown = page.column("official score")
    with connect(ws, read_only=True) as con:
        for rid in ids:
            value, text = shown[rid]
            assert float(value) == pytest.approx(metrics[rid]["official_score"], abs=1e-12)
            assert float(value) == pytest.approx(official_score(con, rid), abs=1e-12)  # what registration tags
            assert text == f"{metrics[rid]['official_score']:.4f}"
    for header, column in [("AUC source", "hmean_auc_source"), ("AUC target", "hmean_auc_target"), ("pAUC", "hmean_pauc")]:
        assert {rid: float(v) for rid, (v, _) in page.column(header).items()} == pytest.approx(
            {rid: metrics[rid][column] for rid in ids}, abs=1e-12)
    encoders = {rid: text for rid, (_, text) in page.column("encoder").items()}
    assert encoders == {rid: enc for (enc, _), rid in runs.items()}
    test_sets = {rid: text for rid, (_, text) in page.column("test set").items()}
    assert test_sets[runs[("stft-mean", "none")]] == "clean" and test_sets[runs[("stft-mean", "knn")]] == "clean+noisy"
    assert "k=1" in page.column("parameters")[runs[("stft-mean", "knn")]][1]


@pytest.mark.slow
def test_every_image_and_report_link_resolves(dash_ws):
    from asd_core.reporting.dashboard import build_dashboard

    ws, runs = dash_ws
    result = build_dashboard(ws)
    page = Page(result.index.read_text())
    folder = result.index.parent
    subsets = {r["noise_subset"] for r in _sql(ws, "SELECT DISTINCT noise_subset FROM scored_clips")} - {"clean"}
    assert len(page.images) == 1 + len(subsets) == len(result.figures)
    assert sorted(folder / src for src in page.images) == sorted(result.figures)
    for src in page.images:
        with open(folder / src, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert {f"dashboard/noisy_{s}.png" for s in subsets} <= set(page.images)
    reported = runs[("logmel-stats", "knn")]
    assert set(page.links) == {f"{reported}/index.html"} and (folder / reported / "index.html").is_file()
    assert page.column("report")[reported][1] == "report" and all(
        text == "" for rid, (_, text) in page.column("report").items() if rid != reported)


@pytest.mark.slow
def test_noisy_chart_data_is_the_noise_comparison(dash_ws):
    from asd_core.evaluation.noise import noise_comparison
    from asd_core.reporting.dashboard_data import runs_data

    ws, runs = dash_ws
    data = runs_data(ws)
    assert {r["run_id"] for r in data.noisy} == {rid for key, rid in runs.items() if key != ("stft-mean", "none")}
    want = noise_comparison(ws)  # rows (subset, bin), one column per <encoder>/<normalization>
    assert len(data.noisy) == 3 * len(want)
    got = {(r["noise_subset"], r["snr_bin"], f"{r['encoder']}/{r['normalization']}"): r["official_score"] for r in data.noisy}
    for row in want:
        for label in ("logmel-stats/none", "logmel-stats/knn", "stft-mean/knn"):
            assert got[(row["noise_subset"], row["snr_bin"], label)] == pytest.approx(row[label], abs=1e-12)
    # one line per encoder in each normalization's panel: the labels are the encoders
    assert set(line_labels(data.noisy).values()) == {"logmel-stats", "stft-mean"}


@pytest.mark.slow
def test_registry_section_lists_versions_with_aliases(dash_ws, tmp_path):
    from mlflow import MlflowClient

    from asd_core.reporting.dashboard import build_dashboard
    from asd_core.reporting.registry_view import _mlflow_rows, registry_view
    from asd_core.tracking.store import TrackingConfig

    ws, runs = dash_ws
    assert not (ws.mlflow_dir / "mlflow.db").exists()
    before = build_dashboard(ws)
    assert "no model registry in this workspace yet" in before.index.read_text() and not before.registry.versions
    assert not (ws.mlflow_dir / "mlflow.db").exists()  # reading never creates a store

    uri = f"sqlite:///{ws.mlflow_dir / 'mlflow.db'}"
    ws.mlflow_dir.mkdir(parents=True, exist_ok=True)
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)
    c.create_registered_model("asd-encoder")
    c.create_registered_model("other-model")
    for name, rid in [("asd-encoder", runs[("logmel-stats", "knn")]), ("asd-encoder", runs[("stft-mean", "knn")]),
                      ("other-model", runs[("logmel-stats", "none")])]:
        c.create_model_version(name, source=str(tmp_path), tags={"run_id": rid, "official_score": "0.75", "encoder": "x"})
    c.set_registered_model_alias("asd-encoder", "champion", "1")
    c.set_registered_model_alias("asd-encoder", "challenger", "2")
    c.set_registered_model_alias("other-model", "challenger", "1")

    view = registry_view(ws)
    assert [(v["model"], v["version"], v["aliases"]) for v in view.versions] == [
        ("asd-encoder", 1, "champion"), ("asd-encoder", 2, "challenger"), ("other-model", 1, "challenger")]
    slow = _mlflow_rows(ws, TrackingConfig())  # what MLflow itself says (the path for other stores)
    assert [{k: str(v) for k, v in row.items()} for row in slow] == [{k: str(v) for k, v in row.items()} for row in view.versions]
    html = build_dashboard(ws).index.read_text()
    table = html[html.index('<table id="registry"'):]
    assert table.count("<tr>") == 1 + 3 and "champion" in table and runs[("stft-mean", "knn")] in table


@pytest.mark.slow
def test_a_failed_rebuild_leaves_the_previous_dashboard(dash_ws, monkeypatch):
    import asd_core.reporting.dashboard as dashboard

    ws, _ = dash_ws
    first = dashboard.build_dashboard(ws)
    folder = first.index.parent
    before = {p.relative_to(folder): p.read_bytes() for p in [first.index, *first.figures]}

    def broken(*args, **kwargs):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(dashboard, "noisy_pngs", broken)
    with pytest.raises(RuntimeError, match="figure failed"):
        dashboard.build_dashboard(ws)
    assert {p.relative_to(folder): p.read_bytes() for p in [first.index, *first.figures]} == before
    assert sorted(p.name for p in (folder / "dashboard").iterdir()) == sorted(p.name for p in first.figures)
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temporaries left


@pytest.mark.slow
def test_asd_report_dashboard_command(dash_ws, capsys):
    from flows.cli import main

    ws, runs = dash_ws
    assert main(["report", "--dashboard", "--workspace", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert "dashboard: " in out and "(4 runs, 3 figures" in out and "report of run" not in out
    rid = runs[("stft-mean", "none")]
    assert main(["report", "--dashboard", "--run", rid, "--no-mlflow", "--workspace", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert f"report of run {rid}" in out and "dashboard: " in out
    page = Page((ws.root / "reports" / "index.html").read_text())
    assert f"{rid}/index.html" in page.links  # the new run report is linked


@pytest.mark.slow
@needs_chromium
def test_dashboard_in_headless_chromium(dash_ws, tmp_path):
    """The page as a browser sees it: no console messages (JS errors), every <img> decoded, one row per run."""
    from asd_core.reporting.dashboard import build_dashboard

    ws, _ = dash_ws
    result = build_dashboard(ws)
    dom, console = chromium_dom(result.index.as_uri(), tmp_path / "profile")
    data = body_data(dom)
    n_runs = len(_sql(ws, "SELECT run_id FROM runs"))
    assert console == [], console
    assert data["ready"] == "1", "the page's load handler did not run"
    assert data["broken-images"] == "" and data["images"] == str(len(result.figures))
    assert data["run-rows"] == str(n_runs) and dom.count("<tr id=\"run-") == n_runs


@pytest.mark.slow  # a spectral pipeline: ingest, embed, two scoring runs with their reports (~40 s)
def test_pipeline_builds_the_dashboard(tmp_path, demo_small, prefect_harness):
    from flows.pipeline import pipeline_flow

    cfg = {"workspace": str(tmp_path / "ws"), "data": {"roots": [str(demo_small)], "dataset_name": "demo"},
           "mix": {"enabled": False}, "teacher": {"enabled": False}, "student": {"enabled": False},
           "embed": {"encoders": ["stft-mean"], "noisy_encoders": []}, "score": {"normalizations": ["none", "knn"]},
           "register": {"enabled": False}, "runner": {"threads": 2}}
    r = pipeline_flow(config=cfg)
    index = Path(r["dashboard"])
    assert index == tmp_path / "ws" / "reports" / "index.html"
    page = Page(index.read_text())
    assert sorted(page.rows) == sorted(r["run_ids"].values())
    assert sorted(set(page.links)) == sorted(f"{rid}/index.html" for rid in r["run_ids"].values())
    assert all((index.parent / link).is_file() for link in page.links)
    assert "No run scored noisy test clips" in index.read_text()
