"""Model registry commands: register, promote, models."""

from __future__ import annotations

import argparse
import sys

from flows.cli.common import add_tracking, add_workspace, tracking


def cmd_register(args) -> int:
    from asd_core.config import Workspace
    from asd_core.tracking.registry import register_run

    r = register_run(Workspace(args.workspace), args.run, tracking(args))
    print(f"registered {r['name']} version {r['version']} from run {r['run_id']} (alias challenger), "
          f"official score {r['official_score']}")
    return 0


def cmd_promote(args) -> int:
    from asd_core.config import Workspace
    from asd_core.tracking.registry import promote

    r = promote(Workspace(args.workspace), tracking(args), args.version)
    champ = "none" if r["champion_version"] is None else f"version {r['champion_version']}: {r['champion_score']:.4f}"
    print(f"challenger version {r['version']}: {r['challenger_score']:.4f}; champion {champ}")
    if r["promoted"]:
        print(f"promoted: {r['name']}@champion -> version {r['version']} ({r['reason']})")
        return 0
    print(f"refused: the challenger's official score is below the champion's; champion stays version {r['champion_version']}",
          file=sys.stderr)
    return 1


def cmd_models(args) -> int:
    from asd_core.config import Workspace
    from asd_core.textable import format_table
    from asd_core.tracking.versions import sqlite_file, sqlite_versions

    ws, cfg = Workspace(args.workspace), tracking(args)
    db = sqlite_file(cfg.resolved_uri(ws))
    rows = sqlite_versions(db, cfg.model_name) if db is not None else None  # no MLflow import: well under a second
    if rows is None:
        from asd_core.tracking.registry import list_models

        rows = list_models(ws, cfg)
    print(format_table(rows) if rows else f"no versions of {args.model_name}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("register", help="register a scoring run in the MLflow model registry (alias challenger)",
                       description="Bundle the run's encoder, per-section FAISS indexes with rho and its normalisation "
                                   "config as an MLflow pyfunc that scores WAV files, register it as a new version.")
    p.add_argument("--run", default=None, metavar="ID", help="scoring run (default: the newest)")
    add_tracking(p)
    add_workspace(p)
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("promote", help="move alias champion to the challenger if its official score is at least the champion's")
    p.add_argument("--version", default=None, help="version to promote (default: the challenger)")
    add_tracking(p)
    add_workspace(p)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("models", help="list registered model versions with aliases, key metrics and tags")
    add_tracking(p)
    add_workspace(p)
    p.set_defaults(func=cmd_models)
