"""Every registered model version with its aliases, for the dashboard: read-only from the
workspace's SQLite store without MLflow where it can (tracking/versions.py), else via MLflow."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field, replace

from asd_core.config import Workspace
from asd_core.tracking.store import TrackingConfig
from asd_core.tracking.versions import MLFLOW_WORKSPACE, sqlite_file, sqlite_versions


@dataclass
class RegistryView:
    uri: str
    versions: list[dict] = field(default_factory=list)  # model + the row `asd models` prints
    note: str = ""  # why there are no versions, when there are none


def registry_view(ws: Workspace, tracking: TrackingConfig = TrackingConfig()) -> RegistryView:
    """The versions of every registered model in the store; never creates a store that is not there."""
    uri = tracking.resolved_uri(ws)
    db = sqlite_file(uri)
    if db is not None and not db.is_file():
        return RegistryView(uri, note="no model registry in this workspace yet (nothing registered)")
    rows = _sqlite_rows(db) if db is not None else None
    if rows is None:
        try:
            rows = _mlflow_rows(ws, tracking)
        except Exception as exc:  # noqa: BLE001 - the dashboard says why instead of failing
            return RegistryView(uri, note=f"the registry could not be read: {type(exc).__name__}: {exc}")
    if not rows:
        return RegistryView(uri, note="no registered models in the registry yet")
    return RegistryView(uri, rows)


def _sqlite_rows(db) -> list[dict] | None:
    """None when the file's schema is not one ``sqlite_versions`` knows."""
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            names = [r[0] for r in con.execute("SELECT name FROM registered_models WHERE workspace = ? ORDER BY name",
                                               (MLFLOW_WORKSPACE,))]
        finally:
            con.close()
    except sqlite3.Error:
        return None
    rows = []
    for name in names:
        versions = sqlite_versions(db, name)
        if versions is None:
            return None
        rows += [{"model": name, **v} for v in versions]
    return rows


def _mlflow_rows(ws: Workspace, tracking: TrackingConfig) -> list[dict]:
    from asd_core.tracking.registry import list_models
    from asd_core.tracking.store import client

    names = sorted(m.name for m in client(ws, tracking).search_registered_models())
    return [{"model": name, **v} for name in names for v in list_models(ws, replace(tracking, model_name=name))]
