"""``<workspace>/reports/index.html``: the workspace dashboard (every scoring run, charts, the
registry), its PNGs in ``reports/dashboard/``; written atomically, as run reports are."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from asd_core.config import Workspace
from asd_core.reporting.dashboard_data import RunsData, runs_data
from asd_core.reporting.dashboard_figures import OFFICIAL_PNG, noisy_pngs, official_png
from asd_core.reporting.dashboard_html import Figures, render_dashboard
from asd_core.reporting.registry_view import RegistryView, registry_view
from asd_core.storage.atomic import atomic_dir, atomic_path
from asd_core.tracking.store import TrackingConfig

FIGURE_DIR = "dashboard"  # beside the run report folders (reports/<run_id>/), which are 12 hex digits


@dataclass
class DashboardResult:
    index: Path
    figures: list[Path] = field(default_factory=list)
    data: RunsData | None = None
    registry: RegistryView | None = None


def dashboard_index(ws: Workspace) -> Path:
    return ws.root / "reports" / "index.html"


def build_dashboard(ws: Workspace, tracking: TrackingConfig = TrackingConfig()) -> DashboardResult:
    """Rebuild the dashboard from DuckDB (read-only) and the registry; a failure leaves the previous one."""
    data = runs_data(ws)
    registry = registry_view(ws, tracking)
    index = dashboard_index(ws)
    final = index.parent / FIGURE_DIR
    with atomic_path(index) as page, atomic_dir(final) as tmp:  # the figures move in first, then the page
        official = official_png(data.runs, tmp / OFFICIAL_PNG)
        noisy = noisy_pngs(data.noisy, tmp)
        figures = Figures(f"{FIGURE_DIR}/{official.name}", {s: f"{FIGURE_DIR}/{p.name}" for s, p in noisy.items()})
        page.write_text(render_dashboard(str(ws.root), data, registry, figures))
        names = [official.name, *(p.name for p in noisy.values())]
    return DashboardResult(index, [final / n for n in names], data, registry)
