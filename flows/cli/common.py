"""What every ``asd`` command shares: the workspace option, folder checks, tracking options."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from asd_core.config import DEFAULT_WORKSPACE_NAME


def prefect_env() -> None:
    """Defaults for the temporary local Prefect server (set before prefect is imported)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "asd")
    # library code also logs outside flow runs (make-demo-data, sql): keep those lines local
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def add_workspace(p: argparse.ArgumentParser, *, reads_only: bool = False, used: bool = True) -> None:
    """``--workspace``; ``reads_only``: a read-only workspace is fine; ``used=False``: the command ignores it."""
    p.add_argument("--workspace", default=DEFAULT_WORKSPACE_NAME, type=Path,
                   help="folder holding Parquet datasets, asd.duckdb, indexes and the MLflow store (default: %(default)s)")
    p.set_defaults(workspace_reads_only=reads_only, workspace_used=used)


def check_folder(path: Path, what: str, writes: bool) -> None:
    """A one-line error, before anything starts, when ``path`` (a folder to use) is a file, lies under a
    file, or (``writes``) cannot be written. Root passes the write check whatever the permissions say."""
    path = Path(path).expanduser()
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        where = "is a file" if existing == path.absolute() else f"lies under the file {existing}"
        raise ValueError(f"{what} {path} {where}, not a folder")
    if writes and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path} is not writable: no write permission on {existing}")


def session_workspace(args) -> Path | None:
    """The workspace the command uses (None: it uses none), checked before any flow starts."""
    workspace = getattr(args, "workspace", None)
    if workspace is None or not getattr(args, "workspace_used", True):
        return None
    check_folder(workspace, "--workspace", writes=not reads_only(args))
    return workspace


def reads_only(args) -> bool:
    return bool(getattr(args, "workspace_reads_only", False))


def add_tracking_uri(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: sqlite store in <workspace>/mlflow/mlflow.db)")


def add_tracking(p: argparse.ArgumentParser) -> None:
    add_tracking_uri(p)
    p.add_argument("--model-name", default="asd-encoder", help="registered model name (default: %(default)s)")


def tracking(args):
    from asd_core.tracking.store import TrackingConfig

    return TrackingConfig(uri=args.tracking_uri, model_name=args.model_name)


def toml_str(value) -> str:
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def run_or_reuse(make_cache, run, noop):
    """``run()``'s report, or ``noop(stored report)`` when ``make_cache()`` (asd_core/pipeline/uptodate.py)
    finds the command up to date. The key is worked out again after the run and the report stored
    only if it still holds (inputs that changed during the run are not recorded as seen). A key that
    cannot be worked out (no workspace yet, an unreadable file) means: run, and let the flow say
    what is wrong."""
    cache = _cache_or_none(make_cache)
    stored = cache.lookup() if cache else None
    if stored is not None:
        return noop(stored)
    report = run()
    after = _cache_or_none(make_cache) if cache else None
    if after is not None and after.key == cache.key:
        try:
            after.store(report)
        except (OSError, TypeError, ValueError) as exc:  # no record: the next run runs the flow, nothing is lost
            logging.getLogger("asd").warning("no up-to-date record kept for this command (%s)", exc)
    return report


def _cache_or_none(make_cache):
    try:
        return make_cache()
    except Exception:  # noqa: BLE001 - any doubt means: run the flow
        return None
