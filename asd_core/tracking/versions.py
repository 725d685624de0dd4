"""The rows ``asd models`` prints, and a fast path that reads them without importing MLflow.

Importing MLflow costs seconds; listing versions needs four small tables. For the default
store (SQLite in the workspace) ``sqlite_versions`` reads them read-only with ``sqlite3``;
other stores, or a schema this code does not recognise, return ``None`` and the caller asks
``MlflowClient`` (tracking/registry.py ``list_models``). A test keeps both paths equal.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from urllib.parse import urlparse

MLFLOW_WORKSPACE = "default"  # MLflow's own workspace column (3.x), not ours


def version_row(version: int | str, created_ms: int, tags: dict, aliases: list[str]) -> dict:
    """One printed row: version, aliases, key tags, creation time."""
    return {"version": version, "aliases": ",".join(sorted(aliases)),
            "official_score": _short(tags.get("official_score")), "encoder": tags.get("encoder"),
            "normalization": tags.get("normalization"), "run_id": tags.get("run_id"),
            "data_snapshot": tags.get("data_snapshot"), "teacher": tags.get("teacher"),
            "git_commit": (tags.get("git_commit") or "")[:10], "promotion": tags.get("promotion_decision", ""),
            # `asd enroll`: the version it enrolled into and the new domain
            "parent": tags.get("parent_version", ""), "enrolled": tags.get("enrolled_domain", ""),
            "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(created_ms / 1000))}


def _short(score: str | None) -> str | None:
    try:
        return f"{float(score):.4f}"
    except (TypeError, ValueError):
        return score


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, else None."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite" or parsed.netloc or len(parsed.path) < 2:
        return None
    return Path(parsed.path[1:])  # SQLAlchemy: sqlite:///rel.db is relative, sqlite:////abs.db absolute


def sqlite_versions(db: Path, name: str) -> list[dict] | None:
    """Rows of every live version of ``name`` read straight from MLflow's SQLite store; ``[]`` when the
    model is not registered, ``None`` when the file or its schema is not what this reader knows."""
    if not db.is_file():
        return None
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        known = con.execute("SELECT count(*) FROM registered_models WHERE name = ? AND workspace = ?",
                            (name, MLFLOW_WORKSPACE)).fetchone()[0]
        if not known:
            return None  # let MLflow word the "not registered" error
        versions = con.execute(
            "SELECT version, creation_time FROM model_versions WHERE name = ? AND workspace = ? "
            "AND current_stage != 'Deleted_Internal' ORDER BY version", (name, MLFLOW_WORKSPACE)).fetchall()
        tags: dict[int, dict] = {}
        for key, value, version in con.execute(
                "SELECT key, value, version FROM model_version_tags WHERE name = ? AND workspace = ?", (name, MLFLOW_WORKSPACE)):
            tags.setdefault(int(version), {})[key] = value
        aliases: dict[int, list[str]] = {}
        for alias, version in con.execute(
                "SELECT alias, version FROM registered_model_aliases WHERE name = ? AND workspace = ?", (name, MLFLOW_WORKSPACE)):
            aliases.setdefault(int(version), []).append(alias)
    except sqlite3.Error:  # another MLflow schema: the slow path knows it
        return None
    finally:
        con.close()
    return [version_row(int(v), created, tags.get(int(v), {}), aliases.get(int(v), [])) for v, created in versions]
