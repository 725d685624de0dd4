"""The ``asd`` command: one sub-command per pipeline stage, each with ``--workspace``.

One module per command group; each has ``register(sub)`` adding its sub-commands. Modules import
only argparse and torch-free config modules at the top, and what a command runs (Prefect, torch,
MLflow) inside its function, so ``asd --help`` and ``asd sql`` start in well under a second
(benchmarks/cli_startup.py).
"""

from __future__ import annotations

import argparse
import logging
import sys

from flows.cli import data, monitor, pipeline, registry, scoring, training
from flows.cli.common import prefect_env, reads_only, session_workspace

# Order of the sub-commands in ``asd --help``: the order a pipeline runs them.
COMMAND_MODULES = (data, training, scoring, registry, monitor, pipeline)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asd", description="Anomalous sound detection pipeline (DCASE Task 2).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prefect_env()
    if argv is None:  # the `asd` process itself; tests call main(argv) inside one long-lived process
        from flows import prefect_server

        prefect_server.install()  # its temporary Prefect server dies with it; SIGTERM unwinds like Ctrl-C
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("asd").setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        workspace = session_workspace(args)  # checked before any flow, so a bad workspace fails at once
        from asd_core.storage.cleanup import workspace_session

        with workspace_session(workspace, clean=not reads_only(args)):  # leftovers of dead runs go first
            return args.func(args)
    except (ValueError, OSError, RuntimeError) as exc:  # our own errors, and OSErrors, name what and where
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (prefect_server.install)
        print(f"error: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
